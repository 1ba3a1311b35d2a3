#include "config.h"
#include "tp_es.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp_sigv4.h"

struct tp_es {
    const tp_config *cfg;
    CURL *curl;
    char *base;            /* scheme://[userinfo@]host[:port][/prefix], no trailing '/' */
    char *prefix;          /* "/prefix" or "" : the path part of the URL   */
    char *host_header;     /* host[:port] exactly as sent and signed       */
    char *url;             /* the last request's URL                       */
    size_t url_cap;
    char *answer;          /* the last answer's body                       */
    size_t answer_len, answer_cap;
    int answer_cut;
    const volatile int *abort_flag;
    const struct timespec *deadline;
    tp_sigv4_key_cache keys;   /* the signing key, derived once a day */
    char curl_err[CURL_ERROR_SIZE];
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *userp)
{
    tp_es *es = userp;
    size_t n = size * nmemb, room;

    if (es->answer_len + 1 >= TP_ES_MAX_ANSWER) {
        es->answer_cut = 1;
        return n;                      /* keep reading, stop storing */
    }
    room = TP_ES_MAX_ANSWER - 1 - es->answer_len;
    if (n > room) {
        es->answer_cut = 1;
        n = room;
    }
    if (es->answer_len + n + 1 > es->answer_cap) {
        size_t cap = es->answer_cap ? es->answer_cap : 4096;
        char *nb;
        while (cap < es->answer_len + n + 1)
            cap *= 2;
        nb = realloc(es->answer, cap);
        if (!nb)
            return 0;                  /* makes curl fail the transfer */
        es->answer = nb;
        es->answer_cap = cap;
    }
    memcpy(es->answer + es->answer_len, data, n);
    es->answer_len += n;
    es->answer[es->answer_len] = '\0';
    return size * nmemb;
}

/* libcurl's progress callback: a non-zero return aborts the transfer. */
static int on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    tp_es *es = userp;
    struct timespec now;

    (void)dltotal; (void)dlnow; (void)ultotal; (void)ulnow;
    if (es->abort_flag && *es->abort_flag)
        return 1;
    if (es->deadline && es->deadline->tv_sec) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > es->deadline->tv_sec ||
            (now.tv_sec == es->deadline->tv_sec && now.tv_nsec >= es->deadline->tv_nsec))
            return 1;
    }
    return 0;
}

void tp_es_set_abort(tp_es *es, const volatile int *flag, const struct timespec *deadline)
{
    es->abort_flag = flag;
    es->deadline = deadline;
    curl_easy_setopt(es->curl, CURLOPT_NOPROGRESS, (flag || deadline) ? 0L : 1L);
}

static int parse_url(tp_es *es, const char *url, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    size_t plen, hlen;
    int rc = -1;

    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        snprintf(err, errlen, "TRACKPIXEL_ES_URL: cannot parse the URL");
        goto fail;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    /* The Host header is what curl would send: the port only when it is not
     * the scheme's default.  Setting it ourselves makes the signed value and
     * the sent value the same by construction. */
    if (port && ((strcmp(scheme, "http") == 0 && strcmp(port, "80") == 0) ||
                 (strcmp(scheme, "https") == 0 && strcmp(port, "443") == 0))) {
        curl_free(port);
        port = NULL;
    }
    hlen = strlen(host) + (port ? 1 + strlen(port) : 0) + 1;
    es->host_header = malloc(hlen);
    if (!es->host_header)
        goto oom;
    snprintf(es->host_header, hlen, "%s%s%s", host, port ? ":" : "", port ? port : "");

    plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    es->prefix = strndup(path, plen);
    es->base = strdup(url);
    if (!es->prefix || !es->base)
        goto oom;
    {
        size_t blen = strlen(es->base);
        while (blen > 0 && es->base[blen - 1] == '/')
            es->base[--blen] = '\0';
    }
    rc = 0;
    goto fail;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

tp_es *tp_es_new(const tp_config *cfg, char *err, size_t errlen)
{
    tp_es *es = calloc(1, sizeof(*es));

    if (!es) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    es->cfg = cfg;
    if (!cfg->es_url) {
        snprintf(err, errlen, "TRACKPIXEL_ES_URL is not set");
        goto fail;
    }
    if (parse_url(es, cfg->es_url, err, errlen) < 0)
        goto fail;
    es->curl = curl_easy_init();
    if (!es->curl) {
        snprintf(err, errlen, "curl_easy_init failed");
        goto fail;
    }
    curl_easy_setopt(es->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(es->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(es->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(es->curl, CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms);
    curl_easy_setopt(es->curl, CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
    curl_easy_setopt(es->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(es->curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(es->curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(es->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(es->curl, CURLOPT_WRITEDATA, es);
    curl_easy_setopt(es->curl, CURLOPT_ERRORBUFFER, es->curl_err);
    curl_easy_setopt(es->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(es->curl, CURLOPT_XFERINFODATA, es);
    curl_easy_setopt(es->curl, CURLOPT_USERAGENT, "trackpixel/" PACKAGE_VERSION);
    return es;
fail:
    tp_es_free(es);
    return NULL;
}

void tp_es_free(tp_es *es)
{
    if (!es)
        return;
    if (es->curl)
        curl_easy_cleanup(es->curl);
    tp_sigv4_key_cache_clear(&es->keys);
    free(es->base);
    free(es->prefix);
    free(es->host_header);
    free(es->url);
    free(es->answer);
    free(es);
}

void tp_es_trim(tp_es *es)
{
    if (es->answer_cap > 64 * 1024) {
        free(es->answer);
        es->answer = NULL;
        es->answer_cap = es->answer_len = 0;
    }
}

const char *tp_es_answer(const tp_es *es, size_t *len)
{
    if (len)
        *len = es->answer_len;
    return es->answer ? es->answer : "";
}

/* Elasticsearch's reason for a failed answer: error.type and error.reason
 * (or root_cause), a plain "error" string, or AWS's "message". */
static void answer_reason(const tp_es *es, char *out, size_t outcap)
{
    json_object *j = NULL, *e = NULL, *t = NULL, *r = NULL;

    out[0] = '\0';
    if (!es->answer_len)
        return;
    j = json_tokener_parse(es->answer);
    if (j && json_object_object_get_ex(j, "error", &e)) {
        if (json_object_is_type(e, json_type_string)) {
            snprintf(out, outcap, "%s", json_object_get_string(e));
        } else {
            json_object_object_get_ex(e, "type", &t);
            json_object_object_get_ex(e, "reason", &r);
            snprintf(out, outcap, "%s%s%s", t ? json_object_get_string(t) : "",
                     t && r ? ": " : "", r ? json_object_get_string(r) : "");
        }
    } else if (j && (json_object_object_get_ex(j, "message", &e) ||
                     json_object_object_get_ex(j, "Message", &e))) {
        snprintf(out, outcap, "%s", json_object_get_string(e));
    } else {
        /* Not JSON: the start of the text, on one line. */
        size_t i;
        snprintf(out, outcap, "%.200s", es->answer);
        for (i = 0; out[i]; i++)
            if (out[i] == '\n' || out[i] == '\r')
                out[i] = ' ';
    }
    json_object_put(j);
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[TP_SIGV4_AUTH_MAX + 64];
    struct curl_slist *n;

    if (snprintf(line, sizeof(line), "%s: %s", name, value) >= (int)sizeof(line))
        return -1;
    n = curl_slist_append(*list, line);
    if (!n)
        return -1;
    *list = n;
    return 0;
}

tp_es_result tp_es_request(tp_es *es, const char *method, const char *path,
                           const char *query, const char *content_type,
                           const char *body, size_t len, time_t now,
                           long *status, char *err, size_t errlen)
{
    const tp_config *cfg = es->cfg;
    tp_es_result result = TP_ES_RETRY;
    struct curl_slist *headers = NULL;
    tp_sigv4_result sig;
    char full_path[1024], reason[512];
    size_t need;
    long code = 0;
    CURLcode cc;
    int aoss = strcmp(cfg->aws_service, "aoss") == 0;

    memset(&sig, 0, sizeof(sig));
    *status = 0;
    es->answer_len = 0;
    es->answer_cut = 0;
    if (es->answer)
        es->answer[0] = '\0';

    if (snprintf(full_path, sizeof(full_path), "%s%s", es->prefix, path) >= (int)sizeof(full_path)) {
        snprintf(err, errlen, "request path too long");
        result = TP_ES_REJECT;
        goto done;
    }
    need = strlen(es->base) + strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
    if (need > es->url_cap) {
        char *nu = realloc(es->url, need);
        if (!nu) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        es->url = nu;
        es->url_cap = need;
    }
    snprintf(es->url, need, "%s%s%s%s", es->base, path, query ? "?" : "", query ? query : "");

    if (add_header(&headers, "Host", es->host_header) < 0 ||
        (content_type && add_header(&headers, "Content-Type", content_type) < 0) ||
        add_header(&headers, "Expect", "") < 0)
        goto oom;

    if (cfg->signing) {
        tp_sigv4_header sh[2] = { { "Host", es->host_header }, { "Content-Type", content_type } };
        tp_sigv4_request req = { method, full_path, query, sh, content_type ? 2 : 1,
                                 (const unsigned char *)body, len };
        tp_sigv4_creds creds = { cfg->access_key_id, cfg->secret_access_key, cfg->session_token };
        tp_sigv4_params params = { cfg->region, cfg->aws_service, now, 1, aoss, 0, 0 };
        char serr[256];

        if (tp_sigv4_sign_cached(&req, &creds, &params, &es->keys, &sig, serr, sizeof(serr)) < 0) {
            snprintf(err, errlen, "signing failed: %s", serr);
            result = TP_ES_REJECT;
            goto done;
        }
        if (add_header(&headers, "X-Amz-Date", sig.amz_date) < 0 ||
            add_header(&headers, "Authorization", sig.authorization) < 0 ||
            (cfg->session_token && add_header(&headers, "X-Amz-Security-Token", cfg->session_token) < 0) ||
            (aoss && add_header(&headers, "x-amz-content-sha256", sig.content_sha256) < 0))
            goto oom;
    }

    curl_easy_setopt(es->curl, CURLOPT_URL, es->url);
    curl_easy_setopt(es->curl, CURLOPT_HTTPHEADER, headers);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(es->curl, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(es->curl, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        curl_easy_setopt(es->curl, CURLOPT_POST, 1L);
        curl_easy_setopt(es->curl, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(es->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(es->curl, CURLOPT_CUSTOMREQUEST,
                         strcmp(method, "POST") == 0 ? NULL : method);
    }
    es->curl_err[0] = '\0';
    cc = curl_easy_perform(es->curl);
    if (cc != CURLE_OK) {
        /* curl's own message names the host and the reason, never the
         * userinfo or our headers. */
        snprintf(err, errlen, "no answer: %s", es->curl_err[0] ? es->curl_err : curl_easy_strerror(cc));
        result = TP_ES_RETRY;
        goto done;
    }
    curl_easy_getinfo(es->curl, CURLINFO_RESPONSE_CODE, &code);
    *status = code;
    if ((code >= 200 && code < 300) || code == 409) {
        result = TP_ES_OK;
        goto done;
    }
    answer_reason(es, reason, sizeof(reason));
    snprintf(err, errlen, "HTTP %ld%s%s", code, reason[0] ? ": " : "", reason);
    /* 429 and 5xx are the cluster's trouble; 401/403 (credentials, access
     * policy) and 408 are not the document's fault either: a fix on the
     * cluster's side makes them work.  Other 4xx are about the document. */
    result = (code == 429 || code >= 500 || code == 401 || code == 403 || code == 408)
             ? TP_ES_RETRY : TP_ES_REJECT;
    goto done;

oom:
    snprintf(err, errlen, "out of memory");
    result = TP_ES_RETRY;
done:
    curl_easy_setopt(es->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);
    tp_sigv4_result_free(&sig);
    return result;
}

tp_es_result tp_es_create(tp_es *es, const char *id, const char *doc, size_t len,
                          time_t now, long *status, char *err, size_t errlen)
{
    const tp_config *cfg = es->cfg;
    char path[768];
    int n;

    if (cfg->es_type)
        n = snprintf(path, sizeof(path), "/%s/%s/%s", cfg->es_index, cfg->es_type, id);
    else
        n = snprintf(path, sizeof(path), "/%s/_create/%s", cfg->es_index, id);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        snprintf(err, errlen, "request path too long");
        *status = 0;
        return TP_ES_REJECT;
    }
    return tp_es_request(es, "POST", path, cfg->es_type ? "op_type=create" : NULL,
                         "application/json", doc, len, now, status, err, errlen);
}

long tp_es_bulk_items(const tp_es *es, tp_es_item_fn fn, void *ctx)
{
    json_object *j = NULL, *items = NULL;
    long n = -1;
    size_t i, count;

    if (!es->answer_len || es->answer_cut)
        return -1;
    j = json_tokener_parse(es->answer);
    if (!j || !json_object_object_get_ex(j, "items", &items) ||
        !json_object_is_type(items, json_type_array))
        goto done;
    count = json_object_array_length(items);
    for (i = 0; i < count; i++) {
        json_object *item = json_object_array_get_idx(items, i), *op = NULL, *st = NULL, *e = NULL;
        char reason[512] = "";
        long status = 0;

        /* {"create": {...}} (or index): the one member. */
        json_object_object_foreach(item, key, val) {
            (void)key;
            op = val;
            break;
        }
        if (op && json_object_object_get_ex(op, "status", &st))
            status = (long)json_object_get_int64(st);
        if (op && json_object_object_get_ex(op, "error", &e)) {
            json_object *t = NULL, *r = NULL;
            json_object_object_get_ex(e, "type", &t);
            json_object_object_get_ex(e, "reason", &r);
            snprintf(reason, sizeof(reason), "%s%s%s", t ? json_object_get_string(t) : "",
                     t && r ? ": " : "", r ? json_object_get_string(r) : "");
        }
        fn(ctx, i, status, reason);
    }
    n = (long)count;
done:
    json_object_put(j);
    return n;
}
