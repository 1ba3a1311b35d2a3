/* tp_config: defaults, values, and the one-line errors for bad values. */
#include <string.h>

#include "tp_check.h"
#include "tp_config.h"

START_TEST(defaults)
{
    char *env[] = { NULL };
    tp_config cfg;
    char err[256];

    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    ck_assert_ptr_null(cfg.es_url);
    ck_assert_str_eq(cfg.es_index, "events");
    ck_assert_ptr_null(cfg.es_type);
    ck_assert_str_eq(cfg.aws_service, "es");
    ck_assert_str_eq(cfg.stage, "prod");
    ck_assert_str_eq(cfg.api_id, "");
    ck_assert_str_eq(cfg.output, "events.ndjson");
    ck_assert_int_eq(cfg.connect_timeout_ms, 2000);
    ck_assert_int_eq(cfg.timeout_ms, 5000);
    ck_assert_int_eq(cfg.max_params, 100);
    ck_assert_int_eq(cfg.max_headers, 100);
    ck_assert_int_eq(cfg.max_value, 4096);
    ck_assert_int_eq(cfg.max_body, 65536);
    ck_assert_int_eq(cfg.max_doc, 262144);
    ck_assert_int_eq(cfg.signing, 0);
    ck_assert_uint_eq(cfg.nstage_vars, 0);
    tp_config_free(&cfg);
}
END_TEST

START_TEST(values)
{
    char *env[] = {
        "TRACKPIXEL_ES_URL=https://user:pw@search-x.us-east-1.es.amazonaws.com",
        "TRACKPIXEL_ES_INDEX=pixels-2025", "TRACKPIXEL_ES_TYPE=event",
        "AWS_DEFAULT_REGION=eu-west-1", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "TRACKPIXEL_STAGE_VAR_campaign=winter", "TRACKPIXEL_STAGE_VAR_Mixed_Case=x",
        "TRACKPIXEL_TIMEOUT_MS=250", NULL };
    tp_config cfg;
    char err[256], shown[256];
    const tp_config_var *vars;
    size_t n, i;

    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.es_index, "pixels-2025");
    ck_assert_str_eq(cfg.es_type, "event");
    ck_assert_str_eq(cfg.region, "eu-west-1");
    ck_assert_int_eq(cfg.signing, 1);
    ck_assert_int_eq(cfg.timeout_ms, 250);
    ck_assert_uint_eq(cfg.nstage_vars, 2);
    ck_assert_str_eq(cfg.stage_vars[0].name, "campaign");
    ck_assert_str_eq(cfg.stage_vars[0].value, "winter");
    ck_assert_str_eq(cfg.stage_vars[1].name, "Mixed_Case");

    /* --check shows no secret. */
    vars = tp_config_vars(&n);
    for (i = 0; i < n; i++) {
        tp_config_show(&cfg, &vars[i], shown, sizeof(shown));
        ck_assert_ptr_null(strstr(shown, "EXAMPLEKEY"));
        ck_assert_ptr_null(strstr(shown, ":pw@"));
        ck_assert_ptr_null(strstr(shown, "AKIDEXAMPLE"));
    }
    tp_config_show(&cfg, &vars[0], shown, sizeof(shown));
    ck_assert_str_eq(shown, "https://user:****@search-x.us-east-1.es.amazonaws.com/");
    tp_config_free(&cfg);
}
END_TEST

START_TEST(aws_region_wins)
{
    char *env[] = { "AWS_DEFAULT_REGION=eu-west-1", "AWS_REGION=us-west-2", NULL };
    tp_config cfg;
    char err[256];

    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.region, "us-west-2");
    tp_config_free(&cfg);
}
END_TEST

static const struct {
    const char *env, *err;
} bad[] = {
    { "TRACKPIXEL_ES_URL=not a url", "TRACKPIXEL_ES_URL: not an http:// or https:// URL with a host (and no query or fragment)" },
    { "TRACKPIXEL_ES_URL=ftp://example.com", "TRACKPIXEL_ES_URL: not an http:// or https:// URL with a host (and no query or fragment)" },
    { "TRACKPIXEL_ES_URL=http://example.com/?a=1", "TRACKPIXEL_ES_URL: not an http:// or https:// URL with a host (and no query or fragment)" },
    { "TRACKPIXEL_TIMEOUT_MS=5s", "TRACKPIXEL_TIMEOUT_MS: not a number from 1 to 3600000" },
    { "TRACKPIXEL_CONNECT_TIMEOUT_MS=0", "TRACKPIXEL_CONNECT_TIMEOUT_MS: not a number from 1 to 3600000" },
    { "TRACKPIXEL_MAX_PARAMS=-1", "TRACKPIXEL_MAX_PARAMS: not a number from 1 to 1073741824" },
    { "TRACKPIXEL_MAX_VALUE=8", "TRACKPIXEL_MAX_VALUE: must be at least 16" },
    { "TRACKPIXEL_ES_INDEX=Events", "TRACKPIXEL_ES_INDEX: not a valid index name (lower case, no spaces or \\/*?\"<>|,#:%, not starting with - _ +)" },
    { "TRACKPIXEL_ES_INDEX=a/b", "TRACKPIXEL_ES_INDEX: not a valid index name (lower case, no spaces or \\/*?\"<>|,#:%, not starting with - _ +)" },
    { "TRACKPIXEL_ES_INDEX=_x", "TRACKPIXEL_ES_INDEX: not a valid index name (lower case, no spaces or \\/*?\"<>|,#:%, not starting with - _ +)" },
    { "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not" },
    { "TRACKPIXEL_STAGE_VAR_=x", "TRACKPIXEL_STAGE_VAR_<name>: the name is empty" },
};

START_TEST(bad_values)
{
    char *env[] = { (char *)bad[_i].env, NULL };
    tp_config cfg;
    char err[256] = "";

    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), -1);
    ck_assert_str_eq(err, bad[_i].err);
    tp_config_free(&cfg);
}
END_TEST

/* Keys without a region: a start error when instance metadata, the last
 * place a region can come from, is off; otherwise it is asked at run time. */
START_TEST(keys_without_region)
{
    char *env[] = { "TRACKPIXEL_ES_URL=http://127.0.0.1:9200", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
                    "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                    "AWS_EC2_METADATA_DISABLED=true", NULL };
    tp_config cfg;
    char err[256] = "";

    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "AWS_REGION"));
    ck_assert_ptr_null(strstr(err, "EXAMPLEKEY"));
    tp_config_free(&cfg);

    env[3] = NULL;
    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.signing, 1);
    ck_assert_ptr_null(cfg.region);
    ck_assert_str_eq(cfg.region_from, "instance metadata");
    tp_config_free(&cfg);
}
END_TEST

/* Signing and the region without keys in the environment. */
START_TEST(signing_plan)
{
    char *aws_url[] = { "TRACKPIXEL_ES_URL=https://search-a-b.eu-central-1.es.amazonaws.com",
                        NULL };
    char *plain[] = { "TRACKPIXEL_ES_URL=http://127.0.0.1:9200", "AWS_REGION=us-east-2", NULL };
    char *service[] = { "TRACKPIXEL_ES_URL=https://logs.example.com", "AWS_REGION=us-east-2",
                        "TRACKPIXEL_AWS_SERVICE=es", NULL };
    tp_config cfg;
    char err[256] = "";

    ck_assert_int_eq(tp_config_load(&cfg, aws_url, err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.signing, 1);
    ck_assert_str_eq(cfg.region, "eu-central-1");
    ck_assert_str_eq(cfg.region_from, "TRACKPIXEL_ES_URL");
    tp_config_free(&cfg);

    /* A region alone does not sign for a cluster that is not AWS's. */
    ck_assert_int_eq(tp_config_load(&cfg, plain, err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.signing, 0);
    tp_config_free(&cfg);

    ck_assert_int_eq(tp_config_load(&cfg, service, err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.signing, 1);
    ck_assert_str_eq(cfg.region, "us-east-2");
    ck_assert_str_eq(cfg.region_from, "AWS_REGION");
    tp_config_free(&cfg);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, values);
    tcase_add_test(tc, aws_region_wins);
    tcase_add_loop_test(tc, bad_values, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, keys_without_region);
    tcase_add_test(tc, signing_plan);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
