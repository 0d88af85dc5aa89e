/*
 * fuzz_config.c - libFuzzer target: the configuration file, as firesyncd
 * reads it (every error reported, none fatal) and as a worker reads the
 * plugins' sections.
 */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "options.h"
#include "plugins.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[512];
	char *argv[] = { (char *)"firesyncd", (char *)"-c", path,
	    (char *)"--check-config", NULL };
	struct plugin_configs cfgs;
	struct options o;
	int fd;

	log_level = -1;		/* run with -close_fd_mask=2: the parser
				   reports every problem on stderr */
	fd = memfd_create("conf", 0);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	unsetenv("GOOGLE_CLOUD_PROJECT");
	unsetenv("FIRESTORE_EMULATOR_HOST");
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	options_parse(&o, 4, argv);
	options_clear(&o);
	plugin_configs_load(&cfgs, path, err, sizeof(err));
	plugin_configs_free(&cfgs);
	close(fd);
	return 0;
}
