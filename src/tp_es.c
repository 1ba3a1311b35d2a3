#include "config.h"
#include "tp_es.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp_buf.h"
#include "tp_creds.h"
#include "tp_sigv4.h"

/* The secret key, the session token, the URL's password and the Basic
 * credentials it makes, the API key, TRACKPIXEL_ES_PASSWORD and its Basic
 * credentials. */
#define TP_ES_SECRETS 7
/* The longest Authorization: ApiKey value, NUL included. */
#define API_KEY_MAX 1024
/* What a bad answer shows of itself in err. */
#define ANSWER_SHOWN 200

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
    const atomic_int *abort_flag;
    const struct timespec *deadline;
    char *secrets[TP_ES_SECRETS];  /* scrubbed from what comes back      */
    size_t nsecrets;
    tp_sigv4_key_cache keys;   /* the signing key, derived once a day */
    char *api_key_header;      /* "ApiKey <key>", or NULL              */
    tp_creds_cache *creds;     /* borrowed: the current AWS credentials */
    tp_creds cur;              /* this request's copy of them          */
    char date[64];             /* the last answer's Date header        */
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
    if (es->abort_flag && atomic_load(es->abort_flag))
        return 1;
    if (es->deadline && es->deadline->tv_sec) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > es->deadline->tv_sec ||
            (now.tv_sec == es->deadline->tv_sec && now.tv_nsec >= es->deadline->tv_nsec))
            return 1;
    }
    return 0;
}

void tp_es_set_abort(tp_es *es, const atomic_int *flag, const struct timespec *deadline)
{
    es->abort_flag = flag;
    es->deadline = deadline;
    curl_easy_setopt(es->curl, CURLOPT_NOPROGRESS, (flag || deadline) ? 0L : 1L);
}

/* libcurl's header callback: keeps the Date header (for clock skew). */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    tp_es *es = userp;
    size_t n = size * nmemb;

    if (n > 5 && strncasecmp(data, "date:", 5) == 0) {
        size_t v = 5, e = n;
        while (v < n && (data[v] == ' ' || data[v] == '\t'))
            v++;
        while (e > v && (data[e - 1] == '\r' || data[e - 1] == '\n' || data[e - 1] == ' '))
            e--;
        snprintf(es->date, sizeof(es->date), "%.*s", (int)(e - v), data + v);
    }
    return n;
}

void tp_es_set_creds(tp_es *es, tp_creds_cache *creds)
{
    es->creds = creds;
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

static int add_secret(tp_es *es, const char *value)
{
    if (!value || !value[0] || es->nsecrets == TP_ES_SECRETS)
        return 0;
    es->secrets[es->nsecrets] = strdup(value);
    if (!es->secrets[es->nsecrets])
        return -1;
    es->nsecrets++;
    return 0;
}

/* The Basic credentials curl makes of user and pass (base64 of
 * user:password), as a secret. */
static int add_basic_secret(tp_es *es, const char *user, const char *pass)
{
    size_t n = strlen(user ? user : "") + 1 + strlen(pass ? pass : "");
    char *plain = malloc(n + 1);
    unsigned char *b64 = malloc(4 * ((n + 2) / 3) + 1);
    int rc = -1;

    if (!plain || !b64)
        goto done;
    snprintf(plain, n + 1, "%s:%s", user ? user : "", pass ? pass : "");
    EVP_EncodeBlock(b64, (const unsigned char *)plain, (int)n);
    rc = add_secret(es, (const char *)b64);
    explicit_bzero(plain, n);
done:
    free(plain);
    free(b64);
    return rc;
}

/* What must never come back out of us, even when an intermediary echoes our
 * request headers: the secret key, the session token, the URL's password
 * and the Basic credentials (base64 of user:password) curl makes of it, the
 * API key, TRACKPIXEL_ES_PASSWORD and its Basic credentials. */
static int collect_secrets(tp_es *es, char *err, size_t errlen)
{
    const tp_config *cfg = es->cfg;
    CURLU *u = curl_url();
    char *user = NULL, *pass = NULL;
    int rc = -1;

    if (!u || curl_url_set(u, CURLUPART_URL, cfg->es_url, 0) != CURLUE_OK)
        goto oom;
    curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE);
    curl_url_get(u, CURLUPART_PASSWORD, &pass, CURLU_URLDECODE);
    if (add_secret(es, cfg->secret_access_key) < 0 || add_secret(es, cfg->session_token) < 0 ||
        add_secret(es, pass) < 0 || add_secret(es, cfg->es_api_key) < 0 ||
        add_secret(es, cfg->es_password) < 0)
        goto oom;
    if ((user || pass) && add_basic_secret(es, user, pass) < 0)
        goto oom;
    if (cfg->es_user && add_basic_secret(es, cfg->es_user, cfg->es_password) < 0)
        goto oom;
    rc = 0;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
done:
    curl_free(user);
    curl_free(pass);
    curl_url_cleanup(u);
    return rc;
}

/* A file the configuration names must be readable now: a start error is
 * clearer than a failure at the first hit. */
static int readable(const char *name, const char *path, char *err, size_t errlen)
{
    FILE *f;

    if (!path)
        return 0;
    f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open %s: %s", name, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

/* Authentication and TLS beyond SigV4: the API key header, basic auth of
 * TRACKPIXEL_ES_USER, the CA bundle and the client certificate.
 * Certificates and host names are always verified. */
static int setup_auth_tls(tp_es *es, char *err, size_t errlen)
{
    const tp_config *cfg = es->cfg;
    CURL *c = es->curl;

    if (readable("TRACKPIXEL_ES_CA_FILE", cfg->es_ca_file, err, errlen) < 0 ||
        readable("TRACKPIXEL_ES_CERT_FILE", cfg->es_cert_file, err, errlen) < 0 ||
        readable("TRACKPIXEL_ES_KEY_FILE", cfg->es_key_file, err, errlen) < 0)
        return -1;
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (cfg->es_ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg->es_ca_file);
    if (cfg->es_cert_file) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, cfg->es_cert_file);
        curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(c, CURLOPT_SSLKEY, cfg->es_key_file ? cfg->es_key_file
                                                             : cfg->es_cert_file);
        curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (cfg->auth == TP_AUTH_BASIC) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, cfg->es_user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, cfg->es_password);
    }
    if (cfg->auth == TP_AUTH_API_KEY) {
        size_t n = strlen("ApiKey ") + strlen(cfg->es_api_key) + 1, i;
        for (i = 0; cfg->es_api_key[i]; i++)
            if ((unsigned char)cfg->es_api_key[i] <= ' ' || cfg->es_api_key[i] == 0x7f)
                break;
        if (cfg->es_api_key[i] || n > API_KEY_MAX) {
            snprintf(err, errlen, "TRACKPIXEL_ES_API_KEY: not an API key (at most %d printable "
                     "characters, no spaces)", API_KEY_MAX - 8);
            return -1;
        }
        es->api_key_header = malloc(n);
        if (!es->api_key_header) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        snprintf(es->api_key_header, n, "ApiKey %s", cfg->es_api_key);
    }
    return 0;
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
    if (parse_url(es, cfg->es_url, err, errlen) < 0 || collect_secrets(es, err, errlen) < 0)
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
    if (setup_auth_tls(es, err, errlen) < 0)
        goto fail;
    curl_easy_setopt(es->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(es->curl, CURLOPT_WRITEDATA, es);
    curl_easy_setopt(es->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(es->curl, CURLOPT_HEADERDATA, es);
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
    tp_creds_wipe(&es->cur);
    free(es->base);
    free(es->prefix);
    free(es->host_header);
    free(es->url);
    free(es->answer);
    free(es->api_key_header);
    for (size_t i = 0; i < es->nsecrets; i++)
        free(es->secrets[i]);
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

/* Replace every secret in s[0..*len) by "[hidden]", in place (s has room
 * for cap bytes and stays NUL-terminated).  Returns 0, or -1 when the text
 * would not fit: it is then cut where the secret began. */
/* Secret i: the configured ones, then the current credentials'. */
static const char *secret_at(const tp_es *es, size_t i)
{
    if (i < es->nsecrets)
        return es->secrets[i];
    if (i == es->nsecrets && es->cur.secret_access_key[0])
        return es->cur.secret_access_key;
    if (i == es->nsecrets + 1 && es->cur.session_token[0])
        return es->cur.session_token;
    return NULL;
}

static int scrub(const tp_es *es, char *s, size_t *len, size_t cap)
{
    static const char mark[] = "[hidden]";
    const size_t mlen = sizeof(mark) - 1;
    size_t i;

    for (i = 0; i < es->nsecrets + 2; i++) {
        const char *sec = secret_at(es, i);
        if (!sec)
            continue;
        size_t slen = strlen(sec), at = 0;
        char *hit;

        while ((hit = memmem(s + at, *len - at, sec, slen)) != NULL) {
            size_t pos = (size_t)(hit - s), tail = *len - pos - slen;
            if (pos + mlen + tail + 1 > cap) {
                *len = pos;
                s[pos] = '\0';
                return -1;
            }
            memmove(s + pos + mlen, s + pos + slen, tail + 1);
            memcpy(s + pos, mark, mlen);
            *len = pos + mlen + tail;
            at = pos + mlen;
        }
    }
    return 0;
}

/* Scrub a NUL-terminated message in a buffer of cap bytes. */
static void scrub_text(const tp_es *es, char *s, size_t cap)
{
    size_t len = strlen(s);
    scrub(es, s, &len, cap);
}

/* The answer as it came back, scrubbed: it may grow ("[hidden]" is longer
 * than a short password), so it gets room first. */
static void scrub_answer(tp_es *es)
{
    size_t need = es->answer_len + 1, i;

    if (!es->answer_len)
        return;
    for (i = 0; i < es->nsecrets + 2; i++) {
        const char *sec = secret_at(es, i);
        size_t slen = sec ? strlen(sec) : 0, at = 0;
        const char *hit;
        while (sec && (hit = memmem(es->answer + at, es->answer_len - at, sec, slen))) {
            need += slen < 8 ? 8 - slen : 0;
            at = (size_t)(hit - es->answer) + slen;
        }
    }
    if (need > es->answer_cap) {
        char *nb = realloc(es->answer, need);
        if (nb) {
            es->answer = nb;
            es->answer_cap = need;
        }
    }
    scrub(es, es->answer, &es->answer_len, es->answer_cap);
}

/* The start of the answer, on one line, for a message. */
static void answer_start(const tp_es *es, char *out, size_t outcap)
{
    size_t i;

    snprintf(out, outcap, "%.*s", ANSWER_SHOWN, es->answer ? es->answer : "");
    for (i = 0; out[i]; i++)
        if (out[i] == '\n' || out[i] == '\r' || (unsigned char)out[i] < 0x20)
            out[i] = ' ';
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
        answer_start(es, out, outcap);
    }
    json_object_put(j);
}

tp_es_result tp_es_classify(long status)
{
    if (status >= 200 && status < 300)
        return TP_ES_OK;
    if (status == 409)
        return TP_ES_OK;
    if (status == 0 || (status >= 300 && status < 400) || status == 401 || status == 403 ||
        status == 408 || status == 429 || status >= 500)
        return TP_ES_RETRY;
    return TP_ES_REJECT;
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[TP_CREDS_TOKEN_MAX + 64];
    struct curl_slist *n;

    if (snprintf(line, sizeof(line), "%s: %s", name, value) >= (int)sizeof(line))
        return -1;
    n = curl_slist_append(*list, line);
    if (!n)
        return -1;
    *list = n;
    return 0;
}

/* es->url = base + path [+ '?' query]. */
static int make_url(tp_es *es, const char *path, const char *query)
{
    size_t need = strlen(es->base) + strlen(path) + (query ? strlen(query) + 1 : 0) + 1;

    if (need > es->url_cap) {
        char *nu = realloc(es->url, need);
        if (!nu)
            return -1;
        es->url = nu;
        es->url_cap = need;
    }
    snprintf(es->url, need, "%s%s%s%s", es->base, path, query ? "?" : "", query ? query : "");
    return 0;
}

/* The request's headers, signed when the configuration has credentials.
 * Returns 0, or -1 with err set (*oom: out of memory, not a signing
 * failure). */
static int make_headers(tp_es *es, const char *method, const char *full_path,
                        const char *query, const char *content_type, const char *body,
                        size_t len, time_t now, struct curl_slist **headers,
                        tp_sigv4_result *sig, int *oom, char *err, size_t errlen)
{
    const tp_config *cfg = es->cfg;
    int aoss = strcmp(cfg->aws_service, "aoss") == 0;

    *oom = 1;
    if (add_header(headers, "Host", es->host_header) < 0 ||
        (content_type && add_header(headers, "Content-Type", content_type) < 0) ||
        add_header(headers, "Expect", "") < 0)
        goto oom;
    if (es->api_key_header && add_header(headers, "Authorization", es->api_key_header) < 0)
        goto oom;
    if (cfg->signing) {
        tp_sigv4_header sh[2] = { { "Host", es->host_header }, { "Content-Type", content_type } };
        tp_sigv4_request req = { method, full_path, query, sh, content_type ? 2 : 1,
                                 (const unsigned char *)body, len };
        tp_sigv4_creds creds = { cfg->access_key_id, cfg->secret_access_key, cfg->session_token };
        tp_sigv4_params params = { cfg->region, cfg->aws_service, now, 1, aoss, 0, 0 };
        char serr[256], region[TP_CREDS_REGION_MAX];

        if (es->creds) {
            params.now = tp_creds_cache_now(es->creds);
            if (tp_creds_cache_get(es->creds, params.now, &es->cur, region, sizeof(region)) < 0) {
                snprintf(err, errlen, "no valid AWS credentials yet (or a region): the "
                         "delivery thread fetches them");
                *oom = 1;          /* not this request's fault: a retry */
                return -1;
            }
            creds.access_key_id = es->cur.access_key_id;
            creds.secret_access_key = es->cur.secret_access_key;
            creds.session_token = es->cur.session_token[0] ? es->cur.session_token : NULL;
            params.region = region;
        }
        if (tp_sigv4_sign_cached(&req, &creds, &params, &es->keys, sig, serr, sizeof(serr)) < 0) {
            snprintf(err, errlen, "signing failed: %s", serr);
            *oom = 0;
            return -1;
        }
        if (add_header(headers, "X-Amz-Date", sig->amz_date) < 0 ||
            add_header(headers, "Authorization", sig->authorization) < 0 ||
            (creds.session_token &&
             add_header(headers, "X-Amz-Security-Token", creds.session_token) < 0) ||
            (aoss && add_header(headers, "x-amz-content-sha256", sig->content_sha256) < 0))
            goto oom;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* Run the prepared request; *status gets the HTTP status (0: no answer). */
static int perform(tp_es *es, const char *method, const char *body, size_t len,
                   struct curl_slist *headers, long *status, char *err, size_t errlen)
{
    CURLcode cc;

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
    curl_easy_setopt(es->curl, CURLOPT_HTTPHEADER, NULL);
    if (cc != CURLE_OK) {
        /* curl's own message names the host and the reason, never the
         * userinfo or our headers. */
        snprintf(err, errlen, "no answer: %s",
                 es->curl_err[0] ? es->curl_err : curl_easy_strerror(cc));
        return -1;
    }
    curl_easy_getinfo(es->curl, CURLINFO_RESPONSE_CODE, status);
    scrub_answer(es);
    return 0;
}

/* err for an answer that is not a success. */
static void explain(tp_es *es, long code, char *err, size_t errlen)
{
    char reason[512];
    char *where = NULL;

    if (code >= 300 && code < 400) {
        /* Never followed: the Location is only named, for the operator. */
        curl_easy_getinfo(es->curl, CURLINFO_REDIRECT_URL, &where);
        snprintf(err, errlen, "HTTP %ld: redirect to %s (not followed: check TRACKPIXEL_ES_URL)",
                 code, where ? where : "(no Location)");
        return;
    }
    answer_reason(es, reason, sizeof(reason));
    snprintf(err, errlen, "HTTP %ld%s%s", code, reason[0] ? ": " : "", reason);
}

/* A 400/403 naming the credentials or the clock: ask for a refresh, or
 * learn the cluster's clock from its Date header. */
static void creds_refused(tp_es *es)
{
    time_t server;
    int kind;

    if (!es->creds || !es->answer_len)
        return;
    kind = tp_creds_answer_kind(es->answer);
    if (kind == 2 && tp_creds_parse_http_date(es->date, &server) == 0)
        tp_creds_cache_set_skew(es->creds, server, tp_creds_cache_now(es->creds));
    else if (kind)
        tp_creds_cache_reject(es->creds);
}

tp_es_result tp_es_request(tp_es *es, const char *method, const char *path,
                           const char *query, const char *content_type,
                           const char *body, size_t len, time_t now,
                           long *status, char *err, size_t errlen)
{
    tp_es_result result = TP_ES_RETRY;
    struct curl_slist *headers = NULL;
    tp_sigv4_result sig;
    char full_path[1024];
    int oom = 0;

    memset(&sig, 0, sizeof(sig));
    *status = 0;
    if (errlen)
        err[0] = '\0';
    es->answer_len = 0;
    es->answer_cut = 0;
    if (es->answer)
        es->answer[0] = '\0';
    if (snprintf(full_path, sizeof(full_path), "%s%s", es->prefix, path) >= (int)sizeof(full_path)) {
        snprintf(err, errlen, "request path too long");
        result = TP_ES_REJECT;
        goto done;
    }
    if (make_url(es, path, query) < 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (make_headers(es, method, full_path, query, content_type, body, len, now, &headers,
                     &sig, &oom, err, errlen) < 0) {
        result = oom ? TP_ES_RETRY : TP_ES_REJECT;
        goto done;
    }
    es->date[0] = '\0';
    if (perform(es, method, body, len, headers, status, err, errlen) < 0)
        goto done;
    if (*status == 403 || *status == 400)
        creds_refused(es);
    result = tp_es_classify(*status);
    if (result != TP_ES_OK)
        explain(es, *status, err, errlen);
done:
    curl_slist_free_all(headers);
    tp_sigv4_result_free(&sig);
    scrub_text(es, err, errlen);
    return result;
}

/* Is the answer's JSON member name a string equal to want? */
static int member_is(json_object *o, const char *name, const char *want)
{
    json_object *v = NULL;

    return o && json_object_object_get_ex(o, name, &v) &&
           json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), want) == 0;
}

/* What Elasticsearch answers to a create: 201 "result":"created", or 409
 * with a version conflict (the document is already there). */
static int is_create_answer(const tp_es *es, long status)
{
    json_object *j, *e = NULL;
    int ok = 0;

    if (status != 201 && status != 409)
        return 0;
    if (!es->answer_len || es->answer_cut)
        return 0;
    j = json_tokener_parse(es->answer);
    if (j && json_object_is_type(j, json_type_object)) {
        if (status == 201)
            ok = member_is(j, "result", "created");
        else
            ok = json_object_object_get_ex(j, "error", &e) &&
                 member_is(e, "type", "version_conflict_engine_exception");
    }
    json_object_put(j);
    return ok;
}

tp_es_result tp_es_create(tp_es *es, const char *id, const char *doc, size_t len,
                          time_t now, long *status, char *err, size_t errlen)
{
    return tp_es_create_in(es, es->cfg->es_index, id, doc, len, now, status, err, errlen);
}

tp_es_result tp_es_create_in(tp_es *es, const char *index, const char *id, const char *doc,
                             size_t len, time_t now, long *status, char *err, size_t errlen)
{
    const tp_config *cfg = es->cfg;
    char path[768], shown[ANSWER_SHOWN + 1];
    tp_es_result r;
    int n;

    if (cfg->ids_auto && cfg->es_type)
        n = snprintf(path, sizeof(path), "/%s/%s", index, cfg->es_type);
    else if (cfg->ids_auto)
        n = snprintf(path, sizeof(path), "/%s/_doc", index);
    else if (cfg->es_type)
        n = snprintf(path, sizeof(path), "/%s/%s/%s", index, cfg->es_type, id);
    else
        n = snprintf(path, sizeof(path), "/%s/_create/%s", index, id);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        snprintf(err, errlen, "request path too long");
        *status = 0;
        return TP_ES_REJECT;
    }
    r = tp_es_request(es, "POST", path, cfg->es_type && !cfg->ids_auto ? "op_type=create" : NULL,
                      "application/json", doc, len, now, status, err, errlen);
    if (r == TP_ES_OK && !is_create_answer(es, *status)) {
        answer_start(es, shown, sizeof(shown));
        snprintf(err, errlen, "HTTP %ld: not a create answer: %s", *status, shown);
        r = TP_ES_RETRY;
    }
    return r;
}

/* The status of one _bulk item, {"<action>":{"status":N,...}}, or -1 when
 * it is not one; *op gets the inner object. */
static long item_status(json_object *item, json_object **op)
{
    json_object *st = NULL;

    *op = NULL;
    if (!json_object_is_type(item, json_type_object) || json_object_object_length(item) != 1)
        return -1;
    json_object_object_foreach(item, key, val) {
        (void)key;
        *op = val;
    }
    if (!json_object_is_type(*op, json_type_object) ||
        !json_object_object_get_ex(*op, "status", &st) || !json_object_is_type(st, json_type_int))
        return -1;
    return (long)json_object_get_int64(st);
}

/* The items array of a well-formed answer for n actions, or NULL. */
static json_object *bulk_items(json_object *j, long n)
{
    json_object *items = NULL, *op;
    size_t i;

    if (!j || !json_object_is_type(j, json_type_object) ||
        !json_object_object_get_ex(j, "items", &items) ||
        !json_object_is_type(items, json_type_array) ||
        json_object_array_length(items) != (size_t)n)
        return NULL;
    for (i = 0; i < (size_t)n; i++) {
        long st = item_status(json_object_array_get_idx(items, i), &op);
        if (st < 100 || st > 599)
            return NULL;
    }
    return items;
}

static void item_reason(const tp_es *es, json_object *op, char *out, size_t cap)
{
    json_object *e = NULL, *t = NULL, *r = NULL;

    out[0] = '\0';
    if (!json_object_object_get_ex(op, "error", &e))
        return;
    if (json_object_is_type(e, json_type_string)) {
        snprintf(out, cap, "%s", json_object_get_string(e));
    } else {
        json_object_object_get_ex(e, "type", &t);
        json_object_object_get_ex(e, "reason", &r);
        snprintf(out, cap, "%s%s%s", t ? json_object_get_string(t) : "", t && r ? ": " : "",
                 r ? json_object_get_string(r) : "");
    }
    scrub_text(es, out, cap);
}

tp_es_result tp_es_bulk(tp_es *es, const char *query, const char *body, size_t len, long n,
                        tp_es_item_fn fn, void *ctx, time_t now, long *status,
                        char *err, size_t errlen)
{
    json_object *j = NULL, *items, *op;
    char shown[ANSWER_SHOWN + 1], reason[512];
    tp_es_result r;
    size_t i;

    r = tp_es_request(es, "POST", "/_bulk", query, "application/x-ndjson", body, len, now,
                      status, err, errlen);
    if (r != TP_ES_OK)
        return r;
    if (*status == 200 && es->answer_len && !es->answer_cut)
        j = json_tokener_parse(es->answer);
    items = *status == 200 ? bulk_items(j, n) : NULL;
    if (!items) {
        answer_start(es, shown, sizeof(shown));
        snprintf(err, errlen, "HTTP %ld: not a _bulk answer for %ld documents: %s", *status, n,
                 shown);
        r = TP_ES_RETRY;
        goto done;
    }
    for (i = 0; i < (size_t)n; i++) {
        long st = item_status(json_object_array_get_idx(items, i), &op);
        item_reason(es, op, reason, sizeof(reason));
        fn(ctx, i, st, reason);
    }
done:
    json_object_put(j);
    return r;
}
