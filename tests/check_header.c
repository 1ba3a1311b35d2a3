/* tp_header: CGI variable -> header name. */
#include <string.h>

#include "tp_check.h"
#include "tp_header.h"

static const struct {
    const char *var, *name;     /* name NULL: not recorded */
} rows[] = {
    { "HTTP_USER_AGENT", "User-Agent" },
    { "HTTP_X_FORWARDED_FOR", "X-Forwarded-For" },
    { "HTTP_REFERER", "Referer" },
    { "HTTP_DNT", "Dnt" },
    { "HTTP_ACCEPT_LANGUAGE", "Accept-Language" },
    { "HTTP_X_MIXED_case", "X-Mixed-Case" },
    { "HTTP_x-dash_AND__TWO", "X-Dash-And--Two" },
    { "HTTP__LEAD_", "-Lead-" },
    { "HTTP_9A_b", "9a-B" },
    { "CONTENT_TYPE", "Content-Type" },
    { "CONTENT_LENGTH", "Content-Length" },
    { "HTTP_AUTHORIZATION", NULL },
    { "HTTP_PROXY_AUTHORIZATION", NULL },
    { "HTTP_proxy-Authorization", NULL },
    { "REMOTE_ADDR", NULL },
    { "QUERY_STRING", NULL },
    { "HTTP_", NULL },
    { "CONTENT_TYPEX", NULL },
};

START_TEST(name_table)
{
    char out[64];
    long n = tp_header_name(rows[_i].var, strlen(rows[_i].var), out, sizeof(out));

    if (!rows[_i].name) {
        ck_assert_msg(n == 0, "%s: should not be recorded", rows[_i].var);
    } else {
        ck_assert_msg(n == (long)strlen(rows[_i].name), "%s: length %ld", rows[_i].var, n);
        ck_assert_str_eq(out, rows[_i].name);
    }
}
END_TEST

START_TEST(too_small)
{
    char out[4];
    ck_assert_int_eq(tp_header_name("HTTP_USER_AGENT", 15, out, sizeof(out)), -1);
}
END_TEST

/* A credential header is "never recorded" (0) whatever the buffer, not
 * "too long" (-1), which the document builder would list in "truncated"
 * (tests/fuzz/corpus/header/credential-small-buffer). */
START_TEST(credential_small_buffer)
{
    char out[4];
    ck_assert_int_eq(tp_header_name("HTTP_AUTHORIZATION", 18, out, 0), 0);
    ck_assert_int_eq(tp_header_name("HTTP_Proxy_authorization", 24, out, sizeof(out)), 0);
}
END_TEST

/* A name with a NUL byte is no CGI variable: not "Authorization\0x". */
START_TEST(nul_in_name)
{
    char out[64];
    ck_assert_int_eq(tp_header_name("HTTP_AUTHORIZATION\0x", 20, out, sizeof(out)), 0);
    ck_assert_int_eq(tp_header_name("HTTP_X\0Y", 8, out, sizeof(out)), 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("header");
    TCase *tc = tcase_create("name");
    tcase_add_loop_test(tc, name_table, 0, (int)(sizeof(rows) / sizeof(rows[0])));
    tcase_add_test(tc, too_small);
    tcase_add_test(tc, credential_small_buffer);
    tcase_add_test(tc, nul_in_name);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
