/*
 * test_text.c - what we write is valid UTF-8 without control characters,
 * cut at character boundaries.
 */
#include "config.h"

#include <check.h>
#include <string.h>

#include "suites.h"
#include "text.h"

START_TEST(cuts_at_a_character_boundary)
{
	char out[64];

	/* "aé" is 3 bytes: a cut at 2 must not keep half of the é */
	ck_assert_str_eq(text_clean("a\xC3\xA9", 2, out, sizeof(out)), "a");
	ck_assert_str_eq(text_clean("a\xC3\xA9", 3, out, sizeof(out)),
	    "a\xC3\xA9");
	/* a 4-byte character against the buffer's own size */
	ck_assert_str_eq(text_clean("ab\xF0\x9F\x98\x80", 100, out, 5), "ab");
	ck_assert(text_is_clean(out));
}
END_TEST

START_TEST(invalid_bytes_are_replaced)
{
	static const char *const bad[] = {
		"\xC3",			/* truncated */
		"\xC0\xAF",		/* overlong '/' */
		"\xED\xA0\x80",		/* a surrogate */
		"\xF4\x90\x80\x80",	/* above U+10FFFF */
		"\xFF",
		"\x80",			/* a lone continuation */
	};
	char out[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert(!text_is_clean(bad[i]));
		text_clean(bad[i], 60, out, sizeof(out));
		ck_assert_msg(text_is_clean(out), "case %zu", i);
		ck_assert_ptr_nonnull(strstr(out, "\xEF\xBF\xBD"));
	}
	ck_assert_str_eq(text_clean("x\xFFy", 60, out, sizeof(out)),
	    "x\xEF\xBF\xBDy");
}
END_TEST

START_TEST(control_characters_become_spaces)
{
	char out[64];

	ck_assert_str_eq(text_clean("a\nb\rc\td\x1B[31m\x7F\xC2\x85", 60, out,
	    sizeof(out)), "a b c d [31m  ");
	ck_assert(text_is_clean("plain ASCII, \xC3\xA9t\xC3\xA9 \xE2\x82\xAC"));
	ck_assert(!text_is_clean("tab\there"));
}
END_TEST

START_TEST(names_are_cut_between_characters)
{
	char out[64], name[256];
	size_t n = 0;

	/* short names pass whole */
	ck_assert_str_eq(text_name("caf\xC3\xA9", 10, out, sizeof(out)),
	    "caf\xC3\xA9");
	/* "a" then 40 é (81 bytes) cut to 20: "a" + 8 é + "…", 20 bytes */
	name[n++] = 'a';
	for (int i = 0; i < 40; i++) {
		name[n++] = '\xC3';
		name[n++] = '\xA9';
	}
	name[n] = '\0';
	text_name(name, 20, out, sizeof(out));
	ck_assert_uint_le(strlen(out), 20);
	ck_assert(text_is_clean(out));
	ck_assert_ptr_null(strstr(out, "\xEF\xBF\xBD"));
	ck_assert_str_eq(out + strlen(out) - 3, "\xE2\x80\xA6");
	ck_assert_int_eq(strncmp(out, name, strlen(out) - 3), 0);
	/* 4-byte characters: never a piece of one */
	for (size_t cut = 4; cut < 20; cut++) {
		text_name("\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
		    "\xF0\x9F\x98\x80\xF0\x9F\x98\x80", cut, out, sizeof(out));
		ck_assert_msg(text_is_clean(out), "cut %zu", cut);
		ck_assert_uint_le(strlen(out), cut);
	}
}
END_TEST

START_TEST(formatting_never_splits_a_character)
{
	char out[16];

	/* 7 é (14 bytes) and a prefix: vsnprintf would keep half of one */
	for (size_t len = 1; len <= sizeof(out); len++) {
		text_format(out, len, "x%s", "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
		    "\xC3\xA9\xC3\xA9\xC3\xA9");
		ck_assert_msg(text_is_clean(out), "len %zu: %s", len, out);
		ck_assert_uint_ge(strlen(out) + 2, len - 1);
	}
	ck_assert_str_eq(text_format(out, sizeof(out), "%d-%s", 7, "ok"),
	    "7-ok");
}
END_TEST

Suite *
text_suite(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("utf8");

	tcase_add_test(tc, cuts_at_a_character_boundary);
	tcase_add_test(tc, invalid_bytes_are_replaced);
	tcase_add_test(tc, control_characters_become_spaces);
	tcase_add_test(tc, names_are_cut_between_characters);
	tcase_add_test(tc, formatting_never_splits_a_character);
	suite_add_tcase(s, tc);
	return s;
}
