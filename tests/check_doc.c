/* tp_doc: a table of CGI environments -> the exact document JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "tp_check.h"
#include "tp_config.h"
#include "tp_doc.h"

#define ID "0f8fad5b-d9cb-469f-a165-70867728950e"
#define FFFD "\xEF\xBF\xBD"

typedef struct row {
    const char *name;
    int tight;                 /* use the tight limits below */
    const char *env[12];
    const char *body;          /* POST body, NULL for none */
    const char *body_json, *params, *stage_vars;
    const char *method, *ip, *user, *ua, *path;
    const char *tail;          /* after @timestamp, e.g. ,"truncated":[...] */
} row;

static char *const tight_env[] = {
    "TRACKPIXEL_MAX_PARAMS=2", "TRACKPIXEL_MAX_HEADERS=2", "TRACKPIXEL_MAX_VALUE=16",
    "TRACKPIXEL_MAX_BODY=40", "TRACKPIXEL_STAGE_VAR_campaign=winter", NULL
};
static char *const default_env[] = { "TRACKPIXEL_STAGE=test", "TRACKPIXEL_API_ID=api1", NULL };

/* The parts of a document that the tables vary. */
/* The input of a hit with the request-id ID at 2025-11-26 19:40:00.123 UTC. */
static tp_doc_input hit_at_the_usual_time(const char *const *env, const char *body,
                                          size_t body_len, int body_complete)
{
    tp_doc_input in;

    memset(&in, 0, sizeof(in));
    in.envp = (char *const *)env;
    in.body = body;
    in.body_len = body_len;
    in.body_complete = body_complete;
    in.request_id = ID;
    in.now.tv_sec = 1764186000;
    in.now.tv_nsec = 123456789;
    return in;
}

typedef struct doc_parts {
    const char *body_json, *params, *stage_vars, *api_id, *method, *stage;
    const char *ip, *user, *ua, *path;
    const char *tail;          /* after @timestamp, e.g. ,"truncated":[...] */
} doc_parts;

/* The whole document tp_doc_serialize writes for w, request ID, at
 * 2025-11-26T19:40:00.123Z, agent unknown. */
static void expected_doc(char *out, size_t cap, const doc_parts *w)
{
    snprintf(out, cap,
        "{\"body-json\":%s,\"params\":%s,\"stage-variables\":%s,\"context\":{"
        "\"account-id\":\"\",\"api-id\":\"%s\",\"api-key\":\"\",\"authorizer-principal-id\":\"\","
        "\"caller\":\"\",\"cognito-authentication-provider\":\"\",\"cognito-authentication-type\":\"\","
        "\"cognito-identity-id\":\"\",\"cognito-identity-pool-id\":\"\",\"http-method\":\"%s\","
        "\"stage\":\"%s\",\"source-ip\":\"%s\",\"user\":\"%s\",\"user-agent\":\"%s\",\"user-arn\":\"\","
        "\"request-id\":\"" ID "\",\"resource-id\":\"\",\"resource-path\":\"%s\"},"
        "\"agent\":{\"class\":\"unknown\",\"name\":\"\"},"
        "\"date\":1764186000123,\"@timestamp\":\"2025-11-26T19:40:00.123Z\"%s}",
        w->body_json, w->params, w->stage_vars, w->api_id, w->method, w->stage, w->ip,
        w->user, w->ua, w->path, w->tail);
}

static const row rows[] = {
    { "minimal GET", 0,
      { "REQUEST_METHOD=GET", "REMOTE_ADDR=203.0.113.9", "SCRIPT_NAME=/pixel", NULL },
      NULL, "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "GET", "203.0.113.9", "", "", "/pixel", "" },
    { "query, headers, path", 0,
      { "REQUEST_METHOD=GET", "QUERY_STRING=utm_source=news&a=1&a=2&flag&=x&q=a+b%21",
        "HTTP_USER_AGENT=Mozilla/5.0 (X11)", "HTTP_REFERER=https://example.com/",
        "HTTP_X_FORWARDED_FOR=198.51.100.1", "HTTP_AUTHORIZATION=Basic c2VjcmV0",
        "HTTP_PROXY_AUTHORIZATION=Basic c2VjcmV0", "PATH_INFO=/campaign/x",
        "REMOTE_ADDR=::1", "REMOTE_USER=alice", "SCRIPT_NAME=/pixel", NULL },
      NULL, "{}",
      "{\"path\":{\"proxy\":\"campaign/x\"},"
      "\"querystring\":{\"utm_source\":\"news\",\"a\":\"2\",\"flag\":\"\",\"q\":\"a b!\"},"
      "\"header\":{\"User-Agent\":\"Mozilla/5.0 (X11)\",\"Referer\":\"https://example.com/\","
      "\"X-Forwarded-For\":\"198.51.100.1\"}}", "{}",
      "GET", "::1", "alice", "Mozilla/5.0 (X11)", "/pixel", "" },
    { "POST JSON object", 0,
      { "REQUEST_METHOD=POST", "CONTENT_TYPE=application/json", "CONTENT_LENGTH=18", NULL },
      "{\"a\":1,\"b\":[true]}", "{\"a\":1,\"b\":[true]}",
      "{\"path\":{},\"querystring\":{},\"header\":{\"Content-Type\":\"application/json\","
      "\"Content-Length\":\"18\"}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST not an object", 0, { "REQUEST_METHOD=POST", NULL },
      "[1,2]", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST invalid JSON", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST trailing garbage", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":1} x", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST invalid UTF-8 in a string", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":\"x\xFFy\"}", "{\"a\":\"x" FFFD "y\"}",
      "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "GET body ignored", 0, { "REQUEST_METHOD=GET", NULL },
      "{\"a\":1}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "GET", "", "", "", "", "" },
    { "invalid UTF-8 everywhere", 0,
      { "REQUEST_METHOD=GET", "QUERY_STRING=n%FF=v%C0%AF&e=%F0%9F%98%80&z=%00",
        "HTTP_USER_AGENT=bad\xFE", "SCRIPT_NAME=/p\xED\xA0\x80", NULL },
      NULL, "{}",
      "{\"path\":{},\"querystring\":{\"n" FFFD "\":\"v" FFFD FFFD "\",\"e\":\"\xF0\x9F\x98\x80\","
      "\"z\":\"\\u0000\"},\"header\":{\"User-Agent\":\"bad" FFFD "\"}}", "{}",
      "GET", "", "", "bad" FFFD, "/p" FFFD FFFD FFFD, "" },
    { "no CGI variables at all", 0, { NULL },
      NULL, "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "", "", "", "", "", "" },
    { "limits: params, headers, value, body", 1,
      { "REQUEST_METHOD=POST", "QUERY_STRING=a=1&b=2&c=3&a=4&long=0123456789abcdefXYZ",
        "HTTP_A=1", "HTTP_B=2", "HTTP_C=3", NULL },
      "{\"this body\":\"is longer than forty bytes, so it is cut\"}", "{}",
      "{\"path\":{},\"querystring\":{\"a\":\"4\",\"b\":\"2\"},\"header\":{\"A\":\"1\",\"B\":\"2\"}}",
      "{\"campaign\":\"winter\"}",
      "POST", "", "", "", "", ",\"truncated\":[\"body-json\",\"params.querystring\",\"params.header\"]" },
    { "limits: a long value is cut on a character boundary", 1,
      { "REQUEST_METHOD=GET", "QUERY_STRING=v=%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9", NULL },
      NULL, "{}",
      "{\"path\":{},\"querystring\":{\"v\":\"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\"},\"header\":{}}",
      "{\"campaign\":\"winter\"}",
      "GET", "", "", "", "", ",\"truncated\":[\"params.querystring.v\"]" },
    /* A name must not end at a NUL: "%00" would be the empty name, which
     * Elasticsearch refuses (tests/fuzz/corpus/doc/nul-in-names). */
    { "NUL in a name is U+FFFD", 0,
      { "REQUEST_METHOD=GET", "QUERY_STRING=%00=nul&a%00b=1&a=2", NULL },
      NULL, "{}",
      "{\"path\":{},\"querystring\":{\"" FFFD "\":\"nul\",\"a" FFFD "b\":\"1\",\"a\":\"2\"},"
      "\"header\":{}}", "{}",
      "GET", "", "", "", "", "" },
    /* A repeat of a kept header still wins when its name needed repair. */
    { "limits: repeat of a repaired header name", 1,
      { "REQUEST_METHOD=GET", "HTTP_A\xFF=1", "HTTP_B=2", "HTTP_A\xFF=3", NULL },
      NULL, "{}",
      "{\"path\":{},\"querystring\":{},\"header\":{\"A" FFFD "\":\"3\",\"B\":\"2\"}}",
      "{\"campaign\":\"winter\"}",
      "GET", "", "", "", "", "" },
    { "POST NaN is not JSON", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":NaN}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST Infinity is not JSON", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":1,\"b\":-Infinity}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST 1e999 is no double", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":1e999}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST integer past 2^63-1", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":9223372036854775808}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST integer past 2^64 (json-c clamps)", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":[99999999999999999999999]}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST 2^63-1 kept", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":9223372036854775807,\"b\":-1.5e300}", "{\"a\":9223372036854775807,\"b\":-1.5e300}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST empty field name", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":{\"\":1}}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST NUL field name (json-c cuts it to empty)", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"\\u0000x\":1}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST blank field name", 0, { "REQUEST_METHOD=POST", NULL },
      "{\" \":1}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST leading dot", 0, { "REQUEST_METHOD=POST", NULL },
      "{\".a\":1}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST double dot", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a..b\":1}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST trailing dot", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a.\":1}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST dotted name kept", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a.b\":1,\"c d\":2}", "{\"a.b\":1,\"c d\":2}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST lone surrogate escapes become U+FFFD", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":\"\\ud800x\\udc00\",\"e\":\"\\ud83d\\ude00\"}", "{\"a\":\"" FFFD "x" FFFD "\",\"e\":\"\xF0\x9F\x98\x80\"}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST 19 nested objects kept (mapping depth 20)", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":1}}}}}}}}}}}}}}}}}}}", "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":1}}}}}}}}}}}}}}}}}}}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST 20 nested objects is too deep", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":1}}}}}}}}}}}}}}}}}}}}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST dotted name of 19 parts kept", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a\":1}", "{\"a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a\":1}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST dotted name of 20 parts is too deep", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a\":1}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    /* FastCGI 6.2: a body of another length than CONTENT_LENGTH is not the body. */
    { "POST Content-Length larger than the body", 0, { "REQUEST_METHOD=POST", "CONTENT_LENGTH=1000", NULL },
      "{\"a\":1}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"Content-Length\":\"1000\"}}", "{}",
      "POST", "", "", "", "", ",\"truncated\":[\"body-json\"]" },
    { "POST Content-Length smaller than the body", 0, { "REQUEST_METHOD=POST", "CONTENT_LENGTH=3", NULL },
      "{\"a\":1}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"Content-Length\":\"3\"}}", "{}",
      "POST", "", "", "", "", ",\"truncated\":[\"body-json\"]" },
    { "POST Content-Length and no body at all", 0, { "REQUEST_METHOD=POST", "CONTENT_LENGTH=10", NULL },
      NULL, "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"Content-Length\":\"10\"}}", "{}",
      "POST", "", "", "", "", ",\"truncated\":[\"body-json\"]" },
    { "POST Content-Length equal", 0, { "REQUEST_METHOD=POST", "CONTENT_LENGTH=7", NULL },
      "{\"a\":1}", "{\"a\":1}", "{\"path\":{},\"querystring\":{},\"header\":{\"Content-Length\":\"7\"}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST Content-Length not a number is not compared", 0, { "REQUEST_METHOD=POST", "CONTENT_LENGTH=x7", NULL },
      "{\"a\":1}", "{\"a\":1}", "{\"path\":{},\"querystring\":{},\"header\":{\"Content-Length\":\"x7\"}}", "{}",
      "POST", "", "", "", "", "" },
    /* Content-Length and Content-Type are recorded only when the request
     * carries a body (CONTENT_LENGTH set, not empty and not zero): lighttpd
     * sets CONTENT_LENGTH=0 on every request, a header no client sent. */
    { "GET with CONTENT_LENGTH=0 records no Content-Length", 0,
      { "REQUEST_METHOD=GET", "CONTENT_LENGTH=0", "HTTP_ACCEPT=*/*", NULL },
      NULL, "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"Accept\":\"*/*\"}}", "{}",
      "GET", "", "", "", "", "" },
    { "GET with an empty CONTENT_LENGTH and a CONTENT_TYPE records neither", 0,
      { "REQUEST_METHOD=GET", "CONTENT_LENGTH=", "CONTENT_TYPE=text/plain", NULL },
      NULL, "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "GET", "", "", "", "", "" },
    { "HEAD with CONTENT_LENGTH=0 records no Content-Length", 0,
      { "REQUEST_METHOD=HEAD", "CONTENT_LENGTH=0", "SCRIPT_NAME=/pixel", NULL },
      NULL, "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "HEAD", "", "", "", "/pixel", "" },
    { "POST with CONTENT_LENGTH=00 and no body records neither", 0,
      { "REQUEST_METHOD=POST", "CONTENT_LENGTH=00", "CONTENT_TYPE=application/json", NULL },
      NULL, "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST with a body records Content-Type and Content-Length", 0,
      { "REQUEST_METHOD=POST", "CONTENT_LENGTH=7", "HTTP_ACCEPT=*/*",
        "CONTENT_TYPE=application/json", NULL },
      "{\"a\":1}", "{\"a\":1}",
      "{\"path\":{},\"querystring\":{},\"header\":{\"Content-Length\":\"7\","
      "\"Accept\":\"*/*\",\"Content-Type\":\"application/json\"}}", "{}",
      "POST", "", "", "", "", "" },
    /* json-c's strict mode still reads these; they are not JSON (and "1." came
     * back out as it stood, so Elasticsearch refused the whole document). */
    { "POST number '1.' is not JSON", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":1.}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST single-quoted name is not JSON", 0, { "REQUEST_METHOD=POST", NULL },
      "{'a':1}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST raw tab in a string is not JSON", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":\"x\ty\"}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST raw newline in a string is not JSON", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":\"x\ny\"}", "{}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST whitespace around, numbers in every form", 0, { "REQUEST_METHOD=POST", NULL },
      " \r\n{\"a\" : -0.0e+1 , \"b\":[0,1E5,2.50,-3]}\n ", "{\"a\":-0.0e+1,\"b\":[0,1E5,2.50,-3]}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
    { "POST escapes kept", 0, { "REQUEST_METHOD=POST", NULL },
      "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"}", "{\"a\":\"\\\"\\\\/\\b\\f\\n\\r\\t\xC3\xA9\"}", "{\"path\":{},\"querystring\":{},\"header\":{}}", "{}",
      "POST", "", "", "", "", "" },
};

START_TEST(document_table)
{
    const row *r = &rows[_i];
    tp_config cfg;
    tp_doc_input in;
    tp_doc *doc;
    char err[256], expected[8192];
    const char *got;
    size_t len, blen;
    int tight = r->tight;

    ck_assert_int_eq(tp_config_load(&cfg, tight ? tight_env : default_env, err, sizeof(err)), 0);
    blen = r->body ? strlen(r->body) : 0;
    in = hit_at_the_usual_time(r->env, r->body, blen, !r->body || blen <= (size_t)cfg.max_body);

    doc = tp_doc_build(&cfg, &in, err, sizeof(err));
    ck_assert_ptr_nonnull(doc);
    got = tp_doc_serialize(&cfg, doc, &len);
    expected_doc(expected, sizeof(expected), &(const doc_parts){
        r->body_json, r->params, r->stage_vars, tight ? "" : "api1", r->method,
        tight ? "prod" : "test", r->ip, r->user, r->ua, r->path, r->tail });
    ck_assert_msg(got && strcmp(got, expected) == 0, "row %s:\n got %s\nwant %s",
                  r->name, got ? got : "(null)", expected);
    tp_doc_free(doc);
    tp_config_free(&cfg);
}
END_TEST

START_TEST(document_size_limit)
{
    /* A 4 KiB document limit with 3 KiB of query string and 3 KiB of headers:
     * body-json is already empty, so the query string goes first. */
    static char qs[3100], ua[3100];
    char *env[] = { "TRACKPIXEL_MAX_DOC=4096", NULL };
    const char *cgi[4] = { qs, ua, "REQUEST_METHOD=GET", NULL };
    tp_config cfg;
    tp_doc_input in;
    tp_doc *doc;
    json_object *back, *tr;
    char err[256];
    const char *got;
    size_t len;

    memset(qs, 0, sizeof(qs));
    memset(ua, 0, sizeof(ua));
    snprintf(qs, sizeof(qs), "QUERY_STRING=q=");
    memset(qs + strlen(qs), 'x', 3000);
    snprintf(ua, sizeof(ua), "HTTP_X_BIG=");
    memset(ua + strlen(ua), 'y', 3000);
    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    memset(&in, 0, sizeof(in));
    in.envp = (char *const *)cgi;
    in.request_id = ID;
    doc = tp_doc_build(&cfg, &in, err, sizeof(err));
    got = tp_doc_serialize(&cfg, doc, &len);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_le(len, 4096);
    ck_assert_ptr_nonnull(strstr(got, "\"querystring\":{}"));
    ck_assert_ptr_nonnull(strstr(got, "\"X-Big\":\"yyyy"));
    back = json_tokener_parse(got);
    ck_assert(json_object_object_get_ex(back, "truncated", &tr));
    ck_assert_str_eq(json_object_to_json_string_ext(tr, JSON_C_TO_STRING_PLAIN),
                     "[\"params.querystring\"]");
    json_object_put(back);
    tp_doc_free(doc);
    tp_config_free(&cfg);
}
END_TEST

/* The document always fits max_doc: with values as large as the document,
 * the header and then the request's context values go, and the hit is
 * still recorded. */
START_TEST(document_size_context_last)
{
    static char ua[4200];
    char *env[] = { "TRACKPIXEL_MAX_DOC=4096", "TRACKPIXEL_MAX_VALUE=4096", NULL };
    const char *cgi[] = { ua, "REQUEST_METHOD=GET", "REMOTE_ADDR=203.0.113.9", NULL };
    tp_config cfg;
    tp_doc_input in;
    tp_doc *doc;
    json_object *back, *tr, *ctx, *v;
    char err[256];
    const char *got;
    size_t len;

    memset(ua, 0, sizeof(ua));
    snprintf(ua, sizeof(ua), "HTTP_USER_AGENT=");
    memset(ua + strlen(ua), '\x01', 4000);       /* 6 bytes each once escaped */
    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    memset(&in, 0, sizeof(in));
    in.envp = (char *const *)cgi;
    in.request_id = ID;
    doc = tp_doc_build(&cfg, &in, err, sizeof(err));
    got = tp_doc_serialize(&cfg, doc, &len);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_le(len, 4096);
    back = json_tokener_parse(got);
    ck_assert(json_object_object_get_ex(back, "truncated", &tr));
    ck_assert_str_eq(json_object_to_json_string_ext(tr, JSON_C_TO_STRING_PLAIN),
                     "[\"params.header\",\"context\"]");
    ck_assert(json_object_object_get_ex(back, "context", &ctx));
    ck_assert(json_object_object_get_ex(ctx, "user-agent", &v));
    ck_assert_str_eq(json_object_get_string(v), "");
    ck_assert(json_object_object_get_ex(ctx, "source-ip", &v));
    ck_assert_str_eq(json_object_get_string(v), "");
    ck_assert(json_object_object_get_ex(ctx, "request-id", &v));
    ck_assert_str_eq(json_object_get_string(v), ID);
    json_object_put(back);
    tp_doc_free(doc);
    tp_config_free(&cfg);
}
END_TEST

/* Defaults: 70 parameters with 5000-byte names.  Each cut name is listed in
 * "truncated" (64 entries of 4 KiB: more than the 256 KiB limit alone); once
 * the query string is cut those entries go with it, and the hit is recorded. */
START_TEST(document_size_truncated_list_collapses)
{
    static char qs[70 * 5010 + 32];
    char *env[] = { NULL };
    const char *cgi[] = { qs, "REQUEST_METHOD=GET", NULL };
    tp_config cfg;
    tp_doc_input in;
    tp_doc *doc;
    json_object *back, *tr;
    tp_config unlimited;
    char err[256];
    const char *got;
    size_t len, o;

    o = (size_t)snprintf(qs, sizeof(qs), "QUERY_STRING=");
    for (int i = 0; i < 70; i++) {
        o += (size_t)snprintf(qs + o, sizeof(qs) - o, "%s%02d", i ? "&" : "", i);
        memset(qs + o, 'n', 4998);
        o += 4998;
        qs[o++] = '=';
        qs[o++] = '1';
    }
    qs[o] = '\0';
    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    memset(&in, 0, sizeof(in));
    in.envp = (char *const *)cgi;
    in.request_id = ID;
    doc = tp_doc_build(&cfg, &in, err, sizeof(err));
    /* Without a size limit: the 64 entries (a copy of cfg, not freed). */
    unlimited = cfg;
    unlimited.max_doc = 1L << 30;
    got = tp_doc_serialize(&unlimited, doc, &len);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_gt(len, 262144);
    back = json_tokener_parse(got);
    ck_assert(json_object_object_get_ex(back, "truncated", &tr));
    ck_assert_uint_eq(json_object_array_length(tr), 64);
    json_object_put(back);
    got = tp_doc_serialize(&cfg, doc, &len);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_le(len, 262144);
    ck_assert_ptr_nonnull(strstr(got, "\"querystring\":{}"));
    back = json_tokener_parse(got);
    ck_assert(json_object_object_get_ex(back, "truncated", &tr));
    ck_assert_str_eq(json_object_to_json_string_ext(tr, JSON_C_TO_STRING_PLAIN),
                     "[\"params.querystring\"]");
    json_object_put(back);
    tp_doc_free(doc);
    tp_config_free(&cfg);
}
END_TEST

START_TEST(rfc3339)
{
    char out[32];
    struct timespec t = { 0, 999999999 };
    ck_assert_int_eq(tp_doc_rfc3339(t, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "1970-01-01T00:00:00.999Z");
    ck_assert_int_eq(tp_doc_rfc3339(t, out, 10), -1);
    ck_assert_int_eq(tp_doc_rfc3339(t, out, 24), -1);
    t.tv_sec = 253402300799;              /* the last second of 9999 */
    t.tv_nsec = 7000000;
    ck_assert_int_eq(tp_doc_rfc3339(t, out, 25), 0);
    ck_assert_str_eq(out, "9999-12-31T23:59:59.007Z");
    t.tv_sec++;
    ck_assert_int_eq(tp_doc_rfc3339(t, out, sizeof(out)), -1);
    t.tv_sec = 1764186045;
    t.tv_nsec = 10000000;
    ck_assert_int_eq(tp_doc_rfc3339(t, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "2025-11-26T19:40:45.010Z");
    t.tv_sec = -62167219200;              /* the first second of year 0 */
    t.tv_nsec = 0;
    ck_assert_int_eq(tp_doc_rfc3339(t, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "0000-01-01T00:00:00.000Z");
    t.tv_sec--;
    ck_assert_int_eq(tp_doc_rfc3339(t, out, sizeof(out)), -1);
}
END_TEST

/* tp_doc_rfc3339(t) is what gmtime_r(t) and strftime-like formatting say. */
static void as_gmtime(struct timespec t)
{
    char out[32], want[96];
    struct tm tm;

    ck_assert_ptr_nonnull(gmtime_r(&t.tv_sec, &tm));
    snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, t.tv_nsec / 1000000);
    ck_assert_int_eq(tp_doc_rfc3339(t, out, sizeof(out)), 0);
    ck_assert_str_eq(out, want);
}

/* The date is computed without gmtime_r: the same fields as gmtime_r at
 * each day's first and last second from 1969 to 2040, and around the turn
 * of centuries (leap or not), and at odd seconds across years 0 to 9999. */
START_TEST(rfc3339_as_gmtime)
{
    static const time_t centuries[] = {         /* January 1 of: */
        -11676096000, -8520336000, -5364662400, -2208988800,    /* 1600 1700 1800 1900 */
        946684800, 4102444800, 13569465600,                     /* 2000 2100 2400 */
    };
    struct timespec t = { 0, 5000000 };

    for (time_t day = -86400 * 366; day < 2208988800; day += 86400) {
        t.tv_sec = day;
        as_gmtime(t);
        t.tv_sec = day + 86399;
        as_gmtime(t);
    }
    for (size_t i = 0; i < sizeof(centuries) / sizeof(centuries[0]); i++) {
        for (long d = -40; d < 70; d++) {       /* December 1 to March 11 */
            t.tv_sec = centuries[i] + d * 86400;
            as_gmtime(t);
            t.tv_sec += 86399;
            as_gmtime(t);
        }
    }
    for (t.tv_sec = -62167219200; t.tv_sec < 253402300799; t.tv_sec += 77777777)
        as_gmtime(t);
}
END_TEST

/* 50 names (the index grows from 16 to 32 to 64 and 128 slots), each given
 * three times: first-seen order, last value, one member each. */
START_TEST(many_repeated_names)
{
    static char qs[4096], want[4096];
    const char *cgi[] = { qs, "REQUEST_METHOD=GET", NULL };
    char *env[] = { NULL };
    tp_config cfg;
    tp_doc_input in;
    tp_doc *doc;
    char err[256];
    const char *got, *q;
    size_t len, o = 0, w = 0;

    o += (size_t)snprintf(qs + o, sizeof(qs) - o, "QUERY_STRING=");
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 50; i++)
            o += (size_t)snprintf(qs + o, sizeof(qs) - o, "%sn%02d=%d", o > 13 ? "&" : "", i,
                                  round);
    w += (size_t)snprintf(want + w, sizeof(want) - w, "\"querystring\":{");
    for (int i = 0; i < 50; i++)
        w += (size_t)snprintf(want + w, sizeof(want) - w, "%s\"n%02d\":\"2\"", i ? "," : "", i);
    snprintf(want + w, sizeof(want) - w, "}");
    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    memset(&in, 0, sizeof(in));
    in.envp = (char *const *)cgi;
    in.request_id = ID;
    doc = tp_doc_build(&cfg, &in, err, sizeof(err));
    ck_assert_ptr_nonnull(doc);
    got = tp_doc_serialize(&cfg, doc, &len);
    ck_assert_ptr_nonnull(got);
    q = strstr(got, "\"querystring\":");
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(strncmp(q, want, strlen(want)), 0);
    ck_assert_ptr_null(strstr(got, "truncated"));
    tp_doc_free(doc);
    tp_config_free(&cfg);
}
END_TEST

/* A released document's memory is reused by the next build (not under
 * AddressSanitizer): nothing of the large, cut document before shows in the
 * small one after, which is exactly the minimal GET's text. */
START_TEST(reused_document)
{
    static const char *const big_cgi[] = {
        "REQUEST_METHOD=POST", "CONTENT_LENGTH=60", "PATH_INFO=/a/b",
        "QUERY_STRING=a=1&b=2&c=3&d=4&e=5", "HTTP_USER_AGENT=Googlebot/2.1 and a long tail",
        "HTTP_REFERER=https://example.com/", "HTTP_ACCEPT=*/*", "HTTP_X_ONE=1", NULL };
    static const char *const small_cgi[] = {
        "REQUEST_METHOD=GET", "REMOTE_ADDR=203.0.113.9", "SCRIPT_NAME=/pixel", NULL };
    static const char want[] =
        "{\"body-json\":{},\"params\":{\"path\":{},\"querystring\":{},\"header\":{}},"
        "\"stage-variables\":{},\"context\":{\"account-id\":\"\",\"api-id\":\"api1\","
        "\"api-key\":\"\",\"authorizer-principal-id\":\"\",\"caller\":\"\","
        "\"cognito-authentication-provider\":\"\",\"cognito-authentication-type\":\"\","
        "\"cognito-identity-id\":\"\",\"cognito-identity-pool-id\":\"\","
        "\"http-method\":\"GET\",\"stage\":\"test\",\"source-ip\":\"203.0.113.9\","
        "\"user\":\"\",\"user-agent\":\"\",\"user-arn\":\"\",\"request-id\":\"" ID "\","
        "\"resource-id\":\"\",\"resource-path\":\"/pixel\"},"
        "\"agent\":{\"class\":\"unknown\",\"name\":\"\"},"
        "\"date\":1764186000123,\"@timestamp\":\"2025-11-26T19:40:00.123Z\"}";
    const char *body = "{\"k\":\"0123456789012345678901234567890123456789012345678\"}";
    tp_config tight, plain;
    tp_doc_input in;
    tp_doc *big, *small;
    char err[256];
    const char *got;
    size_t len;

    ck_assert_int_eq(tp_config_load(&tight, tight_env, err, sizeof(err)), 0);
    ck_assert_int_eq(tp_config_load(&plain, default_env, err, sizeof(err)), 0);
    in = hit_at_the_usual_time(big_cgi, body, strlen(body), 0);
    big = tp_doc_build(&tight, &in, err, sizeof(err));
    ck_assert_ptr_nonnull(big);
    got = tp_doc_serialize(&tight, big, &len);
    ck_assert_ptr_nonnull(got);
    ck_assert_msg(strstr(got, "\"truncated\":[\"body-json\",\"params.querystring\","
                              "\"params.header.User-Agent\",\"params.header\","
                              "\"context.user-agent\"]}") != NULL, "%s", got);
    tp_doc_free(big);

    in.envp = (char *const *)small_cgi;
    in.body = NULL;
    in.body_len = 0;
    in.body_complete = 1;
    small = tp_doc_build(&plain, &in, err, sizeof(err));
    ck_assert_ptr_nonnull(small);
#if !defined(__SANITIZE_ADDRESS__)
    ck_assert_ptr_eq(small, big);     /* the same memory, reused */
#endif
    got = tp_doc_serialize(&plain, small, &len);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, want);
    ck_assert_uint_eq(len, sizeof(want) - 1);
    tp_doc_free(small);
    tp_config_free(&tight);
    tp_config_free(&plain);
}
END_TEST

/* ------------------------------------------------------------ privacy */

/* HMAC-SHA-256 of 203.0.113.9 under the day key of 2025-11-26 derived from
 * PRIV_KEY (tests/check_privacy.c has more). */
#define PRIV_KEY "0123456789abcdef0123456789abcdef"
#define PRIV_H_203 "hmac-sha256:9fe4eeda9916f1f0a5e9f9d48831b831e85a951e6f8d20ad0e3a6066be67e74a"
#define NO_PARAMS "{\"path\":{},\"querystring\":{},\"header\":{}}"

typedef struct privacy_row {
    const char *name;
    const char *cfg[6];        /* "KEYFILE" is the test's key file */
    const char *env[12];
    const char *body;
    const char *body_json, *params, *ip, *tail;
} privacy_row;

static const privacy_row privacy_rows[] = {
    { "default: Cookie not recorded", { NULL },
      { "REQUEST_METHOD=GET", "HTTP_COOKIE=session=abc", "HTTP_ACCEPT=*/*",
        "REMOTE_ADDR=203.0.113.9", NULL }, NULL,
      "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"Accept\":\"*/*\"}}", "203.0.113.9", "" },
    { "TRACKPIXEL_DROP_HEADERS empty keeps Cookie", { "TRACKPIXEL_DROP_HEADERS=", NULL },
      { "REQUEST_METHOD=GET", "HTTP_COOKIE=session=abc", "HTTP_AUTHORIZATION=Basic eA==",
        "REMOTE_ADDR=203.0.113.9", NULL }, NULL,
      "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"Cookie\":\"session=abc\"}}",
      "203.0.113.9", "" },
    { "drop list, any case", { "TRACKPIXEL_DROP_HEADERS=x-secret,REFERER", NULL },
      { "REQUEST_METHOD=GET", "HTTP_COOKIE=a", "HTTP_X_SECRET=s", "HTTP_REFERER=r", NULL }, NULL,
      "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"Cookie\":\"a\"}}", "", "" },
    { "keep behind a trusted proxy", { "TRACKPIXEL_TRUSTED_PROXIES=10.0.0.0/8", NULL },
      { "REQUEST_METHOD=GET", "HTTP_X_FORWARDED_FOR=1.1.1.1, 198.51.100.7, 10.0.0.2",
        "REMOTE_ADDR=10.0.0.1", NULL }, NULL,
      "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"X-Forwarded-For\":"
      "\"1.1.1.1, 198.51.100.7, 10.0.0.2\"}}", "198.51.100.7", "" },
    { "truncate behind a trusted proxy",
      { "TRACKPIXEL_TRUSTED_PROXIES=10.0.0.0/8", "TRACKPIXEL_IP_MODE=truncate", NULL },
      { "REQUEST_METHOD=GET", "HTTP_X_FORWARDED_FOR=198.51.100.7, 10.0.0.2",
        "HTTP_X_REAL_IP=198.51.100.7", "HTTP_FORWARDED=for=\"[2001:db8:cafe::17]:4711\";proto=https",
        "HTTP_USER_AGENT=ua", "REMOTE_ADDR=10.0.0.1", NULL }, NULL,
      "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"X-Forwarded-For\":\"198.51.100.0, 10.0.0.0\","
      "\"X-Real-Ip\":\"198.51.100.0\",\"Forwarded\":\"for=\\\"[2001:db8:cafe::]\\\";proto=https\","
      "\"User-Agent\":\"ua\"}}", "2001:db8:cafe::", "" },
    { "truncate from an untrusted client: headers never pick the address",
      { "TRACKPIXEL_TRUSTED_PROXIES=10.0.0.0/8", "TRACKPIXEL_IP_MODE=truncate", NULL },
      { "REQUEST_METHOD=GET", "HTTP_X_FORWARDED_FOR=unknown, 300.1.1.1, [::1]",
        "REMOTE_ADDR=2001:db8:1:2::9", NULL }, NULL,
      "{}", NO_PARAMS, "2001:db8:1::", "" },
    { "hash", { "TRACKPIXEL_IP_MODE=hash", "TRACKPIXEL_IP_HASH_KEY_FILE=KEYFILE", NULL },
      { "REQUEST_METHOD=GET", "HTTP_TRUE_CLIENT_IP=203.0.113.9", "REMOTE_ADDR=203.0.113.9", NULL },
      NULL, "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"True-Client-Ip\":\"" PRIV_H_203 "\"}}",
      PRIV_H_203, "" },
    { "drop", { "TRACKPIXEL_IP_MODE=drop", NULL },
      { "REQUEST_METHOD=GET", "HTTP_X_FORWARDED_FOR=203.0.113.9", "HTTP_FORWARDED=for=203.0.113.9",
        "HTTP_CF_CONNECTING_IP=203.0.113.9", "HTTP_X_CLIENT_IP=203.0.113.9",
        "HTTP_FASTLY_CLIENT_IP=203.0.113.9", "HTTP_REFERER=r", "REMOTE_ADDR=203.0.113.9", NULL },
      NULL, "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"Referer\":\"r\"}}", "", "" },
    { "redacted query and body",
      { "TRACKPIXEL_REDACT_PARAMS=email,token", NULL },
      { "REQUEST_METHOD=POST", "QUERY_STRING=email=a%40b.c&x=1&token=&Email=kept&email=again",
        "CONTENT_LENGTH=50", NULL },
      "{\"email\":\"a@b\",\"n\":{\"email\":\"in\"},\"token\":5,\"x\":1}",
      "{\"email\":\"[redacted]\",\"n\":{\"email\":\"in\"},\"token\":\"[redacted]\",\"x\":1}",
      "{\"path\":{},\"querystring\":{\"email\":\"[redacted]\",\"x\":\"1\",\"token\":\"[redacted]\","
      "\"Email\":\"kept\"},\"header\":{\"Content-Length\":\"50\"}}", "", "" },
    { "GPC anonymize, Sec-GPC: 1",
      { "TRACKPIXEL_GPC=anonymize", "TRACKPIXEL_DROP_HEADERS=", NULL },
      { "REQUEST_METHOD=GET", "HTTP_SEC_GPC=1", "HTTP_COOKIE=a", "HTTP_REFERER=r",
        "HTTP_X_FORWARDED_FOR=203.0.113.9", "HTTP_ACCEPT=*/*", "REMOTE_ADDR=203.0.113.9", NULL },
      NULL, "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"Sec-Gpc\":\"1\",\"Accept\":\"*/*\"}}",
      "", ",\"privacy\":\"gpc\"" },
    { "GPC anonymize, DNT: 1",
      { "TRACKPIXEL_GPC=anonymize", NULL },
      { "REQUEST_METHOD=GET", "HTTP_DNT=1", "HTTP_REFERER=r", "REMOTE_ADDR=203.0.113.9", NULL },
      NULL, "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"Dnt\":\"1\"}}",
      "", ",\"privacy\":\"gpc\"" },
    { "GPC anonymize, no signal",
      { "TRACKPIXEL_GPC=anonymize", NULL },
      { "REQUEST_METHOD=GET", "HTTP_DNT=0", "HTTP_REFERER=r", "REMOTE_ADDR=203.0.113.9", NULL },
      NULL, "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"Dnt\":\"0\",\"Referer\":\"r\"}}",
      "203.0.113.9", "" },
    { "GPC ignore",
      { "TRACKPIXEL_GPC=ignore", NULL },
      { "REQUEST_METHOD=GET", "HTTP_SEC_GPC=1", "HTTP_REFERER=r", "REMOTE_ADDR=203.0.113.9", NULL },
      NULL, "{}", "{\"path\":{},\"querystring\":{},\"header\":{\"Sec-Gpc\":\"1\",\"Referer\":\"r\"}}",
      "203.0.113.9", "" },
};

START_TEST(privacy_table)
{
    const privacy_row *r = &privacy_rows[_i];
    char keyfile[64] = "/tmp/tp-check-doc-key-XXXXXX", keyvar[128], err[256], expected[8192];
    char *cfg_env[8];
    tp_config cfg;
    tp_doc_input in;
    tp_doc *doc;
    const char *got;
    size_t len, n = 0;
    int fd = mkstemp(keyfile);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, PRIV_KEY, 32), 32);
    close(fd);
    snprintf(keyvar, sizeof(keyvar), "TRACKPIXEL_IP_HASH_KEY_FILE=%s", keyfile);
    for (; r->cfg[n]; n++)
        cfg_env[n] = strstr(r->cfg[n], "=KEYFILE") ? keyvar : (char *)r->cfg[n];
    cfg_env[n] = NULL;
    ck_assert_msg(tp_config_load(&cfg, cfg_env, err, sizeof(err)) == 0, "%s", err);
    in = hit_at_the_usual_time(r->env, r->body, r->body ? strlen(r->body) : 0, 1);
    doc = tp_doc_build(&cfg, &in, err, sizeof(err));
    ck_assert_ptr_nonnull(doc);
    got = tp_doc_serialize(&cfg, doc, &len);
    expected_doc(expected, sizeof(expected), &(const doc_parts){
        r->body_json, r->params, "{}", "", r->body ? "POST" : "GET", "prod", r->ip, "",
        strstr(r->params, "\"User-Agent\":\"ua\"") ? "ua" : "", "", r->tail });
    ck_assert_msg(got && strcmp(got, expected) == 0, "row %s:\n got %s\nwant %s",
                  r->name, got ? got : "(null)", expected);
    tp_doc_free(doc);
    tp_config_free(&cfg);
    unlink(keyfile);
}
END_TEST

/* The document's "agent", after "context": from the list for a robot's User-Agent,
 * from Sec-Purpose for a browser's prefetch. */
START_TEST(agent_in_document)
{
    static const struct {
        const char *env[4];
        const char *want;
    } cases[] = {
        { { "HTTP_USER_AGENT=Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            NULL }, "\"agent\":{\"class\":\"bot\",\"name\":\"Googlebot\"}" },
        { { "HTTP_USER_AGENT=Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "HTTP_SEC_PURPOSE=prefetch", NULL }, "\"agent\":{\"class\":\"prefetch\",\"name\":\"\"}" },
        { { "HTTP_USER_AGENT=Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "HTTP_X_MOZ=prefetch", NULL }, "\"agent\":{\"class\":\"prefetch\",\"name\":\"\"}" },
        { { "HTTP_USER_AGENT=Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            NULL }, "\"agent\":{\"class\":\"browser\",\"name\":\"\"}" },
    };
    char *env[] = { NULL };
    tp_config cfg;
    tp_doc_input in;
    tp_agents *agents;
    char err[256];

    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    agents = tp_agents_load(NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(agents);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tp_doc *doc;
        const char *got, *at;
        size_t len;

        memset(&in, 0, sizeof(in));
        in.envp = (char *const *)cases[i].env;
        in.request_id = ID;
        in.agents = agents;
        doc = tp_doc_build(&cfg, &in, err, sizeof(err));
        ck_assert_ptr_nonnull(doc);
        got = tp_doc_serialize(&cfg, doc, &len);
        ck_assert_ptr_nonnull(got);
        at = strstr(got, "\"resource-path\":\"\"},");
        ck_assert_ptr_nonnull(at);
        at += strlen("\"resource-path\":\"\"},");
        ck_assert_msg(strncmp(at, cases[i].want, strlen(cases[i].want)) == 0 &&
                      strncmp(at + strlen(cases[i].want), ",\"date\":", 8) == 0,
                      "case %zu: %s", i, got);
        tp_doc_free(doc);
    }
    tp_agents_free(agents);
    tp_config_free(&cfg);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("doc");
    TCase *tc = tcase_create("build");
    tcase_add_loop_test(tc, document_table, 0, (int)(sizeof(rows) / sizeof(rows[0])));
    tcase_add_test(tc, document_size_limit);
    tcase_add_test(tc, document_size_context_last);
    tcase_add_test(tc, document_size_truncated_list_collapses);
    tcase_add_test(tc, rfc3339);
    tcase_add_test(tc, rfc3339_as_gmtime);
    tcase_add_test(tc, many_repeated_names);
    tcase_add_test(tc, reused_document);
    tcase_add_loop_test(tc, privacy_table, 0, (int)(sizeof(privacy_rows) / sizeof(privacy_rows[0])));
    tcase_add_test(tc, agent_in_document);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
