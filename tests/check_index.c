/* tp_index: daily index names (expansion, checks, the template's wildcard,
 * the index of a recorded document) and tp_setup's template body. */
#include <json-c/json.h>
#include <string.h>

#include "tp_check.h"
#include "tp_index.h"
#include "tp_setup.h"

/* 2026-11-26T23:59:59Z and one second later. */
#define BEFORE_MIDNIGHT ((time_t)1795737599)
#define AFTER_MIDNIGHT ((time_t)1795737600)

static const struct {
    const char *pattern;
    time_t t;
    const char *want;
} expand_rows[] = {
    { "events", BEFORE_MIDNIGHT, "events" },
    { "events-%Y.%m.%d", BEFORE_MIDNIGHT, "events-2026.11.26" },
    { "events-%Y.%m.%d", AFTER_MIDNIGHT, "events-2026.11.27" },
    { "ev-%Y%m", (time_t)0, "ev-197001" },
    { "a%d%d", (time_t)86400 * 9, "a1010" },
    { "y%Y.%m.%d", (time_t)-62004009600, "y0005.03.04" },        /* 0005-03-04 */
    { "y%Y.%m.%d", (time_t)317336832000, "y2026.01.02" },        /* 12026-01-02 */
    { "y%Y.%m.%d", (time_t)-62185708800, "y-001.06.01" },        /* -0001-06-01 */
};

START_TEST(expand_table)
{
    char out[TP_INDEX_MAX + 1];

    ck_assert_int_eq(tp_index_expand(expand_rows[_i].pattern, expand_rows[_i].t, out,
                                     sizeof(out)), 0);
    ck_assert_str_eq(out, expand_rows[_i].want);
}
END_TEST

START_TEST(expand_too_small)
{
    char out[8];

    ck_assert_int_eq(tp_index_expand("events-%Y", BEFORE_MIDNIGHT, out, sizeof(out)), -1);
    ck_assert_int_eq(tp_index_expand("events-", BEFORE_MIDNIGHT, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "events-");
}
END_TEST

static const struct {
    const char *pattern;
    int ok;
    const char *why;
} check_rows[] = {
    { "events", 0, "" },
    { "events-%Y.%m.%d", 0, "" },
    { "%Y-events", -1, "must not start with a date (%Y, %m or %d): the template would cover "
      "every index" },
    { "events-%H", -1, "the only conversions are %Y, %m and %d, and the name is at most 255 bytes" },
    { "events-%", -1, "the only conversions are %Y, %m and %d, and the name is at most 255 bytes" },
    { "Events-%Y", -1, "not a valid index name (lower case, no spaces or \\/*?\"<>|,#:, not "
      "starting with - _ +, at most 255 bytes)" },
    { "-events", -1, "not a valid index name (lower case, no spaces or \\/*?\"<>|,#:, not "
      "starting with - _ +, at most 255 bytes)" },
};

START_TEST(check_table)
{
    char err[256] = "";

    ck_assert_int_eq(tp_index_check(check_rows[_i].pattern, err, sizeof(err)), check_rows[_i].ok);
    ck_assert_str_eq(err, check_rows[_i].why);
}
END_TEST

START_TEST(wildcard_and_dated)
{
    char out[TP_INDEX_MAX + 1];

    ck_assert_int_eq(tp_index_wildcard("events-%Y.%m.%d", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "events-*.*.*");
    ck_assert_int_eq(tp_index_wildcard("events", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "events");
    ck_assert_int_eq(tp_index_dated("events-%Y"), 1);
    ck_assert_int_eq(tp_index_dated("events"), 0);
}
END_TEST

START_TEST(index_of_a_document)
{
    static const char doc[] = "{\"body-json\":{\"date\":\"x\"},\"date\":1795737600123,"
                              "\"@timestamp\":\"2026-11-27T00:00:00.123Z\"}";
    char out[TP_INDEX_MAX + 1];

    ck_assert_int_eq(tp_index_for_doc("ev-%Y.%m.%d", doc, strlen(doc), out, sizeof(out)), 0);
    ck_assert_str_eq(out, "ev-2026.11.27");
    ck_assert_int_eq(tp_index_for_doc("ev", "not json", 8, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "ev");
    ck_assert_int_eq(tp_index_for_doc("ev-%Y", "{\"a\":1}", 7, out, sizeof(out)), -1);
    ck_assert_int_eq(tp_index_for_doc("ev-%Y", "{\"date\":", 8, out, sizeof(out)), -1);
}
END_TEST

/* The template's section types per cluster. */
START_TEST(template_per_cluster)
{
    static const struct {
        int opensearch, major, minor;
        const char *querystring, *body;
    } rows[] = {
        { 0, 7, 10, "{\"type\":\"flattened\"}", "{\"type\":\"flattened\"}" },
        { 1, 2, 9, "{\"type\":\"flat_object\"}", "{\"type\":\"flat_object\"}" },
        { 1, 2, 7, "{\"dynamic\":\"false\",\"properties\":{\"utm_source\":{\"type\":\"keyword\"},"
          "\"utm_medium\":{\"type\":\"keyword\"},\"utm_campaign\":{\"type\":\"keyword\"},"
          "\"utm_term\":{\"type\":\"keyword\"},\"utm_content\":{\"type\":\"keyword\"},"
          "\"page\":{\"type\":\"keyword\"},\"url\":{\"type\":\"keyword\"}}}",
          "{\"type\":\"object\",\"enabled\":false}" },
    };
    tp_config cfg;
    size_t i;

    memset(&cfg, 0, sizeof(cfg));
    cfg.es_index = (char *)"events-%Y.%m.%d";
    cfg.es_template = (char *)"trackpixel";
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        tp_setup_cluster cl = { rows[i].opensearch, 0, rows[i].major, rows[i].minor, "x" };
        json_object *t = tp_setup_template(&cfg, &cl, 0, 0), *m, *props, *p, *v;

        ck_assert_ptr_nonnull(t);
        json_object_object_get_ex(t, "template", &m);
        json_object_object_get_ex(m, "mappings", &m);
        json_object_object_get_ex(m, "properties", &props);
        json_object_object_get_ex(props, "params", &p);
        json_object_object_get_ex(p, "properties", &p);
        json_object_object_get_ex(p, "querystring", &v);
        ck_assert_str_eq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                         rows[i].querystring);
        json_object_object_get_ex(props, "body-json", &v);
        ck_assert_str_eq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), rows[i].body);
        json_object_object_get_ex(t, "index_patterns", &v);
        ck_assert_str_eq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                         "[\"events-*.*.*\"]");
        json_object_put(t);
    }
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("index");
    TCase *tc = tcase_create("index");
    tcase_add_loop_test(tc, expand_table, 0, sizeof(expand_rows) / sizeof(expand_rows[0]));
    tcase_add_test(tc, expand_too_small);
    tcase_add_loop_test(tc, check_table, 0, sizeof(check_rows) / sizeof(check_rows[0]));
    tcase_add_test(tc, wildcard_and_dated);
    tcase_add_test(tc, index_of_a_document);
    tcase_add_test(tc, template_per_cluster);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
