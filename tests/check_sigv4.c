/*
 * check_sigv4 - unit tests for tp_sigv4.
 *
 * 1. The aws-c-auth SigV4 test suite, header form: every case folder in
 *    $TP_SIGV4_SUITE (configure sets it) is read at run time, signed, and
 *    compared exactly with header-canonical-request, header-string-to-sign,
 *    header-signature and the Authorization value of header-signed-request.
 *    One TCase per case, named after it.  When TP_SIGV4_SUITE is unset or
 *    empty the suite is reported as a TAP SKIP; when it names a folder that
 *    cannot be read, or one without exactly 38 cases, the test fails.
 * 2. Production services ("es", "aoss"), cross-checked with botocore.
 * 3. Error paths, as a table: each row must fail (or succeed, at a limit)
 *    with the right message and no secret in it.
 * 4. The signing-key cache: used on a hit, refreshed on any change.
 *
 * Output is TAP on stdout.  Run under valgrind with CK_FORK=no.
 */
#include <check.h>
#include <dirent.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "tp_check.h"
#include "tp_sigv4.h"

#define EXPECTED_CASES 38
#define MAX_CASES      128
#define MAX_REQ_HEADERS TP_SIGV4_MAX_HEADERS

#define PATHBUF        4096

static char suite_dir[PATHBUF];
static const char *suite_problem;       /* why the suite cannot be read, or NULL */
static int suite_unset;                 /* TP_SIGV4_SUITE unset or empty: skip */
static char *case_names[MAX_CASES];
static size_t ncases;

/* ---------------------------------------------------------------- helpers */

/* out = a "/" b ["/" c]; -1 when it does not fit (never silently cut). */
static int join_path(char *out, size_t outlen, const char *a, const char *b,
                     const char *c)
{
    int n = snprintf(out, outlen, "%s/%s%s%s", a, b, c ? "/" : "", c ? c : "");

    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

/* Whole file, NUL-terminated (files may hold bytes >= 0x80, never NUL). */
static char *slurp(const char *dir, const char *name, size_t *lenp)
{
    char path[PATHBUF];
    FILE *f = NULL;
    char *buf = NULL;
    long size;

    if (join_path(path, sizeof(path), dir, name, NULL))
        return NULL;
    f = fopen(path, "rb");
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
        goto fail;
    buf = malloc((size_t)size + 1);
    if (!buf)
        goto fail;
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
        goto fail;
    }
    buf[size] = '\0';
    if (lenp)
        *lenp = (size_t)size;
fail:
    fclose(f);
    return buf;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant). */
static long days_from_civil(long y, long m, long d)
{
    long era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "2015-08-30T12:36:00Z" -> epoch seconds; -1 when malformed. */
static time_t parse_iso8601(const char *s)
{
    int y, mo, d, h, mi, sec, used = -1;

    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi,
                     &sec, &used) != 6 || used < 0 || s[used] != '\0')
        return (time_t)-1;
    return (time_t)(days_from_civil(y, mo, d) * 86400L + h * 3600L +
                    mi * 60L + sec);
}

/* ----------------------------------------------------- reading a test case */

struct vector {
    json_object *ctx;
    char *reqbuf;               /* request.txt, carved in place */
    tp_sigv4_header headers[MAX_REQ_HEADERS];
    tp_sigv4_request req;
    tp_sigv4_creds creds;
    tp_sigv4_params params;
};

static const char *json_str(json_object *o, const char *key)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int ctx_bool(json_object *o, const char *key, int dflt)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v))
        return dflt;
    return json_object_get_boolean(v) ? 1 : 0;
}

static int load_context(struct vector *v, const char *dir, char *why, size_t whylen)
{
    char path[PATHBUF];
    json_object *creds;

    if (join_path(path, sizeof(path), dir, "context.json", NULL)) {
        snprintf(why, whylen, "path too long");
        return -1;
    }
    v->ctx = json_object_from_file(path);
    if (!v->ctx || !json_object_object_get_ex(v->ctx, "credentials", &creds)) {
        snprintf(why, whylen, "cannot read context.json");
        return -1;
    }
    v->creds.access_key_id = json_str(creds, "access_key_id");
    v->creds.secret_access_key = json_str(creds, "secret_access_key");
    v->creds.session_token = json_str(creds, "token");
    v->params.region = json_str(v->ctx, "region");
    v->params.service = json_str(v->ctx, "service");
    v->params.now = parse_iso8601(json_str(v->ctx, "timestamp"));
    v->params.normalize_path = ctx_bool(v->ctx, "normalize", 1);
    v->params.sign_body = ctx_bool(v->ctx, "sign_body", 0);
    v->params.omit_session_token = ctx_bool(v->ctx, "omit_session_token", 0);
    v->params.keep_intermediates = 1;
    if (!v->creds.access_key_id || !v->creds.secret_access_key ||
        !v->params.region || !v->params.service || v->params.now == (time_t)-1) {
        snprintf(why, whylen, "context.json lacks a field");
        return -1;
    }
    return 0;
}

/*
 * request.txt: request line split at the first and the last space (the
 * target may hold a space); target split at the first '?'; "Name:value"
 * header lines, where a line starting with SP or HT continues the value
 * (obs-fold, kept raw: the signer folds it); a blank line, then the body.
 */
static int load_request(struct vector *v, const char *dir, char *why, size_t whylen)
{
    char *b, *e, *sp1, *sp2, *q;
    size_t len, pos;

    v->reqbuf = b = slurp(dir, "request.txt", &len);
    if (!b) {
        snprintf(why, whylen, "cannot read request.txt");
        return -1;
    }
    e = memchr(b, '\n', len);
    if (!e)
        goto bad;
    *e = '\0';
    sp1 = strchr(b, ' ');
    sp2 = strrchr(b, ' ');
    if (!sp1 || sp2 == sp1)
        goto bad;
    *sp1 = '\0';
    *sp2 = '\0';
    v->req.method = b;
    v->req.path = sp1 + 1;
    q = strchr(sp1 + 1, '?');
    if (q) {
        *q = '\0';
        v->req.query = q + 1;
    }

    pos = (size_t)(e - b) + 1;
    while (pos < len) {
        size_t end = pos;
        char *colon;

        if (b[pos] == '\n') {            /* blank line: the body follows */
            v->req.body = (const unsigned char *)b + pos + 1;
            v->req.body_len = len - pos - 1;
            break;
        }
        while (end < len && !(b[end] == '\n' && b[end + 1] != ' ' && b[end + 1] != '\t'))
            end++;
        colon = memchr(b + pos, ':', end - pos);
        if (!colon || v->req.nheaders == MAX_REQ_HEADERS)
            goto bad;
        *colon = '\0';
        b[end] = '\0';                  /* b[len] is already NUL */
        v->headers[v->req.nheaders].name = b + pos;
        v->headers[v->req.nheaders].value = colon + 1;
        v->req.nheaders++;
        pos = end + 1;
    }
    v->req.headers = v->headers;
    return 0;

bad:
    snprintf(why, whylen, "cannot parse request.txt");
    return -1;
}

static void vector_free(struct vector *v)
{
    if (v->ctx)
        json_object_put(v->ctx);
    free(v->reqbuf);
}

/* Value of the first "Name:" line of a signed request (header part only). */
static char *header_value(const char *sreq, const char *name)
{
    size_t n = strlen(name);
    const char *line = sreq;

    while (line && *line && *line != '\n') {
        const char *eol = strchr(line, '\n');
        size_t linelen = eol ? (size_t)(eol - line) : strlen(line);

        if (linelen > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
            char *v = malloc(linelen - n);
            if (v) {
                memcpy(v, line + n + 1, linelen - n - 1);
                v[linelen - n - 1] = '\0';
            }
            return v;
        }
        line = eol ? eol + 1 : NULL;
    }
    return NULL;
}

/* Every line behind "# ", so even a merged stream stays valid TAP. */
static void print_commented(const char *text)
{
    while (*text) {
        const char *eol = strchr(text, '\n');
        int n = eol ? (int)(eol - text) : (int)strlen(text);

        fprintf(stderr, "# %.*s\n", n, text);
        text += n + (eol ? 1 : 0);
    }
}

/* Record the first mismatch; the details go to stderr (stdout is TAP). */
static void compare(char *why, size_t whylen, const char *cname, const char *what,
                    const char *expected, const char *got)
{
    if (why[0])
        return;
    if (expected && got && strcmp(expected, got) == 0)
        return;
    snprintf(why, whylen, "%s differs (details on stderr)", what);
    fprintf(stderr, "# %s: %s\n# --- expected\n", cname, what);
    print_commented(expected ? expected : "(missing file)");
    fprintf(stderr, "# --- got\n");
    print_commented(got ? got : "(null)");
    fprintf(stderr, "# ---\n");
}

/* ------------------------------------------------- 1. the AWS test suite */

START_TEST(test_suite_case_count)
{
    ck_assert_msg(suite_problem == NULL, "%s", suite_problem ? suite_problem : "");
    ck_assert_msg(ncases == EXPECTED_CASES, "found %zu cases in %s, expected %d",
                  ncases, suite_dir, EXPECTED_CASES);
}
END_TEST

/* The result against the case's expected files; the first mismatch in why. */
static void compare_with_case(const struct vector *v, const tp_sigv4_result *out,
                              const char *dir, const char *cname, char *why, size_t whylen)
{
    char *creq = slurp(dir, "header-canonical-request.txt", NULL);
    char *sts = slurp(dir, "header-string-to-sign.txt", NULL);
    char *sig = slurp(dir, "header-signature.txt", NULL);
    char *sreq = slurp(dir, "header-signed-request.txt", NULL);
    char *auth = sreq ? header_value(sreq, "Authorization") : NULL;
    char *date = sreq ? header_value(sreq, "X-Amz-Date") : NULL;
    char *sha = sreq ? header_value(sreq, "x-amz-content-sha256") : NULL;
    char *tok = sreq ? header_value(sreq, "X-Amz-Security-Token") : NULL;

    compare(why, whylen, cname, "canonical request", creq, out->canonical_request);
    compare(why, whylen, cname, "string to sign", sts, out->string_to_sign);
    compare(why, whylen, cname, "signature", sig, out->signature);
    compare(why, whylen, cname, "Authorization", auth, out->authorization);
    compare(why, whylen, cname, "X-Amz-Date", date, out->amz_date);
    /* the headers the caller sends besides Authorization and X-Amz-Date */
    if (v->params.sign_body)
        compare(why, whylen, cname, "x-amz-content-sha256", sha, out->content_sha256);
    else if (sha)
        compare(why, whylen, cname, "x-amz-content-sha256 (unexpected)", NULL, sha);
    if (v->creds.session_token || tok)
        compare(why, whylen, cname, "X-Amz-Security-Token", tok, v->creds.session_token);
    free(creq);
    free(sts);
    free(sig);
    free(sreq);
    free(auth);
    free(date);
    free(sha);
    free(tok);
}

/* The same signature without intermediates (nothing allocated), and with a
 * key cache: a miss, then a hit. */
static void compare_variants(struct vector *v, const tp_sigv4_result *out,
                             char *why, size_t whylen)
{
    tp_sigv4_result out2;
    tp_sigv4_key_cache cache = { 0 };
    char err[256] = "";
    int rc;

    v->params.keep_intermediates = 0;
    rc = tp_sigv4_sign(&v->req, &v->creds, &v->params, &out2, err, sizeof(err));
    if (!why[0] && (rc != 0 || out2.canonical_request || out2.string_to_sign ||
                    strcmp(out2.authorization, out->authorization) != 0))
        snprintf(why, whylen, "keep_intermediates=0 differs");
    for (int i = 0; i < 2 && !why[0]; i++) {
        tp_sigv4_result_free(&out2);
        rc = tp_sigv4_sign_cached(&v->req, &v->creds, &v->params, &cache, &out2,
                                  err, sizeof(err));
        if (rc != 0 || !cache.valid || strcmp(out2.authorization, out->authorization) != 0)
            snprintf(why, whylen, "key cache (pass %d) differs", i + 1);
    }
    tp_sigv4_key_cache_clear(&cache);
    tp_sigv4_result_free(&out2);
}

START_TEST(test_vector)
{
    const char *cname = case_names[_i];
    char dir[PATHBUF];
    char why[512] = "";
    struct vector v;
    tp_sigv4_result out;
    char err[256] = "";
    int rc;

    memset(&v, 0, sizeof(v));
    memset(&out, 0, sizeof(out));
    if (join_path(dir, sizeof(dir), suite_dir, cname, NULL)) {
        snprintf(why, sizeof(why), "path too long");
        goto done;
    }
    if (load_context(&v, dir, why, sizeof(why)) || load_request(&v, dir, why, sizeof(why)))
        goto done;
    rc = tp_sigv4_sign(&v.req, &v.creds, &v.params, &out, err, sizeof(err));
    if (rc != 0) {
        snprintf(why, sizeof(why), "tp_sigv4_sign returned %d: %s", rc, err);
        goto done;
    }
    compare_with_case(&v, &out, dir, cname, why, sizeof(why));
    compare_variants(&v, &out, why, sizeof(why));

done:
    tp_sigv4_result_free(&out);
    vector_free(&v);
    ck_assert_msg(why[0] == '\0', "%s: %s", cname, why);
}
END_TEST

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every sub-directory of $TP_SIGV4_SUITE holding a context.json is a case;
 * sorted by name. */
static void find_cases(void)
{
    const char *env = getenv("TP_SIGV4_SUITE");
    DIR *d;
    struct dirent *de;

    if (!env || !*env) {
        suite_unset = 1;
        return;
    }
    if (strlen(env) >= sizeof(suite_dir)) {
        suite_problem = "TP_SIGV4_SUITE is too long";
        return;
    }
    memcpy(suite_dir, env, strlen(env) + 1);
    d = opendir(suite_dir);
    if (!d) {
        suite_problem = "cannot open the SigV4 test suite directory (TP_SIGV4_SUITE)";
        fprintf(stderr, "# check_sigv4: cannot open %s\n", suite_dir);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        char path[PATHBUF];
        struct stat st;

        if (de->d_name[0] == '.')
            continue;
        if (join_path(path, sizeof(path), suite_dir, de->d_name, "context.json") ||
            stat(path, &st) != 0)
            continue;
        if (ncases == MAX_CASES) {
            suite_problem = "more test cases than this test can hold";
            break;
        }
        case_names[ncases] = strdup(de->d_name);
        if (!case_names[ncases]) {
            suite_problem = "out of memory";
            break;
        }
        ncases++;
    }
    closedir(d);
    qsort(case_names, ncases, sizeof(case_names[0]), by_name);
}

/* ------------------------------------- 2. production services, botocore */

/*
 * Expected values from botocore 1.29 (SigV4Auth(creds, service, region),
 * datetime patched to `now`), which double-encodes the path like we do.
 * For aoss the X-Amz-Content-SHA256 header was set before signing.
 */
struct svc_row {
    const char *name;
    const char *method, *path, *query, *host, *ctype, *body, *region, *service;
    const char *token;
    int sign_body;
    time_t now;
    const char *authorization;
};

static const struct svc_row svc_rows[] = {
    { "es_post_doc_token", "POST", "/events/_doc", NULL,
      "search-tp.eu-west-1.es.amazonaws.com", "application/json",
      "{\"path\":\"/p.gif\",\"ts\":\"2024-02-29T23:59:59Z\"}", "eu-west-1", "es",
      "FwoGZXIvYXdzEJr//////////wEaDOnly+ATest/Token==", 0, 1709251199,
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240229/eu-west-1/es/aws4_request, "
      "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, "
      "Signature=b6bb9a661388007a5d8c31bdd78b1e32904da29183fbf265d2c75a83a0e0ab03" },
    { "es_search_encoded_path_query", "GET", "/my%20index/_search", "size=10&q=a%2Bb",
      "search-tp.us-east-1.es.amazonaws.com", NULL, "", "us-east-1", "es",
      NULL, 0, 1700000000,
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20231114/us-east-1/es/aws4_request, "
      "SignedHeaders=host;x-amz-date, "
      "Signature=7cd268cb911f14fda785fbe7f4cf6bb85f5a45bddd048b00ef74002ccb1f8e9c" },
    { "aoss_bulk_sign_body", "POST", "/_bulk", NULL,
      "abc123.us-west-2.aoss.amazonaws.com", "application/x-ndjson",
      "{\"index\":{\"_index\":\"events\"}}\n{\"a\":1}\n", "us-west-2", "aoss",
      "IQoJb3JpZ2luX2VjEXAMPLE", 1, 1735689600,
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250101/us-west-2/aoss/aws4_request, "
      "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "
      "Signature=46e93025c69ab99438397f39f09ec6ba71c6c9d7c3eb48a042166e95b0f9d484" },
};

START_TEST(test_service)
{
    const struct svc_row *r = &svc_rows[_i];
    tp_sigv4_header h[2];
    tp_sigv4_request req;
    tp_sigv4_creds creds = { "AKIAIOSFODNN7EXAMPLE",
                             "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", r->token };
    tp_sigv4_params params;
    tp_sigv4_result out;
    char err[256] = "";
    int rc;

    memset(&req, 0, sizeof(req));
    memset(&params, 0, sizeof(params));
    h[0].name = "Host";
    h[0].value = r->host;
    h[1].name = "Content-Type";
    h[1].value = r->ctype;
    req.method = r->method;
    req.path = r->path;
    req.query = r->query;
    req.headers = h;
    req.nheaders = r->ctype ? 2 : 1;
    req.body = (const unsigned char *)r->body;
    req.body_len = strlen(r->body);
    params.region = r->region;
    params.service = r->service;
    params.now = r->now;
    params.normalize_path = 1;
    params.sign_body = r->sign_body;

    rc = tp_sigv4_sign(&req, &creds, &params, &out, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s: rc %d: %s", r->name, rc, err);
    ck_assert_msg(strcmp(out.authorization, r->authorization) == 0,
                  "%s: Authorization differs: %s", r->name, out.authorization);
    tp_sigv4_result_free(&out);
}
END_TEST

/* ------------------------------------------------------- 3. error paths */

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define TOKEN  "SeSsIoNtOkEnSeCrEt"

struct fixture {
    tp_sigv4_header h[TP_SIGV4_MAX_HEADERS + 8];
    char names[TP_SIGV4_MAX_HEADERS + 8][80];
    tp_sigv4_request req;
    tp_sigv4_creds creds;
    tp_sigv4_params params;
    char *scratch;      /* freed after the row */
    int null_out;
};

static void fx_base(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->h[0].name = "Host";
    f->h[0].value = "example.amazonaws.com";
    f->req.method = "GET";
    f->req.path = "/";
    f->req.headers = f->h;
    f->req.nheaders = 1;
    f->creds.access_key_id = "AKIDEXAMPLE";
    f->creds.secret_access_key = SECRET;
    f->creds.session_token = TOKEN;
    f->params.region = "us-east-1";
    f->params.service = "es";
    f->params.now = 1440938160;     /* 2015-08-30T12:36:00Z */
    f->params.normalize_path = 1;
    f->params.keep_intermediates = 1;
}

/* n headers: Host plus X-Header-1 .. X-Header-(n-1), names namelen long */
static void fx_headers(struct fixture *f, size_t n, size_t namelen)
{
    size_t i;

    for (i = 1; i < n; i++) {
        int k = snprintf(f->names[i], sizeof(f->names[i]), "X-Header-%zu-", i);
        while ((size_t)k < namelen && (size_t)k < sizeof(f->names[i]) - 1)
            f->names[i][k++] = 'x';
        f->names[i][k] = '\0';
        f->h[i].name = f->names[i];
        f->h[i].value = "v";
    }
    f->req.nheaders = n;
}

static void fx_query_parts(struct fixture *f, size_t n)
{
    size_t i, len = 0, cap = n * 16 + 1;

    f->scratch = malloc(cap);
    ck_assert_ptr_nonnull(f->scratch);
    f->scratch[0] = '\0';
    for (i = 0; i < n; i++)
        len += (size_t)snprintf(f->scratch + len, cap - len, "%sk%zu=v", i ? "&" : "", i);
    f->req.query = f->scratch;
}

static void m_too_many_headers(struct fixture *f) { fx_headers(f, TP_SIGV4_MAX_HEADERS + 1, 0); }
static void m_max_headers(struct fixture *f) { fx_headers(f, TP_SIGV4_MAX_HEADERS, 0); }
static void m_missing_host(struct fixture *f) { f->h[0].name = "Hostx"; }
static void m_no_headers(struct fixture *f) { f->req.nheaders = 0; }
static void m_null_headers(struct fixture *f) { f->req.headers = NULL; }
static void m_too_many_query(struct fixture *f) { fx_query_parts(f, TP_SIGV4_MAX_QUERY_PARTS + 1); }
static void m_max_query(struct fixture *f) { fx_query_parts(f, TP_SIGV4_MAX_QUERY_PARTS); }
static void m_bad_escape(struct fixture *f) { f->req.query = "a=%zz"; }
static void m_short_escape(struct fixture *f) { f->req.query = "a=b&c=%4"; }
static void m_query_qmark(struct fixture *f) { f->req.query = "?a=b"; }
static void m_path_qmark(struct fixture *f) { f->req.path = "/a?b=c"; }
static void m_path_relative(struct fixture *f) { f->req.path = "a/b"; }
static void m_path_ctl(struct fixture *f) { f->req.path = "/a\r\nb"; }
static void m_caller_date(struct fixture *f) { f->h[1].name = "X-Amz-Date"; f->h[1].value = "x"; f->req.nheaders = 2; }
static void m_caller_auth(struct fixture *f) { f->h[1].name = "authorization"; f->h[1].value = "x"; f->req.nheaders = 2; }
static void m_caller_token(struct fixture *f) { f->h[1].name = "X-Amz-Security-Token"; f->h[1].value = TOKEN; f->req.nheaders = 2; }
static void m_caller_sha_signed(struct fixture *f) { f->h[1].name = "X-Amz-Content-SHA256"; f->h[1].value = "x"; f->req.nheaders = 2; f->params.sign_body = 1; }
static void m_caller_sha_plain(struct fixture *f) { f->h[1].name = "X-Amz-Content-SHA256"; f->h[1].value = "x"; f->req.nheaders = 2; }
static void m_name_space(struct fixture *f) { f->h[1].name = "My Header"; f->h[1].value = "x"; f->req.nheaders = 2; }
static void m_name_empty(struct fixture *f) { f->h[1].name = ""; f->h[1].value = "x"; f->req.nheaders = 2; }
static void m_value_null(struct fixture *f) { f->h[1].name = "A"; f->h[1].value = NULL; f->req.nheaders = 2; }
static void m_value_bare_lf(struct fixture *f) { f->h[1].name = "A"; f->h[1].value = "a\nb"; f->req.nheaders = 2; }
static void m_value_bare_cr(struct fixture *f) { f->h[1].name = "A"; f->h[1].value = "a\rb"; f->req.nheaders = 2; }
static void m_value_obs_fold(struct fixture *f) { f->h[1].name = "A"; f->h[1].value = "a\r\n b"; f->req.nheaders = 2; }
static void m_method_null(struct fixture *f) { f->req.method = NULL; }
static void m_method_empty(struct fixture *f) { f->req.method = ""; }
static void m_method_space(struct fixture *f) { f->req.method = "GET /"; }
static void m_akid_slash(struct fixture *f) { f->creds.access_key_id = "AKID/X"; }
static void m_akid_null(struct fixture *f) { f->creds.access_key_id = NULL; }
static void m_secret_empty(struct fixture *f) { f->creds.secret_access_key = ""; }
static void m_secret_long(struct fixture *f)
{
    f->scratch = malloc(TP_SIGV4_SECRET_MAX + 2);
    ck_assert_ptr_nonnull(f->scratch);
    memset(f->scratch, 's', TP_SIGV4_SECRET_MAX + 1);
    f->scratch[TP_SIGV4_SECRET_MAX + 1] = '\0';
    f->creds.secret_access_key = f->scratch;
}
static void m_token_crlf(struct fixture *f) { f->creds.session_token = "tok\r\nX-Evil: 1"; }
static void m_region_space(struct fixture *f) { f->params.region = "us east-1"; }
static void m_region_long(struct fixture *f) { f->params.region = "us-east-1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; }
static void m_service_empty(struct fixture *f) { f->params.service = ""; }
static void m_body_null(struct fixture *f) { f->req.body = NULL; f->req.body_len = 5; }
static void m_time_range(struct fixture *f) { f->params.now = (time_t)253402300800LL; /* 10000-01-01 */ }
static void m_auth_too_long(struct fixture *f) { fx_headers(f, 30, 60); }
static void m_canon_too_big(struct fixture *f)
{
    f->scratch = malloc(TP_SIGV4_CANON_MAX + 1);
    ck_assert_ptr_nonnull(f->scratch);
    memset(f->scratch, 'v', TP_SIGV4_CANON_MAX);
    f->scratch[TP_SIGV4_CANON_MAX] = '\0';
    f->h[1].name = "Big";
    f->h[1].value = f->scratch;
    f->req.nheaders = 2;
}
static void m_null_out(struct fixture *f) { f->null_out = 1; }

struct err_row {
    const char *name;
    void (*mutate)(struct fixture *);
    int rc;
    const char *err_has;    /* substring of err when rc is -1 */
};

static const struct err_row err_rows[] = {
    { "too_many_headers",       m_too_many_headers,  -1, "at most 64" },
    { "max_headers_ok",         m_max_headers,        0, NULL },
    { "missing_host",           m_missing_host,      -1, "no Host" },
    { "no_headers",             m_no_headers,        -1, "no Host" },
    { "null_headers",           m_null_headers,      -1, "headers is NULL" },
    { "too_many_query_parts",   m_too_many_query,    -1, "more than 256 query" },
    { "max_query_parts_ok",     m_max_query,          0, NULL },
    { "query_bad_escape",       m_bad_escape,        -1, "percent-escape" },
    { "query_short_escape",     m_short_escape,      -1, "query parameter 2" },
    { "query_leading_qmark",    m_query_qmark,       -1, "must not start" },
    { "path_with_qmark",        m_path_qmark,        -1, "path holds" },
    { "path_relative",          m_path_relative,     -1, "start with '/'" },
    { "path_control_char",      m_path_ctl,          -1, "path holds" },
    { "caller_x_amz_date",      m_caller_date,       -1, "added by the signer" },
    { "caller_authorization",   m_caller_auth,       -1, "added by the signer" },
    { "caller_security_token",  m_caller_token,      -1, "added by the signer" },
    { "caller_sha256_sign_body",m_caller_sha_signed, -1, "with sign_body" },
    { "caller_sha256_plain_ok", m_caller_sha_plain,   0, NULL },
    { "header_name_space",      m_name_space,        -1, "bad or empty name" },
    { "header_name_empty",      m_name_empty,        -1, "bad or empty name" },
    { "header_value_null",      m_value_null,        -1, "control character" },
    { "header_value_bare_lf",   m_value_bare_lf,     -1, "control character" },
    { "header_value_bare_cr",   m_value_bare_cr,     -1, "control character" },
    { "header_value_obs_fold_ok", m_value_obs_fold,   0, NULL },
    { "method_null",            m_method_null,       -1, "method" },
    { "method_empty",           m_method_empty,      -1, "method" },
    { "method_space",           m_method_space,      -1, "method" },
    { "access_key_slash",       m_akid_slash,        -1, "access key id" },
    { "access_key_null",        m_akid_null,         -1, "access key id" },
    { "secret_empty",           m_secret_empty,      -1, "secret access key" },
    { "secret_too_long",        m_secret_long,       -1, "secret access key" },
    { "token_crlf",             m_token_crlf,        -1, "session token" },
    { "region_space",           m_region_space,      -1, "region" },
    { "region_too_long",        m_region_long,       -1, "region" },
    { "service_empty",          m_service_empty,     -1, "service" },
    { "body_null_with_length",  m_body_null,         -1, "body is NULL" },
    { "time_out_of_range",      m_time_range,        -1, "time out of range" },
    { "authorization_too_long", m_auth_too_long,     -1, "Authorization value longer" },
    { "canonical_too_big",      m_canon_too_big,     -1, "canonical request longer" },
    { "null_result",            m_null_out,          -1, "NULL result" },
};

START_TEST(test_error_path)
{
    const struct err_row *r = &err_rows[_i];
    struct fixture f;
    tp_sigv4_result out;
    char err[256];
    int rc;

    fx_base(&f);
    r->mutate(&f);
    memset(&out, 0x5a, sizeof(out));        /* the signer must reset it */
    snprintf(err, sizeof(err), "untouched");
    rc = tp_sigv4_sign(&f.req, &f.creds, &f.params, f.null_out ? NULL : &out,
                       err, sizeof(err));
    free(f.scratch);
    if (!f.null_out && rc == 0)
        tp_sigv4_result_free(&out);

    ck_assert_msg(rc == r->rc, "%s: rc %d, expected %d (err: %s)", r->name, rc,
                  r->rc, err);
    if (rc == 0) {
        ck_assert_msg(err[0] == '\0', "%s: err set on success: %s", r->name, err);
        return;
    }
    ck_assert_msg(strstr(err, r->err_has) != NULL, "%s: err \"%s\" lacks \"%s\"",
                  r->name, err, r->err_has);
    ck_assert_msg(strstr(err, SECRET) == NULL && strstr(err, TOKEN) == NULL &&
                  strstr(err, "wJalr") == NULL,
                  "%s: err leaks a secret", r->name);
    if (!f.null_out) {
        ck_assert_msg(out.canonical_request == NULL && out.string_to_sign == NULL &&
                      out.authorization[0] == '\0' && out.signature[0] == '\0',
                      "%s: result not cleared on failure", r->name);
        tp_sigv4_result_free(&out);     /* safe on a failed result */
    }
}
END_TEST

/* The key cache is used when it matches and refreshed when anything the
 * key depends on changes: secret, date, region, service. */
static void sign_into(struct fixture *f, tp_sigv4_key_cache *cache, char *auth)
{
    tp_sigv4_result out;
    char err[256];
    int rc = tp_sigv4_sign_cached(&f->req, &f->creds, &f->params, cache, &out,
                                  err, sizeof(err));

    ck_assert_msg(rc == 0, "sign failed: %s", err);
    memcpy(auth, out.authorization, TP_SIGV4_AUTH_MAX);
    tp_sigv4_result_free(&out);
}

START_TEST(test_key_cache)
{
    static const struct { const char *what; int field; } changes[] = {
        { "secret", 0 }, { "date", 1 }, { "region", 2 }, { "service", 3 },
    };
    struct fixture f;
    tp_sigv4_key_cache cache = { 0 }, zero = { 0 };
    char a[TP_SIGV4_AUTH_MAX], b[TP_SIGV4_AUTH_MAX];
    size_t i;

    for (i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
        fx_base(&f);
        sign_into(&f, NULL, a);
        sign_into(&f, &cache, b);
        ck_assert_str_eq(a, b);
        ck_assert_int_eq(cache.valid, 1);

        /* a hit really uses the cached key: spoil it and the signature moves */
        cache.key[0] ^= 1;
        sign_into(&f, &cache, b);
        ck_assert_msg(strcmp(a, b) != 0, "%s: cached key not used", changes[i].what);

        /* the cache still holds the spoiled key: a change must not use it */
        switch (changes[i].field) {
        case 0: f.creds.secret_access_key = "another/secret+key"; break;
        case 1: f.params.now += 86400; break;
        case 2: f.params.region = "eu-west-1"; break;
        default: f.params.service = "aoss"; break;
        }
        sign_into(&f, NULL, a);
        sign_into(&f, &cache, b);
        ck_assert_msg(strcmp(a, b) == 0, "%s change: stale cached key used",
                      changes[i].what);
        sign_into(&f, &cache, b);     /* and now hits with the new key */
        ck_assert_msg(strcmp(a, b) == 0, "%s change: hit differs", changes[i].what);

        tp_sigv4_key_cache_clear(&cache);
        ck_assert_msg(memcmp(&cache, &zero, sizeof(cache)) == 0,
                      "clear left bytes behind");
    }
    tp_sigv4_key_cache_clear(NULL);
}
END_TEST

/* NULL or zero-length err buffers are accepted; result_free is idempotent. */
START_TEST(test_err_buffer_optional)
{
    struct fixture f;
    tp_sigv4_result out;
    char err[1] = { 'x' };

    fx_base(&f);
    f.req.nheaders = 0;
    ck_assert_int_eq(tp_sigv4_sign(&f.req, &f.creds, &f.params, &out, NULL, 0), -1);
    ck_assert_int_eq(tp_sigv4_sign(&f.req, &f.creds, &f.params, &out, err, 0), -1);
    ck_assert_int_eq(err[0], 'x');
    ck_assert_int_eq(tp_sigv4_sign(NULL, NULL, NULL, &out, NULL, 0), -1);
    fx_base(&f);
    ck_assert_int_eq(tp_sigv4_sign(&f.req, &f.creds, &f.params, &out, NULL, 0), 0);
    tp_sigv4_result_free(&out);
    tp_sigv4_result_free(&out);
    tp_sigv4_result_free(NULL);
}
END_TEST

/* A query whose parts are all empty (tests/fuzz/corpus/sigv4/empty-query-part)
 * adds nothing to the query buffer, which must not be used as NULL + 0.  It
 * signs, and its canonical query is "=", as botocore makes it. */
START_TEST(test_empty_query_parts)
{
    static const char *queries[] = { "=&", "=", "&=&" };
    struct fixture f;
    tp_sigv4_result out;
    char err[256];
    const char *line;

    fx_base(&f);
    f.req.query = queries[_i];
    ck_assert_int_eq(tp_sigv4_sign(&f.req, &f.creds, &f.params, &out, err, sizeof(err)), 0);
    line = strchr(strchr(out.canonical_request, '\n') + 1, '\n') + 1;
    ck_assert_msg(strncmp(line, "=\n", 2) == 0, "query %s: canonical query line %.20s",
                  queries[_i], line);
    tp_sigv4_result_free(&out);
}
END_TEST

/* --------------------------------------------------------------- runner */

START_TEST(test_suite_not_configured)
{
}
END_TEST

static void free_cases(void)
{
    for (size_t i = 0; i < ncases; i++)
        free(case_names[i]);
}

/* The AWS cases: one TCase each, so every TAP line names it.  Without
 * TP_SIGV4_SUITE, one TCase whose name carries a TAP "# SKIP" directive:
 * Check prints "ok N - file:<tcase name>:<test>: Passed", which the TAP
 * driver counts as a skip, not a pass. */
static void add_vector_cases(Suite *s)
{
    TCase *tc;

    find_cases();
    atexit(free_cases);
    if (suite_unset) {
        tc = tcase_create("aws_sigv4_suite # SKIP TP_SIGV4_SUITE is not set");
        tcase_add_test(tc, test_suite_not_configured);
        suite_add_tcase(s, tc);
        return;
    }
    tc = tcase_create("suite_has_38_cases");
    tcase_add_test(tc, test_suite_case_count);
    suite_add_tcase(s, tc);
    for (size_t i = 0; i < ncases; i++) {
        tc = tcase_create(case_names[i]);
        tcase_add_loop_test(tc, test_vector, (int)i, (int)i + 1);
        suite_add_tcase(s, tc);
    }
}

static Suite *sigv4_suite(void)
{
    Suite *s = suite_create("sigv4");
    TCase *tc;
    size_t i;

    add_vector_cases(s);
    for (i = 0; i < sizeof(svc_rows) / sizeof(svc_rows[0]); i++) {
        tc = tcase_create(svc_rows[i].name);
        tcase_add_loop_test(tc, test_service, (int)i, (int)i + 1);
        suite_add_tcase(s, tc);
    }
    for (i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++) {
        tc = tcase_create(err_rows[i].name);
        tcase_add_loop_test(tc, test_error_path, (int)i, (int)i + 1);
        suite_add_tcase(s, tc);
    }
    tc = tcase_create("key_cache");
    tcase_add_test(tc, test_key_cache);
    suite_add_tcase(s, tc);
    tc = tcase_create("empty_query_parts");
    tcase_add_loop_test(tc, test_empty_query_parts, 0, 3);
    suite_add_tcase(s, tc);
    tc = tcase_create("err_buffer_optional");
    tcase_add_test(tc, test_err_buffer_optional);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(sigv4_suite)
