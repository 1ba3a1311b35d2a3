/* tp_config: defaults, values, and the one-line errors for bad values;
 * tp_conffile: the configuration file's lines, modes, errors, and its
 * precedence under the environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tp_conffile.h"

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
    ck_assert_ptr_null(cfg.agents_file);
    ck_assert_int_eq(cfg.record_bots, 1);
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
        "TRACKPIXEL_ES_URL=https://search-x.us-east-1.es.amazonaws.com",
        "TRACKPIXEL_ES_INDEX=pixels-2025", "TRACKPIXEL_ES_TYPE=event",
        "AWS_DEFAULT_REGION=eu-west-1", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "TRACKPIXEL_STAGE_VAR_campaign=winter", "TRACKPIXEL_STAGE_VAR_Mixed_Case=x",
        "TRACKPIXEL_TIMEOUT_MS=250", "TRACKPIXEL_BULK_MAX_KB=65536", NULL };
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
    ck_assert_int_eq(cfg.bulk_max_kb, 65536);
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
    ck_assert_str_eq(shown, "https://search-x.us-east-1.es.amazonaws.com/");
    tp_config_free(&cfg);
}
END_TEST

START_TEST(url_password_masked)
{
    char *env[] = { "TRACKPIXEL_ES_URL=https://user:pw@search-x.us-east-1.es.amazonaws.com",
                    NULL };
    tp_config cfg;
    char err[256], shown[256];
    const tp_config_var *vars;
    size_t n;

    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    vars = tp_config_vars(&n);
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
    { "TRACKPIXEL_ES_INDEX=Events", "TRACKPIXEL_ES_INDEX: not a valid index name (lower case, no spaces or \\/*?\"<>|,#:, not starting with - _ +, at most 255 bytes)" },
    { "TRACKPIXEL_ES_INDEX=a/b", "TRACKPIXEL_ES_INDEX: not a valid index name (lower case, no spaces or \\/*?\"<>|,#:, not starting with - _ +, at most 255 bytes)" },
    { "TRACKPIXEL_ES_INDEX=events-%H", "TRACKPIXEL_ES_INDEX: the only conversions are %Y, %m and %d, and the name is at most 255 bytes" },
    { "TRACKPIXEL_ES_INDEX=%Y", "TRACKPIXEL_ES_INDEX: must not start with a date (%Y, %m or %d): the template would cover every index" },
    { "TRACKPIXEL_RETENTION_DAYS=36501", "TRACKPIXEL_RETENTION_DAYS: not a number from 0 to 36500" },
    { "TRACKPIXEL_ES_INDEX=_x", "TRACKPIXEL_ES_INDEX: not a valid index name (lower case, no spaces or \\/*?\"<>|,#:, not starting with - _ +, at most 255 bytes)" },
    { "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not" },
    { "TRACKPIXEL_STAGE_VAR_=x", "TRACKPIXEL_STAGE_VAR_<name>: the name is empty" },
    { "TRACKPIXEL_RECORD_BOTS=no", "TRACKPIXEL_RECORD_BOTS: not a number from 0 to 1" },
    { "TRACKPIXEL_BULK_MAX_KB=65537", "TRACKPIXEL_BULK_MAX_KB: at most 65536" },
    { "TRACKPIXEL_BULK_MAX_KB=0", "TRACKPIXEL_BULK_MAX_KB: not a number from 1 to 65536" },
    { "TRACKPIXEL_ES_IDS=random", "TRACKPIXEL_ES_IDS: request-id or auto" },
    { "TRACKPIXEL_ES_USER=elastic", "TRACKPIXEL_ES_USER is set but neither TRACKPIXEL_ES_PASSWORD nor TRACKPIXEL_ES_PASSWORD_FILE is" },
    { "TRACKPIXEL_ES_PASSWORD=pw-secret", "TRACKPIXEL_ES_PASSWORD is set but TRACKPIXEL_ES_USER is not" },
    { "TRACKPIXEL_ES_KEY_FILE=/k.pem", "TRACKPIXEL_ES_KEY_FILE is set but TRACKPIXEL_ES_CERT_FILE is not" },
    { "TRACKPIXEL_CONFIG=/nonexistent/trackpixel.conf", "TRACKPIXEL_CONFIG: cannot open /nonexistent/trackpixel.conf: No such file or directory" },
    { "TRACKPIXEL_ES_API_KEY_FILE=/nonexistent/key", "TRACKPIXEL_ES_API_KEY_FILE: cannot open /nonexistent/key: No such file or directory" },
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

/* At most one authentication. */
static const struct {
    const char *env[4];
    const char *err;          /* NULL: accepted, with auth */
    tp_config_auth auth;
} auth_cases[] = {
    { { "TRACKPIXEL_ES_API_KEY=a2V5OnNlY3JldA==" }, NULL, TP_AUTH_API_KEY },
    { { "TRACKPIXEL_ES_USER=elastic", "TRACKPIXEL_ES_PASSWORD=pw-secret" }, NULL, TP_AUTH_BASIC },
    { { "TRACKPIXEL_ES_URL=https://u:pw-secret@h:9200" }, NULL, TP_AUTH_URL_BASIC },
    { { "TRACKPIXEL_ES_URL=https://h:9200", "AWS_REGION=eu-west-1", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }, NULL, TP_AUTH_AWS },
    { { NULL }, NULL, TP_AUTH_NONE },
    { { "TRACKPIXEL_ES_API_KEY=a2V5OnNlY3JldA==", "TRACKPIXEL_ES_USER=elastic",
        "TRACKPIXEL_ES_PASSWORD=pw-secret" },
      "more than one authentication is set ( TRACKPIXEL_ES_API_KEY TRACKPIXEL_ES_USER): keep one", 0 },
    { { "TRACKPIXEL_ES_API_KEY=a2V5OnNlY3JldA==", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
      "more than one authentication is set ( AWS_ACCESS_KEY_ID TRACKPIXEL_ES_API_KEY): keep one", 0 },
    { { "TRACKPIXEL_ES_URL=https://u:pw-secret@h:9200", "TRACKPIXEL_ES_USER=elastic",
        "TRACKPIXEL_ES_PASSWORD=pw-secret" },
      "more than one authentication is set ( TRACKPIXEL_ES_USER user@ in TRACKPIXEL_ES_URL): keep one", 0 },
    { { "TRACKPIXEL_ES_API_KEY=a2V5OnNlY3JldA==", "TRACKPIXEL_ES_API_KEY_FILE=/dev/null" },
      "TRACKPIXEL_ES_API_KEY and TRACKPIXEL_ES_API_KEY_FILE are both set: keep one", 0 },
};

START_TEST(auth_modes)
{
    char *env[5] = { (char *)auth_cases[_i].env[0], (char *)auth_cases[_i].env[1],
                     (char *)auth_cases[_i].env[2], (char *)auth_cases[_i].env[3], NULL };
    tp_config cfg;
    char err[256] = "";
    int r = tp_config_load(&cfg, env, err, sizeof(err));

    if (auth_cases[_i].err) {
        ck_assert_int_eq(r, -1);
        ck_assert_str_eq(err, auth_cases[_i].err);
    } else {
        ck_assert_int_eq(r, 0);
        ck_assert_int_eq(cfg.auth, auth_cases[_i].auth);
    }
    tp_config_free(&cfg);
}
END_TEST

/* ---------------------------------------------------- the file's lines */

static const struct {
    const char *name, *text;
    const char *env;          /* the entries joined by '|', or NULL */
    const char *err;          /* NULL: parsed */
    int has_secret;
} lines[] = {
    { "empty", "", "", NULL, 0 },
    { "comments and blanks", "# a comment\n\n   \n\t# indented\nTRACKPIXEL_STAGE=dev\n",
      "TRACKPIXEL_STAGE=dev", NULL, 0 },
    { "no newline at the end", "TRACKPIXEL_STAGE=dev", "TRACKPIXEL_STAGE=dev", NULL, 0 },
    { "CRLF", "TRACKPIXEL_STAGE=dev\r\nTRACKPIXEL_API_ID=x\r\n",
      "TRACKPIXEL_STAGE=dev|TRACKPIXEL_API_ID=x", NULL, 0 },
    { "blanks around", "  TRACKPIXEL_STAGE  =  dev test  \n", "TRACKPIXEL_STAGE=dev test", NULL, 0 },
    { "double quotes", "TRACKPIXEL_STAGE=\"a b\"\n", "TRACKPIXEL_STAGE=a b", NULL, 0 },
    { "single quotes", "TRACKPIXEL_STAGE='a b'\n", "TRACKPIXEL_STAGE=a b", NULL, 0 },
    { "one quote kept", "TRACKPIXEL_STAGE=\"a\n", "TRACKPIXEL_STAGE=\"a", NULL, 0 },
    { "no expansion", "TRACKPIXEL_STAGE=$HOME`id`\\n\n", "TRACKPIXEL_STAGE=$HOME`id`\\n", NULL, 0 },
    { "# inside a value", "TRACKPIXEL_ES_PASSWORD=p#w=x\n", "TRACKPIXEL_ES_PASSWORD=p#w=x", NULL, 1 },
    { "empty value", "TRACKPIXEL_ES_TYPE=\n", "TRACKPIXEL_ES_TYPE=", NULL, 0 },
    { "stage variable", "TRACKPIXEL_STAGE_VAR_site=www\n", "TRACKPIXEL_STAGE_VAR_site=www", NULL, 0 },
    { "AWS variable", "AWS_PROFILE=prod\n", "AWS_PROFILE=prod", NULL, 0 },
    { "AWS secret", "AWS_SECRET_ACCESS_KEY=k\n", "AWS_SECRET_ACCESS_KEY=k", NULL, 1 },
    { "URL with a password", "TRACKPIXEL_ES_URL=https://u:p@h\n", "TRACKPIXEL_ES_URL=https://u:p@h", NULL, 1 },
    { "URL without", "TRACKPIXEL_ES_URL=https://h\n", "TRACKPIXEL_ES_URL=https://h", NULL, 0 },
    { "API key", "TRACKPIXEL_ES_API_KEY=abc\n", "TRACKPIXEL_ES_API_KEY=abc", NULL, 1 },
    { "not NAME=value", "# ok\nTRACKPIXEL_STAGE dev\n", NULL, "line 2: not NAME=value", 0 },
    { "no name", "=dev\n", NULL, "line 1: not NAME=value", 0 },
    { "export is not sh", "export TRACKPIXEL_STAGE=dev\n", NULL, "line 1: not NAME=value", 0 },
    { "unknown name", "TRACKPIXEL_STAEG=dev\n", NULL,
      "line 1: unknown variable TRACKPIXEL_STAEG (see trackpixel --help)", 0 },
    { "other program's", "PATH=/bin\n", NULL, "line 1: unknown variable PATH (see trackpixel --help)", 0 },
    { "bare stage prefix", "TRACKPIXEL_STAGE_VAR_=x\n", NULL,
      "line 1: unknown variable TRACKPIXEL_STAGE_VAR_ (see trackpixel --help)", 0 },
    { "the file's own name", "TRACKPIXEL_CONFIG=/etc/x\n", NULL,
      "line 1: TRACKPIXEL_CONFIG cannot be set in the configuration file (it names the file)", 0 },
    { "twice", "TRACKPIXEL_STAGE=a\n#\nTRACKPIXEL_STAGE=b\n", NULL,
      "line 3: TRACKPIXEL_STAGE is already set on line 1", 0 },
    { "NUL byte", "TRACKPIXEL_STAGE=a\0b\n", NULL, "line 1: a NUL byte", 0 },
};

START_TEST(file_lines)
{
    tp_conffile cf;
    char err[256], joined[512] = "";
    size_t len = strlen(lines[_i].text), i;
    int r;

    if (strcmp(lines[_i].name, "NUL byte") == 0)
        len = sizeof("TRACKPIXEL_STAGE=a\0b\n") - 1;
    r = tp_conffile_parse(lines[_i].text, len, &cf, err, sizeof(err));
    if (lines[_i].err) {
        ck_assert_msg(r == -1, "%s: parsed", lines[_i].name);
        ck_assert_str_eq(err, lines[_i].err);
    } else {
        ck_assert_msg(r == 0, "%s: %s", lines[_i].name, err);
        for (i = 0; i < cf.n; i++) {
            strcat(joined, i ? "|" : "");
            strcat(joined, cf.env[i]);
        }
        ck_assert_ptr_null(cf.env[cf.n]);
        ck_assert_str_eq(joined, lines[_i].env);
        ck_assert_int_eq(cf.has_secret, lines[_i].has_secret);
    }
    tp_conffile_free(&cf);
}
END_TEST

/* The bounds: bytes, line length, lines. */
START_TEST(file_bounds)
{
    size_t big = TP_CONFFILE_MAX_BYTES + 1, i;
    char *text = malloc(big + 16), err[256];
    tp_conffile cf;

    ck_assert_ptr_nonnull(text);
    memset(text, '#', big);
    ck_assert_int_eq(tp_conffile_parse(text, big, &cf, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "larger than 65536 bytes");
    tp_conffile_free(&cf);

    memcpy(text, "TRACKPIXEL_STAGE=", 17);
    memset(text + 17, 'x', TP_CONFFILE_MAX_LINE - 17);       /* exactly the limit */
    text[TP_CONFFILE_MAX_LINE] = '\n';
    ck_assert_int_eq(tp_conffile_parse(text, TP_CONFFILE_MAX_LINE + 1, &cf, err, sizeof(err)), 0);
    ck_assert_uint_eq(strlen(cf.env[0]), TP_CONFFILE_MAX_LINE);
    tp_conffile_free(&cf);
    text[TP_CONFFILE_MAX_LINE] = 'x';
    text[TP_CONFFILE_MAX_LINE + 1] = '\n';
    ck_assert_int_eq(tp_conffile_parse(text, TP_CONFFILE_MAX_LINE + 2, &cf, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "line 1: longer than 8192 bytes");
    tp_conffile_free(&cf);

    for (i = 0; i < TP_CONFFILE_MAX_LINES + 1; i++)
        text[i] = '\n';
    ck_assert_int_eq(tp_conffile_parse(text, TP_CONFFILE_MAX_LINES, &cf, err, sizeof(err)), 0);
    tp_conffile_free(&cf);
    ck_assert_int_eq(tp_conffile_parse(text, TP_CONFFILE_MAX_LINES + 1, &cf, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "more than 1024 lines");
    tp_conffile_free(&cf);
    free(text);
}
END_TEST

/* A file with text and mode; its path into path. */
static void write_file(char *path, size_t cap, const char *text, mode_t mode)
{
    int fd;

    snprintf(path, cap, "/tmp/check_config.XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
}

/* The modes: refused when writable by group or others; a warning when a
 * secret is readable by everyone. */
static const struct {
    const char *text;
    mode_t mode;
    int ok;
    const char *says;         /* in err (refused) or in the warning; "" none */
} modes[] = {
    { "TRACKPIXEL_STAGE=a\n", 0600, 1, "" },
    { "TRACKPIXEL_STAGE=a\n", 0644, 1, "" },
    { "TRACKPIXEL_ES_API_KEY=k\n", 0640, 1, "" },
    { "TRACKPIXEL_ES_API_KEY=k\n", 0644, 1, "holds secrets and is readable by everyone (mode 0644): chmod o-r " },
    { "TRACKPIXEL_STAGE=a\n", 0660, 0, "is writable by its group or others (mode 0660): refused (chmod go-w " },
    { "TRACKPIXEL_STAGE=a\n", 0602, 0, "is writable by its group or others (mode 0602): refused (chmod go-w " },
};

START_TEST(file_modes)
{
    char path[64], err[512] = "", warn[512] = "x", want[600];
    tp_conffile cf;
    mode_t mode;
    int r;

    write_file(path, sizeof(path), modes[_i].text, modes[_i].mode);
    r = tp_conffile_read(path, 0, &cf, &mode, warn, sizeof(warn), err, sizeof(err));
    ck_assert_int_eq(r, modes[_i].ok ? 0 : -1);
    ck_assert_uint_eq(mode, modes[_i].mode);
    if (!modes[_i].says[0]) {
        ck_assert_str_eq(warn, "");
    } else {
        snprintf(want, sizeof(want), "TRACKPIXEL_CONFIG: %s %s%s%s", path, modes[_i].says, path,
                 modes[_i].ok ? "" : ")");
        ck_assert_str_eq(modes[_i].ok ? warn : err, want);
    }
    tp_conffile_free(&cf);
    unlink(path);
}
END_TEST

/* The file under the environment: the environment wins, also when it says
 * VAR=; the file's other lines count; a missing default is no file. */
START_TEST(file_precedence)
{
    char path[64], setting[96], err[256] = "";
    char *env[] = { setting, "TRACKPIXEL_STAGE=from-env", "TRACKPIXEL_STAGE_VAR_b=env",
                    "TRACKPIXEL_ES_TYPE=", NULL };
    tp_config cfg;

    write_file(path, sizeof(path), "TRACKPIXEL_STAGE=from-file\nTRACKPIXEL_API_ID=file-api\n"
               "TRACKPIXEL_STAGE_VAR_a=file\nTRACKPIXEL_STAGE_VAR_b=file\n"
               "TRACKPIXEL_ES_TYPE=event\nTRACKPIXEL_TIMEOUT_MS=1234\n", 0600);
    snprintf(setting, sizeof(setting), "TRACKPIXEL_CONFIG=%s", path);
    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.stage, "from-env");
    ck_assert_str_eq(cfg.api_id, "file-api");
    ck_assert_ptr_null(cfg.es_type);
    ck_assert_int_eq(cfg.timeout_ms, 1234);
    ck_assert_str_eq(cfg.config_path, path);
    ck_assert_uint_eq(cfg.nstage_vars, 2);
    ck_assert_str_eq(cfg.stage_vars[0].name, "b");
    ck_assert_str_eq(cfg.stage_vars[0].value, "env");
    ck_assert_str_eq(cfg.stage_vars[1].name, "a");
    ck_assert_str_eq(cfg.stage_vars[1].value, "file");
    ck_assert_str_eq(tp_env_get(cfg.env, "TRACKPIXEL_STAGE"), "from-env");
    tp_config_free(&cfg);

    /* An error in the file names the file and the line. */
    unlink(path);
    write_file(path, sizeof(path), "TRACKPIXEL_TIMEOUT_MS=soon\n", 0600);
    snprintf(setting, sizeof(setting), "TRACKPIXEL_CONFIG=%s", path);
    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "TRACKPIXEL_TIMEOUT_MS: not a number from 1 to 3600000");
    tp_config_free(&cfg);
    unlink(path);

    /* Empty: no file. */
    snprintf(setting, sizeof(setting), "TRACKPIXEL_CONFIG=");
    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    ck_assert_ptr_null(cfg.config_path);
    tp_config_free(&cfg);
}
END_TEST

/* A secret's file: its first line, trimmed; shown hidden. */
START_TEST(secret_files)
{
    char key[64], pw[64], s1[160], s2[96], err[256] = "", shown[64];
    char *env[] = { s1, NULL, NULL };
    const tp_config_var *vars;
    tp_config cfg;
    size_t n, i;

    write_file(key, sizeof(key), "a2V5OnNlY3JldA==  \r\nsecond line\n", 0600);
    snprintf(s1, sizeof(s1), "TRACKPIXEL_ES_API_KEY_FILE=%s", key);
    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.es_api_key, "a2V5OnNlY3JldA==");
    ck_assert_int_eq(cfg.auth, TP_AUTH_API_KEY);
    vars = tp_config_vars(&n);
    for (i = 0; i < n; i++)
        if (strcmp(vars[i].name, "TRACKPIXEL_ES_API_KEY") == 0)
            ck_assert_str_eq(tp_config_show(&cfg, &vars[i], shown, sizeof(shown)), "(set, hidden)");
    tp_config_free(&cfg);

    write_file(pw, sizeof(pw), "pw-secret\n", 0600);
    snprintf(s1, sizeof(s1), "TRACKPIXEL_ES_USER=elastic");
    snprintf(s2, sizeof(s2), "TRACKPIXEL_ES_PASSWORD_FILE=%s", pw);
    env[1] = s2;
    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.es_password, "pw-secret");
    ck_assert_int_eq(cfg.auth, TP_AUTH_BASIC);
    tp_config_free(&cfg);

    unlink(pw);
    write_file(pw, sizeof(pw), "\nsecond\n", 0600);
    snprintf(s2, sizeof(s2), "TRACKPIXEL_ES_PASSWORD_FILE=%s", pw);
    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), -1);
    snprintf(s1, sizeof(s1), "TRACKPIXEL_ES_PASSWORD_FILE: %s: the first line is empty", pw);
    ck_assert_str_eq(err, s1);
    tp_config_free(&cfg);
    unlink(pw);
    unlink(key);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");
    TCase *tf = tcase_create("file");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, values);
    tcase_add_test(tc, url_password_masked);
    tcase_add_test(tc, aws_region_wins);
    tcase_add_loop_test(tc, bad_values, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, keys_without_region);
    tcase_add_loop_test(tc, auth_modes, 0, (int)(sizeof(auth_cases) / sizeof(auth_cases[0])));
    tcase_add_test(tc, secret_files);
    tcase_add_test(tc, signing_plan);
    suite_add_tcase(s, tc);
    tcase_add_loop_test(tf, file_lines, 0, (int)(sizeof(lines) / sizeof(lines[0])));
    tcase_add_test(tf, file_bounds);
    tcase_add_loop_test(tf, file_modes, 0, (int)(sizeof(modes) / sizeof(modes[0])));
    tcase_add_test(tf, file_precedence);
    suite_add_tcase(s, tf);
    return s;
}

TP_CHECK_MAIN(make_suite)
