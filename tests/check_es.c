/* tp_es: what counts as an answer.  A canned HTTP server on 127.0.0.1 (a
 * thread of this test) answers each request with a fixed status, headers
 * and body, as a proxy or a broken cluster would; the client must classify
 * each exactly, and never let a configured secret through. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tp_check.h"
#include "tp_config.h"
#include "tp_es.h"

#define SECRET_KEY "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define TOKEN "IQoJb3JpZ2luX2VjEXAMPLE/Token+with/slashes="

typedef struct canned {
    int fd;                   /* listening socket */
    const char *status_line;  /* "200 OK" */
    const char *headers;      /* extra header lines, each ending in \r\n */
    const char *body;
    char request[65536];      /* what the client sent (headers and body) */
    size_t request_len;
} canned;

/* Read one request (headers, then Content-Length bytes of body). */
static void read_request(canned *c, int s)
{
    size_t want = 0;
    char *end = NULL;

    c->request_len = 0;
    for (;;) {
        ssize_t r = read(s, c->request + c->request_len, sizeof(c->request) - 1 - c->request_len);
        if (r <= 0)
            break;
        c->request_len += (size_t)r;
        c->request[c->request_len] = '\0';
        if (!end && (end = strstr(c->request, "\r\n\r\n")) != NULL) {
            const char *cl = strcasestr(c->request, "\r\nContent-Length:");
            want = (size_t)(end + 4 - c->request) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
        }
        if (end && c->request_len >= want)
            break;
    }
}

static void *serve(void *arg)
{
    canned *c = arg;
    int s = accept(c->fd, NULL, NULL);
    char head[1024];
    int n;

    if (s < 0)
        return NULL;
    read_request(c, s);
    n = snprintf(head, sizeof(head), "HTTP/1.1 %s\r\nContent-Length: %zu\r\n%s"
                 "Connection: close\r\n\r\n", c->status_line, strlen(c->body), c->headers);
    if (write(s, head, (size_t)n) < 0 || write(s, c->body, strlen(c->body)) < 0)
        perror("write");
    close(s);
    return NULL;
}

/* Set by a test to change the configuration before the client is made
 * (auth other than SigV4); NULL: SigV4 with the example keys. */
static void (*tweak_config)(tp_config *cfg);

/* A client for a canned server; url_extra goes before the host ("" or
 * "user:pass@"). */
static tp_es *client(canned *c, tp_config *cfg, char *url, size_t urlcap, const char *userinfo)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    char err[256];
    tp_es *es;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(c->fd, 0);
    ck_assert_int_eq(bind(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(c->fd, 4), 0);
    getsockname(c->fd, (struct sockaddr *)&a, &alen);
    snprintf(url, urlcap, "http://%s127.0.0.1:%d", userinfo, ntohs(a.sin_port));
    memset(cfg, 0, sizeof(*cfg));
    cfg->es_url = url;
    cfg->es_index = "events";
    cfg->aws_service = "es";
    cfg->region = "us-east-1";
    cfg->access_key_id = "AKIDEXAMPLE";
    cfg->secret_access_key = SECRET_KEY;
    cfg->session_token = TOKEN;
    cfg->signing = 1;
    cfg->connect_timeout_ms = 2000;
    cfg->timeout_ms = 5000;
    if (tweak_config)
        tweak_config(cfg);
    es = tp_es_new(cfg, err, sizeof(err));
    ck_assert_msg(es != NULL, "%s", err);
    return es;
}

typedef struct items_seen {
    long n;
    long status[8];
    char reason[8][256];
} items_seen;

static void on_item(void *ctx, size_t i, long status, const char *reason)
{
    items_seen *s = ctx;

    if (i < 8) {
        s->status[i] = status;
        snprintf(s->reason[i], sizeof(s->reason[i]), "%s", reason);
    }
    s->n++;
}

/* What one run saw: the request sent, the status, err and the items. */
typedef struct exchange {
    canned c;
    items_seen seen;
    long status;              /* -1 until the client sets it */
    char err[512];
} exchange;

/* One request against one canned answer: create (n == 0) or _bulk of n.
 * x is reset first. */
static tp_es_result run(exchange *x, const char *status_line, const char *headers,
                        const char *body, long n, const char *userinfo)
{
    tp_config cfg;
    char url[128];
    pthread_t t;
    tp_es *es;
    tp_es_result r;

    memset(x, 0, sizeof(*x));
    x->status = -1;
    x->c.status_line = status_line;
    x->c.headers = headers;
    x->c.body = body;
    es = client(&x->c, &cfg, url, sizeof(url), userinfo);
    pthread_create(&t, NULL, serve, &x->c);
    if (n == 0)
        r = tp_es_create(es, "id-1", "{\"a\":1}", 7, 1700000000, &x->status, x->err,
                         sizeof(x->err));
    else
        r = tp_es_bulk(es, NULL, "x\n", 2, n, on_item, &x->seen, 1700000000, &x->status,
                       x->err, sizeof(x->err));
    pthread_join(t, NULL);
    close(x->c.fd);
    tp_es_free(es);
    return r;
}

/* A _bulk answer with filter_path: one created, one refused. */
#define BULK_ONE_REFUSED \
    "{\"errors\":true,\"items\":[{\"create\":{\"status\":201}},{\"create\":{\"status\":400," \
    "\"error\":{\"type\":\"mapper_parsing_exception\",\"reason\":\"bad\"}}}]}"

/* A _bulk answer as Elasticsearch 7.10 writes it without filter_path. */
#define BULK_FULL \
    "{\"took\":3,\"errors\":true,\"items\":[" \
    "{\"create\":{\"_index\":\"events\",\"_type\":\"_doc\",\"_id\":\"a\",\"_version\":1," \
    "\"result\":\"created\",\"_shards\":{\"total\":2,\"successful\":1,\"failed\":0}," \
    "\"_seq_no\":0,\"_primary_term\":1,\"status\":201}}," \
    "{\"create\":{\"_index\":\"events\",\"_type\":\"_doc\",\"_id\":\"b\",\"status\":409," \
    "\"error\":{\"type\":\"version_conflict_engine_exception\",\"reason\":\"[b]: version " \
    "conflict, document already exists (current version [1])\",\"index_uuid\":\"x1\"," \
    "\"shard\":\"0\",\"index\":\"events\"}}}]}"

typedef struct answer_case {
    const char *name;
    const char *status_line;
    const char *headers;
    const char *body;
    long n;                    /* 0: a create; else a _bulk of n documents */
    tp_es_result want;
    long want_status;
    const char *want_err;      /* a substring of err, or NULL */
    long want_items;           /* items reported to the callback */
} answer_case;

static const answer_case answers[] = {
    { "create_201_created", "201 Created", "",
      "{\"_index\":\"events\",\"_id\":\"id-1\",\"result\":\"created\"}", 0, TP_ES_OK, 201, NULL, 0 },
    { "create_409_conflict", "409 Conflict", "",
      "{\"error\":{\"type\":\"version_conflict_engine_exception\",\"reason\":\"exists\"},"
      "\"status\":409}", 0, TP_ES_OK, 409, NULL, 0 },
    { "create_200_html", "200 OK", "Content-Type: text/html\r\n",
      "<html><body>Welcome to nginx!</body></html>", 0, TP_ES_RETRY, 200,
      "HTTP 200: not a create answer: <html><body>Welcome to nginx!", 0 },
    { "create_201_updated", "201 Created", "", "{\"result\":\"updated\"}", 0, TP_ES_RETRY, 201,
      "not a create answer", 0 },
    { "create_409_html", "409 Conflict", "", "<html>conflict</html>", 0, TP_ES_RETRY, 409,
      "not a create answer", 0 },
    { "create_301_kept", "301 Moved Permanently", "Location: https://elsewhere.example/x\r\n",
      "", 0, TP_ES_RETRY, 301, "HTTP 301: redirect to https://elsewhere.example/x", 0 },
    { "create_413_rejected", "413 Request Entity Too Large", "", "<html>413</html>", 0,
      TP_ES_REJECT, 413, "HTTP 413", 0 },
    { "create_400_rejected", "400 Bad Request", "",
      "{\"error\":{\"type\":\"mapper_parsing_exception\",\"reason\":\"failed to parse\"}}", 0,
      TP_ES_REJECT, 400, "HTTP 400: mapper_parsing_exception: failed to parse", 0 },
    { "create_503_retry", "503 Service Unavailable", "", "{}", 0, TP_ES_RETRY, 503, "HTTP 503",
      0 },
    { "bulk_well_formed", "200 OK", "", BULK_ONE_REFUSED, 2, TP_ES_OK, 200, NULL, 2 },
    { "bulk_items_not_objects", "200 OK", "", "{\"items\":[1]}", 1, TP_ES_RETRY, 200,
      "HTTP 200: not a _bulk answer for 1 documents: {\"items\":[1]}", 0 },
    { "bulk_errors_items_not_objects", "200 OK", "", "{\"errors\":true,\"items\":[1]}", 1,
      TP_ES_RETRY, 200, "not a _bulk answer", 0 },
    { "bulk_fewer_items", "200 OK", "", "{\"errors\":false,\"items\":[]}", 3, TP_ES_RETRY, 200,
      "not a _bulk answer for 3 documents", 0 },
    { "bulk_more_items", "200 OK", "",
      "{\"items\":[{\"create\":{\"status\":201}},{\"create\":{\"status\":201}}]}", 1,
      TP_ES_RETRY, 200, "not a _bulk answer", 0 },
    { "bulk_item_without_status", "200 OK", "", "{\"items\":[{\"create\":{}}]}", 1, TP_ES_RETRY,
      200, "not a _bulk answer", 0 },
    { "bulk_item_status_string", "200 OK", "", "{\"items\":[{\"create\":{\"status\":\"201\"}}]}",
      1, TP_ES_RETRY, 200, "not a _bulk answer", 0 },
    { "bulk_html", "200 OK", "", "<html>ok</html>", 1, TP_ES_RETRY, 200,
      "not a _bulk answer for 1 documents: <html>ok</html>", 0 },
    { "bulk_201", "201 Created", "", "{\"items\":[{\"create\":{\"status\":201}}]}", 1,
      TP_ES_RETRY, 201, "not a _bulk answer", 0 },
    { "bulk_302_kept", "302 Found", "Location: http://127.0.0.1:1/login\r\n", "", 1,
      TP_ES_RETRY, 302, "redirect to http://127.0.0.1:1/login", 0 },
    { "bulk_413", "413 Request Entity Too Large", "", "<html>too large</html>", 2, TP_ES_REJECT,
      413, "HTTP 413", 0 },
    /* Amazon OpenSearch Service ignores URL parameters on signed POSTs:
     * filter_path may be ignored, and the whole answer comes back. */
    { "bulk_full_unfiltered", "200 OK", "", BULK_FULL, 2, TP_ES_OK, 200, NULL, 2 },
};

START_TEST(answer_is_classified)
{
    const answer_case *t = &answers[_i];
    exchange x;
    tp_es_result r;

    r = run(&x, t->status_line, t->headers, t->body, t->n, "");
    ck_assert_msg(r == t->want, "%s: result %d, want %d (%s)", t->name, r, t->want, x.err);
    ck_assert_int_eq(x.status, t->want_status);
    if (t->want_err)
        ck_assert_msg(strstr(x.err, t->want_err) != NULL, "%s: err \"%s\"", t->name, x.err);
    ck_assert_int_eq(x.seen.n, t->want_items);
}
END_TEST

/* A _bulk answer of two items: each reported in order, with its reason. */
static const struct {
    const char *body;
    long status[2];
    const char *reason[2];
} item_answers[] = {
    { BULK_ONE_REFUSED, { 201, 400 }, { "", "mapper_parsing_exception: bad" } },
    { BULK_FULL, { 201, 409 }, { "", "version_conflict_engine_exception: [b]: version conflict, "
                                     "document already exists (current version [1])" } },
};

START_TEST(bulk_items_in_order)
{
    exchange x;

    ck_assert_int_eq(run(&x, "200 OK", "", item_answers[_i].body, 2, ""), TP_ES_OK);
    ck_assert_int_eq(x.seen.n, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(x.seen.status[i], item_answers[_i].status[i]);
        ck_assert_str_eq(x.seen.reason[i], item_answers[_i].reason[i]);
    }
}
END_TEST

/* An intermediary that echoes our request headers: the token, the secret
 * key (never sent, but a proxy may know it), the URL's password and its
 * Basic credentials must not come back through err, an item's reason or
 * the answer. */
START_TEST(secrets_are_scrubbed)
{
    static const char body[] =
        "{\"error\":\"echo " TOKEN " and " SECRET_KEY " and pw-Secret9 and "
        "dXNlcjpwdy1TZWNyZXQ5\"}";
    static const char bulk[] =
        "{\"items\":[{\"create\":{\"status\":400,\"error\":{\"type\":\"x\",\"reason\":\""
        TOKEN "\"}}}]}";
    exchange x;

    ck_assert_int_eq(run(&x, "502 Bad Gateway", "", body, 0, "user:pw-Secret9@"), TP_ES_RETRY);
    ck_assert_str_eq(x.err, "HTTP 502: echo [hidden] and [hidden] and [hidden] and [hidden]");
    /* The request did carry the token (signed requests use no Basic
     * credentials: the Authorization header is SigV4's). */
    ck_assert_ptr_nonnull(strstr(x.c.request, TOKEN));

    ck_assert_int_eq(run(&x, "200 OK", "", bulk, 1, ""), TP_ES_OK);
    ck_assert_str_eq(x.seen.reason[0], "x: [hidden]");
}
END_TEST

#define API_KEY "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
#define ES_PASSWORD "pw-Variable7"
/* base64 of elastic:pw-Variable7 */
#define ES_BASIC "ZWxhc3RpYzpwdy1WYXJpYWJsZTc="

static void api_key_config(tp_config *cfg)
{
    cfg->signing = 0;
    cfg->access_key_id = cfg->secret_access_key = cfg->session_token = NULL;
    cfg->es_api_key = API_KEY;
    cfg->auth = TP_AUTH_API_KEY;
}

static void basic_config(tp_config *cfg)
{
    cfg->signing = 0;
    cfg->access_key_id = cfg->secret_access_key = cfg->session_token = NULL;
    cfg->es_user = "elastic";
    cfg->es_password = ES_PASSWORD;
    cfg->auth = TP_AUTH_BASIC;
}

static void ids_auto_config(tp_config *cfg)
{
    cfg->ids_auto = 1;
}

/* The API key and basic auth of TRACKPIXEL_ES_USER: sent as Elasticsearch
 * expects them, and scrubbed from what comes back. */
START_TEST(api_key_and_basic_sent_and_scrubbed)
{
    static const char echo_key[] = "{\"error\":\"echo ApiKey " API_KEY "\"}";
    static const char echo_basic[] = "{\"error\":\"echo " ES_PASSWORD " " ES_BASIC "\"}";
    exchange x;

    tweak_config = api_key_config;
    ck_assert_int_eq(run(&x, "401 Unauthorized", "", echo_key, 0, ""), TP_ES_RETRY);
    ck_assert_ptr_nonnull(strstr(x.c.request, "\r\nAuthorization: ApiKey " API_KEY "\r\n"));
    ck_assert_ptr_null(strstr(x.c.request, "X-Amz-Date"));
    ck_assert_str_eq(x.err, "HTTP 401: echo ApiKey [hidden]");

    tweak_config = basic_config;
    ck_assert_int_eq(run(&x, "401 Unauthorized", "", echo_basic, 0, ""), TP_ES_RETRY);
    ck_assert_ptr_nonnull(strstr(x.c.request, "\r\nAuthorization: Basic " ES_BASIC "\r\n"));
    ck_assert_str_eq(x.err, "HTTP 401: echo [hidden] [hidden]");
    tweak_config = NULL;
}
END_TEST

/* TRACKPIXEL_ES_IDS=auto: POST /{index}/_doc, no id in the path. */
START_TEST(ids_auto_path)
{
    exchange x;

    tweak_config = ids_auto_config;
    ck_assert_int_eq(run(&x, "201 Created", "", "{\"_id\":\"Xy1\",\"result\":\"created\"}", 0,
                         ""), TP_ES_OK);
    tweak_config = NULL;
    ck_assert_int_eq(strncmp(x.c.request, "POST /events/_doc HTTP/1.1\r\n", 28), 0);
}
END_TEST

START_TEST(classify_table)
{
    static const struct { long status; tp_es_result want; } t[] = {
        { 0, TP_ES_RETRY }, { 200, TP_ES_OK }, { 201, TP_ES_OK }, { 299, TP_ES_OK },
        { 301, TP_ES_RETRY }, { 302, TP_ES_RETRY }, { 307, TP_ES_RETRY }, { 308, TP_ES_RETRY },
        { 400, TP_ES_REJECT }, { 401, TP_ES_RETRY }, { 403, TP_ES_RETRY }, { 404, TP_ES_REJECT },
        { 408, TP_ES_RETRY }, { 409, TP_ES_OK }, { 413, TP_ES_REJECT }, { 429, TP_ES_RETRY },
        { 500, TP_ES_RETRY }, { 502, TP_ES_RETRY }, { 503, TP_ES_RETRY }, { 504, TP_ES_RETRY },
    };
    size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        ck_assert_msg(tp_es_classify(t[i].status) == t[i].want, "status %ld", t[i].status);
}
END_TEST

static Suite *es_suite(void)
{
    Suite *s = suite_create("tp_es");
    TCase *tc = tcase_create("answers");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, answer_is_classified, 0, (int)(sizeof(answers) / sizeof(answers[0])));
    tcase_add_loop_test(tc, bulk_items_in_order, 0,
                        (int)(sizeof(item_answers) / sizeof(item_answers[0])));
    tcase_add_test(tc, secrets_are_scrubbed);
    tcase_add_test(tc, classify_table);
    tcase_add_test(tc, api_key_and_basic_sent_and_scrubbed);
    tcase_add_test(tc, ids_auto_path);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(es_suite)
