/* tp_json: the text is what json-c prints (PLAIN | NOSLASHESCAPE). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "tp_check.h"
#include "tp_json.h"
#include "tp_spool.h"

#define FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* tp_json_string(s) == json-c's printing of the string s. */
static void same_as_jsonc(const char *s, size_t n)
{
    json_object *o = json_object_new_string_len(s, (int)n);
    tp_buf b = { 0 };

    ck_assert_ptr_nonnull(o);
    tp_json_string(&b, s, n);
    ck_assert_int_eq(b.oom, 0);
    ck_assert_str_eq(b.data, json_object_to_json_string_ext(o, FLAGS));
    ck_assert_uint_eq(b.len, strlen(b.data));
    json_object_put(o);
    tp_buf_free(&b);
}

/* Every byte from 0x00 to 0x7f alone, and all of them in one string. */
START_TEST(every_ascii_byte)
{
    char all[128];

    for (int c = 0; c < 128; c++) {
        char one = (char)c;
        all[c] = (char)c;
        same_as_jsonc(&one, 1);
    }
    same_as_jsonc(all, sizeof(all));
}
END_TEST

/* Runs without escapes are checked eight bytes at a time: each byte that is
 * escaped, and bytes next to those ('!', '#', '[', ']', 0x1f, 0x20, 0x7f, high
 * bytes), at every place of a 17-byte run. */
START_TEST(escape_at_every_place)
{
    static const char probes[] = "\"\\\x01\x1f\n\t !#[]\x7f\x80\xff";

    for (size_t k = 0; k < sizeof(probes) - 1; k++) {
        for (size_t at = 0; at < 17; at++) {
            char run[17];
            memset(run, 'x', sizeof(run));
            run[at] = probes[k];
            same_as_jsonc(run, sizeof(run));
        }
    }
}
END_TEST

START_TEST(exact_text)
{
    tp_buf b = { 0 };

    tp_json_string(&b, "a\"b\\c/d\n\x01\x1f\x7f", 11);
    ck_assert_str_eq(b.data, "\"a\\\"b\\\\c/d\\n\\u0001\\u001f\x7f\"");
    b.len = 0;
    tp_json_string(&b, "", 0);
    ck_assert_str_eq(b.data, "\"\"");
    b.len = 0;
    tp_json_int64(&b, INT64_MIN);
    tp_buf_put(&b, " ", 1);
    tp_json_int64(&b, 1764186000123LL);
    ck_assert_str_eq(b.data, "-9223372036854775808 1764186000123");
    b.len = 0;
    tp_json_int64(&b, 0);
    tp_buf_put(&b, " ", 1);
    tp_json_int64(&b, -1);
    tp_buf_put(&b, " ", 1);
    tp_json_int64(&b, 10);
    tp_buf_put(&b, " ", 1);
    tp_json_int64(&b, INT64_MAX);
    ck_assert_str_eq(b.data, "0 -1 10 9223372036854775807");
    tp_buf_free(&b);
}
END_TEST

/* Multi-byte UTF-8 (2, 3, 4 bytes, U+FFFD) passes as it is, long runs
 * included (the buffer grows). */
START_TEST(utf8_and_growth)
{
    static char big[20000];

    same_as_jsonc("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbd", 18);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = "ab\"\\\x02\xc3\xa9"[i % 7];
    big[sizeof(big) - 1] = 'z';          /* not half of a character */
    same_as_jsonc(big, sizeof(big));
}
END_TEST

/* The _bulk pair (tp_spool_bulk_pair, written with tp_json). */
START_TEST(action_line)
{
    tp_buf b = { 0 };
    const char *id = "0f8fad5b-d9cb-469f-a165-70867728950e";

    ck_assert_int_eq(tp_spool_bulk_pair(&b, "events", NULL, id, "{}", 2), 0);
    ck_assert_str_eq(b.data, "{\"create\":{\"_index\":\"events\",\"_id\":"
                             "\"0f8fad5b-d9cb-469f-a165-70867728950e\"}}\n{}\n");
    tp_buf_reset(&b);
    ck_assert_int_eq(tp_spool_bulk_pair(&b, "ev\"ents", "_doc", id, "{}", 2), 0);
    ck_assert_str_eq(b.data, "{\"create\":{\"_index\":\"ev\\\"ents\",\"_type\":\"_doc\",\"_id\":"
                             "\"0f8fad5b-d9cb-469f-a165-70867728950e\"}}\n{}\n");
    tp_buf_free(&b);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, every_ascii_byte);
    tcase_add_test(tc, escape_at_every_place);
    tcase_add_test(tc, exact_text);
    tcase_add_test(tc, utf8_and_growth);
    tcase_add_test(tc, action_line);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
