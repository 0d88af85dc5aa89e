/*
 * unit.c - runs every unit suite.  The daemon's sources are linked in as a
 * library, so internals are testable directly.
 */
#include "config.h"

#include <stdlib.h>

#include "log.h"
#include "suites.h"

int
main(void)
{
	SRunner *sr = srunner_create(value_suite());
	int failed;

	log_init();
	log_level = LOG_CRIT;	/* tests check results, not log lines */
	srunner_add_suite(sr, session_suite());
	srunner_add_suite(sr, paths_suite());
	srunner_add_suite(sr, backoff_suite());
	srunner_add_suite(sr, watch_suite());
	srunner_add_suite(sr, image_suite());
	srunner_add_suite(sr, store_suite());
	srunner_add_suite(sr, options_suite());
	srunner_add_suite(sr, token_suite());
	srunner_add_suite(sr, log_suite());
	srunner_add_suite(sr, dispatch_suite());
	srunner_add_suite(sr, text_suite());
	srunner_add_suite(sr, buf_suite());
	srunner_add_suite(sr, strmap_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
