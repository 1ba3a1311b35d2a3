/* tp_uuid: version-4 UUIDs, one at a time and from a pool. */
#include <string.h>

#include "tp_check.h"
#include "tp_uuid.h"

/* 8-4-4-4-12 lower-case hex, version 4, variant 10xx. */
static int well_formed(const char *u)
{
    size_t i;

    if (strlen(u) != TP_UUID_LEN)
        return 0;
    for (i = 0; i < TP_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (u[i] != '-')
                return 0;
        } else if (!strchr("0123456789abcdef", u[i]) || !u[i]) {
            return 0;
        }
    }
    return u[14] == '4' && strchr("89ab", u[19]) != NULL;
}

START_TEST(format_sets_version_and_variant)
{
    unsigned char ones[16], zeros[16];
    char out[TP_UUID_LEN + 1];

    memset(ones, 0xff, sizeof(ones));
    memset(zeros, 0, sizeof(zeros));
    tp_uuid_format(ones, out);
    ck_assert_str_eq(out, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    tp_uuid_format(zeros, out);
    ck_assert_str_eq(out, "00000000-0000-4000-8000-000000000000");
    for (int i = 0; i < 16; i++)
        ones[i] = (unsigned char)(i * 0x11 ^ 0x0f);     /* 0f 1e 2d ... f0: each byte its place */
    tp_uuid_format(ones, out);
    ck_assert_str_eq(out, "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0");
}
END_TEST

START_TEST(one_at_a_time)
{
    char a[TP_UUID_LEN + 1], b[TP_UUID_LEN + 1];

    ck_assert_int_eq(tp_uuid_v4(a), 0);
    ck_assert_int_eq(tp_uuid_v4(b), 0);
    ck_assert(well_formed(a));
    ck_assert(well_formed(b));
    ck_assert_str_ne(a, b);
}
END_TEST

/* Across several refills: every UUID well formed and none repeated, and
 * the pool hands out 16 bytes each (a refill every 32). */
#define N 100
START_TEST(pooled_distinct_across_refills)
{
    static char ids[N][TP_UUID_LEN + 1];
    tp_uuid_pool pool;
    int i, j;

    memset(&pool, 0, sizeof(pool));
    for (i = 0; i < N; i++) {
        ck_assert_int_eq(tp_uuid_v4_pooled(&pool, ids[i]), 0);
        ck_assert(well_formed(ids[i]));
        ck_assert_uint_eq(pool.left, TP_UUID_POOL_BYTES - 16 * (size_t)((i % 32) + 1));
        for (j = 0; j < i; j++)
            ck_assert_str_ne(ids[i], ids[j]);
    }
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("uuid");
    TCase *tc = tcase_create("uuid");
    tcase_add_test(tc, format_sets_version_and_variant);
    tcase_add_test(tc, one_at_a_time);
    tcase_add_test(tc, pooled_distinct_across_refills);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
