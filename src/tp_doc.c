#include "tp_doc.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp_header.h"
#include "tp_query.h"
#include "tp_utf8.h"

/* The context keys API Gateway's template fills, in its order. */
static const char *const context_keys[] = {
    "account-id", "api-id", "api-key", "authorizer-principal-id", "caller",
    "cognito-authentication-provider", "cognito-authentication-type",
    "cognito-identity-id", "cognito-identity-pool-id", "http-method", "stage",
    "source-ip", "user", "user-agent", "user-arn", "request-id",
    "resource-id", "resource-path",
};

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

typedef struct builder {
    const tp_config *cfg;
    json_object *truncated;    /* array of strings, NULL until needed */
    int oom;
} builder;

static void note_cut(builder *b, const char *what, const char *name, size_t name_len)
{
    json_object *s;
    char *path = NULL;
    size_t wlen = strlen(what);

    if (!b->truncated && !(b->truncated = json_object_new_array())) {
        b->oom = 1;
        return;
    }
    /* The same path is listed once. */
    if (json_object_array_length(b->truncated) >= 64)
        return;
    path = malloc(wlen + 1 + name_len + 1);
    if (!path) {
        b->oom = 1;
        return;
    }
    memcpy(path, what, wlen);
    if (name) {
        path[wlen] = '.';
        memcpy(path + wlen + 1, name, name_len);
        path[wlen + 1 + name_len] = '\0';
    } else {
        path[wlen] = '\0';
    }
    for (size_t i = 0; i < json_object_array_length(b->truncated); i++) {
        if (strcmp(json_object_get_string(json_object_array_get_idx(b->truncated, i)),
                   path) == 0)
            goto done;
    }
    s = json_object_new_string(path);
    if (!s || json_object_array_add(b->truncated, s) != 0) {
        json_object_put(s);
        b->oom = 1;
    }
done:
    free(path);
}

/* A json string of s[0..len), repaired to UTF-8 and cut to max bytes (0: no
 * limit).  *cut says whether it was cut.  NULL when out of memory. */
static json_object *clean_string(const char *s, size_t len, size_t max, int *cut)
{
    json_object *o;
    char *fixed;
    size_t flen;

    *cut = 0;
    if ((max == 0 || len <= max) && tp_utf8_valid(s, len))
        return json_object_new_string_len(s, (int)len);
    fixed = tp_utf8_repair_dup(s, len, max, &flen, cut);
    if (!fixed)
        return NULL;
    o = json_object_new_string_len(fixed, (int)flen);
    free(fixed);
    return o;
}

/*
 * A name (query parameter, header) as an object key: repaired to UTF-8 and
 * cut to max bytes like a value, and a NUL byte becomes U+FFFD too: json-c
 * keys are C strings, so "a%00b" would silently become "a" and "%00" the
 * empty name, which Elasticsearch refuses (the whole document with it).
 * Returns a malloc'd string or NULL when out of memory.
 */
static char *clean_name(const char *name, size_t len, size_t max, size_t *klen, int *cut)
{
    char *tmp = NULL, *key;
    size_t i, nuls = 0, o = 0;

    for (i = 0; i < len; i++)
        nuls += name[i] == '\0';
    if (!nuls)
        return tp_utf8_repair_dup(name, len, max, klen, cut);
    tmp = malloc(len + 2 * nuls);
    if (!tmp)
        return NULL;
    for (i = 0; i < len; i++) {
        if (name[i] == '\0') {
            memcpy(tmp + o, "\xEF\xBF\xBD", 3);
            o += 3;
        } else {
            tmp[o++] = name[i];
        }
    }
    key = tp_utf8_repair_dup(tmp, o, max, klen, cut);
    free(tmp);
    return key;
}

/* Add key (repaired, cut) -> string value (repaired, cut) to obj; the last
 * value of a repeated key wins.  what is the path used in "truncated". */
static int add_pair(builder *b, json_object *obj, const char *what,
                    const char *name, size_t name_len,
                    const char *value, size_t value_len)
{
    json_object *v = NULL;
    char *key = NULL;
    size_t klen;
    int kcut = 0, vcut = 0, rc = -1;

    key = clean_name(name, name_len, (size_t)b->cfg->max_value, &klen, &kcut);
    if (!key)
        goto fail;
    v = clean_string(value, value_len, (size_t)b->cfg->max_value, &vcut);
    if (!v)
        goto fail;
    if (json_object_object_add(obj, key, v) != 0)
        goto fail;
    v = NULL;
    if (kcut || vcut)
        note_cut(b, what, key, klen);
    rc = 0;
fail:
    json_object_put(v);
    free(key);
    if (rc < 0)
        b->oom = 1;
    return rc;
}

typedef struct query_ctx {
    builder *b;
    json_object *obj;
    int full;
} query_ctx;

static int query_pair(void *ctx, const char *name, size_t nlen,
                      const char *value, size_t vlen)
{
    query_ctx *q = ctx;
    json_object *existing;
    char *key;
    int known;

    if ((long)json_object_object_length(q->obj) >= q->b->cfg->max_params) {
        /* A repeat of a kept name still wins; new names are cut. */
        key = clean_name(name, nlen, (size_t)q->b->cfg->max_value, NULL, NULL);
        if (!key)
            return -1;
        known = json_object_object_get_ex(q->obj, key, &existing);
        free(key);
        if (!known) {
            q->full = 1;
            return 0;
        }
    }
    return add_pair(q->b, q->obj, "params.querystring", name, nlen, value, vlen);
}

static json_object *build_querystring(builder *b, const char *qs)
{
    query_ctx q = { b, json_object_new_object(), 0 };

    if (!q.obj)
        return NULL;
    if (tp_query_each(qs, query_pair, &q) < 0) {
        json_object_put(q.obj);
        return NULL;
    }
    if (q.full)
        note_cut(b, "params.querystring", NULL, 0);
    return q.obj;
}

static json_object *build_headers(builder *b, char *const *envp)
{
    json_object *obj = json_object_new_object();
    char name[512];
    int full = 0;

    if (!obj)
        return NULL;
    for (; envp && *envp; envp++) {
        const char *e = *envp, *eq = strchr(e, '=');
        long nlen;

        if (!eq)
            continue;
        nlen = tp_header_name(e, (size_t)(eq - e), name, sizeof(name));
        if (nlen == 0)
            continue;
        if (nlen < 0) {
            /* A name longer than any real header: not recorded, but said. */
            note_cut(b, "params.header", NULL, 0);
            continue;
        }
        if ((long)json_object_object_length(obj) >= b->cfg->max_headers) {
            /* A repeat of a kept name still wins: look it up as stored. */
            char *key = clean_name(name, (size_t)nlen, (size_t)b->cfg->max_value, NULL, NULL);
            int known;

            if (!key) {
                json_object_put(obj);
                return NULL;
            }
            known = json_object_object_get_ex(obj, key, NULL);
            free(key);
            if (!known) {
                full = 1;
                continue;
            }
        }
        if (add_pair(b, obj, "params.header", name, (size_t)nlen, eq + 1, strlen(eq + 1)) < 0) {
            json_object_put(obj);
            return NULL;
        }
    }
    if (full)
        note_cut(b, "params.header", NULL, 0);
    return obj;
}

static json_object *build_path(builder *b, const char *path_info)
{
    json_object *obj = json_object_new_object();

    if (!obj)
        return NULL;
    if (path_info && *path_info) {
        if (*path_info == '/')
            path_info++;
        if (add_pair(b, obj, "params.path", "proxy", 5, path_info, strlen(path_info)) < 0) {
            json_object_put(obj);
            return NULL;
        }
    }
    return obj;
}

/*
 * Elasticsearch refuses a whole document for things json-c lets through, so
 * a body holding one is treated like invalid JSON (body-json is {}):
 *  - NaN and Infinity (json-c reads them even in strict mode, and writes them
 *    back), and numbers too large for a double (1e999 reads as infinity);
 *  - integers above 2^63-1 (json-c keeps them as unsigned, or clamps them to
 *    2^64-1 without a word; Elasticsearch's long refuses them);
 *  - a field name that is empty (json-c cuts "\u0000..." keys at the NUL),
 *    only whitespace, or whose dots leave an empty or blank part (".a",
 *    "a..b", "a.": "object field starting or ending with a [.]");
 *  - objects nested past index.mapping.depth.limit (20), counting each
 *    dotted part of a name as a level, as Elasticsearch does.
 */
#define ES_MAPPING_DEPTH 20

static int blank(unsigned char c)
{
    return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
}

/* Number of dots in an acceptable field name, or -1 when ES refuses it. */
static int es_name_dots(const char *k)
{
    int dots = 0, text = 0;

    for (;; k++) {
        if (*k == '.' || *k == '\0') {
            if (!text)
                return -1;             /* empty or blank part (or name) */
            if (*k == '\0')
                return dots;
            dots++;
            text = 0;
        } else if (!blank((unsigned char)*k)) {
            text = 1;
        }
    }
}

/* levels: path parts of the object holding o ("body-json" is 1). */
static int es_acceptable(json_object *o, int levels)
{
    switch (json_object_get_type(o)) {
    case json_type_double:
        return isfinite(json_object_get_double(o));
    case json_type_int:
        return !(json_object_get_int64(o) == INT64_MAX &&
                 json_object_get_uint64(o) > (uint64_t)INT64_MAX);
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(o); i++)
            if (!es_acceptable(json_object_array_get_idx(o, i), levels))
                return 0;
        return 1;
    case json_type_object: {
        /* An object's depth is its number of path parts plus one. */
        if (levels + 1 > ES_MAPPING_DEPTH)
            return 0;
        json_object_object_foreach(o, k, v) {
            int dots = es_name_dots(k);
            /* "a.b.c": a and a.b are objects at levels + 1 and + 2 */
            if (dots < 0 || (dots > 0 && levels + dots + 1 > ES_MAPPING_DEPTH) ||
                !es_acceptable(v, levels + dots + 1))
                return 0;
        }
        return 1;
    }
    default:
        return 1;
    }
}

/*
 * RFC 8259 JSON, strictly, as Elasticsearch's parser reads it.  json-c's
 * strict mode still takes things that are not JSON: single-quoted names
 * ({'a':1}), raw control characters in strings, NaN and Infinity, and "1."
 * -- which it keeps as text and writes back, so the document would then be
 * refused whole for a json_parse_exception.  A body that is not JSON is {}.
 * Nesting deeper than BODY_DEPTH is refused here too (json-c's limit).
 */
#define BODY_DEPTH 32

typedef struct jscan {
    const char *p, *end;
} jscan;

static void jws(jscan *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int jdigits(jscan *j)
{
    const char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start;
}

static int jhex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int jstring(jscan *j)
{
    j->p++;                                   /* the opening quote */
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            return 1;
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            if (j->p >= j->end)
                return 0;
            c = (unsigned char)*j->p++;
            if (c == 'u') {
                if (j->end - j->p < 4 || !jhex(j->p[0]) || !jhex(j->p[1]) ||
                    !jhex(j->p[2]) || !jhex(j->p[3]))
                    return 0;
                j->p += 4;
            } else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
                return 0;
            }
        }
    }
    return 0;
}

static int jliteral(jscan *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

static int jvalue(jscan *j, int depth)
{
    if (j->p >= j->end)
        return 0;
    switch (*j->p) {
    case '{':
    case '[': {
        char close = *j->p == '{' ? '}' : ']';
        int object = close == '}';
        if (depth >= BODY_DEPTH)
            return 0;
        j->p++;
        jws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return 1;
        }
        for (;;) {
            if (object) {
                if (j->p >= j->end || *j->p != '"' || !jstring(j))
                    return 0;
                jws(j);
                if (j->p >= j->end || *j->p++ != ':')
                    return 0;
                jws(j);
            }
            if (!jvalue(j, depth + 1))
                return 0;
            jws(j);
            if (j->p >= j->end)
                return 0;
            if (*j->p == close) {
                j->p++;
                return 1;
            }
            if (*j->p++ != ',')
                return 0;
            jws(j);
        }
    }
    case '"':
        return jstring(j);
    case 't':
        return jliteral(j, "true");
    case 'f':
        return jliteral(j, "false");
    case 'n':
        return jliteral(j, "null");
    default:
        if (*j->p == '-')
            j->p++;
        if (j->p < j->end && *j->p == '0')
            j->p++;
        else if (!jdigits(j))
            return 0;
        if (j->p < j->end && *j->p == '.') {
            j->p++;
            if (!jdigits(j))
                return 0;
        }
        if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
            j->p++;
            if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
                j->p++;
            if (!jdigits(j))
                return 0;
        }
        return 1;
    }
}

/* 1 when s[0..len) is one JSON value with nothing but whitespace around. */
static int json_strict(const char *s, size_t len)
{
    jscan j = { s, s + len };

    jws(&j);
    if (!jvalue(&j, 0))
        return 0;
    jws(&j);
    return j.p == j.end;
}

/* 0 when cl is a decimal length other than len; 1 when it is len, or is
 * missing or not a number (nothing to compare with). */
static int declared_length_matches(const char *cl, size_t len)
{
    unsigned long long n = 0;

    if (!cl || !*cl)
        return 1;
    for (; *cl; cl++) {
        if (*cl < '0' || *cl > '9' || n > (~0ULL - 9) / 10)
            return 1;
        n = n * 10 + (unsigned)(*cl - '0');
    }
    return n == (unsigned long long)len;
}

static json_object *build_body(builder *b, const tp_doc_input *in, const char *method)
{
    json_object *parsed = NULL;
    char *fixed = NULL;
    size_t flen;

    if (!method || strcmp(method, "POST") != 0)
        return json_object_new_object();
    if (!declared_length_matches(tp_env_get(in->envp, "CONTENT_LENGTH"),
                                 in->body ? in->body_len : 0)) {
        /* FastCGI 6.2: a body of another length than CONTENT_LENGTH is not
         * the request's body (the client stopped, or sent more). */
        note_cut(b, "body-json", NULL, 0);
        return json_object_new_object();
    }
    if (!in->body || in->body_len == 0)
        return json_object_new_object();
    if (!in->body_complete || in->body_len > (size_t)b->cfg->max_body) {
        note_cut(b, "body-json", NULL, 0);
        return json_object_new_object();
    }
    /* Invalid UTF-8 inside strings becomes U+FFFD before parsing, so the
     * body's other fields survive. */
    fixed = tp_utf8_repair_dup(in->body, in->body_len, 0, &flen, NULL);
    if (fixed && json_strict(fixed, flen)) {
        json_tokener *tok = json_tokener_new_ex(BODY_DEPTH);
        if (tok) {
            json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
            parsed = json_tokener_parse_ex(tok, fixed, (int)flen);
            if (json_tokener_get_error(tok) != json_tokener_success) {
                json_object_put(parsed);
                parsed = NULL;
            }
            json_tokener_free(tok);
        }
    }
    free(fixed);
    if (parsed && json_object_is_type(parsed, json_type_object) &&
        es_acceptable(parsed, 1))
        return parsed;
    json_object_put(parsed);
    return json_object_new_object();
}

int tp_doc_rfc3339(struct timespec t, char *out, size_t outcap)
{
    struct tm tm;
    int n;

    if (!gmtime_r(&t.tv_sec, &tm))
        return -1;
    n = snprintf(out, outcap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, t.tv_nsec / 1000000L);
    return (n < 0 || (size_t)n >= outcap) ? -1 : 0;
}

/* obj[key] = new string; NULL val is "".  Values from the request are cut
 * to max_value; our own (request-id, configuration) are not. */
static int put_string(builder *b, json_object *obj, const char *key, const char *val,
                      int from_request)
{
    int cut = 0;
    json_object *v;

    if (!val)
        val = "";
    v = clean_string(val, strlen(val), from_request ? (size_t)b->cfg->max_value : 0, &cut);
    /* key is one of context_keys: a literal, and new in ctx. */
    if (!v || json_object_object_add_ex(obj, key, v, JSON_C_OBJECT_ADD_KEY_IS_NEW |
                                        JSON_C_OBJECT_ADD_CONSTANT_KEY) != 0) {
        json_object_put(v);
        b->oom = 1;
        return -1;
    }
    if (cut)
        note_cut(b, "context", key, strlen(key));
    return 0;
}

static json_object *build_context(builder *b, const tp_doc_input *in)
{
    json_object *ctx = json_object_new_object();
    size_t i;

    if (!ctx)
        return NULL;
    for (i = 0; i < sizeof(context_keys) / sizeof(context_keys[0]); i++) {
        const char *k = context_keys[i], *v = "";
        int from_request = 1;

        if (strcmp(k, "http-method") == 0)
            v = tp_env_get(in->envp, "REQUEST_METHOD");
        else if (strcmp(k, "stage") == 0)
            v = b->cfg->stage, from_request = 0;
        else if (strcmp(k, "api-id") == 0)
            v = b->cfg->api_id, from_request = 0;
        else if (strcmp(k, "source-ip") == 0)
            v = tp_env_get(in->envp, "REMOTE_ADDR");
        else if (strcmp(k, "user") == 0)
            v = tp_env_get(in->envp, "REMOTE_USER");
        else if (strcmp(k, "user-agent") == 0)
            v = tp_env_get(in->envp, "HTTP_USER_AGENT");
        else if (strcmp(k, "request-id") == 0)
            v = in->request_id, from_request = 0;
        else if (strcmp(k, "resource-path") == 0)
            v = tp_env_get(in->envp, "SCRIPT_NAME");
        if (put_string(b, ctx, k, v, from_request) < 0) {
            json_object_put(ctx);
            return NULL;
        }
    }
    return ctx;
}

static json_object *build_stage_vars(builder *b)
{
    json_object *obj = json_object_new_object();
    size_t i;

    if (!obj)
        return NULL;
    for (i = 0; i < b->cfg->nstage_vars; i++) {
        const tp_stage_var *sv = &b->cfg->stage_vars[i];
        if (add_pair(b, obj, "stage-variables", sv->name, strlen(sv->name),
                     sv->value, strlen(sv->value)) < 0) {
            json_object_put(obj);
            return NULL;
        }
    }
    return obj;
}

/* Add child to parent under key; child is consumed either way.  key is a
 * literal that parent does not have yet: json-c neither copies it nor looks
 * it up. */
static int attach(builder *b, json_object *parent, const char *key, json_object *child)
{
    if (!child || json_object_object_add_ex(parent, key, child, JSON_C_OBJECT_ADD_KEY_IS_NEW |
                                            JSON_C_OBJECT_ADD_CONSTANT_KEY) != 0) {
        json_object_put(child);
        b->oom = 1;
        return -1;
    }
    return 0;
}

json_object *tp_doc_build(const tp_config *cfg, const tp_doc_input *in,
                          char *err, size_t errlen)
{
    builder b = { cfg, NULL, 0 };
    json_object *doc = NULL, *params = NULL;
    const char *method = tp_env_get(in->envp, "REQUEST_METHOD");
    char ts[32];
    int64_t ms;

    doc = json_object_new_object();
    params = json_object_new_object();
    if (!doc || !params)
        goto fail;

    if (attach(&b, doc, "body-json", build_body(&b, in, method)) < 0)
        goto fail;
    if (attach(&b, params, "path", build_path(&b, tp_env_get(in->envp, "PATH_INFO"))) < 0 ||
        attach(&b, params, "querystring",
               build_querystring(&b, tp_env_get(in->envp, "QUERY_STRING"))) < 0 ||
        attach(&b, params, "header", build_headers(&b, in->envp)) < 0)
        goto fail;
    if (attach(&b, doc, "params", params) < 0) {
        params = NULL;
        goto fail;
    }
    params = NULL;
    if (attach(&b, doc, "stage-variables", build_stage_vars(&b)) < 0 ||
        attach(&b, doc, "context", build_context(&b, in)) < 0)
        goto fail;

    ms = (int64_t)in->now.tv_sec * 1000 + in->now.tv_nsec / 1000000L;
    if (tp_doc_rfc3339(in->now, ts, sizeof(ts)) < 0)
        goto fail;
    if (attach(&b, doc, "date", json_object_new_int64(ms)) < 0 ||
        attach(&b, doc, "@timestamp", json_object_new_string(ts)) < 0)
        goto fail;
    if (b.oom)
        goto fail;
    if (b.truncated) {
        if (attach(&b, doc, "truncated", b.truncated) < 0) {
            b.truncated = NULL;
            goto fail;
        }
        b.truncated = NULL;
    }
    return doc;

fail:
    snprintf(err, errlen, "out of memory building the document");
    json_object_put(b.truncated);
    json_object_put(params);
    json_object_put(doc);
    return NULL;
}

/* The context values that come from the request (the rest are ours). */
static const char *const context_from_request[] = {
    "http-method", "source-ip", "user", "user-agent", "resource-path",
};

/*
 * Cut doc.<parent>.<key>: an object becomes {}; for "context", the values
 * from the request become "".  "truncated" then lists label once, and loses
 * the entries under it ("params.querystring.<name>" once the whole query
 * string is gone): they name what is no longer there, and a long list of
 * long names could otherwise keep the document too large by itself.
 * Returns 1 when something was cut, 0 when there was nothing to cut, -1 when
 * out of memory.
 */
static int cut_member(json_object *doc, const char *parent, const char *key,
                      const char *label)
{
    json_object *p = doc, *tr = NULL, *m = NULL, *fresh = NULL, *kept = NULL;
    size_t i, llen = strlen(label);
    int cut = 0;

    if (parent && !json_object_object_get_ex(doc, parent, &p))
        return 0;
    if (!json_object_object_get_ex(p, key, &m))
        return 0;
    if (strcmp(label, "context") == 0) {
        for (i = 0; i < sizeof(context_from_request) / sizeof(context_from_request[0]); i++) {
            json_object *v;
            if (json_object_object_get_ex(m, context_from_request[i], &v) &&
                json_object_get_string_len(v) > 0) {
                fresh = json_object_new_string("");
                if (!fresh || json_object_object_add(m, context_from_request[i], fresh) != 0)
                    goto oom;
                fresh = NULL;
                cut = 1;
            }
        }
    } else if (!json_object_is_type(m, json_type_object) || json_object_object_length(m) > 0) {
        fresh = json_object_new_object();
        if (!fresh || json_object_object_add(p, key, fresh) != 0)
            goto oom;
        fresh = NULL;
        cut = 1;
    }
    if (!cut)
        return 0;

    /* "truncated": drop label and the entries under it, then add label. */
    kept = json_object_new_array();
    if (!kept)
        goto oom;
    if (json_object_object_get_ex(doc, "truncated", &tr)) {
        for (i = 0; i < json_object_array_length(tr); i++) {
            json_object *e = json_object_array_get_idx(tr, i);
            const char *t = json_object_get_string(e);
            if (strcmp(t, label) == 0 || (strncmp(t, label, llen) == 0 && t[llen] == '.'))
                continue;
            if (json_object_array_add(kept, json_object_get(e)) != 0) {
                json_object_put(e);
                goto oom;
            }
        }
    }
    fresh = json_object_new_string(label);
    if (!fresh || json_object_array_add(kept, fresh) != 0)
        goto oom;
    fresh = NULL;
    if (json_object_object_add(doc, "truncated", kept) != 0)
        goto oom;
    return 1;
oom:
    json_object_put(fresh);
    json_object_put(kept);
    return -1;
}

const char *tp_doc_serialize(const tp_config *cfg, json_object *doc, size_t *len)
{
    /* In this order until the document fits.  The context goes last, and only
     * when max_doc is small next to max_value: with the defaults everything
     * else cut leaves at most about 150 KiB (six values of 4 KiB each, every
     * byte a control character written as \u00XX) under the 256 KiB limit. */
    static const struct { const char *parent, *key, *label; } cuts[] = {
        { NULL, "body-json", "body-json" },
        { "params", "querystring", "params.querystring" },
        { "params", "header", "params.header" },
        { "params", "path", "params.path" },
        { NULL, "context", "context" },
    };
    const char *s;
    size_t i = 0;

    for (;;) {
        s = json_object_to_json_string_length(doc, JSON_FLAGS, len);
        if (!s)
            return NULL;
        if (*len <= (size_t)cfg->max_doc)
            return s;
        /* Only our configuration's own strings (stage variables) are left
         * when every cut is made: they alone exceed max_doc. */
        for (;;) {
            int r;
            if (i == sizeof(cuts) / sizeof(cuts[0]))
                return NULL;
            r = cut_member(doc, cuts[i].parent, cuts[i].key, cuts[i].label);
            i++;
            if (r < 0)
                return NULL;
            if (r > 0)
                break;
        }
    }
}
