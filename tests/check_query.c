/* tp_query: QUERY_STRING -> ordered decoded pairs, exact. */
#include <stdio.h>
#include <string.h>

#include "tp_check.h"
#include "tp_query.h"

typedef struct collect {
    char text[512];
    size_t len;
} collect;

/* Render pairs as name=value| with bytes < 0x20 shown as \xNN. */
static void put(collect *c, const char *s, size_t n)
{
    for (size_t i = 0; i < n && c->len + 5 < sizeof(c->text); i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20)
            c->len += (size_t)snprintf(c->text + c->len, sizeof(c->text) - c->len, "\\x%02X", ch);
        else
            c->text[c->len++] = (char)ch;
    }
    c->text[c->len] = '\0';
}

static int cb(void *ctx, const char *n, size_t nl, const char *v, size_t vl)
{
    collect *c = ctx;
    put(c, n, nl);
    put(c, "=", 1);
    put(c, v, vl);
    put(c, "|", 1);
    return 0;
}

static const struct {
    const char *name, *qs, *pairs;
    long count;
} rows[] = {
    { "empty", "", "", 0 },
    { "one", "utm_source=news", "utm_source=news|", 1 },
    { "two", "a=1&b=2", "a=1|b=2|", 2 },
    { "plus is space", "q=a+b&c+d=e", "q=a b|c d=e|", 2 },
    { "percent", "q=%41%62%2B", "q=Ab+|", 1 },
    { "name without =", "flag&x=1", "flag=|x=1|", 2 },
    { "empty value", "x=", "x=|", 1 },
    { "empty name skipped", "=v&a=1", "a=1|", 1 },
    { "empty pairs skipped", "&&a=1&&", "a=1|", 1 },
    { "invalid escape kept", "a=%zz&b=%4", "a=%zz|b=%4|", 2 },
    { "trailing percent", "a=%", "a=%|", 1 },
    { "nul decoded", "a=x%00y", "a=x\\x00y|", 1 },
    { "control decoded", "a=%0a%0D", "a=\\x0A\\x0D|", 1 },
    { "equals in value", "a=b=c", "a=b=c|", 1 },
    { "repeated name kept in order", "a=1&a=2", "a=1|a=2|", 2 },
    { "utf8 escapes", "e=%F0%9F%98%80", "e=\xF0\x9F\x98\x80|", 1 },
    { "runs between escapes", "ab%41cd+ef%zzgh=%2", "abAcd ef%zzgh=%2|", 1 },
};

START_TEST(split_table)
{
    collect c;
    long n;

    memset(&c, 0, sizeof(c));
    n = tp_query_each(rows[_i].qs, cb, &c);
    ck_assert_msg(n == rows[_i].count, "row %s: count %ld", rows[_i].name, n);
    ck_assert_msg(strcmp(c.text, rows[_i].pairs) == 0, "row %s: got [%s]", rows[_i].name, c.text);
}
END_TEST

static int stop_cb(void *ctx, const char *n, size_t nl, const char *v, size_t vl)
{
    (void)ctx; (void)n; (void)nl; (void)v; (void)vl;
    return 1;
}

START_TEST(null_and_stop)
{
    collect c;
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(tp_query_each(NULL, cb, &c), 0);
    ck_assert_int_eq(tp_query_each("a=1", stop_cb, NULL), -1);
}
END_TEST

START_TEST(decode_no_plus)
{
    char out[16];
    size_t n = tp_query_decode("a+b%20", 6, out, 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(memcmp(out, "a+b ", 4), 0);
}
END_TEST

static int lengths_cb(void *ctx, const char *n, size_t nl, const char *v, size_t vl)
{
    size_t *sum = ctx;
    *sum = *sum * 1000 + nl * 100 + vl + (v[vl - 1] == 'A');
    (void)n;
    return 0;
}

/* A query string longer than the stack scratch (512 bytes) is decoded on
 * the heap, alike. */
START_TEST(long_query)
{
    static char qs[1024];
    size_t sum = 0;

    memset(qs, 0, sizeof(qs));
    memcpy(qs, "n=", 2);
    memset(qs + 2, 'x', 700);
    memcpy(qs + 702, "&m=x%41", 7);
    ck_assert_int_eq(tp_query_each(qs, lengths_cb, &sum), 2);
    ck_assert_uint_eq(sum, (100 + 700) * 1000 + 100 + 2 + 1);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("query");
    TCase *tc = tcase_create("split");
    tcase_add_loop_test(tc, split_table, 0, (int)(sizeof(rows) / sizeof(rows[0])));
    tcase_add_test(tc, null_and_stop);
    tcase_add_test(tc, decode_no_plus);
    tcase_add_test(tc, long_query);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
