/*
 * memlimit.c - a plugin that allocates without bound hits the worker's
 * address-space limit and costs only its own session.
 *
 * AddressSanitizer reserves terabytes of shadow memory, so a sanitizer
 * build cannot set that limit (the worker skips it): there this program
 * exits 77, which the test harness reports as SKIP.  The plain build runs
 * it.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"
#include "testimg.h"

#define SKIP_STATUS 77		/* automake's "skipped" */

START_TEST(unbounded_allocation_hits_the_limit)
{
	char dir[] = "/tmp/fsmem-XXXXXX", cmd[512], err[512];
	struct pool_options o = {
		.plugin_dir = dir, .workers = 1, .timeout_ms = 20000,
		.memory_mb = 512, .max_jobs = 10, .max_pixels = 50000000,
		.log_level = LOG_CRIT,
	};
	struct pool_job job = { .ai = true, .model = "test-hog",
	    .prompt = "", .aspect_ratio = "", .session_id = "s",
	    .event_id = "e" };
	struct pool_result res;
	uint8_t *jpg;
	size_t jpglen;
	struct pool *pool;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "cp %s/hog.so %s/good.so %s/ && chmod 755 "
	    "%s/*.so", TEST_PLUGINS, TEST_PLUGINS, dir, dir);
	ck_assert_int_eq(system(cmd), 0);
	o.worker_path = pool_find_worker();
	pool = pool_new(&o, err, sizeof(err));
	ck_assert_msg(pool != NULL, "pool_new: %s", err);
	testimg_jpeg(64, 48, 1, &jpg, &jpglen);
	job.input = jpg;
	job.input_len = jpglen;

	ck_assert_msg(pool_transform(pool, &job, &res) == POOL_CRASH, "%s: %s",
	    pool_status_name(res.status), res.message);
	ck_assert_ptr_nonnull(strstr(res.message, "plugin test-hog crashed "
	    "(signal"));
	ck_assert_str_eq(res.plugin, "test-hog");
	/* and the next session is served by a fresh worker */
	job.model = "test-good";
	ck_assert_int_eq(pool_transform(pool, &job, &res), POOL_OK);
	free(res.png);
	free(jpg);
	pool_free(pool);
	free((char *)o.worker_path);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}
END_TEST

int
main(void)
{
	Suite *s;
	TCase *tc;
	SRunner *sr;
	int failed;

#if defined(__SANITIZE_ADDRESS__)
	puts("SKIP: the worker's address-space limit cannot be set under "
	    "AddressSanitizer; the plain build runs this test");
	return SKIP_STATUS;
#endif
	s = suite_create("memlimit");
	tc = tcase_create("worker");
	log_init();
	log_level = LOG_CRIT;
	tcase_add_test(tc, unbounded_allocation_hits_the_limit);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
