/*
 * poolkit.c - plugins through real workers, for tests (poolkit.h).
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "poolkit.h"

void
poolkit_dir(struct poolkit *k, const char *from, const char *names)
{
	char cmd[1024], list[512], *save = NULL;
	size_t n;

	memset(k, 0, sizeof(*k));
	snprintf(k->dir, sizeof(k->dir), "/tmp/fskit-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(k->dir));
	n = (size_t)snprintf(cmd, sizeof(cmd), "mkdir %s/plugins", k->dir);
	snprintf(list, sizeof(list), "%s", names);
	for (char *t = strtok_r(list, " ", &save); t;
	    t = strtok_r(NULL, " ", &save))
		n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, " && cp %s/%s "
		    "%s/plugins/", from, t, k->dir);
	snprintf(cmd + n, sizeof(cmd) - n, " && chmod 755 %s %s/plugins "
	    "%s/plugins/*.so", k->dir, k->dir, k->dir);
	ck_assert_msg(system(cmd) == 0, "%s", cmd);
}

void
poolkit_write(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "%s", path);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(chmod(path, mode), 0);
}

const char *
poolkit_conf(const struct poolkit *k, const char *conf)
{
	static char path[128];

	snprintf(path, sizeof(path), "%s/firesyncd.conf", k->dir);
	poolkit_write(path, conf ? conf : "", 0644);
	return path;
}

void
poolkit_start(struct poolkit *k, const char *conf, int64_t timeout_ms)
{
	struct pool_options o = {
		.workers = 1, .memory_mb = 1024, .max_jobs = 100,
		.max_pixels = 50000000, .log_level = LOG_ERR,
	};
	char pdir[128], err[512], *worker = pool_find_worker();

	snprintf(pdir, sizeof(pdir), "%s/plugins", k->dir);
	o.plugin_dir = pdir;
	o.config_path = poolkit_conf(k, conf);
	o.worker_path = worker;
	o.timeout_ms = timeout_ms ? timeout_ms : 20000;
	k->pool = pool_new(&o, err, sizeof(err));
	free(worker);
	ck_assert_msg(k->pool != NULL, "%s", err);
}

void
poolkit_stop(struct poolkit *k)
{
	char cmd[128];

	if (k->pool)
		pool_free(k->pool);
	k->pool = NULL;
	if (k->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", k->dir);
		(void)!system(cmd);
	}
	k->dir[0] = '\0';
}

const char *
poolkit_list(const struct poolkit *k, const char *conf)
{
	static char out[8192];
	char cmd[512];
	FILE *f;
	size_t n;

	snprintf(cmd, sizeof(cmd), "%s --list-plugins -c %s --plugin-dir "
	    "%s/plugins 2>&1", FIRESYNCD, poolkit_conf(k, conf), k->dir);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	pclose(f);
	return out;
}

void
poolkit_expect_listed(const struct poolkit *k, const char *conf,
    const char *want)
{
	const char *out = poolkit_list(k, conf);

	ck_assert_msg(strstr(out, want) != NULL, "no '%s' in:\n%s", want,
	    out);
}
