/* tp_utf8: repair tables.  Each row: input bytes -> exact output bytes. */
#include <string.h>

#include "tp_check.h"
#include "tp_utf8.h"

#define FFFD "\xEF\xBF\xBD"
#define ROW(name, in, out, valid) { name, in, sizeof(in) - 1, out, sizeof(out) - 1, valid }

static const struct {
    const char *name;
    const char *in;
    size_t in_len;
    const char *out;
    size_t out_len;
    int valid;
} rows[] = {
    ROW("ascii", "abc", "abc", 1),
    ROW("empty", "", "", 1),
    ROW("nul kept", "a\0b", "a\0b", 1),
    ROW("2-byte", "\xC3\xA9", "\xC3\xA9", 1),
    ROW("3-byte", "\xE2\x82\xAC", "\xE2\x82\xAC", 1),
    ROW("emoji 4-byte", "\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80", 1),
    ROW("U+10FFFF", "\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF", 1),
    ROW("lone 0xff", "a\xFFz", "a" FFFD "z", 0),
    ROW("lone continuation", "\x80", FFFD, 0),
    ROW("two continuations", "\x80\x80", FFFD FFFD, 0),
    ROW("truncated 2-byte at end", "a\xC3", "a" FFFD, 0),
    ROW("truncated 3-byte is one FFFD", "\xE2\x82z", FFFD "z", 0),
    ROW("truncated 4-byte is one FFFD", "\xF0\x9F\x98", FFFD, 0),
    ROW("overlong 2-byte slash", "\xC0\xAF", FFFD FFFD, 0),
    ROW("overlong 3-byte", "\xE0\x80\xAF", FFFD FFFD FFFD, 0),
    ROW("overlong 4-byte", "\xF0\x80\x80\xAF", FFFD FFFD FFFD FFFD, 0),
    ROW("encoded surrogate D800", "\xED\xA0\x80", FFFD FFFD FFFD, 0),
    ROW("encoded surrogate DFFF", "\xED\xBF\xBF", FFFD FFFD FFFD, 0),
    ROW("past U+10FFFF (F4 90)", "\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD, 0),
    ROW("F5 lead", "\xF5\x80\x80\x80", FFFD FFFD FFFD FFFD, 0),
    ROW("latin-1 word", "caf\xE9!", "caf" FFFD "!", 0),
    /* Eight ASCII bytes are checked at once: bytes at and across those
     * words' edges. */
    ROW("16 ascii", "0123456789abcdef", "0123456789abcdef", 1),
    ROW("bad byte 8 of a word", "abcdefg\xFF", "abcdefg" FFFD, 0),
    ROW("bad byte after a word", "abcdefgh\xFF" "ijklmnop", "abcdefgh" FFFD "ijklmnop", 0),
    ROW("2-byte across words", "abcdefg\xC3\xA9" "hijklmnopq", "abcdefg\xC3\xA9" "hijklmnopq", 1),
    ROW("truncated after words", "0123456789abcdef\xE2\x82", "0123456789abcdef" FFFD, 0),
    ROW("bad in a word's tail", "0123456789ab\x80" "defghijk", "0123456789ab" FFFD "defghijk", 0),
};

START_TEST(repair_table)
{
    char out[64];
    size_t consumed = 99;
    size_t n = tp_utf8_repair(rows[_i].in, rows[_i].in_len, out, sizeof(out), &consumed);
    size_t want = rows[_i].out_len;
    ck_assert_msg(n == want && memcmp(out, rows[_i].out, want) == 0,
                  "row %s: got %zu bytes", rows[_i].name, n);
    ck_assert_msg(consumed == rows[_i].in_len, "row %s: consumed", rows[_i].name);
    ck_assert_msg(tp_utf8_valid(rows[_i].in, rows[_i].in_len) == rows[_i].valid,
                  "row %s: valid", rows[_i].name);
    ck_assert_msg(tp_utf8_valid(out, n), "row %s: output not valid", rows[_i].name);
}
END_TEST

START_TEST(repair_never_splits_a_character)
{
    /* 4 bytes of room, "a" + emoji needs 5: the emoji is left out whole. */
    char out[8];
    size_t consumed = 0;
    size_t n = tp_utf8_repair("a\xF0\x9F\x98\x80", 5, out, 4, &consumed);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(consumed, 1);
    ck_assert_int_eq(out[0], 'a');
}
END_TEST

START_TEST(repair_dup_cut)
{
    size_t len = 0;
    int cut = 0;
    char *s = tp_utf8_repair_dup("\xC3\xA9\xC3\xA9\xC3\xA9", 6, 5, &len, &cut);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(len, 4);
    ck_assert_int_eq(cut, 1);
    ck_assert_str_eq(s, "\xC3\xA9\xC3\xA9");
    free(s);
    s = tp_utf8_repair_dup("\xFF", 1, 0, &len, &cut);
    ck_assert_str_eq(s, FFFD);
    ck_assert_int_eq(cut, 0);
    free(s);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("repair");
    tcase_add_loop_test(tc, repair_table, 0, (int)(sizeof(rows) / sizeof(rows[0])));
    tcase_add_test(tc, repair_never_splits_a_character);
    tcase_add_test(tc, repair_dup_cut);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
