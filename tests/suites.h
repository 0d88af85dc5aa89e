/* suites.h - the unit test suites; each file exports one. */
#ifndef FIRESYNC_SUITES_H
#define FIRESYNC_SUITES_H

#include <check.h>

Suite *value_suite(void);
Suite *session_suite(void);
Suite *paths_suite(void);
Suite *backoff_suite(void);
Suite *watch_suite(void);
Suite *image_suite(void);
Suite *store_suite(void);
Suite *options_suite(void);
Suite *token_suite(void);
Suite *log_suite(void);
Suite *dispatch_suite(void);
Suite *text_suite(void);
Suite *strmap_suite(void);
Suite *buf_suite(void);

#endif
