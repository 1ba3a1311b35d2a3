/* tp_acl, tp_redirect's host patterns, tp_response's bytes and tp_stats'
 * files: tables with the exact expected results. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tp_acl.h"
#include "tp_check.h"
#include "tp_redirect.h"
#include "tp_response.h"
#include "tp_stats.h"

static const struct {
    const char *list, *addr;
    int allowed;
} acl_rows[] = {
    { "127.0.0.0/8,::1", "127.0.0.1", 1 },
    { "127.0.0.0/8,::1", "127.255.255.254", 1 },
    { "127.0.0.0/8,::1", "128.0.0.1", 0 },
    { "127.0.0.0/8,::1", "::1", 1 },
    { "127.0.0.0/8,::1", "::2", 0 },
    { "127.0.0.0/8,::1", "::ffff:127.0.0.1", 1 },
    { "127.0.0.0/8,::1", "::ffff:10.0.0.1", 0 },
    { "127.0.0.0/8,::1", "", 0 },
    { "127.0.0.0/8,::1", "localhost", 0 },
    { "127.0.0.0/8,::1", "127.0.0.1 ", 0 },
    { "10.1.2.3", "10.1.2.3", 1 },
    { "10.1.2.3", "10.1.2.4", 0 },
    { "10.0.0.0/9", "10.127.255.255", 1 },
    { "10.0.0.0/9", "10.128.0.0", 0 },
    { " 192.0.2.0/24 , 2001:db8::/33 ", "2001:db8:7fff::1", 1 },
    { " 192.0.2.0/24 , 2001:db8::/33 ", "2001:db8:8000::1", 0 },
    { "0.0.0.0/0", "203.0.113.9", 1 },
    { "0.0.0.0/0", "2001:db8::1", 0 },
    { "", "127.0.0.1", 0 },
};

START_TEST(acl_table)
{
    char err[256] = "";
    tp_acl *a = tp_acl_parse(acl_rows[_i].list, err, sizeof(err));

    ck_assert_msg(a != NULL, "%s: %s", acl_rows[_i].list, err);
    ck_assert_msg(tp_acl_allows(a, acl_rows[_i].addr) == acl_rows[_i].allowed, "%s in %s",
                  acl_rows[_i].addr, acl_rows[_i].list);
    tp_acl_free(a);
}
END_TEST

START_TEST(acl_bad)
{
    static const char *const bad[] = { "127.0.0.0/33", "::1/129", "::1/-1", "10.0.0.0/8,",
                                       "1.2.3.4/", "1.2.3.4/8x", "host", "1.2.3" };
    char err[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(tp_acl_parse(bad[i], err, sizeof(err)) == NULL, "%s", bad[i]);
        ck_assert_msg(strstr(err, "TRACKPIXEL_ADMIN_ALLOW") != NULL, "%s: %s", bad[i], err);
    }
}
END_TEST

static const struct {
    const char *host;
    int allowed;
} host_rows[] = {
    { "example.com", 1 }, { "EXAMPLE.COM", 1 }, { "www.example.com", 0 },
    { "example.com.", 0 }, { "evilexample.com", 0 }, { "example.com.evil.test", 0 },
    { "example.org", 0 }, { "a.example.org", 1 }, { "a.b.example.org", 1 },
    { "aexample.org", 0 }, { ".example.org", 0 }, { "a..example.org", 0 },
    { "xn--bcher-kva.example.org", 1 }, { "b\xc3\xbc" "cher.example.org", 0 },
    { "a_b.example.org", 0 }, { "", 0 },
};

START_TEST(host_table)
{
    char err[256];
    tp_redirect_allow *a = tp_redirect_allow_parse("example.com, *.Example.ORG", err, sizeof(err));

    ck_assert_ptr_nonnull(a);
    ck_assert_msg(tp_redirect_host_allowed(a, host_rows[_i].host, strlen(host_rows[_i].host)) ==
                  host_rows[_i].allowed, "%s", host_rows[_i].host);
    tp_redirect_allow_free(a);
}
END_TEST

START_TEST(allow_list_bad)
{
    static const char *const bad[] = { "*", "*.", "example.com,*", "", "a,,b", "exa mple.com",
                                       "*.*.example.com", "https://example.com", "ex*ample.com",
                                       "example.com:443", ".example.com" };
    char err[256];

    /* "" alone is "off", not an error; inside a list it is. */
    ck_assert_ptr_null(tp_redirect_allow_parse("", err, sizeof(err)));
    ck_assert_str_eq(err, "");
    for (size_t i = 1; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (!*bad[i])
            continue;
        ck_assert_msg(tp_redirect_allow_parse(bad[i], err, sizeof(err)) == NULL, "%s", bad[i]);
        ck_assert_msg(strstr(err, "TRACKPIXEL_REDIRECT_ALLOW") != NULL, "%s: %s", bad[i], err);
    }
    ck_assert_ptr_null(tp_redirect_allow_parse("*", err, sizeof(err)));
}
END_TEST

START_TEST(responses)
{
    tp_buf b = { 0 };

    tp_response_not_found(&b);
    ck_assert_str_eq(b.data, "Status: 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: 10\r\nCache-Control: no-store\r\n\r\nnot found\n");
    tp_buf_reset(&b);
    tp_response_redirect("https://example.com/", "ID", &b);
    ck_assert_str_eq(b.data, "Status: 302 Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: 0\r\nCache-Control: no-store\r\n"
                     "Location: https://example.com/\r\nX-Request-Id: ID\r\n\r\n");
    tp_buf_reset(&b);
    tp_response_refused("scheme", "ID", &b);
    ck_assert_str_eq(b.data, "Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: 25\r\nCache-Control: no-store\r\nX-Request-Id: ID\r\n\r\n"
                     "redirect refused: scheme\n");
    tp_buf_reset(&b);
    tp_response_body("503 Service Unavailable", "application/json", "{}", 2, 1, &b);
    ck_assert_str_eq(b.data, "Status: 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Content-Length: 2\r\nCache-Control: no-store\r\n\r\n");
    tp_buf_free(&b);
}
END_TEST

START_TEST(es_codes)
{
    ck_assert_int_eq(tp_stats_es_code(0), 0);
    ck_assert_int_eq(tp_stats_es_code(200), 1);
    ck_assert_int_eq(tp_stats_es_code(504), 14);
    ck_assert_int_eq(tp_stats_es_code(204), 15);      /* 2xx */
    ck_assert_int_eq(tp_stats_es_code(302), 16);      /* 3xx */
    ck_assert_int_eq(tp_stats_es_code(418), 17);      /* 4xx */
    ck_assert_int_eq(tp_stats_es_code(599), 18);      /* 5xx */
    ck_assert_int_eq(tp_stats_es_code(999), 18);
}
END_TEST

static long count_stats_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    long n = 0;

    while (d && (e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "stats.", 6) == 0;
    if (d)
        closedir(d);
    return n;
}

/* Two "workers" in one process: closing one leaves its file, which the
 * next collect folds into stats.total; the sums stay exact. */
START_TEST(stats_files)
{
    char dir[] = "/tmp/check-clicks-XXXXXX", err[256], cmd[64];
    tp_stats_file *a, *b;
    tp_stats_view v;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    a = tp_stats_open(dir, err, sizeof(err));
    b = tp_stats_open(dir, err, sizeof(err));
    ck_assert_str_eq(err, "");
    tp_stats_add(tp_stats_of(a), TP_ST_HITS_GET, 3);
    tp_stats_add(tp_stats_of(b), TP_ST_HITS_GET, 4);
    tp_stats_es_request(tp_stats_of(b), 201, 7000, 1700000000);
    tp_stats_es_request(tp_stats_of(b), 0, 20000000, 1700000001);
    /* flock is per open file: a and b are two holders, as two workers. */
    ck_assert_int_eq(tp_stats_collect(a, dir, 0, 0, &v, err, sizeof(err)), 0);
    ck_assert_int_eq((long)v.v[TP_ST_HITS_GET], 7);
    ck_assert_int_eq(v.workers, 2);
    ck_assert_int_eq(v.journal, -1);
    ck_assert_int_eq((long)v.v[TP_ST_LAST_DELIVERY], 1700000000);
    ck_assert_int_eq((long)v.v[TP_ST_ES_BUCKET + 1], 1);           /* 7 ms: le 0.01 */
    ck_assert_int_eq((long)v.v[TP_ST_ES_BUCKET + TP_STATS_BUCKETS], 1);   /* +Inf */
    ck_assert_int_eq(count_stats_files(dir), 3);                   /* a, b, lock */
    tp_stats_close(b);
    ck_assert_int_eq(tp_stats_collect(a, dir, 0, 0, &v, err, sizeof(err)), 0);
    ck_assert_int_eq((long)v.v[TP_ST_HITS_GET], 7);
    ck_assert_int_eq((long)v.v[TP_ST_ES_USEC], 20007000);
    ck_assert_int_eq(v.workers, 1);
    ck_assert_int_eq(count_stats_files(dir), 3);                   /* a, lock, total */
    tp_stats_close(a);
    b = tp_stats_open(dir, err, sizeof(err));                      /* folds a */
    ck_assert_int_eq(count_stats_files(dir), 3);
    ck_assert_int_eq(tp_stats_collect(b, dir, 0, 0, &v, err, sizeof(err)), 0);
    ck_assert_int_eq((long)v.v[TP_ST_HITS_GET], 7);
    tp_stats_close(b);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(stats_in_memory)
{
    char err[256];
    tp_stats_file *a = tp_stats_open(NULL, err, sizeof(err));
    tp_stats_view v;
    tp_buf out = { 0 };
    int healthy;

    ck_assert_str_eq(err, "");
    tp_stats_add(tp_stats_of(a), TP_ST_REDIRECT + TP_REDIRECT_HOST, 2);
    ck_assert_int_eq(tp_stats_collect(a, NULL, 0, 0, &v, err, sizeof(err)), 0);
    ck_assert_int_eq(v.workers, 1);
    tp_stats_prometheus(&v, &out);
    ck_assert_ptr_nonnull(strstr(out.data, "\ntrackpixel_redirects_total{result=\"host-not-allowed\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(out.data, "\ntrackpixel_workers 1\n"));
    tp_buf_reset(&out);
    v.oldest_pending_s = 301;
    tp_stats_health(&v, 300, &healthy, &out);
    ck_assert_int_eq(healthy, 0);
    ck_assert_str_eq(out.data, "{\"status\":\"unavailable\",\"reason\":\"oldest pending document "
                     "is 301 s old (limit 300 s)\",\"journal\":\"off\",\"backlog_bytes\":0,"
                     "\"oldest_pending_seconds\":301,\"last_delivery\":null,\"dead_letters\":0,"
                     "\"dropped\":0,\"workers\":1}\n");
    tp_buf_free(&out);
    tp_stats_close(a);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("clicks");
    TCase *tc = tcase_create("clicks");
    tcase_add_loop_test(tc, acl_table, 0, sizeof(acl_rows) / sizeof(acl_rows[0]));
    tcase_add_test(tc, acl_bad);
    tcase_add_loop_test(tc, host_table, 0, sizeof(host_rows) / sizeof(host_rows[0]));
    tcase_add_test(tc, allow_list_bad);
    tcase_add_test(tc, responses);
    tcase_add_test(tc, es_codes);
    tcase_add_test(tc, stats_files);
    tcase_add_test(tc, stats_in_memory);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
