/* tp_creds: the pieces of the credential chain that need no endpoint (the
 * endpoints have stand-ins in test_creds.py): times, answers, the shared
 * files, credential_process, the cache's refresh timing and clock skew. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tp_check.h"
#include "tp_creds.h"

static const struct { const char *in; long long want; } times[] = {
    { "2026-12-01T20:00:00Z", 1796155200LL },
    { "2026-12-01T20:00:00.123Z", 1796155200LL },
    { "2026-12-01T21:00:00+01:00", 1796155200LL },
    { "2026-12-01T19:30:00-00:30", 1796155200LL },
    { "2026-12-01 20:00:00Z", -1 },
    { "2026-12-01T20:00:00", -1 },
    { "2026-13-01T20:00:00Z", -1 },
    { "2026-12-01T20:00:00ZZ", -1 },
    { "", -1 },
};

START_TEST(iso_times)
{
    time_t t = 0;
    int rc = tp_creds_parse_time(times[_i].in, &t);

    if (times[_i].want < 0) {
        ck_assert_int_eq(rc, -1);
    } else {
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq((long long)t, times[_i].want);
    }
}
END_TEST

START_TEST(http_dates)
{
    time_t t = 0;

    ck_assert_int_eq(tp_creds_parse_http_date("Tue, 01 Dec 2026 20:00:00 GMT", &t), 0);
    ck_assert_int_eq((long long)t, 1796155200LL);
    ck_assert_int_eq(tp_creds_parse_http_date("Tue, 01 Dex 2026 20:00:00 GMT", &t), -1);
    ck_assert_int_eq(tp_creds_parse_http_date("", &t), -1);
}
END_TEST

static const struct { const char *body; int kind; } answers[] = {
    { "{\"message\":\"The security token included in the request is expired\"}", 1 },
    { "{\"message\":\"The security token included in the request is invalid.\"}", 1 },
    { "{\"message\":\"The request signature we calculated does not match the signature you "
      "provided.\"}", 1 },
    { "{\"__type\":\"InvalidSignatureException\"}", 1 },
    { "{\"message\":\"Signature expired: 20261201T200000Z is now earlier than "
      "20261201T200500Z (20261201T201000Z - 5 min.)\"}", 2 },
    { "{\"message\":\"Signature not yet current: 20261201T202000Z is still later than "
      "20261201T201500Z (20261201T201000Z + 5 min.)\"}", 2 },
    { "<Error><Code>RequestTimeTooSkewed</Code></Error>", 2 },
    { "{\"Message\":\"User: arn:aws:sts::1:assumed-role/x is not authorized\"}", 0 },
    { "", 0 },
};

START_TEST(answer_kinds)
{
    ck_assert_int_eq(tp_creds_answer_kind(answers[_i].body), answers[_i].kind);
}
END_TEST

START_TEST(split_commands)
{
    char buf[256], *argv[8];

    ck_assert_int_eq(tp_creds_split_command("/bin/echo  'a b' \"c \\\"d\\\"\" e\\ f", buf,
                                            sizeof(buf), argv, 8), 0);
    ck_assert_str_eq(argv[0], "/bin/echo");
    ck_assert_str_eq(argv[1], "a b");
    ck_assert_str_eq(argv[2], "c \"d\"");
    ck_assert_str_eq(argv[3], "e f");
    ck_assert_ptr_null(argv[4]);
    ck_assert_int_eq(tp_creds_split_command("x 'open", buf, sizeof(buf), argv, 8), -1);
    ck_assert_int_eq(tp_creds_split_command("   ", buf, sizeof(buf), argv, 8), -1);
    ck_assert_int_eq(tp_creds_split_command("a b c d", buf, sizeof(buf), argv, 4), -1);
    ck_assert_int_eq(tp_creds_split_command("abcdefgh", buf, 8, argv, 4), -1);
}
END_TEST

START_TEST(xml_elements)
{
    const char *x = "<R><Credentials><AccessKeyId>ASIA1</AccessKeyId>"
                    "<SecretAccessKey>a&amp;b&lt;c</SecretAccessKey><Empty></Empty>"
                    "<Nested><X>1</X></Nested><Bad>&nbsp;</Bad></Credentials></R>";
    char out[16];

    ck_assert_int_eq(tp_creds_xml_text(x, strlen(x), "AccessKeyId", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "ASIA1");
    ck_assert_int_eq(tp_creds_xml_text(x, strlen(x), "SecretAccessKey", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "a&b<c");
    ck_assert_int_eq(tp_creds_xml_text(x, strlen(x), "Empty", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(tp_creds_xml_text(x, strlen(x), "Nested", out, sizeof(out)), -1);
    ck_assert_int_eq(tp_creds_xml_text(x, strlen(x), "Bad", out, sizeof(out)), -1);
    ck_assert_int_eq(tp_creds_xml_text(x, strlen(x), "Missing", out, sizeof(out)), -1);
    ck_assert_int_eq(tp_creds_xml_text(x, strlen(x), "AccessKeyId", out, 5), -1);
    /* Bounded by len: the closing tag beyond it is not seen. */
    ck_assert_int_eq(tp_creds_xml_text(x, 40, "AccessKeyId", out, sizeof(out)), -1);
}
END_TEST

static const struct { const char *url; const char *region; } urls[] = {
    { "https://search-d-abc.us-east-1.es.amazonaws.com", "us-east-1" },
    { "https://vpc-d-abc.eu-west-3.es.amazonaws.com:443/prefix", "eu-west-3" },
    { "https://abc123.us-west-2.aoss.amazonaws.com", "us-west-2" },
    { "https://search-d.cn-north-1.es.amazonaws.com.cn", "cn-north-1" },
    { "https://es.amazonaws.com", NULL },
    { "https://search.example.com", NULL },
    { "https://x.us-east-1.es.amazonaws.com.evil.example", NULL },
    { "http://127.0.0.1:9200", NULL },
};

START_TEST(regions_from_urls)
{
    char out[64] = "";
    int rc = tp_creds_region_from_url(urls[_i].url, out, sizeof(out));

    if (urls[_i].region) {
        ck_assert_int_eq(rc, 0);
        ck_assert_str_eq(out, urls[_i].region);
    } else {
        ck_assert_int_eq(rc, -1);
    }
}
END_TEST

/* A temporary directory with the shared files and a credential_process. */
static char dir[64];

static void write_file(const char *name, const char *text, int mode)
{
    char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    chmod(path, (mode_t)mode);
}

static tp_creds_chain *chain_for(const char *profile, const char *extra)
{
    static char cf[160], cc[160], pr[96], ex[128];
    char *env[] = { cf, cc, pr, ex, "AWS_EC2_METADATA_DISABLED=true", NULL };

    snprintf(cf, sizeof(cf), "AWS_SHARED_CREDENTIALS_FILE=%s/credentials", dir);
    snprintf(cc, sizeof(cc), "AWS_CONFIG_FILE=%s/config", dir);
    snprintf(pr, sizeof(pr), "AWS_PROFILE=%s", profile);
    snprintf(ex, sizeof(ex), "%s", extra ? extra : "X=1");
    return tp_creds_chain_new(env);
}

static void setup_files(void)
{
    snprintf(dir, sizeof(dir), "/tmp/check_creds.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    write_file("credentials",
               "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\n"
               "aws_secret_access_key=secret-default\n\n[half]\naws_access_key_id=AKIDHALF\n"
               "[tok]\n  ; indented comment\naws_access_key_id = AKIDTOK\n"
               "aws_secret_access_key = secret-tok\naws_session_token = token-tok\n", 0600);
    write_file("config",
               "[default]\nregion = eu-north-1\n[profile cfgonly]\n"
               "aws_access_key_id = AKIDCFG\naws_secret_access_key = secret-cfg\n"
               "s3 =\n  max_concurrent_requests = 20\n"
               "[profile proc]\ncredential_process = sh -c 'echo \"$0\"' "
               "'{\"Version\": 1, \"AccessKeyId\": \"AKIDPROC\", \"SecretAccessKey\": \"sp\", "
               "\"SessionToken\": \"tp\", \"Expiration\": \"2030-01-01T00:00:00Z\"}'\n"
               "[profile badversion]\ncredential_process = echo "
               "'{\"Version\": 2, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\"}'\n"
               "[profile fails]\ncredential_process = sh -c 'echo {} ; exit 3'\n"
               "[profile garbage]\ncredential_process = echo not json\n", 0600);
}

static void teardown_files(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void expect(const char *profile, const char *ak, const char *token, const char *provider,
                   long long exp)
{
    tp_creds_chain *ch = chain_for(profile, NULL);
    tp_creds c;
    char err[512] = "";

    ck_assert_ptr_nonnull(ch);
    ck_assert_msg(tp_creds_chain_get(ch, "us-east-1", &c, err, sizeof(err)) == 0, "%s: %s",
                  profile, err);
    ck_assert_str_eq(c.access_key_id, ak);
    ck_assert_str_eq(c.session_token, token);
    ck_assert_str_eq(c.provider, provider);
    ck_assert_int_eq((long long)c.expiration, exp);
    tp_creds_chain_free(ch);
}

static void expect_error(const char *profile, const char *want)
{
    tp_creds_chain *ch = chain_for(profile, NULL);
    tp_creds c;
    char err[512] = "";

    ck_assert_int_eq(tp_creds_chain_get(ch, "us-east-1", &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, want) != NULL, "%s: %s", profile, err);
    ck_assert_ptr_null(strstr(err, "secret-"));
    tp_creds_chain_free(ch);
}

START_TEST(shared_files)
{
    setup_files();
    expect("default", "AKIDDEFAULT", "", "shared-credentials-file", 0);
    expect("tok", "AKIDTOK", "token-tok", "shared-credentials-file", 0);
    expect("cfgonly", "AKIDCFG", "", "config-file", 0);
    expect("proc", "AKIDPROC", "tp", "custom-process", 1893456000LL);
    expect_error("half", "only one of aws_access_key_id and aws_secret_access_key");
    expect_error("badversion", "the output is not JSON with \"Version\": 1");
    expect_error("fails", "exited with status 3");
    expect_error("garbage", "the output is not JSON");
    expect_error("nosuch", "no AWS credentials: none in the environment, the profile nosuch");

    /* A malformed file is an error that names the file and the line. */
    write_file("credentials", "[default]\naws_access_key_id AKID\n", 0600);
    expect_error("default", "credentials line 2: not [section], name = value or a comment");
    teardown_files();
}
END_TEST

START_TEST(environment_first)
{
    char *env[] = { "AWS_ACCESS_KEY_ID=AKIDENV", "AWS_SECRET_ACCESS_KEY=sk",
                    "AWS_CREDENTIAL_EXPIRATION=2030-01-01T00:00:00Z",
                    "AWS_SHARED_CREDENTIALS_FILE=/nonexistent", NULL };
    tp_creds_chain *ch = tp_creds_chain_new(env);
    tp_creds c;
    char err[256];

    ck_assert_int_eq(tp_creds_chain_get(ch, NULL, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.access_key_id, "AKIDENV");
    ck_assert_str_eq(c.provider, "environment");
    ck_assert_int_eq((long long)c.expiration, 1893456000LL);
    tp_creds_chain_free(ch);
}
END_TEST

START_TEST(process_timeout)
{
    tp_creds_chain *ch;
    tp_creds c;
    char err[512] = "";
    time_t t0;

    setup_files();
    write_file("config", "[profile hang]\ncredential_process = sleep 30\n", 0600);
    ch = chain_for("hang", NULL);
    t0 = time(NULL);
    ck_assert_int_eq(tp_creds_chain_get(ch, NULL, &c, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "credential_process: no answer within 10 s (killed)");
    ck_assert_int_le((long)(time(NULL) - t0), 12);
    tp_creds_chain_free(ch);
    teardown_files();
}
END_TEST

/* Refresh timing: half-way through a short lifetime, 5 minutes before a
 * long one; at most one attempt per TP_CREDS_RETRY_S; at once on a
 * rejection (still rate-limited). */
START_TEST(cache_timing)
{
    tp_creds_cache *c = tp_creds_cache_new("us-east-1");
    tp_creds cr, out;
    time_t next;
    long off;

    memset(&cr, 0, sizeof(cr));
    strcpy(cr.access_key_id, "AK");
    strcpy(cr.secret_access_key, "SK");
    ck_assert_int_eq(tp_creds_cache_due(c, 1000, &next), 1);
    ck_assert_int_eq(tp_creds_cache_get(c, 1000, &out, NULL, 0), -1);
    tp_creds_cache_failed(c, 1000);
    ck_assert_int_eq(tp_creds_cache_due(c, 1004, &next), 0);
    ck_assert_int_eq((long)next, 1005);
    ck_assert_int_eq(tp_creds_cache_due(c, 1005, &next), 1);

    cr.expiration = 1030;                   /* 30 s: refreshed at 15 s */
    tp_creds_cache_store(c, 1000, &cr);
    ck_assert_int_eq(tp_creds_cache_get(c, 1029, &out, NULL, 0), 0);
    ck_assert_int_eq(tp_creds_cache_get(c, 1030, &out, NULL, 0), -1);
    ck_assert_int_eq(tp_creds_cache_due(c, 1014, &next), 0);
    ck_assert_int_eq((long)next, 1015);
    ck_assert_int_eq(tp_creds_cache_due(c, 1015, &next), 1);

    cr.expiration = 1000 + 6 * 3600;        /* 6 h: 5 minutes before */
    tp_creds_cache_store(c, 1000, &cr);
    ck_assert_int_eq(tp_creds_cache_due(c, 1000 + 6 * 3600 - 301, &next), 0);
    ck_assert_int_eq((long)next, 1000 + 6 * 3600 - 300);
    tp_creds_cache_reject(c);
    ck_assert_int_eq(tp_creds_cache_due(c, 1004, &next), 0);
    ck_assert_int_eq(tp_creds_cache_due(c, 1005, &next), 1);

    cr.expiration = 0;                      /* static: never, unless refused */
    tp_creds_cache_store(c, 2000, &cr);
    ck_assert_int_eq(tp_creds_cache_due(c, 999999, &next), 0);
    ck_assert_int_eq((long)next, 0);

    tp_creds_cache_set_skew(c, 2600, 2000);
    ck_assert_int_eq(tp_creds_cache_skew_news(c, &off), 1);
    ck_assert_int_eq(off, 600);
    ck_assert_int_eq(tp_creds_cache_skew_news(c, &off), 0);
    ck_assert_int_ge((long long)tp_creds_cache_now(c), (long long)time(NULL) + 599);
    tp_creds_cache_free(c);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("creds");
    TCase *tc = tcase_create("creds");

    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, iso_times, 0, (int)(sizeof(times) / sizeof(times[0])));
    tcase_add_test(tc, http_dates);
    tcase_add_loop_test(tc, answer_kinds, 0, (int)(sizeof(answers) / sizeof(answers[0])));
    tcase_add_test(tc, split_commands);
    tcase_add_test(tc, xml_elements);
    tcase_add_loop_test(tc, regions_from_urls, 0, (int)(sizeof(urls) / sizeof(urls[0])));
    tcase_add_test(tc, shared_files);
    tcase_add_test(tc, environment_first);
    tcase_add_test(tc, process_timeout);
    tcase_add_test(tc, cache_timing);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
