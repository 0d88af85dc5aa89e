/*
 * capture.c - stderr capture through a temporary file.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "capture.h"

void
capture_stderr(void (*fn)(void *), void *arg, char *out, size_t len)
{
	char tmpl[] = "/tmp/fserr-XXXXXX";
	int fd = mkstemp(tmpl), saved = dup(2);
	ssize_t n;

	fflush(stderr);
	dup2(fd, 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, out, len - 1);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(tmpl);
}
