/*
 * tp_sigv4 - AWS Signature Version 4, header form.
 *
 * The helpers are named after the steps of the AWS document "Create a signed
 * AWS API request", so the code reads next to it:
 *
 *   1. make_canonical_request  (canonical URI, query, headers, payload hash)
 *   2. make_string_to_sign
 *   3. derive_signing_key      (optionally cached by the caller)
 *   4. calculate_signature
 *   5. make_authorization
 *
 * Checked against the aws-c-auth signing test suite (header form, 38 cases).
 * Leaf module: no globals, no clock, no logging; errors go to the caller's
 * err buffer and never hold a secret (no key, no token, no header value).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L  /* gmtime_r */
#endif

#include "tp_sigv4.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define ALGORITHM      "AWS4-HMAC-SHA256"
#define SCOPE_TERM     "aws4_request"
#define SHA256_LEN     32
#define SHA256_HEX_LEN 64
#define SBUF_INITIAL   1024

/* The signer adds these headers itself; at most this many on top of the
 * caller's: x-amz-date, x-amz-security-token, x-amz-content-sha256. */
#define ADDED_HEADERS  3

#ifdef __GNUC__
#define TP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TP_PRINTF(f, a)
#endif

static void set_err(char *err, size_t errlen, const char *fmt, ...) TP_PRINTF(3, 4);

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if(!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ buffer */

/*
 * A growing string with a maximum size fixed at creation.  Errors are
 * sticky: once an append fails (too big, or out of memory) every later append
 * is a no-op, so a step appends freely and checks b->err once at its end.
 */
enum { SBUF_OK = 0, SBUF_TOOBIG, SBUF_NOMEM };

struct sbuf {
    char *p;
    size_t len;
    size_t cap;
    size_t max;     /* including the terminating NUL */
    int err;
};

static void sbuf_init(struct sbuf *b, size_t max)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->err = SBUF_OK;
}

static void sbuf_add(struct sbuf *b, const void *s, size_t n)
{
    if(b->err)
        return;
    if(n >= b->max - b->len) {  /* need len + n + 1 <= max */
        b->err = SBUF_TOOBIG;
        return;
    }
    if(b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : SBUF_INITIAL;
        char *np;

        while(ncap < b->len + n + 1)
            ncap *= 2;
        if(ncap > b->max)
            ncap = b->max;
        np = realloc(b->p, ncap);
        if(!np) {
            b->err = SBUF_NOMEM;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sbuf_addc(struct sbuf *b, char c)
{
    sbuf_add(b, &c, 1);
}

static void sbuf_adds(struct sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

static void sbuf_err(const struct sbuf *b, const char *what,
                     char *err, size_t errlen)
{
    if(b->err == SBUF_NOMEM)
        set_err(err, errlen, "sigv4: out of memory building the %s", what);
    else
        set_err(err, errlen, "sigv4: %s longer than %zu bytes", what,
                b->max - 1);
}

/* --------------------------------------------------------- character sets */

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

/* RFC 3986 unreserved: the only bytes SigV4 leaves unencoded. */
static int is_unreserved(unsigned char c)
{
    return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 9110 tchar: what a method or a header name may be made of. */
static int is_tchar(unsigned char c)
{
    return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* Scope parts go between '/' in the credential scope and into the
 * Authorization header, so keep them to a set that cannot break either. */
static int valid_scope_part(const char *s)
{
    size_t i;

    if(!s || !*s)
        return 0;
    for(i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if(i >= TP_SIGV4_SCOPE_PART_MAX - 1)
            return 0;
        if(!is_alnum(c) && c != '-' && c != '_' && c != '.')
            return 0;
    }
    return 1;
}

static int valid_token(const char *s, size_t n)
{
    size_t i;

    if(!n)
        return 0;
    for(i = 0; i < n; i++)
        if(!is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

/*
 * A header value may be folded (obs-fold: CRLF or LF followed by SP or HT),
 * which canonicalization turns into a single space.  Any other control byte
 * would be signed as one thing and sent as another, so it is refused.
 */
static int valid_header_value(const char *v)
{
    size_t i;

    for(i = 0; v[i]; i++) {
        unsigned char c = (unsigned char)v[i];
        if(c == '\t')
            continue;
        if(c == '\r') {
            if(v[i + 1] != '\n')
                return 0;
            continue;
        }
        if(c == '\n') {
            if(v[i + 1] != ' ' && v[i + 1] != '\t')
                return 0;
            continue;
        }
        if(is_ctl(c))
            return 0;
    }
    return 1;
}

static int is_lws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static int name_is(const char *name, size_t n, const char *lname)
{
    size_t i;

    for(i = 0; i < n; i++)
        if(!lname[i] || lower((unsigned char)name[i]) != (unsigned char)lname[i])
            return 0;
    return lname[n] == '\0';
}

static int hexval(unsigned char c)
{
    if(c >= '0' && c <= '9')
        return c - '0';
    if(c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if(c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    for(i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

/* Percent-encode one byte the SigV4 way: uppercase hex. */
static void add_encoded_byte(struct sbuf *b, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    char e[3];

    if(is_unreserved(c)) {
        sbuf_addc(b, (char)c);
        return;
    }
    e[0] = '%';
    e[1] = hex[c >> 4];
    e[2] = hex[c & 0x0f];
    sbuf_add(b, e, 3);
}

/* Encode a path segment (no '/' inside), copying unreserved runs at once. */
static void add_encoded(struct sbuf *b, const char *s, size_t n)
{
    size_t i = 0;

    while(i < n) {
        size_t run = i;
        while(run < n && is_unreserved((unsigned char)s[run]))
            run++;
        if(run > i) {
            sbuf_add(b, s + i, run - i);
            i = run;
        }
        if(i < n)
            add_encoded_byte(b, (unsigned char)s[i++]);
    }
}

/* ------------------------------------------------------------------ crypto */

static int sha256(const void *data, size_t len, unsigned char md[SHA256_LEN])
{
    unsigned int mdlen = 0;

    if(!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) ||
       mdlen != SHA256_LEN)
        return -1;
    return 0;
}

static int sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_LEN + 1])
{
    unsigned char md[SHA256_LEN];

    if(sha256(data, len, md))
        return -1;
    to_hex(md, sizeof(md), hex);
    return 0;
}

static int hmac_sha256(const void *key, size_t keylen,
                       const void *data, size_t len,
                       unsigned char md[SHA256_LEN])
{
    unsigned int mdlen = 0;

    if(keylen > INT_MAX)
        return -1;
    if(!HMAC(EVP_sha256(), key, (int)keylen, data, len, md, &mdlen) ||
       mdlen != SHA256_LEN)
        return -1;
    return 0;
}

/* ------------------------------------------------- 1. canonical request */

/*
 * Canonical URI.  The path is already encoded for the wire; SigV4 for every
 * service but S3 encodes it once more, so a '%' on the wire becomes %25 here
 * and a raw space (as in the test suite) becomes %20.
 *
 * With normalize, ".", ".." and empty segments are removed as the URI is
 * written; ".." backs up to the previous '/' in the output, which is safe
 * because encoded segments never contain '/'.  A trailing '/' is kept.
 */
static void make_canonical_uri(struct sbuf *b, const char *path, int normalize)
{
    size_t start = b->len;
    size_t n, i;

    if(!path || !*path) {
        sbuf_addc(b, '/');
        return;
    }
    n = strlen(path);
    if(!normalize) {
        for(i = 0; i < n; i++) {
            size_t seg = i;
            while(i < n && path[i] != '/')
                i++;
            add_encoded(b, path + seg, i - seg);
            if(i < n)
                sbuf_addc(b, '/');
        }
        return;
    }

    i = 0;
    while(i < n) {
        size_t seg, seglen;

        while(i < n && path[i] == '/')
            i++;
        seg = i;
        while(i < n && path[i] != '/')
            i++;
        seglen = i - seg;
        if(seglen == 0 || (seglen == 1 && path[seg] == '.'))
            continue;
        if(seglen == 2 && path[seg] == '.' && path[seg + 1] == '.') {
            if(!b->err) {
                while(b->len > start && b->p[b->len - 1] != '/')
                    b->len--;
                if(b->len > start)
                    b->len--;       /* the '/' before the removed segment */
                if(b->p)
                    b->p[b->len] = '\0';
            }
            continue;
        }
        sbuf_addc(b, '/');
        add_encoded(b, path + seg, seglen);
    }
    if(b->len == start || path[n - 1] == '/')
        sbuf_addc(b, '/');
}

struct qpart {
    const char *key;
    size_t keylen;
    const char *val;
    size_t vallen;
};

static int qpart_cmp(const void *a, const void *b)
{
    const struct qpart *x = a, *y = b;
    size_t n;
    int c;

    /* by encoded key, then by encoded value: comparing the joined
     * "key=value" strings would put "Param-3=" before "Param=" */
    n = x->keylen < y->keylen ? x->keylen : y->keylen;
    c = memcmp(x->key, y->key, n);
    if(c)
        return c;
    if(x->keylen != y->keylen)
        return x->keylen < y->keylen ? -1 : 1;
    n = x->vallen < y->vallen ? x->vallen : y->vallen;
    c = memcmp(x->val, y->val, n);
    if(c)
        return c;
    if(x->vallen != y->vallen)
        return x->vallen < y->vallen ? -1 : 1;
    return 0;
}

/*
 * URI-decode s then encode it again.  Only %XX is decoded: '+' is a literal
 * plus and is signed as %2B (decoding it to a space would sign a different
 * value than the one sent).  Returns -1 on a bad escape.
 */
static int add_reencoded(struct sbuf *b, const char *s, size_t n)
{
    size_t i;

    for(i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if(c == '%') {
            int hi, lo;
            if(i + 2 >= n)      /* needs two more bytes */
                return -1;
            hi = hexval((unsigned char)s[i + 1]);
            lo = hexval((unsigned char)s[i + 2]);
            if(hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)((hi << 4) | lo);
            i += 2;
        }
        add_encoded_byte(b, c);
    }
    return 0;
}

/*
 * Canonical query string: each key and value decoded and re-encoded (so an
 * already-encoded %E1%88%B4 stays as it is instead of becoming %25E1...),
 * a missing '=' read as an empty value, sorted, joined with '&'.
 * qbuf holds the encoded parts while they are sorted.
 */
static int make_canonical_query(struct sbuf *b, struct sbuf *qbuf,
                                const char *query, char *err, size_t errlen)
{
    struct qpart parts[TP_SIGV4_MAX_QUERY_PARTS];
    size_t offs[TP_SIGV4_MAX_QUERY_PARTS][3]; /* key start, '=' pos, end */
    size_t nparts = 0, i;
    const char *base;
    const char *p = query;

    if(!query || !*query)
        return 0;
    if(*query == '?') {
        set_err(err, errlen, "sigv4: query must not start with '?'");
        return -1;
    }

    while(*p) {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *keyend = eq ? eq : end;

        if(end > p) {   /* "a=1&&b=2": empty parts carry nothing */
            if(nparts == TP_SIGV4_MAX_QUERY_PARTS) {
                set_err(err, errlen, "sigv4: more than %d query parameters",
                        TP_SIGV4_MAX_QUERY_PARTS);
                return -1;
            }
            offs[nparts][0] = qbuf->len;
            if(add_reencoded(qbuf, p, (size_t)(keyend - p))) {
                set_err(err, errlen,
                        "sigv4: bad percent-escape in query parameter %zu",
                        nparts + 1);
                return -1;
            }
            offs[nparts][1] = qbuf->len;
            if(eq && add_reencoded(qbuf, eq + 1, (size_t)(end - eq - 1))) {
                set_err(err, errlen,
                        "sigv4: bad percent-escape in query parameter %zu",
                        nparts + 1);
                return -1;
            }
            offs[nparts][2] = qbuf->len;
            nparts++;
        }
        p = amp ? amp + 1 : end;
    }
    if(qbuf->err) {
        sbuf_err(qbuf, "canonical query", err, errlen);
        return -1;
    }
    if(!nparts)
        return 0;

    /* qbuf no longer moves: turn offsets into pointers and sort.  When
     * every part is empty ("=&") nothing was ever added and qbuf->p is
     * NULL: NULL + 0 is undefined behaviour, so point at "". */
    base = qbuf->p ? qbuf->p : "";
    for(i = 0; i < nparts; i++) {
        parts[i].key = base + offs[i][0];
        parts[i].keylen = offs[i][1] - offs[i][0];
        parts[i].val = base + offs[i][1];
        parts[i].vallen = offs[i][2] - offs[i][1];
    }
    qsort(parts, nparts, sizeof(parts[0]), qpart_cmp);

    for(i = 0; i < nparts; i++) {
        if(i)
            sbuf_addc(b, '&');
        sbuf_add(b, parts[i].key, parts[i].keylen);
        sbuf_addc(b, '=');
        sbuf_add(b, parts[i].val, parts[i].vallen);
    }
    return 0;
}

struct hdr {
    const char *name;
    size_t namelen;
    const char *value;
    size_t order;       /* input position: keeps duplicates in order */
};

static int hdr_name_cmp(const struct hdr *x, const struct hdr *y)
{
    size_t n = x->namelen < y->namelen ? x->namelen : y->namelen;
    size_t i;

    for(i = 0; i < n; i++) {
        unsigned char a = lower((unsigned char)x->name[i]);
        unsigned char c = lower((unsigned char)y->name[i]);
        if(a != c)
            return a < c ? -1 : 1;
    }
    if(x->namelen != y->namelen)
        return x->namelen < y->namelen ? -1 : 1;
    return 0;
}

static int hdr_cmp(const void *a, const void *b)
{
    const struct hdr *x = a, *y = b;
    int c = hdr_name_cmp(x, y);

    if(c)
        return c;
    /* qsort is not stable; repeated names keep their input order */
    return x->order < y->order ? -1 : (x->order > y->order);
}

/* Trim, and collapse each run of whitespace (obs-fold included) to one
 * space, inside quotes too. */
static void add_trimmed_value(struct sbuf *b, const char *v)
{
    int pending = 0;

    while(is_lws((unsigned char)*v))
        v++;
    while(*v) {
        const char *run = v;

        if(is_lws((unsigned char)*v)) {
            pending = 1;
            v++;
            continue;
        }
        while(*v && !is_lws((unsigned char)*v))
            v++;
        if(pending)
            sbuf_addc(b, ' ');
        pending = 0;
        sbuf_add(b, run, (size_t)(v - run));
    }
}

static void add_lower_name(struct sbuf *b, const char *name, size_t n)
{
    size_t start = b->len, i;

    sbuf_add(b, name, n);
    if(b->err)
        return;
    for(i = start; i < b->len; i++)
        b->p[i] = (char)lower((unsigned char)b->p[i]);
}

/*
 * Collect the headers to sign: the caller's (checked), then x-amz-date, the
 * session token when it is signed, and x-amz-content-sha256 with sign_body.
 */
static int collect_headers(struct hdr *h, size_t *nh,
                           const tp_sigv4_request *req,
                           const tp_sigv4_creds *creds,
                           const tp_sigv4_params *params,
                           const tp_sigv4_result *out,
                           char *err, size_t errlen)
{
    static const char *const reserved[] = {
        "x-amz-date", "authorization", "x-amz-security-token"
    };
    size_t i, j, n = 0;
    int have_host = 0;

    if(req->nheaders > TP_SIGV4_MAX_HEADERS) {
        set_err(err, errlen, "sigv4: %zu headers, at most %d", req->nheaders,
                TP_SIGV4_MAX_HEADERS);
        return -1;
    }
    if(req->nheaders && !req->headers) {
        set_err(err, errlen, "sigv4: headers is NULL");
        return -1;
    }
    for(i = 0; i < req->nheaders; i++) {
        const char *name = req->headers[i].name;
        const char *value = req->headers[i].value;
        size_t namelen = name ? strlen(name) : 0;

        if(!valid_token(name, namelen)) {
            set_err(err, errlen, "sigv4: header %zu: bad or empty name", i);
            return -1;
        }
        if(!value || !valid_header_value(value)) {
            set_err(err, errlen, "sigv4: header %.64s: value is NULL or "
                    "holds a control character", name);
            return -1;
        }
        for(j = 0; j < sizeof(reserved) / sizeof(reserved[0]); j++) {
            if(name_is(name, namelen, reserved[j])) {
                set_err(err, errlen, "sigv4: header %.64s is added by the "
                        "signer, do not pass it", name);
                return -1;
            }
        }
        if(params->sign_body && name_is(name, namelen, "x-amz-content-sha256")) {
            set_err(err, errlen, "sigv4: header %.64s is added by the signer "
                    "with sign_body, do not pass it", name);
            return -1;
        }
        if(name_is(name, namelen, "host"))
            have_host = 1;
        h[n].name = name;
        h[n].namelen = namelen;
        h[n].value = value;
        h[n].order = n;
        n++;
    }
    if(!have_host) {
        set_err(err, errlen, "sigv4: the request has no Host header");
        return -1;
    }

    h[n].name = "x-amz-date";
    h[n].namelen = strlen(h[n].name);
    h[n].value = out->amz_date;
    h[n].order = n;
    n++;
    if(creds->session_token && *creds->session_token &&
       !params->omit_session_token) {
        h[n].name = "x-amz-security-token";
        h[n].namelen = strlen(h[n].name);
        h[n].value = creds->session_token;
        h[n].order = n;
        n++;
    }
    if(params->sign_body) {
        h[n].name = "x-amz-content-sha256";
        h[n].namelen = strlen(h[n].name);
        h[n].value = out->content_sha256;
        h[n].order = n;
        n++;
    }
    *nh = n;
    return 0;
}

/*
 * CanonicalRequest =
 *   Method \n CanonicalURI \n CanonicalQuery \n
 *   CanonicalHeaders (name:value\n each) \n
 *   SignedHeaders \n HexPayloadHash
 * The signed-headers list is left in b at [*sh_off, *sh_off + *sh_len).
 */
static int make_canonical_request(struct sbuf *b, struct sbuf *qbuf,
                                  const tp_sigv4_request *req,
                                  const tp_sigv4_creds *creds,
                                  const tp_sigv4_params *params,
                                  const tp_sigv4_result *out,
                                  size_t *sh_off, size_t *sh_len,
                                  char *err, size_t errlen)
{
    struct hdr h[TP_SIGV4_MAX_HEADERS + ADDED_HEADERS];
    size_t nh = 0, i;

    if(collect_headers(h, &nh, req, creds, params, out, err, errlen))
        return -1;
    qsort(h, nh, sizeof(h[0]), hdr_cmp);

    sbuf_adds(b, req->method);
    sbuf_addc(b, '\n');
    make_canonical_uri(b, req->path, params->normalize_path);
    sbuf_addc(b, '\n');
    if(make_canonical_query(b, qbuf, req->query, err, errlen))
        return -1;
    sbuf_addc(b, '\n');

    /* repeated names: one line, values joined with ',' in input order */
    for(i = 0; i < nh; i++) {
        if(i && !hdr_name_cmp(&h[i - 1], &h[i])) {
            sbuf_addc(b, ',');
        }
        else {
            if(i)
                sbuf_addc(b, '\n');
            add_lower_name(b, h[i].name, h[i].namelen);
            sbuf_addc(b, ':');
        }
        add_trimmed_value(b, h[i].value);
    }
    sbuf_add(b, "\n\n", 2);

    *sh_off = b->len;
    for(i = 0; i < nh; i++) {
        if(i && !hdr_name_cmp(&h[i - 1], &h[i]))
            continue;
        if(i)
            sbuf_addc(b, ';');
        add_lower_name(b, h[i].name, h[i].namelen);
    }
    *sh_len = b->len - *sh_off;
    sbuf_addc(b, '\n');
    sbuf_add(b, out->content_sha256, SHA256_HEX_LEN);

    if(b->err) {
        sbuf_err(b, "canonical request", err, errlen);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------- 2. string to sign */

/*
 * StringToSign = Algorithm \n RequestDateTime \n CredentialScope \n
 *                HexEncode(SHA256(CanonicalRequest))
 */
static int make_string_to_sign(char *sts, size_t stslen, const char *amz_date,
                               const char *scope, const struct sbuf *creq,
                               char *err, size_t errlen)
{
    char hash[SHA256_HEX_LEN + 1];
    int n;

    if(sha256_hex(creq->p, creq->len, hash)) {
        set_err(err, errlen, "sigv4: SHA-256 of the canonical request failed");
        return -1;
    }
    n = snprintf(sts, stslen, "%s\n%s\n%s\n%s", ALGORITHM, amz_date, scope,
                 hash);
    if(n < 0 || (size_t)n >= stslen) {
        set_err(err, errlen, "sigv4: string to sign too long");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------- 3. signing key */

/*
 * kSecret  = "AWS4" + secret
 * kDate    = HMAC(kSecret, Date)
 * kRegion  = HMAC(kDate, Region)
 * kService = HMAC(kRegion, Service)
 * kSigning = HMAC(kService, "aws4_request")
 */
static int derive_signing_key(unsigned char key[SHA256_LEN], const char *secret,
                              const char *datestamp, const char *region,
                              const char *service, char *err, size_t errlen)
{
    unsigned char ksecret[4 + TP_SIGV4_SECRET_MAX];
    unsigned char k1[SHA256_LEN], k2[SHA256_LEN];
    size_t slen = strlen(secret);
    int result = -1;

    if(slen > TP_SIGV4_SECRET_MAX)
        goto fail;      /* checked by the caller already */
    memcpy(ksecret, "AWS4", 4);
    memcpy(ksecret + 4, secret, slen);

    if(hmac_sha256(ksecret, 4 + slen, datestamp, strlen(datestamp), k1) ||
       hmac_sha256(k1, sizeof(k1), region, strlen(region), k2) ||
       hmac_sha256(k2, sizeof(k2), service, strlen(service), k1) ||
       hmac_sha256(k1, sizeof(k1), SCOPE_TERM, strlen(SCOPE_TERM), key))
        goto fail;
    result = 0;

fail:
    if(result)
        set_err(err, errlen, "sigv4: HMAC-SHA256 failed deriving the signing key");
    OPENSSL_cleanse(ksecret, sizeof(ksecret));
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(k2, sizeof(k2));
    return result;
}

/* The signing key from the cache when it matches, else derived (and cached). */
static int get_signing_key(unsigned char key[SHA256_LEN],
                           tp_sigv4_key_cache *cache, const char *secret,
                           const char *datestamp, const char *region,
                           const char *service, char *err, size_t errlen)
{
    unsigned char sh[SHA256_LEN];
    int result = -1;

    if(!cache)
        return derive_signing_key(key, secret, datestamp, region, service,
                                  err, errlen);
    if(sha256(secret, strlen(secret), sh)) {
        set_err(err, errlen, "sigv4: SHA-256 of the secret failed");
        goto fail;
    }
    if(cache->valid && !strcmp(cache->datestamp, datestamp) &&
       !strcmp(cache->region, region) && !strcmp(cache->service, service) &&
       !CRYPTO_memcmp(cache->secret_sha256, sh, sizeof(sh))) {
        memcpy(key, cache->key, SHA256_LEN);
        result = 0;
        goto fail;
    }
    tp_sigv4_key_cache_clear(cache);
    if(derive_signing_key(key, secret, datestamp, region, service, err, errlen))
        goto fail;
    /* lengths were checked: datestamp is 8, region and service < SCOPE_PART_MAX */
    memcpy(cache->datestamp, datestamp, sizeof(cache->datestamp));
    memcpy(cache->region, region, strlen(region) + 1);
    memcpy(cache->service, service, strlen(service) + 1);
    memcpy(cache->secret_sha256, sh, sizeof(sh));
    memcpy(cache->key, key, SHA256_LEN);
    cache->valid = 1;
    result = 0;

fail:
    OPENSSL_cleanse(sh, sizeof(sh));
    return result;
}

/* ------------------------------------------------- 4. signature */

static int calculate_signature(char sig[SHA256_HEX_LEN + 1],
                               const unsigned char key[SHA256_LEN],
                               const char *sts, char *err, size_t errlen)
{
    unsigned char md[SHA256_LEN];

    if(hmac_sha256(key, SHA256_LEN, sts, strlen(sts), md)) {
        set_err(err, errlen, "sigv4: HMAC-SHA256 of the string to sign failed");
        return -1;
    }
    to_hex(md, sizeof(md), sig);
    return 0;
}

/* ------------------------------------------------- 5. Authorization */

static int make_authorization(tp_sigv4_result *out, const char *akid,
                              const char *scope, const char *signed_headers,
                              size_t sh_len, char *err, size_t errlen)
{
    int n;

    if(sh_len > INT_MAX)
        goto toolong;
    n = snprintf(out->authorization, sizeof(out->authorization),
                 "%s Credential=%s/%s, SignedHeaders=%.*s, Signature=%s",
                 ALGORITHM, akid, scope, (int)sh_len, signed_headers,
                 out->signature);
    if(n < 0 || (size_t)n >= sizeof(out->authorization))
        goto toolong;
    return 0;

toolong:
    set_err(err, errlen, "sigv4: Authorization value longer than %d bytes "
            "(too many or too long signed header names)", TP_SIGV4_AUTH_MAX - 1);
    return -1;
}

/* ------------------------------------------------- entry points */

static int check_inputs(const tp_sigv4_request *req, const tp_sigv4_creds *creds,
                        const tp_sigv4_params *params, char *err, size_t errlen)
{
    const char *p;

    if(!req || !creds || !params) {
        set_err(err, errlen, "sigv4: NULL request, credentials or parameters");
        return -1;
    }
    if(!req->method || !valid_token(req->method, strlen(req->method))) {
        set_err(err, errlen, "sigv4: bad or empty method");
        return -1;
    }
    if(req->path && *req->path) {
        if(req->path[0] != '/') {
            set_err(err, errlen, "sigv4: path must start with '/'");
            return -1;
        }
        for(p = req->path; *p; p++) {
            if(*p == '?' || *p == '#' || is_ctl((unsigned char)*p)) {
                set_err(err, errlen, "sigv4: path holds '?', '#' or a "
                        "control character");
                return -1;
            }
        }
    }
    if(req->body_len && !req->body) {
        set_err(err, errlen, "sigv4: body is NULL but body_len is %zu",
                req->body_len);
        return -1;
    }
    if(!valid_scope_part(creds->access_key_id)) {
        set_err(err, errlen, "sigv4: access key id missing, too long, or "
                "not [A-Za-z0-9._-]");
        return -1;
    }
    if(!creds->secret_access_key || !*creds->secret_access_key ||
       strlen(creds->secret_access_key) > TP_SIGV4_SECRET_MAX) {
        set_err(err, errlen, "sigv4: secret access key missing or longer "
                "than %d bytes", TP_SIGV4_SECRET_MAX);
        return -1;
    }
    if(creds->session_token) {
        for(p = creds->session_token; *p; p++) {
            if(is_ctl((unsigned char)*p)) {
                set_err(err, errlen, "sigv4: session token holds a control "
                        "character");
                return -1;
            }
        }
    }
    if(!valid_scope_part(params->region)) {
        set_err(err, errlen, "sigv4: region missing, too long, or not "
                "[A-Za-z0-9._-]");
        return -1;
    }
    if(!valid_scope_part(params->service)) {
        set_err(err, errlen, "sigv4: service missing, too long, or not "
                "[A-Za-z0-9._-]");
        return -1;
    }
    return 0;
}

/* X-Amz-Date (YYYYMMDD'T'HHMMSS'Z') and the date stamp (YYYYMMDD). */
static int make_dates(time_t now, char amz_date[17], char datestamp[9],
                      char *err, size_t errlen)
{
    struct tm tm;

    /* four-digit years only, so the stamp is always 16 characters */
    if(!gmtime_r(&now, &tm) || tm.tm_year < 1000 - 1900 ||
       tm.tm_year > 9999 - 1900 ||
       strftime(amz_date, 17, "%Y%m%dT%H%M%SZ", &tm) != 16) {
        set_err(err, errlen, "sigv4: signing time out of range");
        return -1;
    }
    memcpy(datestamp, amz_date, 8);
    datestamp[8] = '\0';
    return 0;
}

int tp_sigv4_sign(const tp_sigv4_request *req, const tp_sigv4_creds *creds,
                  const tp_sigv4_params *params, tp_sigv4_result *out,
                  char *err, size_t errlen)
{
    return tp_sigv4_sign_cached(req, creds, params, NULL, out, err, errlen);
}

int tp_sigv4_sign_cached(const tp_sigv4_request *req,
                         const tp_sigv4_creds *creds,
                         const tp_sigv4_params *params,
                         tp_sigv4_key_cache *cache, tp_sigv4_result *out,
                         char *err, size_t errlen)
{
    struct sbuf creq, qbuf;
    unsigned char key[SHA256_LEN];
    char datestamp[9];
    char scope[8 + 1 + TP_SIGV4_SCOPE_PART_MAX + 1 + TP_SIGV4_SCOPE_PART_MAX +
               1 + sizeof(SCOPE_TERM)];
    char sts[sizeof(ALGORITHM) + 17 + sizeof(scope) + SHA256_HEX_LEN + 4];
    size_t sh_off = 0, sh_len = 0;
    int n, result = -1;

    sbuf_init(&creq, TP_SIGV4_CANON_MAX);
    sbuf_init(&qbuf, TP_SIGV4_CANON_MAX);
    if(err && errlen)
        err[0] = '\0';
    if(!out) {
        set_err(err, errlen, "sigv4: NULL result");
        return -1;
    }
    memset(out, 0, sizeof(*out));

    if(check_inputs(req, creds, params, err, errlen))
        goto fail;
    if(make_dates(params->now, out->amz_date, datestamp, err, errlen))
        goto fail;
    if(sha256_hex(req->body_len ? (const void *)req->body : (const void *)"",
                  req->body_len, out->content_sha256)) {
        set_err(err, errlen, "sigv4: SHA-256 of the body failed");
        goto fail;
    }
    n = snprintf(scope, sizeof(scope), "%s/%s/%s/%s", datestamp,
                 params->region, params->service, SCOPE_TERM);
    if(n < 0 || (size_t)n >= sizeof(scope)) {
        set_err(err, errlen, "sigv4: credential scope too long");
        goto fail;
    }

    if(make_canonical_request(&creq, &qbuf, req, creds, params, out,
                              &sh_off, &sh_len, err, errlen))
        goto fail;
    if(make_string_to_sign(sts, sizeof(sts), out->amz_date, scope, &creq,
                           err, errlen))
        goto fail;
    if(get_signing_key(key, cache, creds->secret_access_key, datestamp,
                       params->region, params->service, err, errlen))
        goto fail;
    if(calculate_signature(out->signature, key, sts, err, errlen))
        goto fail;
    if(make_authorization(out, creds->access_key_id, scope, creq.p + sh_off,
                          sh_len, err, errlen))
        goto fail;

    if(params->keep_intermediates) {
        size_t stslen = strlen(sts);

        out->string_to_sign = malloc(stslen + 1);
        if(!out->string_to_sign) {
            set_err(err, errlen, "sigv4: out of memory");
            goto fail;
        }
        memcpy(out->string_to_sign, sts, stslen + 1);
        out->canonical_request = creq.p;    /* handed over */
        creq.p = NULL;
    }
    result = 0;

fail:
    OPENSSL_cleanse(key, sizeof(key));
    free(qbuf.p);
    free(creq.p);
    if(result) {
        tp_sigv4_result_free(out);
        memset(out, 0, sizeof(*out));
    }
    return result;
}

void tp_sigv4_result_free(tp_sigv4_result *out)
{
    if(!out)
        return;
    free(out->canonical_request);
    out->canonical_request = NULL;
    free(out->string_to_sign);
    out->string_to_sign = NULL;
}

void tp_sigv4_key_cache_clear(tp_sigv4_key_cache *cache)
{
    if(cache)
        OPENSSL_cleanse(cache, sizeof(*cache));
}
