#include "tp_config.h"

#include "tp_creds.h"

#include <curl/curl.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    { "TRACKPIXEL_ES_INDEX", TP_CONF_INDEX, "events", 0,
      "index the documents are created in" },
    { "TRACKPIXEL_ES_TYPE", TP_CONF_INDEX, NULL, 0,
      "document type, for clusters before 7.x only (e.g. event)" },
    { "TRACKPIXEL_AWS_SERVICE", TP_CONF_STRING, "es", 0,
      "SigV4 service name: es, or aoss for OpenSearch Serverless" },
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
    { "TRACKPIXEL_OUTPUT", TP_CONF_STRING, "events.ndjson", 0,
      "file the documents are appended to in _bulk format when TRACKPIXEL_ES_URL is unset" },
    { "TRACKPIXEL_SPOOL_DIR", TP_CONF_STRING, "/var/spool/trackpixel", 0,
      "directory of the journal and dead letters (must be writable by the worker); empty: no journal, failed documents are dropped" },
    { "TRACKPIXEL_SPOOL_MAX_MB", TP_CONF_COUNT, "1024", 0,
      "spool size limit in MiB; when full, new documents are dropped (and counted)" },
    { "TRACKPIXEL_SPOOL_FSYNC", TP_CONF_BOOL, "0", 0,
      "1: fdatasync the journal after each append (survives power loss, costs a disk flush per hit)" },
    { "TRACKPIXEL_SHUTDOWN_MS", TP_CONF_MS, "3000", 0,
      "at SIGTERM, how long pending documents are tried before exiting, milliseconds" },
    { "TRACKPIXEL_SLOW_MS", TP_CONF_MS, "50", 0,
      "a cluster answer slower than this, milliseconds, makes a worker leave the next hits to its delivery thread (in _bulk batches) until answers are fast again" },
    { "TRACKPIXEL_BULK_MAX_KB", TP_CONF_COUNT, "512", 0,
      "largest _bulk request the delivery thread sends, KiB; keep it under the body limit of any proxy before the cluster (a 413 answer halves it)" },
    { "TRACKPIXEL_BODY_TIMEOUT_MS", TP_CONF_MS, "5000", 0,
      "read deadline for a POST body, milliseconds; a slower body is recorded as cut" },
    { "TRACKPIXEL_STAGE", TP_CONF_STRING, "prod", 0,
      "context.stage of every document" },
    { "TRACKPIXEL_STAGE_VAR_<name>", TP_CONF_PREFIX, NULL, 0,
      "each one becomes stage-variables.<name> of every document" },
    { "TRACKPIXEL_API_ID", TP_CONF_STRING, "", 0,
      "context.api-id of every document" },
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
};

/* Parallel to vars[]. */
static const slot slots[] = {
    S(es_url), S(es_index), S(es_type), S(aws_service),
    S(region), { offsetof(tp_config, region), 1 },
    S(access_key_id), S(secret_access_key), S(session_token), S(aws_profile),
    S(connect_timeout_ms), S(timeout_ms), S(output),
    S(spool_dir), S(spool_max_mb), S(spool_fsync), S(shutdown_ms), S(slow_ms), S(bulk_max_kb),
    S(body_timeout_ms),
    S(stage), NONE, S(api_id),
    S(max_params), S(max_headers), S(max_value), S(max_body), S(max_doc),
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
    return kind == TP_CONF_MS || kind == TP_CONF_COUNT || kind == TP_CONF_BOOL;
}

/* A number variable from val, within its kind's range, into *dst. */
static int load_number(const tp_config_var *v, const char *val, long *dst,
                       char *err, size_t errlen)
{
    long min = v->kind == TP_CONF_BOOL ? 0 : 1;
    long max = v->kind == TP_CONF_MS ? 3600000L : v->kind == TP_CONF_BOOL ? 1 : (1L << 30);

    if (parse_long(val, min, max, dst) < 0) {
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
    free(*dst);
    *dst = strdup(val);
    if (!*dst) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
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

int tp_config_load(tp_config *cfg, char *const *envp, char *err, size_t errlen)
{
    size_t i, n = sizeof(vars) / sizeof(vars[0]);

    memset(cfg, 0, sizeof(*cfg));
    for (i = 0; i < n; i++) {
        const tp_config_var *v = &vars[i];
        const char *val;
        char *base = (char *)cfg + slots[i].offset;
        int r;

        if (v->kind == TP_CONF_PREFIX) {
            if (load_stage_vars(cfg, envp, err, errlen) < 0)
                return -1;
            continue;
        }
        val = tp_env_get(envp, v->name);
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
    if (check_config(cfg, err, errlen) < 0)
        return -1;
    return plan_signing(cfg, envp, err, errlen);
}

void tp_config_free(tp_config *cfg)
{
    size_t i, n = sizeof(vars) / sizeof(vars[0]);

    for (i = 0; i < n; i++) {
        if (is_number(vars[i].kind) || vars[i].kind == TP_CONF_PREFIX || slots[i].fallback)
            continue;
        free(*(char **)(void *)((char *)cfg + slots[i].offset));
    }
    for (i = 0; i < cfg->nstage_vars; i++) {
        free(cfg->stage_vars[i].name);
        free(cfg->stage_vars[i].value);
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
