#include "tp_doc.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "tp_header.h"
#include "tp_hex.h"
#include "tp_json.h"
#include "tp_privacy.h"
#include "tp_query.h"
#include "tp_utf8.h"

/* The context keys API Gateway's template fills, in its order (none needs
 * escaping in JSON). */
#define KEY(s) { s, sizeof(s) - 1 }
static const struct {
    const char *name;
    size_t len;
} context_keys[] = {
    KEY("account-id"), KEY("api-id"), KEY("api-key"), KEY("authorizer-principal-id"),
    KEY("caller"), KEY("cognito-authentication-provider"), KEY("cognito-authentication-type"),
    KEY("cognito-identity-id"), KEY("cognito-identity-pool-id"), KEY("http-method"),
    KEY("stage"), KEY("source-ip"), KEY("user"), KEY("user-agent"), KEY("user-arn"),
    KEY("request-id"), KEY("resource-id"), KEY("resource-path"),
};
#undef KEY
#define NCTX (sizeof(context_keys) / sizeof(context_keys[0]))
enum { CTX_API_ID = 1, CTX_HTTP_METHOD = 9, CTX_STAGE = 10, CTX_SOURCE_IP = 11,
       CTX_USER = 12, CTX_USER_AGENT = 13, CTX_REQUEST_ID = 15, CTX_RESOURCE_PATH = 17 };

/* How json-c prints the POST body (the rest is written by tp_json, alike). */
#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* "truncated" lists at most this many paths (then the labels of the cuts
 * that make the document fit, at most 5). */
#define TRUNC_MAX 64

/* A string of the document: bytes [off, off + len) of the arena. */
typedef struct span {
    size_t off, len;
} span;

typedef struct pair {
    span k, v;
    uint32_t h;                 /* hash of k */
} pair;

/* An object of string members in insertion order; a repeated name keeps
 * its place and takes the last value (as a JSON object read back would).  Names
 * are found through an open-addressing index (a query string can repeat a
 * name thousands of times). */
typedef struct pairs {
    pair *p;
    size_t n, cap;
    uint32_t *slot;             /* 1 + index into p, 0: free; 2 * cap of them */
} pairs;

/* A released document's arena, out and four member arrays are kept for the
 * next one and everything else is zeroed (doc_new, tp_doc_free): a member
 * added here that owns memory must be freed in tp_doc_free before the
 * document is kept. */
struct tp_doc {
    tp_buf arena;               /* every string, repaired and cut */
    span body;                  /* body-json as JSON text          */
    int body_empty;             /* body-json is {}                 */
    pairs path, query, header, stage;
    span ctx[NCTX];
    tp_agent agent;
    int64_t ms;
    char ts[32];
    span trunc[TRUNC_MAX + 8];
    size_t ntrunc;
    int gpc;                    /* anonymized for Sec-GPC / DNT: "privacy":"gpc" */
    tp_buf out;                 /* the serialized text */
};

/* The CGI variables the document reads, found in one pass over envp. */
typedef struct cgi_vars {
    const char *method, *path_info, *query, *content_length, *remote_addr,
               *remote_user, *user_agent, *script_name, *xff, *forwarded, *sec_gpc, *dnt,
               *sec_purpose, *purpose, *x_moz;
} cgi_vars;

typedef struct builder {
    const tp_config *cfg;
    tp_doc *d;
    cgi_vars v;
    tp_privacy_hit priv;        /* what the privacy settings keep of this hit */
    tp_buf hval;                /* a header's value as the privacy settings rewrote it */
} builder;

/* The variables read_cgi_vars looks for, HTTP_ ones by the rest of their
 * name; a variable is compared (memcmp) only with names of its length. */
typedef struct cgi_want {
    const char *name;               /* with its '=' */
    size_t len;                     /* of name */
    size_t off;                     /* of its slot in cgi_vars */
} cgi_want;

#define WANT(name, field) { name "=", sizeof(name "=") - 1, offsetof(cgi_vars, field) }

static const cgi_want want_plain[] = {
    WANT("REQUEST_METHOD", method), WANT("PATH_INFO", path_info),
    WANT("QUERY_STRING", query), WANT("CONTENT_LENGTH", content_length),
    WANT("REMOTE_ADDR", remote_addr), WANT("REMOTE_USER", remote_user),
    WANT("SCRIPT_NAME", script_name),
};

/* After "HTTP_". */
static const cgi_want want_http[] = {
    WANT("USER_AGENT", user_agent), WANT("X_FORWARDED_FOR", xff),
    WANT("FORWARDED", forwarded), WANT("SEC_GPC", sec_gpc), WANT("DNT", dnt),
    WANT("SEC_PURPOSE", sec_purpose), WANT("PURPOSE", purpose), WANT("X_MOZ", x_moz),
};

#undef WANT

/* Fill the slot of e's variable (its name and '=' are the first len bytes)
 * if it is one of want[0..n) and the first. */
static void want_var(cgi_vars *v, const cgi_want *want, size_t n, const char *e, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (want[i].len == len && e[0] == want[i].name[0] && memcmp(e, want[i].name, len) == 0) {
            const char **slot = (const char **)(void *)((char *)v + want[i].off);
            if (!*slot)
                *slot = e + len;
            return;
        }
    }
}

/* As tp_env_get for each of them (the first NAME= wins), in one pass. */
static void read_cgi_vars(char *const *envp, cgi_vars *v)
{
    memset(v, 0, sizeof(*v));
    for (; envp && *envp; envp++) {
        const char *e = *envp, *eq = strchr(e, '=');
        size_t len;

        if (!eq)
            continue;
        len = (size_t)(eq - e) + 1;
        if (len > 5 && memcmp(e, "HTTP_", 5) == 0)
            want_var(v, want_http, sizeof(want_http) / sizeof(want_http[0]), e + 5, len - 5);
        else
            want_var(v, want_plain, sizeof(want_plain) / sizeof(want_plain[0]), e, len);
    }
}

static const char *at(const tp_doc *d, span s)
{
    return d->arena.data + s.off;
}

static int span_eq(const tp_doc *d, span a, const char *s, size_t n)
{
    return a.len == n && memcmp(at(d, a), s, n) == 0;
}

/* Copy s[0..n) into the arena. */
static span keep(tp_doc *d, const char *s, size_t n)
{
    span r = { d->arena.len, 0 };

    tp_buf_put(&d->arena, s, n);
    if (!d->arena.oom)
        r.len = n;
    return r;
}

/* s[0..len) repaired to UTF-8 and cut to max bytes (0: no limit) into the
 * arena; *cut says whether it was cut. */
static span clean_string(tp_doc *d, const char *s, size_t len, size_t max, int *cut)
{
    span r = { d->arena.len, 0 };
    size_t cap, used = 0;

    *cut = 0;
    if ((max == 0 || len <= max) && tp_utf8_valid(s, len))
        return keep(d, s, len);
    cap = len > (size_t)-1 / 3 ? len : 3 * len;
    if (max && cap > max)
        cap = max;
    if (tp_buf_reserve(&d->arena, cap) < 0)
        return r;
    r.len = tp_utf8_repair(s, len, d->arena.data + r.off, cap, &used);
    d->arena.len += r.len;
    d->arena.data[d->arena.len] = '\0';
    *cut = used < len;
    return r;
}

/*
 * A name (query parameter, header) as an object key: repaired to UTF-8 and
 * cut to max bytes like a value, and a NUL byte becomes U+FFFD too: a name
 * "a%00b" must not end at the NUL (and "%00" be the empty name, which
 * Elasticsearch refuses, the whole document with it).
 */
static span clean_name(tp_doc *d, const char *name, size_t len, size_t max, int *cut)
{
    char *tmp;
    size_t i, nuls = 0, o = 0;
    span r = { d->arena.len, 0 };

    if (!memchr(name, '\0', len))
        return clean_string(d, name, len, max, cut);
    for (i = 0; i < len; i++)
        nuls += name[i] == '\0';
    tmp = malloc(len + 2 * nuls);
    if (!tmp) {
        d->arena.oom = 1;
        return r;
    }
    for (i = 0; i < len; i++) {
        if (name[i] == '\0') {
            memcpy(tmp + o, "\xEF\xBF\xBD", 3);
            o += 3;
        } else {
            tmp[o++] = name[i];
        }
    }
    r = clean_string(d, tmp, o, max, cut);
    free(tmp);
    return r;
}

/* FNV-1a. */
static uint32_t hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The slot of the member named like k (hash h), or of the free slot where
 * it would go. */
static size_t slot_of(const tp_doc *d, const pairs *ps, span k, uint32_t h)
{
    size_t mask = 2 * ps->cap - 1, i = h & mask;

    while (ps->slot[i]) {
        const pair *p = &ps->p[ps->slot[i] - 1];
        if (p->h == h && span_eq(d, p->k, at(d, k), k.len))
            break;
        i = (i + 1) & mask;
    }
    return i;
}

/* Index of the member named like k, or -1. */
static long find(const tp_doc *d, const pairs *ps, span k)
{
    size_t i;

    if (!ps->n)
        return -1;
    i = slot_of(d, ps, k, hash(at(d, k), k.len));
    return ps->slot[i] ? (long)ps->slot[i] - 1 : -1;
}

/* Room for one more member: the array and its index doubled. */
static int grow(tp_doc *d, pairs *ps)
{
    size_t cap = ps->cap ? 2 * ps->cap : 16;
    pair *np;
    uint32_t *ns;

    if (cap > UINT32_MAX / 4)
        goto oom;
    np = realloc(ps->p, cap * sizeof(*np));
    if (!np)
        goto oom;
    ps->p = np;
    ns = calloc(2 * cap, sizeof(*ns));
    if (!ns)
        goto oom;
    free(ps->slot);
    ps->slot = ns;
    ps->cap = cap;
    for (size_t i = 0; i < ps->n; i++)
        ps->slot[slot_of(d, ps, ps->p[i].k, ps->p[i].h)] = (uint32_t)(i + 1);
    return 0;
oom:
    d->arena.oom = 1;
    return -1;
}

/* "what" or "what.name" into "truncated", once, at most TRUNC_MAX. */
static void note_cut(builder *b, const char *what, const char *name, size_t name_len)
{
    tp_doc *d = b->d;
    size_t start = d->arena.len, i;
    span s;

    size_t wlen = strlen(what);

    if (d->ntrunc >= TRUNC_MAX)
        return;
    /* name may be in the arena, which can move as it grows: room first. */
    if (name && name >= d->arena.data && name < d->arena.data + d->arena.len) {
        size_t off = (size_t)(name - d->arena.data);
        if (tp_buf_reserve(&d->arena, wlen + 1 + name_len) < 0)
            return;
        name = d->arena.data + off;
    }
    tp_buf_put(&d->arena, what, wlen);
    if (name) {
        tp_buf_put(&d->arena, ".", 1);
        tp_buf_put(&d->arena, name, name_len);
    }
    if (d->arena.oom)
        return;
    s.off = start;
    s.len = d->arena.len - start;
    for (i = 0; i < d->ntrunc; i++) {
        if (span_eq(d, d->trunc[i], at(d, s), s.len)) {
            d->arena.len = start;       /* listed already */
            d->arena.data[start] = '\0';
            return;
        }
    }
    d->trunc[d->ntrunc++] = s;
}

/* ps[name] = value, both repaired and cut to max_value; what is the path
 * used in "truncated". */
static int add_pair(builder *b, pairs *ps, const char *what,
                    const char *name, size_t name_len, const char *value, size_t value_len)
{
    tp_doc *d = b->d;
    int kcut = 0, vcut = 0;
    span k = clean_name(d, name, name_len, (size_t)b->cfg->max_value, &kcut);
    span v = clean_string(d, value, value_len, (size_t)b->cfg->max_value, &vcut);
    uint32_t h;
    size_t s;

    if (d->arena.oom)
        return -1;
    h = hash(at(d, k), k.len);
    if (ps->n == ps->cap && grow(d, ps) < 0)
        return -1;
    s = slot_of(d, ps, k, h);
    if (ps->slot[s]) {
        ps->p[ps->slot[s] - 1].v = v;
    } else {
        ps->p[ps->n].k = k;
        ps->p[ps->n].v = v;
        ps->p[ps->n].h = h;
        ps->slot[s] = (uint32_t)++ps->n;
    }
    if (kcut || vcut)
        note_cut(b, what, at(d, k), k.len);
    return d->arena.oom ? -1 : 0;
}

/* When ps holds max names: 1 if name is one of them (a repeat still wins),
 * 0 if it is new (and cut), -1 when out of memory. */
static int known_name(builder *b, const pairs *ps, const char *name, size_t len)
{
    tp_doc *d = b->d;
    size_t mark = d->arena.len;
    int cut;
    span k = clean_name(d, name, len, (size_t)b->cfg->max_value, &cut);
    int known;

    if (d->arena.oom)
        return -1;
    known = find(d, ps, k) >= 0;
    d->arena.len = mark;              /* the probe is not kept */
    return known;
}

typedef struct query_ctx {
    builder *b;
    int full;
} query_ctx;

static int query_pair(void *ctx, const char *name, size_t nlen,
                      const char *value, size_t vlen)
{
    query_ctx *q = ctx;
    builder *b = q->b;

    if ((long)b->d->query.n >= b->cfg->max_params) {
        int known = known_name(b, &b->d->query, name, nlen);
        if (known < 0)
            return -1;
        if (!known) {
            q->full = 1;
            return 0;
        }
    }
    if (tp_privacy_redacted(b->cfg->privacy, name, nlen)) {
        value = TP_PRIVACY_REDACTED;
        vlen = sizeof(TP_PRIVACY_REDACTED) - 1;
    }
    return add_pair(b, &b->d->query, "params.querystring", name, nlen, value, vlen);
}

static int build_querystring(builder *b, const char *qs)
{
    query_ctx q = { b, 0 };

    if (tp_query_each(qs, query_pair, &q) < 0)
        return -1;
    if (q.full)
        note_cut(b, "params.querystring", NULL, 0);
    return 0;
}

/*
 * 1 when the request carries a body: CONTENT_LENGTH is set, not empty and
 * not a zero.  Servers set CONTENT_LENGTH (lighttpd "0" on every request)
 * and CONTENT_TYPE themselves; without a body no client sent those headers.
 */
static int has_body(const char *content_length)
{
    if (!content_length || !*content_length)
        return 0;
    return content_length[strspn(content_length, "0")] != '\0';
}

static int build_headers(builder *b, char *const *envp)
{
    char name[512];
    int full = 0, body = has_body(b->v.content_length);

    for (; envp && *envp; envp++) {
        const char *e = *envp, *eq, *value;
        size_t vlen;
        long nlen;

        /* Only HTTP_* and CONTENT_* name headers (tp_header_name). */
        if ((e[0] != 'H' && e[0] != 'C') || !(eq = strchr(e, '=')))
            continue;
        if (!body && e[0] == 'C' && strncmp(e, "CONTENT_", 8) == 0)
            continue;
        nlen = tp_header_name(e, (size_t)(eq - e), name, sizeof(name));
        if (nlen == 0)
            continue;
        if (nlen < 0) {
            /* A name longer than any real header: not recorded, but said. */
            note_cut(b, "params.header", NULL, 0);
            continue;
        }
        value = eq + 1;
        vlen = strlen(value);
        switch (tp_privacy_header(&b->priv, name, value, &b->hval)) {
        case TP_PRIVACY_DROP:
            continue;
        case TP_PRIVACY_REPLACE:
            if (b->hval.oom)
                return -1;
            value = b->hval.data;
            vlen = b->hval.len;
            break;
        default:
            break;
        }
        if ((long)b->d->header.n >= b->cfg->max_headers) {
            int known = known_name(b, &b->d->header, name, (size_t)nlen);
            if (known < 0)
                return -1;
            if (!known) {
                full = 1;
                continue;
            }
        }
        if (add_pair(b, &b->d->header, "params.header", name, (size_t)nlen, value, vlen) < 0)
            return -1;
    }
    if (full)
        note_cut(b, "params.header", NULL, 0);
    return 0;
}

static int build_path(builder *b, const char *path_info)
{
    if (path_info && *path_info) {
        if (*path_info == '/')
            path_info++;
        return add_pair(b, &b->d->path, "params.path", "proxy", 5, path_info,
                        strlen(path_info));
    }
    return 0;
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
                if (j->end - j->p < 4)
                    return 0;
                for (int k = 0; k < 4; k++)
                    if (tp_hexval((unsigned char)j->p[k]) < 0)
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

static int jvalue(jscan *j, int depth);

/* An object or an array, j->p at its '{' or '['. */
static int jcontainer(jscan *j, int depth)
{
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

/* -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static int jnumber(jscan *j)
{
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

static int jvalue(jscan *j, int depth)
{
    if (j->p >= j->end)
        return 0;
    switch (*j->p) {
    case '{':
    case '[':
        return jcontainer(j, depth);
    case '"':
        return jstring(j);
    case 't':
        return jliteral(j, "true");
    case 'f':
        return jliteral(j, "false");
    case 'n':
        return jliteral(j, "null");
    default:
        return jnumber(j);
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

/* The body as json-c reads it, or NULL when it is not strict JSON (or
 * memory ran out).  Invalid UTF-8 inside strings becomes U+FFFD before
 * parsing, so the body's other fields survive. */
static json_object *parse_body(const char *body, size_t len)
{
    json_object *parsed = NULL;
    json_tokener *tok = NULL;
    size_t flen;
    char *fixed = tp_utf8_repair_dup(body, len, 0, &flen, NULL);

    if (!fixed || !json_strict(fixed, flen))
        goto done;
    tok = json_tokener_new_ex(BODY_DEPTH);
    if (!tok)
        goto done;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    parsed = json_tokener_parse_ex(tok, fixed, (int)flen);
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(parsed);
        parsed = NULL;
    }
done:
    if (tok)
        json_tokener_free(tok);
    free(fixed);
    return parsed;
}

/* The body's top-level keys named in TRACKPIXEL_REDACT_PARAMS get the
 * value "[redacted]" (in their place). */
static int redact_body(const tp_config *cfg, json_object *body)
{
    const char *name;

    for (size_t i = 0; (name = tp_privacy_redact_name(cfg->privacy, i)) != NULL; i++) {
        json_object *v;
        if (!json_object_object_get_ex(body, name, NULL))
            continue;
        v = json_object_new_string(TP_PRIVACY_REDACTED);
        if (!v || json_object_object_add(body, name, v) < 0)
            return -1;
    }
    return 0;
}

/* body-json: the POST body when it is a JSON object Elasticsearch takes,
 * as json-c prints it; otherwise {}. */
static int build_body(builder *b, const tp_doc_input *in, const char *method)
{
    tp_doc *d = b->d;
    json_object *parsed;

    d->body = keep(d, "{}", 2);
    d->body_empty = 1;
    if (!method || strcmp(method, "POST") != 0)
        return d->arena.oom ? -1 : 0;
    if (!declared_length_matches(b->v.content_length,
                                 in->body ? in->body_len : 0)) {
        /* FastCGI 6.2: a body of another length than CONTENT_LENGTH is not
         * the request's body (the client stopped, or sent more). */
        note_cut(b, "body-json", NULL, 0);
        return d->arena.oom ? -1 : 0;
    }
    if (!in->body || in->body_len == 0)
        return d->arena.oom ? -1 : 0;
    if (!in->body_complete || in->body_len > (size_t)b->cfg->max_body) {
        note_cut(b, "body-json", NULL, 0);
        return d->arena.oom ? -1 : 0;
    }
    parsed = parse_body(in->body, in->body_len);
    if (parsed && json_object_is_type(parsed, json_type_object) &&
        es_acceptable(parsed, 1) && json_object_object_length(parsed) > 0) {
        size_t tlen = 0;
        const char *text = redact_body(b->cfg, parsed) < 0 ? NULL :
                           json_object_to_json_string_length(parsed, JSON_FLAGS, &tlen);
        if (text) {
            d->body = keep(d, text, tlen);
            d->body_empty = 0;
        } else {
            d->arena.oom = 1;
        }
    }
    json_object_put(parsed);
    return d->arena.oom ? -1 : 0;
}

/* n as width digits, zero-padded. */
static char *digits(char *o, long n, int width)
{
    for (int k = width - 1; k >= 0; k--, n /= 10)
        o[k] = (char)('0' + n % 10);
    return o + width;
}

/* The UTC calendar fields of t, as gmtime_r gives them, without its lock
 * and time zone lookup: days to a proleptic Gregorian date by H. Hinnant's
 * civil_from_days (eras of 400 years, years starting in March). */
typedef struct civil {
    long long year;
    int mon, mday, hour, min, sec;      /* mon 1 to 12, mday 1 to 31 */
} civil;

static civil civil_of(time_t t)
{
    civil c;
    long long days = (long long)t / 86400, secs = (long long)t % 86400;
    long long era, doe, yoe, doy, mp;

    if (secs < 0) {
        secs += 86400;
        days--;
    }
    c.hour = (int)(secs / 3600);
    c.min = (int)(secs / 60 % 60);
    c.sec = (int)(secs % 60);
    days += 719468;                               /* from 0000-03-01 */
    era = (days >= 0 ? days : days - 146096) / 146097;
    doe = days - era * 146097;                    /* 0 to 146096 */
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  /* 0 to 399 */
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);  /* 0 to 365, from March 1 */
    mp = (5 * doy + 2) / 153;                     /* 0 to 11, from March */
    c.mday = (int)(doy - (153 * mp + 2) / 5 + 1);
    c.mon = (int)(mp < 10 ? mp + 3 : mp - 9);
    c.year = yoe + era * 400 + (c.mon <= 2);
    return c;
}

int tp_doc_rfc3339(struct timespec t, char *out, size_t outcap)
{
    civil c = civil_of(t.tv_sec);
    char *o = out;

    /* Years 0-9999 only: the format has four digits. */
    if (outcap < 25 || c.year < 0 || c.year > 9999)
        return -1;
    o = digits(o, (long)c.year, 4);
    *o++ = '-';
    o = digits(o, c.mon, 2);
    *o++ = '-';
    o = digits(o, c.mday, 2);
    *o++ = 'T';
    o = digits(o, c.hour, 2);
    *o++ = ':';
    o = digits(o, c.min, 2);
    *o++ = ':';
    o = digits(o, c.sec, 2);
    *o++ = '.';
    o = digits(o, t.tv_nsec / 1000000L, 3);
    *o++ = 'Z';
    *o = '\0';
    return 0;
}

/* A context value: NULL is "".  Values from the request are cut to
 * max_value; our own (request-id, configuration) are not. */
static void put_context(builder *b, size_t i, const char *val, int from_request)
{
    int cut = 0;

    if (!val || !*val) {
        b->d->ctx[i] = (span){ 0, 0 };    /* "": nothing in the arena */
        return;
    }
    b->d->ctx[i] = clean_string(b->d, val, strlen(val),
                                from_request ? (size_t)b->cfg->max_value : 0, &cut);
    if (cut)
        note_cut(b, "context", context_keys[i].name, context_keys[i].len);
}

static void build_context(builder *b, const tp_doc_input *in, const char *method)
{
    char ip[TP_PRIVACY_ADDR_MAX];
    size_t i;

    for (i = 0; i < NCTX; i++) {
        switch (i) {
        case CTX_HTTP_METHOD:
            put_context(b, i, method, 1);
            break;
        case CTX_STAGE:
            put_context(b, i, b->cfg->stage, 0);
            break;
        case CTX_API_ID:
            put_context(b, i, b->cfg->api_id, 0);
            break;
        case CTX_SOURCE_IP:
            put_context(b, i, tp_privacy_source_ip(&b->priv, b->v.remote_addr, b->v.xff,
                                                   b->v.forwarded, ip, sizeof(ip)), 1);
            break;
        case CTX_USER:
            put_context(b, i, b->v.remote_user, 1);
            break;
        case CTX_USER_AGENT:
            put_context(b, i, b->v.user_agent, 1);
            break;
        case CTX_REQUEST_ID:
            put_context(b, i, in->request_id, 0);
            break;
        case CTX_RESOURCE_PATH:
            put_context(b, i, b->v.script_name, 1);
            break;
        default:
            break;              /* "": ctx[i] is zero, as doc_new left it */
        }
    }
}

static int build_stage_vars(builder *b)
{
    for (size_t i = 0; i < b->cfg->nstage_vars; i++) {
        const tp_stage_var *sv = &b->cfg->stage_vars[i];
        if (add_pair(b, &b->d->stage, "stage-variables", sv->name, strlen(sv->name),
                     sv->value, strlen(sv->value)) < 0)
            return -1;
    }
    return 0;
}

/*
 * One released document is kept for the next tp_doc_build: its arena, text
 * and member arrays are reused, so a usual hit allocates nothing for its
 * document.  Only a document whose memory is at most SPARE_MAX bytes is
 * kept (a large one is freed), and only one, taken and put back with atomic
 * exchanges.  Under AddressSanitizer every document is freed, so a use of
 * one after tp_doc_free is still reported.
 */
#define SPARE_MAX (64 * 1024)

#if defined(__SANITIZE_ADDRESS__)
#define SPARE_KEPT 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPARE_KEPT 0
#endif
#endif
#ifndef SPARE_KEPT
#define SPARE_KEPT 1
#endif

static tp_doc *spare;

static size_t pairs_bytes(const pairs *ps)
{
    return ps->cap * (sizeof(*ps->p) + 2 * sizeof(*ps->slot));
}

/* The members forgotten, the arrays and their index kept (and emptied). */
static void pairs_clear(pairs *ps)
{
    ps->n = 0;
    if (ps->slot)
        memset(ps->slot, 0, 2 * ps->cap * sizeof(*ps->slot));
}

/* An empty document, as calloc gives it, in the spare's memory when there
 * is one; NULL when out of memory. */
static tp_doc *doc_new(void)
{
    tp_doc *d = __atomic_exchange_n(&spare, NULL, __ATOMIC_ACQ_REL);

    if (!d)
        return calloc(1, sizeof(*d));
    /* Every other member zero, as calloc leaves it. */
    *d = (tp_doc){ .arena = d->arena, .out = d->out, .path = d->path, .query = d->query,
                   .header = d->header, .stage = d->stage };
    tp_buf_reset(&d->arena);
    tp_buf_reset(&d->out);
    pairs_clear(&d->path);
    pairs_clear(&d->query);
    pairs_clear(&d->header);
    pairs_clear(&d->stage);
    return d;
}

tp_doc *tp_doc_build(const tp_config *cfg, const tp_doc_input *in, char *err, size_t errlen)
{
    tp_doc *d = doc_new();
    builder b = { .cfg = cfg, .d = d };
    const char *method;

    read_cgi_vars(in->envp, &b.v);
    method = b.v.method;
    if (!d)
        goto fail;
    tp_privacy_hit_init(&b.priv, cfg->privacy, tp_privacy_signal(b.v.sec_gpc, b.v.dnt),
                        in->now.tv_sec);
    d->gpc = b.priv.gpc;
    /* One allocation for all the strings of a usual hit. */
    if (tp_buf_reserve(&d->arena, 2048) < 0)
        goto fail;
    /* In the order "truncated" lists what was cut. */
    if (build_body(&b, in, method) < 0 ||
        build_path(&b, b.v.path_info) < 0 || build_querystring(&b, b.v.query) < 0 ||
        build_headers(&b, in->envp) < 0 || build_stage_vars(&b) < 0)
        goto fail;
    build_context(&b, in, method);
    tp_agent_classify(in->agents, b.v.user_agent, b.v.sec_purpose, b.v.purpose, b.v.x_moz,
                      &d->agent);
    d->ms = (int64_t)in->now.tv_sec * 1000 + in->now.tv_nsec / 1000000L;
    if (tp_doc_rfc3339(in->now, d->ts, sizeof(d->ts)) < 0 || d->arena.oom)
        goto fail;
    tp_buf_free(&b.hval);
    return d;

fail:
    snprintf(err, errlen, "out of memory building the document");
    tp_buf_free(&b.hval);
    tp_doc_free(d);
    return NULL;
}

const tp_agent *tp_doc_agent(const tp_doc *d)
{
    return &d->agent;
}

void tp_doc_free(tp_doc *d)
{
    tp_doc *none = NULL;

    if (!d)
        return;
    if (SPARE_KEPT &&
        d->arena.cap + d->out.cap + pairs_bytes(&d->path) + pairs_bytes(&d->query) +
        pairs_bytes(&d->header) + pairs_bytes(&d->stage) <= SPARE_MAX &&
        __atomic_compare_exchange_n(&spare, &none, d, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return;                         /* kept for the next tp_doc_build */
    tp_buf_free(&d->arena);
    tp_buf_free(&d->out);
    free(d->path.p);
    free(d->query.p);
    free(d->header.p);
    free(d->stage.p);
    free(d->path.slot);
    free(d->query.slot);
    free(d->header.slot);
    free(d->stage.slot);
    free(d);
}

/* ------------------------------------------------------------ writing */

static void put_lit(tp_buf *o, const char *s)
{
    tp_buf_put(o, s, strlen(s));
}

static void write_pairs(const tp_doc *d, tp_buf *o, const pairs *ps)
{
    tp_buf_put(o, "{", 1);
    for (size_t i = 0; i < ps->n; i++) {
        if (i)
            tp_buf_put(o, ",", 1);
        tp_json_string(o, at(d, ps->p[i].k), ps->p[i].k.len);
        tp_buf_put(o, ":", 1);
        tp_json_string(o, at(d, ps->p[i].v), ps->p[i].v.len);
    }
    tp_buf_put(o, "}", 1);
}

static void write_doc(tp_doc *d)
{
    tp_buf *o = &d->out;
    size_t i;

    o->len = 0;
    /* Room for the usual text at once: the strings, the keys, the rest. */
    tp_buf_reserve(o, d->arena.len + 1024);
    tp_buf_put(o, TP_LIT("{\"body-json\":"));
    tp_buf_put(o, at(d, d->body), d->body.len);
    tp_buf_put(o, TP_LIT(",\"params\":{\"path\":"));
    write_pairs(d, o, &d->path);
    tp_buf_put(o, TP_LIT(",\"querystring\":"));
    write_pairs(d, o, &d->query);
    tp_buf_put(o, TP_LIT(",\"header\":"));
    write_pairs(d, o, &d->header);
    tp_buf_put(o, TP_LIT("},\"stage-variables\":"));
    write_pairs(d, o, &d->stage);
    tp_buf_put(o, TP_LIT(",\"context\":{"));
    for (i = 0; i < NCTX; i++) {
        if (i)
            tp_buf_put(o, ",", 1);
        tp_buf_put(o, TP_LIT("\""));
        tp_buf_put(o, context_keys[i].name, context_keys[i].len);
        tp_buf_put(o, TP_LIT("\":"));
        tp_json_string(o, at(d, d->ctx[i]), d->ctx[i].len);
    }
    tp_buf_put(o, TP_LIT("},\"agent\":{\"class\":\""));
    put_lit(o, tp_agent_class_name(d->agent.cls));
    tp_buf_put(o, TP_LIT("\",\"name\":"));
    tp_json_string(o, d->agent.name, strlen(d->agent.name));
    tp_buf_put(o, TP_LIT("},\"date\":"));
    tp_json_int64(o, d->ms);
    tp_buf_put(o, TP_LIT(",\"@timestamp\":"));
    tp_json_string(o, d->ts, strlen(d->ts));
    if (d->gpc)
        tp_buf_put(o, TP_LIT(",\"privacy\":\"gpc\""));
    if (d->ntrunc) {
        tp_buf_put(o, TP_LIT(",\"truncated\":["));
        for (i = 0; i < d->ntrunc; i++) {
            if (i)
                tp_buf_put(o, ",", 1);
            tp_json_string(o, at(d, d->trunc[i]), d->trunc[i].len);
        }
        tp_buf_put(o, "]", 1);
    }
    tp_buf_put(o, "}", 1);
}

/* The context values that come from the request (the rest are ours). */
static const size_t context_from_request[] = {
    CTX_HTTP_METHOD, CTX_SOURCE_IP, CTX_USER, CTX_USER_AGENT, CTX_RESOURCE_PATH,
};

/* Empty part number `which` of the document (see tp_doc_serialize): an
 * object becomes {}; for "context", the values from the request become "".
 * 1 when there was something to empty. */
static int empty_part(tp_doc *d, int which)
{
    pairs *ps = NULL;
    int done = 0;

    switch (which) {
    case 0:
        if (d->body_empty)
            return 0;
        d->body = keep(d, "{}", 2);
        d->body_empty = 1;
        return 1;
    case 1: ps = &d->query; break;
    case 2: ps = &d->header; break;
    case 3: ps = &d->path; break;
    default:
        for (size_t i = 0; i < sizeof(context_from_request) / sizeof(context_from_request[0]); i++) {
            if (d->ctx[context_from_request[i]].len > 0) {
                d->ctx[context_from_request[i]].len = 0;
                done = 1;
            }
        }
        return done;
    }
    if (ps->n == 0)
        return 0;
    ps->n = 0;
    memset(ps->slot, 0, 2 * ps->cap * sizeof(*ps->slot));
    return 1;
}

/*
 * Cut number `which` (see tp_doc_serialize).  "truncated" then lists label
 * once, and loses the entries under it ("params.querystring.<name>" once the
 * whole query string is gone): they name what is no longer there, and a long
 * list of long names could otherwise keep the document too large by itself.
 * Returns 1 when something was cut, 0 when there was nothing to cut, -1 when
 * out of memory.
 */
static int cut(tp_doc *d, int which, const char *label)
{
    size_t i, k, llen = strlen(label);

    if (!empty_part(d, which))
        return d->arena.oom ? -1 : 0;
    for (i = k = 0; i < d->ntrunc; i++) {
        const char *t = at(d, d->trunc[i]);
        size_t tlen = d->trunc[i].len;
        if ((tlen == llen || (tlen > llen && t[llen] == '.')) && memcmp(t, label, llen) == 0)
            continue;
        d->trunc[k++] = d->trunc[i];
    }
    d->ntrunc = k;
    d->trunc[d->ntrunc++] = keep(d, label, llen);
    return d->arena.oom ? -1 : 1;
}

const char *tp_doc_serialize(const tp_config *cfg, tp_doc *d, size_t *len)
{
    /* In this order until the document fits.  The context goes last, and only
     * when max_doc is small next to max_value: with the defaults everything
     * else cut leaves at most about 150 KiB (six values of 4 KiB each, every
     * byte a control character written as \u00XX) under the 256 KiB limit. */
    static const char *const cuts[] = {
        "body-json", "params.querystring", "params.header", "params.path", "context",
    };
    int i = 0;

    for (;;) {
        write_doc(d);
        if (d->out.oom || d->arena.oom)
            return NULL;
        *len = d->out.len;
        if (*len <= (size_t)cfg->max_doc)
            return d->out.data;
        /* Only our configuration's own strings (stage variables) are left
         * when every cut is made: they alone exceed max_doc. */
        for (;;) {
            int r;
            if (i == (int)(sizeof(cuts) / sizeof(cuts[0])))
                return NULL;
            r = cut(d, i, cuts[i]);
            i++;
            if (r < 0)
                return NULL;
            if (r > 0)
                break;
        }
    }
}
