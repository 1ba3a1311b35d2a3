#include "tp_config.h"

#include "tp_creds.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tp_conffile.h"

#include "tp_privacy.h"
#include "tp_acl.h"
#include "tp_redirect.h"

#include "tp_index.h"

#define STAGE_VAR_PREFIX "TRACKPIXEL_STAGE_VAR_"

/* Where each variable lands in tp_config; fallback: set only if still unset. */
typedef struct slot {
    size_t offset;
    int fallback;
} slot;

#define S(field) { offsetof(tp_config, field), 0 }
#define NONE { 0, -1 }

static const tp_config_var vars[] = {
    { "TRACKPIXEL_ES_URL", TP_CONF_URL, NULL, 0,
      "Elasticsearch base URL, http or https (user:password@ for basic auth); unset: documents go to TRACKPIXEL_OUTPUT" },
    { "TRACKPIXEL_ES_INDEX", TP_CONF_INDEX_DATED, "events", 0,
      "index the documents are created in; %Y %m %d are the hit's UTC date (e.g. events-%Y.%m.%d)" },
    { "TRACKPIXEL_ES_TYPE", TP_CONF_INDEX, NULL, 0,
      "document type, for clusters before 7.x only (e.g. event)" },
    { "TRACKPIXEL_ES_TEMPLATE", TP_CONF_INDEX, "trackpixel", 0,
      "name of the index template, retention policy and ingest pipeline trackpixel --setup installs" },
    { "TRACKPIXEL_RETENTION_DAYS", TP_CONF_DAYS, "0", 0,
      "--setup: indices older than this many days are deleted (an ILM or ISM policy); 0: kept" },
    { "TRACKPIXEL_ES_USER_AGENT", TP_CONF_BOOL, "0", 0,
      "1: --setup installs an ingest pipeline parsing context.user-agent (browser, OS) as the indices' default pipeline" },
    { "TRACKPIXEL_AWS_SERVICE", TP_CONF_STRING, "es", 0,
      "SigV4 service name: es, or aoss for OpenSearch Serverless" },
    { "TRACKPIXEL_ES_IDS", TP_CONF_STRING, "request-id", 0,
      "request-id: each document is created under its request id (a retry never stores it twice); auto: the cluster picks ids (OpenSearch Serverless time-series collections)" },
    { "AWS_REGION", TP_CONF_STRING, NULL, 0,
      "AWS region of the cluster; signing is on when it and the keys are set" },
    { "AWS_DEFAULT_REGION", TP_CONF_STRING, NULL, 0,
      "used when AWS_REGION is unset" },
    { "AWS_ACCESS_KEY_ID", TP_CONF_STRING, NULL, 1,
      "AWS access key id for SigV4 signing" },
    { "AWS_SECRET_ACCESS_KEY", TP_CONF_STRING, NULL, 1,
      "AWS secret access key for SigV4 signing" },
    { "AWS_SESSION_TOKEN", TP_CONF_STRING, NULL, 1,
      "AWS session token (temporary credentials), sent as X-Amz-Security-Token" },
    { "AWS_PROFILE", TP_CONF_STRING, "default", 0,
      "profile of the shared files (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE) whose keys, credential_process or role_arn + source_profile give the credentials" },
    { "TRACKPIXEL_CONNECT_TIMEOUT_MS", TP_CONF_MS, "2000", 0,
      "connect timeout to Elasticsearch, milliseconds" },
    { "TRACKPIXEL_TIMEOUT_MS", TP_CONF_MS, "5000", 0,
      "total timeout of one Elasticsearch request, milliseconds" },
    { "TRACKPIXEL_CONFIG", TP_CONF_STRING, TP_CONFIG_DEFAULT_PATH, 0,
      "configuration file of NAME=value lines, read at start under the environment (the environment wins); the default is read only when it exists; empty: none" },
    { "TRACKPIXEL_ES_API_KEY", TP_CONF_STRING, NULL, 1,
      "Elasticsearch API key (the encoded value), sent as Authorization: ApiKey" },
    { "TRACKPIXEL_ES_API_KEY_FILE", TP_CONF_STRING, NULL, 0,
      "file holding TRACKPIXEL_ES_API_KEY (its first line)" },
    { "TRACKPIXEL_ES_USER", TP_CONF_STRING, NULL, 0,
      "user for basic auth, with TRACKPIXEL_ES_PASSWORD or TRACKPIXEL_ES_PASSWORD_FILE" },
    { "TRACKPIXEL_ES_PASSWORD", TP_CONF_STRING, NULL, 1,
      "password of TRACKPIXEL_ES_USER" },
    { "TRACKPIXEL_ES_PASSWORD_FILE", TP_CONF_STRING, NULL, 0,
      "file holding TRACKPIXEL_ES_PASSWORD (its first line)" },
    { "TRACKPIXEL_ES_CA_FILE", TP_CONF_STRING, NULL, 0,
      "PEM file of the CA certificates the cluster's certificate is verified with (e.g. Elasticsearch's http_ca.crt); unset: the system's" },
    { "TRACKPIXEL_ES_CERT_FILE", TP_CONF_STRING, NULL, 0,
      "PEM client certificate presented to the cluster" },
    { "TRACKPIXEL_ES_KEY_FILE", TP_CONF_STRING, NULL, 0,
      "PEM private key of TRACKPIXEL_ES_CERT_FILE (unset: in the certificate's file)" },
    { "TRACKPIXEL_OUTPUT", TP_CONF_STRING, "events.ndjson", 0,
      "file the documents are appended to in _bulk format when TRACKPIXEL_ES_URL is unset" },
    { "TRACKPIXEL_SPOOL_DIR", TP_CONF_STRING, "/var/spool/trackpixel", 0,
      "directory of the journal and dead letters (must be writable by the worker); empty: no journal, documents wait in memory (at most 1000 or 4 MiB) and are dropped past that" },
    { "TRACKPIXEL_SPOOL_MAX_MB", TP_CONF_COUNT, "1024", 0,
      "spool size limit in MiB; when full, new documents are dropped (and counted)" },
    { "TRACKPIXEL_SPOOL_FSYNC", TP_CONF_BOOL, "0", 0,
      "1: fdatasync the journal after each append (survives power loss, costs a disk flush per hit)" },
    { "TRACKPIXEL_SHUTDOWN_MS", TP_CONF_MS, "3000", 0,
      "at SIGTERM, how long pending documents are tried before exiting, milliseconds" },
    { "TRACKPIXEL_SLOW_MS", TP_CONF_MS, "50", 0,
      "a cluster answer slower than this, milliseconds, makes a worker leave the next hits to its delivery thread (in _bulk batches) until answers are fast again" },
    { "TRACKPIXEL_BULK_MAX_KB", TP_CONF_COUNT, "512", 0,
      "largest _bulk request the delivery thread sends, KiB, at most 65536 (64 MiB); keep it under the body limit of any proxy before the cluster (a 413 answer halves it)" },
    { "TRACKPIXEL_BODY_TIMEOUT_MS", TP_CONF_MS, "5000", 0,
      "read deadline for a POST body, milliseconds; a slower body is recorded as cut" },
    { "TRACKPIXEL_STAGE", TP_CONF_STRING, "prod", 0,
      "context.stage of every document" },
    { "TRACKPIXEL_AGENTS_FILE", TP_CONF_STRING, NULL, 0,
      "file of user-agent patterns (data/agents.txt's format) that replaces the list the program carries; read once at start" },
    { "TRACKPIXEL_RECORD_BOTS", TP_CONF_BOOL, "1", 0,
      "0: hits whose agent class is bot get their pixel but are not recorded (counted in the stop line)" },
    { "TRACKPIXEL_STAGE_VAR_<name>", TP_CONF_PREFIX, NULL, 0,
      "each one becomes stage-variables.<name> of every document" },
    { "TRACKPIXEL_API_ID", TP_CONF_STRING, "", 0,
      "context.api-id of every document" },
    { "TRACKPIXEL_TRUSTED_PROXIES", TP_CONF_STRING, "", 0,
      "comma list of CIDRs (IPv4, IPv6) of proxies in front; from one of them, context.source-ip is the rightmost untrusted address of Forwarded for= or X-Forwarded-For" },
    { "TRACKPIXEL_IP_MODE", TP_CONF_STRING, "keep", 0,
      "what is kept of the client address in source-ip and address headers: keep, truncate (IPv4 /24, IPv6 /48), hash (HMAC-SHA-256, key changes each UTC day), drop" },
    { "TRACKPIXEL_IP_HASH_KEY_FILE", TP_CONF_STRING, NULL, 0,
      "file holding the secret (at least 32 bytes) the hash mode's daily keys derive from; the same file on every machine gives the same values" },
    { "TRACKPIXEL_DROP_HEADERS", TP_CONF_STRING, "Cookie", 0,
      "comma list of headers never recorded (any case); empty keeps Cookie; Authorization and Proxy-Authorization never are" },
    { "TRACKPIXEL_REDACT_PARAMS", TP_CONF_STRING, "", 0,
      "comma list of query parameters (and top-level POST body keys), case-sensitive, recorded as \"[redacted]\"" },
    { "TRACKPIXEL_GPC", TP_CONF_STRING, "ignore", 0,
      "requests with Sec-GPC: 1 or DNT: 1: ignore, anonymize (no address, Cookie or Referer; \"privacy\":\"gpc\"), or skip (pixel served, nothing recorded)" },
    { "TRACKPIXEL_MAX_PARAMS", TP_CONF_COUNT, "100", 0,
      "query parameters kept per document; the rest are cut" },
    { "TRACKPIXEL_MAX_HEADERS", TP_CONF_COUNT, "100", 0,
      "headers kept per document; the rest are cut" },
    { "TRACKPIXEL_MAX_VALUE", TP_CONF_COUNT, "4096", 0,
      "bytes kept per name or value; longer ones are cut" },
    { "TRACKPIXEL_MAX_BODY", TP_CONF_COUNT, "65536", 0,
      "largest POST body recorded as body-json, bytes" },
    { "TRACKPIXEL_MAX_DOC", TP_CONF_COUNT, "262144", 0,
      "largest document, bytes; bigger ones lose body-json, then query string, then headers" },
    { "TRACKPIXEL_REDIRECT_ALLOW", TP_CONF_STRING, NULL, 0,
      "hosts {mount}/r?u=URL may redirect to, comma-separated: example.com (that host), *.example.com (its subdomains); unset: no redirects (404)" },
    { "TRACKPIXEL_ADMIN_ALLOW", TP_CONF_STRING, "127.0.0.0/8,::1", 0,
      "addresses (CIDRs, comma-separated) that may read {mount}/_health and {mount}/_metrics; others get 404" },
    { "TRACKPIXEL_HEALTH_MAX_LAG_S", TP_CONF_COUNT, "300", 0,
      "{mount}/_health answers 503 when the oldest undelivered document is older than this, seconds" },
};

/* Parallel to vars[]. */
static const slot slots[] = {
    S(es_url), S(es_index), S(es_type),
    S(es_template), S(retention_days), S(es_user_agent),
    S(aws_service), S(es_ids),
    S(region), { offsetof(tp_config, region), 1 },
    S(access_key_id), S(secret_access_key), S(session_token), S(aws_profile),
    S(connect_timeout_ms), S(timeout_ms),
    S(config_path), S(es_api_key), S(es_api_key_file), S(es_user), S(es_password),
    S(es_password_file), S(es_ca_file), S(es_cert_file), S(es_key_file),
    S(output),
    S(spool_dir), S(spool_max_mb), S(spool_fsync), S(shutdown_ms), S(slow_ms), S(bulk_max_kb),
    S(body_timeout_ms),
    S(stage), S(agents_file), S(record_bots), NONE, S(api_id),
    S(trusted_proxies), S(ip_mode), S(ip_hash_key_file), S(drop_headers), S(redact_params),
    S(gpc),
    S(max_params), S(max_headers), S(max_value), S(max_body), S(max_doc),
    S(redirect_allow), S(admin_allow), S(health_max_lag_s),
};

const tp_config_var *tp_config_vars(size_t *n)
{
    *n = sizeof(vars) / sizeof(vars[0]);
    return vars;
}

const char *tp_env_get(char *const *envp, const char *name)
{
    size_t len = strlen(name);

    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, len) == 0 && (*envp)[len] == '=')
            return *envp + len + 1;
    return NULL;
}

static int parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Elasticsearch's rules for index names: lower case, none of the characters
 * in the strchr() below nor space, not starting with -_+, not . or .., at
 * most 255 bytes. */
static int valid_index(const char *s)
{
    size_t len = strlen(s), i;

    if (len == 0 || len > 255 || s[0] == '-' || s[0] == '_' || s[0] == '+' ||
        strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || c <= ' ' || c >= 0x7f ||
            strchr("\\/*?\"<>|,#:%", c))
            return 0;
    }
    return 1;
}

/* http or https, a host, no query or fragment. */
static int valid_url(const char *s)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *query = NULL, *frag = NULL;
    int ok = 0;

    if (!u)
        goto fail;
    if (curl_url_set(u, CURLUPART_URL, s, 0) != CURLUE_OK)
        goto fail;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
        goto fail;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
        goto fail;
    if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK)
        goto fail;
    if (curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK)
        goto fail;
    ok = 1;
fail:
    curl_free(scheme);
    curl_free(host);
    curl_free(query);
    curl_free(frag);
    curl_url_cleanup(u);
    return ok;
}

static int load_stage_vars(tp_config *cfg, char *const *envp, char *err, size_t errlen)
{
    size_t plen = strlen(STAGE_VAR_PREFIX);

    for (; envp && *envp; envp++) {
        const char *e = *envp, *eq;
        tp_stage_var *sv;

        if (strncmp(e, STAGE_VAR_PREFIX, plen) != 0)
            continue;
        eq = strchr(e, '=');
        if (!eq || eq == e + plen) {
            snprintf(err, errlen, "%s<name>: the name is empty", STAGE_VAR_PREFIX);
            return -1;
        }
        if (cfg->nstage_vars == TP_CONFIG_MAX_STAGE_VARS) {
            snprintf(err, errlen, "%s<name>: more than %d stage variables",
                     STAGE_VAR_PREFIX, TP_CONFIG_MAX_STAGE_VARS);
            return -1;
        }
        sv = &cfg->stage_vars[cfg->nstage_vars];
        sv->name = strndup(e + plen, (size_t)(eq - e - (long)plen));
        sv->value = strdup(eq + 1);
        cfg->nstage_vars++;
        if (!sv->name || !sv->value) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* The kinds held as a long (the others are strings). */
static int is_number(tp_config_kind kind)
{
    return kind == TP_CONF_MS || kind == TP_CONF_COUNT || kind == TP_CONF_BOOL ||
           kind == TP_CONF_DAYS;
}

/* Counts whose ceiling is below TP_CONF_COUNT's; their help says it too. */
static const struct {
    const char *name;
    long max;
} count_max[] = {
    /* A _bulk request is built in memory: 64 MiB at most. */
    { "TRACKPIXEL_BULK_MAX_KB", 65536 },
};

/* The largest value of v's kind, or of v itself when it has its own. */
static long number_max(const tp_config_var *v)
{
    size_t i;

    if (v->kind == TP_CONF_MS)
        return 3600000L;
    if (v->kind == TP_CONF_BOOL)
        return 1;
    if (v->kind == TP_CONF_DAYS)
        return 36500;
    for (i = 0; i < sizeof(count_max) / sizeof(count_max[0]); i++)
        if (strcmp(v->name, count_max[i].name) == 0)
            return count_max[i].max;
    return 1L << 30;
}

/* A number variable from val, within its kind's range, into *dst. */
static int load_number(const tp_config_var *v, const char *val, long *dst,
                       char *err, size_t errlen)
{
    long min = v->kind == TP_CONF_BOOL || v->kind == TP_CONF_DAYS ? 0 : 1;
    long max = number_max(v), over;

    if (parse_long(val, min, max, dst) < 0) {
        /* A count over its own ceiling is not a typo: say the ceiling. */
        if (v->kind == TP_CONF_COUNT && max < (1L << 30) &&
            parse_long(val, max + 1, 1L << 30, &over) == 0)
            snprintf(err, errlen, "%s: at most %ld", v->name, max);
        else
            snprintf(err, errlen, "%s: not a number from %ld to %ld", v->name, min, max);
        return -1;
    }
    return 0;
}

/* A string variable from val (checked by kind) into a new copy at *dst.
 * A fallback slot already filled by its primary variable is kept. */
static int load_string(const tp_config_var *v, const char *val, int fallback, char **dst,
                       char *err, size_t errlen)
{
    if (!val || (fallback && *dst))
        return 0;
    if (v->kind == TP_CONF_URL && !valid_url(val)) {
        snprintf(err, errlen, "%s: not an http:// or https:// URL with a host "
                 "(and no query or fragment)", v->name);
        return -1;
    }
    if (v->kind == TP_CONF_INDEX && !valid_index(val)) {
        snprintf(err, errlen, "%s: not a valid index name (lower case, no "
                 "spaces or \\/*?\"<>|,#:%%, not starting with - _ +)", v->name);
        return -1;
    }
    if (v->kind == TP_CONF_INDEX_DATED) {
        char why[160];

        if (tp_index_check(val, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "%s: %s", v->name, why);
            return -1;
        }
    }
    free(*dst);
    *dst = strdup(val);
    if (!*dst) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* The privacy settings, parsed (and the hash key read) once. */
static int load_privacy(tp_config *cfg, char *err, size_t errlen)
{
    tp_privacy_settings ps = {
        .trusted_proxies = cfg->trusted_proxies, .ip_mode = cfg->ip_mode,
        .key_file = cfg->ip_hash_key_file, .drop_headers = cfg->drop_headers,
        .redact_params = cfg->redact_params, .gpc = cfg->gpc,
    };

    cfg->privacy = tp_privacy_new(&ps, err, errlen);
    return cfg->privacy ? 0 : -1;
}

/* The redirect and admin lists parse (tp_app parses them again to use them). */
static int check_lists(const tp_config *cfg, char *err, size_t errlen)
{
    tp_redirect_allow *r = tp_redirect_allow_parse(cfg->redirect_allow, err, errlen);
    tp_acl *a = NULL;
    int bad = !r && err[0];

    tp_redirect_allow_free(r);
    if (bad)
        return -1;
    a = tp_acl_parse(cfg->admin_allow, err, errlen);
    tp_acl_free(a);
    return a ? 0 : -1;
}

/* Does the URL carry user:password@? */
static int url_has_user(const char *url)
{
    CURLU *u = curl_url();
    char *user = NULL;
    int has = 0;

    if (u && url && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
        has = 1;
    curl_free(user);
    curl_url_cleanup(u);
    return has;
}

const char *tp_config_auth_name(tp_config_auth auth)
{
    switch (auth) {
    case TP_AUTH_AWS: return "AWS SigV4";
    case TP_AUTH_API_KEY: return "API key (TRACKPIXEL_ES_API_KEY)";
    case TP_AUTH_BASIC: return "basic (TRACKPIXEL_ES_USER)";
    case TP_AUTH_URL_BASIC: return "basic (user:password@ in TRACKPIXEL_ES_URL)";
    default: return "none";
    }
}

/* The one authentication of the configuration; -1 when there are several
 * or one is incomplete. */
static int check_auth(tp_config *cfg, char *err, size_t errlen)
{
    int url_user = url_has_user(cfg->es_url), n;

    if (cfg->es_password && !cfg->es_user) {
        snprintf(err, errlen, "TRACKPIXEL_ES_PASSWORD is set but TRACKPIXEL_ES_USER is not");
        return -1;
    }
    if (cfg->es_user && !cfg->es_password) {
        snprintf(err, errlen, "TRACKPIXEL_ES_USER is set but neither TRACKPIXEL_ES_PASSWORD "
                 "nor TRACKPIXEL_ES_PASSWORD_FILE is");
        return -1;
    }
    n = (cfg->access_key_id != NULL) + (cfg->es_api_key != NULL) + (cfg->es_user != NULL) +
        url_user;
    if (n > 1) {
        snprintf(err, errlen, "more than one authentication is set (%s%s%s%s): keep one",
                 cfg->access_key_id ? " AWS_ACCESS_KEY_ID" : "",
                 cfg->es_api_key ? " TRACKPIXEL_ES_API_KEY" : "",
                 cfg->es_user ? " TRACKPIXEL_ES_USER" : "",
                 url_user ? " user@ in TRACKPIXEL_ES_URL" : "");
        return -1;
    }
    cfg->auth = cfg->signing ? TP_AUTH_AWS : cfg->es_api_key ? TP_AUTH_API_KEY :
                cfg->es_user ? TP_AUTH_BASIC : url_user ? TP_AUTH_URL_BASIC : TP_AUTH_NONE;
    return 0;
}

/* The rules between variables, once all are read. */
static int check_config(tp_config *cfg, char *err, size_t errlen)
{
    if (cfg->max_value < 16 || cfg->max_doc < 4096) {
        snprintf(err, errlen, "%s", cfg->max_value < 16 ?
                 "TRACKPIXEL_MAX_VALUE: must be at least 16" :
                 "TRACKPIXEL_MAX_DOC: must be at least 4096");
        return -1;
    }
    if ((cfg->access_key_id != NULL) != (cfg->secret_access_key != NULL)) {
        snprintf(err, errlen, "%s is set but %s is not",
                 cfg->access_key_id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                 cfg->access_key_id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        return -1;
    }
    return 0;
}

/* Signing: on when AWS credentials are meant to be used (see
 * tp_creds_plan_make); the region from the environment, else the
 * profile's or the URL's, else (at run time) instance metadata. */
static int plan_signing(tp_config *cfg, char *const *envp, char *err, size_t errlen)
{
    tp_creds_plan plan;

    cfg->envp = envp;
    if (!cfg->es_url)
        return 0;
    tp_creds_plan_make(envp, cfg->es_url, &plan);
    cfg->signing = plan.wanted;
    if (!cfg->signing)
        return 0;
    if (!cfg->region && plan.region[0] && !(cfg->region = strdup(plan.region))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cfg->region_from = plan.region_from;
    if (!cfg->region && !plan.imds) {
        snprintf(err, errlen, "AWS_REGION: AWS credentials are to be used but no region is "
                 "known (AWS_REGION, AWS_DEFAULT_REGION, the profile's region, the URL; "
                 "instance metadata is off): requests cannot be signed");
        return -1;
    }
    return 0;
}

/* The rules of the settings that tp_config_load checks last. */
static int check_settings(tp_config *cfg, char *err, size_t errlen)
{
    if (strcmp(cfg->es_ids, "request-id") != 0 && strcmp(cfg->es_ids, "auto") != 0) {
        snprintf(err, errlen, "TRACKPIXEL_ES_IDS: request-id or auto");
        return -1;
    }
    cfg->ids_auto = strcmp(cfg->es_ids, "auto") == 0;
    if (cfg->es_key_file && !cfg->es_cert_file) {
        snprintf(err, errlen, "TRACKPIXEL_ES_KEY_FILE is set but TRACKPIXEL_ES_CERT_FILE is not");
        return -1;
    }
    return check_lists(cfg, err, errlen);
}

/* The first line of the file at path (a secret: never shown), into *dst,
 * for the variable name; -1 with err set. */
static int read_secret_file(const char *name, const char *path, char **dst,
                            char *err, size_t errlen)
{
    char buf[TP_CONFIG_SECRET_FILE_MAX + 1];
    ssize_t n;
    size_t len;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), rc = -1;

    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open %s: %s", name, path, strerror(errno));
        return -1;
    }
    do {
        n = read(fd, buf, sizeof(buf) - 1);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        snprintf(err, errlen, "%s: cannot read %s: %s", name, path, strerror(errno));
        goto done;
    }
    buf[n] = '\0';
    len = strcspn(buf, "\r\n");
    if ((size_t)n == sizeof(buf) - 1 && len == (size_t)n) {
        snprintf(err, errlen, "%s: %s: the first line is longer than %d bytes", name, path,
                 TP_CONFIG_SECRET_FILE_MAX - 1);
        goto done;
    }
    while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        len--;
    if (len == 0) {
        snprintf(err, errlen, "%s: %s: the first line is empty", name, path);
        goto done;
    }
    free(*dst);
    *dst = strndup(buf, len);
    if (!*dst) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    rc = 0;
done:
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    return rc;
}

/* The secrets given as files: each one instead of its variable, not both. */
static int load_secret_files(tp_config *cfg, char *err, size_t errlen)
{
    if (cfg->es_api_key_file && cfg->es_api_key) {
        snprintf(err, errlen, "TRACKPIXEL_ES_API_KEY and TRACKPIXEL_ES_API_KEY_FILE are both "
                 "set: keep one");
        return -1;
    }
    if (cfg->es_password_file && cfg->es_password) {
        snprintf(err, errlen, "TRACKPIXEL_ES_PASSWORD and TRACKPIXEL_ES_PASSWORD_FILE are both "
                 "set: keep one");
        return -1;
    }
    if (cfg->es_api_key_file && read_secret_file("TRACKPIXEL_ES_API_KEY_FILE",
                                                 cfg->es_api_key_file, &cfg->es_api_key,
                                                 err, errlen) < 0)
        return -1;
    if (cfg->es_password_file && read_secret_file("TRACKPIXEL_ES_PASSWORD_FILE",
                                                  cfg->es_password_file, &cfg->es_password,
                                                  err, errlen) < 0)
        return -1;
    return 0;
}

/* The configuration file under envp into cfg->env (and cfg->file). */
static int load_file(tp_config *cfg, char *const *envp, char *err, size_t errlen)
{
    const char *path = tp_env_get(envp, "TRACKPIXEL_CONFIG");
    tp_conffile *cf = calloc(1, sizeof(*cf));
    mode_t mode;

    cfg->file = cf;
    if (!cf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (path && *path && tp_conffile_read(path, 0, cf, &mode, cfg->config_warning,
                                          sizeof(cfg->config_warning), err, errlen) < 0)
        return -1;
    if (!path && tp_conffile_read(TP_CONFIG_DEFAULT_PATH, 1, cf, &mode, cfg->config_warning,
                                  sizeof(cfg->config_warning), err, errlen) < 0)
        return -1;
    cfg->env = tp_conffile_merge(envp, cf);
    if (!cfg->env) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int tp_config_load(tp_config *cfg, char *const *envp, char *err, size_t errlen)
{
    size_t i, n = sizeof(vars) / sizeof(vars[0]);

    memset(cfg, 0, sizeof(*cfg));
    if (load_file(cfg, envp, err, errlen) < 0)
        return -1;
    for (i = 0; i < n; i++) {
        const tp_config_var *v = &vars[i];
        const char *val;
        char *base = (char *)cfg + slots[i].offset;
        int r;

        if (v->kind == TP_CONF_PREFIX) {
            if (load_stage_vars(cfg, cfg->env, err, errlen) < 0)
                return -1;
            continue;
        }
        val = tp_env_get(cfg->env, v->name);
        if (val && !*val && v->def == NULL)
            val = NULL;                  /* VAR= counts as unset */
        if (!val)
            val = v->def;
        if (is_number(v->kind))
            r = load_number(v, val, (long *)(void *)base, err, errlen);
        else
            r = load_string(v, val, slots[i].fallback, (char **)(void *)base, err, errlen);
        if (r < 0)
            return -1;
    }
    if (!((tp_conffile *)cfg->file)->env) {
        free(cfg->config_path);          /* no file was read */
        cfg->config_path = NULL;
    }
    if (load_secret_files(cfg, err, errlen) < 0 || check_config(cfg, err, errlen) < 0 ||
        check_settings(cfg, err, errlen) < 0)
        return -1;
    /* AWS signing only when no other authentication is configured (two are
     * a start error, check_auth says which). */
    if (!cfg->es_api_key && !cfg->es_user && !url_has_user(cfg->es_url) &&
        plan_signing(cfg, cfg->env, err, errlen) < 0)
        return -1;
    if (check_auth(cfg, err, errlen) < 0)
        return -1;
    return load_privacy(cfg, err, errlen);
}

void tp_config_free(tp_config *cfg)
{
    size_t i, n = sizeof(vars) / sizeof(vars[0]);

    for (i = 0; i < n; i++) {
        if (is_number(vars[i].kind) || vars[i].kind == TP_CONF_PREFIX || slots[i].fallback)
            continue;
        free(*(char **)(void *)((char *)cfg + slots[i].offset));
    }
    tp_privacy_free(cfg->privacy);
    for (i = 0; i < cfg->nstage_vars; i++) {
        free(cfg->stage_vars[i].name);
        free(cfg->stage_vars[i].value);
    }
    free(cfg->env);
    if (cfg->file) {
        tp_conffile_free(cfg->file);
        free(cfg->file);
    }
    memset(cfg, 0, sizeof(*cfg));
}

/* The URL with any password replaced by ****. */
static const char *mask_url(const char *url, char *out, size_t outcap)
{
    CURLU *u = curl_url();
    char *pw = NULL, *masked = NULL;

    snprintf(out, outcap, "(unparsable)");
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto fail;
    if (curl_url_get(u, CURLUPART_PASSWORD, &pw, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_PASSWORD, "****", 0) != CURLUE_OK)
        goto fail;
    if (curl_url_get(u, CURLUPART_URL, &masked, 0) != CURLUE_OK)
        goto fail;
    snprintf(out, outcap, "%s", masked);
fail:
    curl_free(pw);
    curl_free(masked);
    curl_url_cleanup(u);
    return out;
}

/* The stage variables as "name=value name=value", or "(none)". */
static const char *show_stage_vars(const tp_config *cfg, char *out, size_t outcap)
{
    size_t o = 0;

    out[0] = '\0';
    for (size_t k = 0; k < cfg->nstage_vars && o < outcap; k++) {
        int w = snprintf(out + o, outcap - o, "%s%s=%s", k ? " " : "",
                         cfg->stage_vars[k].name, cfg->stage_vars[k].value);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (cfg->nstage_vars == 0)
        snprintf(out, outcap, "(none)");
    return out;
}

const char *tp_config_show(const tp_config *cfg, const tp_config_var *var,
                           char *out, size_t outcap)
{
    size_t i = (size_t)(var - vars);
    const char *s;

    if (i >= sizeof(vars) / sizeof(vars[0])) {
        snprintf(out, outcap, "?");
        return out;
    }
    if (var->kind == TP_CONF_PREFIX)
        return show_stage_vars(cfg, out, outcap);
    if (is_number(var->kind)) {
        snprintf(out, outcap, "%ld", *(const long *)(const void *)((const char *)cfg + slots[i].offset));
        return out;
    }
    if (slots[i].fallback) {
        snprintf(out, outcap, "(see AWS_REGION)");
        return out;
    }
    s = *(char *const *)(const void *)((const char *)cfg + slots[i].offset);
    if (!s)
        snprintf(out, outcap, "(unset)");
    else if (var->kind == TP_CONF_URL)
        mask_url(s, out, outcap);
    else if (var->secret && strcmp(var->name, "AWS_ACCESS_KEY_ID") == 0 && strlen(s) > 8)
        snprintf(out, outcap, "****%s", s + strlen(s) - 4);
    else if (var->secret)
        snprintf(out, outcap, "(set, hidden)");
    else
        snprintf(out, outcap, "%s", s);
    return out;
}
