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
#include "tp_sigv4.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tp_buf.h"
#include "tp_hex.h"

#define ALGORITHM      "AWS4-HMAC-SHA256"
#define SCOPE_TERM     "aws4_request"
#define SHA256_LEN     32
#define SHA256_HEX_LEN 64

/* The signer adds these headers itself; at most this many on top of the
 * caller's: x-amz-date, x-amz-security-token, x-amz-content-sha256. */
#define ADDED_HEADERS  3

/* The message for a failed put into b (sticky: checked once per step). */
static void buf_error(const tp_buf *b, const char *what, char *err, size_t errlen)
{
    if (b->too_big)
        snprintf(err, errlen, "sigv4: %s longer than %zu bytes", what, b->max - 1);
    else
        snprintf(err, errlen, "sigv4: out of memory building the %s", what);
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

static int is_lws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Scope parts go between '/' in the credential scope and into the
 * Authorization header, so keep them to a set that cannot break either. */
static int valid_scope_part(const char *s)
{
    if (!s || !*s)
        return 0;
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= TP_SIGV4_SCOPE_PART_MAX - 1)
            return 0;
        if (!is_alnum(c) && c != '-' && c != '_' && c != '.')
            return 0;
    }
    return 1;
}

static int valid_token(const char *s, size_t n)
{
    if (!n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

/* 1 when s holds no control character. */
static int no_ctl(const char *s)
{
    for (; *s; s++)
        if (is_ctl((unsigned char)*s))
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
    for (size_t i = 0; v[i]; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '\t')
            continue;
        if (c == '\r') {
            if (v[i + 1] != '\n')
                return 0;
            continue;
        }
        if (c == '\n') {
            if (v[i + 1] != ' ' && v[i + 1] != '\t')
                return 0;
            continue;
        }
        if (is_ctl(c))
            return 0;
    }
    return 1;
}

/* name[0..n) is lname in any case (lname is lower case). */
static int name_is(const char *name, size_t n, const char *lname)
{
    for (size_t i = 0; i < n; i++)
        if (!lname[i] || tp_lower((unsigned char)name[i]) != (unsigned char)lname[i])
            return 0;
    return lname[n] == '\0';
}

/* Percent-encode one byte the SigV4 way: uppercase hex. */
static void add_encoded_byte(tp_buf *b, unsigned char c)
{
    char e[3];

    if (is_unreserved(c)) {
        e[0] = (char)c;
        tp_buf_put(b, e, 1);
        return;
    }
    e[0] = '%';
    e[1] = tp_hexdigit_upper(c >> 4);
    e[2] = tp_hexdigit_upper(c);
    tp_buf_put(b, e, 3);
}

/* Encode a path segment (no '/' inside), copying unreserved runs at once. */
static void add_encoded(tp_buf *b, const char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t run = i;
        while (run < n && is_unreserved((unsigned char)s[run]))
            run++;
        if (run > i) {
            tp_buf_put(b, s + i, run - i);
            i = run;
        }
        if (i < n)
            add_encoded_byte(b, (unsigned char)s[i++]);
    }
}

/* ------------------------------------------------------------------ crypto */

static int sha256(const void *data, size_t len, unsigned char md[SHA256_LEN])
{
    unsigned int mdlen = 0;

    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != SHA256_LEN)
        return -1;
    return 0;
}

static int sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_LEN + 1])
{
    unsigned char md[SHA256_LEN];

    if (sha256(data, len, md))
        return -1;
    tp_hex_encode(md, sizeof(md), hex);
    return 0;
}

static int hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                       unsigned char md[SHA256_LEN])
{
    unsigned int mdlen = 0;

    if (keylen > INT_MAX)
        return -1;
    if (!HMAC(EVP_sha256(), key, (int)keylen, data, len, md, &mdlen) ||
        mdlen != SHA256_LEN)
        return -1;
    return 0;
}

/* ------------------------------------------------- 1. canonical request */

/* Each '/'-separated segment of path[0..n) encoded, the '/' kept. */
static void add_uri_as_is(tp_buf *b, const char *path, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t seg = i;
        while (i < n && path[i] != '/')
            i++;
        add_encoded(b, path + seg, i - seg);
        if (i < n)
            tp_buf_put(b, "/", 1);
    }
}

/* Drop the last segment written since start, with the '/' before it. */
static void drop_last_segment(tp_buf *b, size_t start)
{
    if (b->oom)
        return;
    while (b->len > start && b->data[b->len - 1] != '/')
        b->len--;
    if (b->len > start)
        b->len--;
    if (b->data)
        b->data[b->len] = '\0';
}

/*
 * Canonical URI.  The path is already encoded for the wire; SigV4 for every
 * service but S3 encodes it once more, so a '%' on the wire becomes %25 here
 * and a raw space (as in the test suite) becomes %20.
 *
 * With normalize, ".", ".." and empty segments are removed as the URI is
 * written; ".." backs up to the previous '/' in the output, which is safe
 * because encoded segments never contain '/'.  A trailing '/' is kept.
 */
static void make_canonical_uri(tp_buf *b, const char *path, int normalize)
{
    size_t start = b->len, n, i = 0;

    if (!path || !*path) {
        tp_buf_put(b, "/", 1);
        return;
    }
    n = strlen(path);
    if (!normalize) {
        add_uri_as_is(b, path, n);
        return;
    }
    while (i < n) {
        size_t seg, seglen;

        while (i < n && path[i] == '/')
            i++;
        seg = i;
        while (i < n && path[i] != '/')
            i++;
        seglen = i - seg;
        if (seglen == 0 || (seglen == 1 && path[seg] == '.'))
            continue;
        if (seglen == 2 && path[seg] == '.' && path[seg + 1] == '.') {
            drop_last_segment(b, start);
            continue;
        }
        tp_buf_put(b, "/", 1);
        add_encoded(b, path + seg, seglen);
    }
    if (b->len == start || path[n - 1] == '/')
        tp_buf_put(b, "/", 1);
}

typedef struct qpart {
    const char *key;
    size_t keylen;
    const char *val;
    size_t vallen;
} qpart;

/* Where a part's encoded key and value sit in the query buffer. */
typedef struct qspan {
    size_t key, eq, end;
} qspan;

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    if (c)
        return c;
    return alen == blen ? 0 : (alen < blen ? -1 : 1);
}

/* By encoded key, then by encoded value: comparing the joined "key=value"
 * strings would put "Param-3=" before "Param=". */
static int qpart_cmp(const void *a, const void *b)
{
    const qpart *x = a, *y = b;
    int c = bytes_cmp(x->key, x->keylen, y->key, y->keylen);

    return c ? c : bytes_cmp(x->val, x->vallen, y->val, y->vallen);
}

/*
 * URI-decode s then encode it again.  Only %XX is decoded: '+' is a literal
 * plus and is signed as %2B (decoding it to a space would sign a different
 * value than the one sent).  Returns -1 on a bad escape.
 */
static int add_reencoded(tp_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n)      /* needs two more bytes */
                return -1;
            hi = tp_hexval((unsigned char)s[i + 1]);
            lo = tp_hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)((hi << 4) | lo);
            i += 2;
        }
        add_encoded_byte(b, c);
    }
    return 0;
}

/*
 * Each non-empty '&'-separated part of query, key and value re-encoded into
 * qbuf, their places in sp.  Returns the number of parts, or -1 (message in
 * err) on a bad escape or too many parts.
 */
static long encode_query_parts(tp_buf *qbuf, const char *query,
                               qspan sp[TP_SIGV4_MAX_QUERY_PARTS], char *err, size_t errlen)
{
    size_t n = 0;
    const char *p = query;

    while (*p) {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *keyend = eq ? eq : end;

        if (end > p) {   /* "a=1&&b=2": empty parts carry nothing */
            if (n == TP_SIGV4_MAX_QUERY_PARTS) {
                snprintf(err, errlen, "sigv4: more than %d query parameters",
                         TP_SIGV4_MAX_QUERY_PARTS);
                return -1;
            }
            sp[n].key = qbuf->len;
            if (add_reencoded(qbuf, p, (size_t)(keyend - p)) < 0)
                goto bad_escape;
            sp[n].eq = qbuf->len;
            if (eq && add_reencoded(qbuf, eq + 1, (size_t)(end - eq - 1)) < 0)
                goto bad_escape;
            sp[n].end = qbuf->len;
            n++;
        }
        p = amp ? amp + 1 : end;
    }
    return (long)n;

bad_escape:
    snprintf(err, errlen, "sigv4: bad percent-escape in query parameter %zu", n + 1);
    return -1;
}

/*
 * Canonical query string: each key and value decoded and re-encoded (so an
 * already-encoded %E1%88%B4 stays as it is instead of becoming %25E1...),
 * a missing '=' read as an empty value, sorted, joined with '&'.
 * qbuf holds the encoded parts while they are sorted.
 */
static int make_canonical_query(tp_buf *b, tp_buf *qbuf, const char *query,
                                char *err, size_t errlen)
{
    qpart parts[TP_SIGV4_MAX_QUERY_PARTS];
    qspan sp[TP_SIGV4_MAX_QUERY_PARTS];
    const char *base;
    long n;

    if (!query || !*query)
        return 0;
    if (*query == '?') {
        snprintf(err, errlen, "sigv4: query must not start with '?'");
        return -1;
    }
    n = encode_query_parts(qbuf, query, sp, err, errlen);
    if (n < 0)
        return -1;
    if (qbuf->oom) {
        buf_error(qbuf, "canonical query", err, errlen);
        return -1;
    }
    /* qbuf no longer moves: offsets become pointers.  When every part is
     * empty ("=&") nothing was added and qbuf->data is NULL; NULL + 0 is
     * undefined behaviour, so point at "". */
    base = qbuf->data ? qbuf->data : "";
    for (long i = 0; i < n; i++) {
        parts[i] = (qpart){ base + sp[i].key, sp[i].eq - sp[i].key,
                            base + sp[i].eq, sp[i].end - sp[i].eq };
    }
    qsort(parts, (size_t)n, sizeof(parts[0]), qpart_cmp);
    for (long i = 0; i < n; i++) {
        if (i)
            tp_buf_put(b, "&", 1);
        tp_buf_put(b, parts[i].key, parts[i].keylen);
        tp_buf_put(b, "=", 1);
        tp_buf_put(b, parts[i].val, parts[i].vallen);
    }
    return 0;
}

typedef struct hdr {
    const char *name;
    size_t namelen;
    const char *value;
    size_t order;       /* input position: keeps duplicates in order */
} hdr;

static int hdr_name_cmp(const hdr *x, const hdr *y)
{
    size_t n = x->namelen < y->namelen ? x->namelen : y->namelen;

    for (size_t i = 0; i < n; i++) {
        unsigned char a = tp_lower((unsigned char)x->name[i]);
        unsigned char c = tp_lower((unsigned char)y->name[i]);
        if (a != c)
            return a < c ? -1 : 1;
    }
    if (x->namelen != y->namelen)
        return x->namelen < y->namelen ? -1 : 1;
    return 0;
}

static int hdr_cmp(const void *a, const void *b)
{
    const hdr *x = a, *y = b;
    int c = hdr_name_cmp(x, y);

    if (c)
        return c;
    /* qsort is not stable; repeated names keep their input order */
    return x->order < y->order ? -1 : (x->order > y->order);
}

/* One of the caller's headers: a token name, a value without control
 * characters (obs-fold aside), and none of the signer's own. */
static int check_header(const char *name, size_t namelen, const char *value, size_t i,
                        int sign_body, char *err, size_t errlen)
{
    static const char *const reserved[] = {
        "x-amz-date", "authorization", "x-amz-security-token"
    };

    if (!valid_token(name, namelen)) {
        snprintf(err, errlen, "sigv4: header %zu: bad or empty name", i);
        return -1;
    }
    if (!value || !valid_header_value(value)) {
        snprintf(err, errlen, "sigv4: header %.64s: value is NULL or "
                 "holds a control character", name);
        return -1;
    }
    for (size_t j = 0; j < sizeof(reserved) / sizeof(reserved[0]); j++) {
        if (name_is(name, namelen, reserved[j])) {
            snprintf(err, errlen, "sigv4: header %.64s is added by the "
                     "signer, do not pass it", name);
            return -1;
        }
    }
    if (sign_body && name_is(name, namelen, "x-amz-content-sha256")) {
        snprintf(err, errlen, "sigv4: header %.64s is added by the signer "
                 "with sign_body, do not pass it", name);
        return -1;
    }
    return 0;
}

static void put_hdr(hdr *h, size_t *n, const char *name, const char *value)
{
    h[*n] = (hdr){ name, strlen(name), value, *n };
    (*n)++;
}

/*
 * Collect the headers to sign: the caller's (checked), then x-amz-date, the
 * session token when it is signed, and x-amz-content-sha256 with sign_body.
 */
static int collect_headers(hdr *h, size_t *nh, const tp_sigv4_request *req,
                           const tp_sigv4_creds *creds, const tp_sigv4_params *params,
                           const tp_sigv4_result *out, char *err, size_t errlen)
{
    size_t n = 0;
    int have_host = 0;

    if (req->nheaders > TP_SIGV4_MAX_HEADERS) {
        snprintf(err, errlen, "sigv4: %zu headers, at most %d", req->nheaders,
                 TP_SIGV4_MAX_HEADERS);
        return -1;
    }
    if (req->nheaders && !req->headers) {
        snprintf(err, errlen, "sigv4: headers is NULL");
        return -1;
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        const char *name = req->headers[i].name;
        size_t namelen = name ? strlen(name) : 0;

        if (check_header(name, namelen, req->headers[i].value, i, params->sign_body,
                         err, errlen) < 0)
            return -1;
        have_host |= name_is(name, namelen, "host");
        put_hdr(h, &n, name, req->headers[i].value);
    }
    if (!have_host) {
        snprintf(err, errlen, "sigv4: the request has no Host header");
        return -1;
    }
    put_hdr(h, &n, "x-amz-date", out->amz_date);
    if (creds->session_token && *creds->session_token && !params->omit_session_token)
        put_hdr(h, &n, "x-amz-security-token", creds->session_token);
    if (params->sign_body)
        put_hdr(h, &n, "x-amz-content-sha256", out->content_sha256);
    *nh = n;
    return 0;
}

/* Trim, and collapse each run of whitespace (obs-fold included) to one
 * space, inside quotes too. */
static void add_trimmed_value(tp_buf *b, const char *v)
{
    int pending = 0;

    while (is_lws((unsigned char)*v))
        v++;
    while (*v) {
        const char *run = v;

        if (is_lws((unsigned char)*v)) {
            pending = 1;
            v++;
            continue;
        }
        while (*v && !is_lws((unsigned char)*v))
            v++;
        if (pending)
            tp_buf_put(b, " ", 1);
        pending = 0;
        tp_buf_put(b, run, (size_t)(v - run));
    }
}

static void add_lower_name(tp_buf *b, const char *name, size_t n)
{
    size_t start = b->len;

    tp_buf_put(b, name, n);
    if (b->oom)
        return;
    for (size_t i = start; i < b->len; i++)
        b->data[i] = (char)tp_lower((unsigned char)b->data[i]);
}

/* CanonicalHeaders: "name:value\n" each, sorted; a repeated name is one
 * line, its values joined with ',' in input order. */
static void add_canonical_headers(tp_buf *b, const hdr *h, size_t nh)
{
    for (size_t i = 0; i < nh; i++) {
        if (i && !hdr_name_cmp(&h[i - 1], &h[i])) {
            tp_buf_put(b, ",", 1);
        } else {
            if (i)
                tp_buf_put(b, "\n", 1);
            add_lower_name(b, h[i].name, h[i].namelen);
            tp_buf_put(b, ":", 1);
        }
        add_trimmed_value(b, h[i].value);
    }
    tp_buf_put(b, "\n", 1);
}

/* SignedHeaders: the names, lower case, ';'-separated, each once. */
static void add_signed_headers(tp_buf *b, const hdr *h, size_t nh)
{
    for (size_t i = 0; i < nh; i++) {
        if (i && !hdr_name_cmp(&h[i - 1], &h[i]))
            continue;
        if (i)
            tp_buf_put(b, ";", 1);
        add_lower_name(b, h[i].name, h[i].namelen);
    }
}

/*
 * CanonicalRequest =
 *   Method \n CanonicalURI \n CanonicalQuery \n
 *   CanonicalHeaders (name:value\n each) \n
 *   SignedHeaders \n HexPayloadHash
 * The signed-headers list is left in b at [*sh_off, *sh_off + *sh_len).
 */
static int make_canonical_request(tp_buf *b, tp_buf *qbuf, const tp_sigv4_request *req,
                                  const tp_sigv4_creds *creds, const tp_sigv4_params *params,
                                  const tp_sigv4_result *out, size_t *sh_off, size_t *sh_len,
                                  char *err, size_t errlen)
{
    hdr h[TP_SIGV4_MAX_HEADERS + ADDED_HEADERS];
    size_t nh = 0;

    if (collect_headers(h, &nh, req, creds, params, out, err, errlen) < 0)
        return -1;
    qsort(h, nh, sizeof(h[0]), hdr_cmp);

    tp_buf_put(b, req->method, strlen(req->method));
    tp_buf_put(b, "\n", 1);
    make_canonical_uri(b, req->path, params->normalize_path);
    tp_buf_put(b, "\n", 1);
    if (make_canonical_query(b, qbuf, req->query, err, errlen) < 0)
        return -1;
    tp_buf_put(b, "\n", 1);
    add_canonical_headers(b, h, nh);
    tp_buf_put(b, "\n", 1);
    *sh_off = b->len;
    add_signed_headers(b, h, nh);
    *sh_len = b->len - *sh_off;
    tp_buf_put(b, "\n", 1);
    tp_buf_put(b, out->content_sha256, SHA256_HEX_LEN);
    if (b->oom) {
        buf_error(b, "canonical request", err, errlen);
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
                               const char *scope, const tp_buf *creq,
                               char *err, size_t errlen)
{
    char hash[SHA256_HEX_LEN + 1];
    int n;

    if (sha256_hex(creq->data, creq->len, hash) < 0) {
        snprintf(err, errlen, "sigv4: SHA-256 of the canonical request failed");
        return -1;
    }
    n = snprintf(sts, stslen, "%s\n%s\n%s\n%s", ALGORITHM, amz_date, scope, hash);
    if (n < 0 || (size_t)n >= stslen) {
        snprintf(err, errlen, "sigv4: string to sign too long");
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

    if (slen > TP_SIGV4_SECRET_MAX)
        goto fail;      /* checked by the caller already */
    memcpy(ksecret, "AWS4", 4);
    memcpy(ksecret + 4, secret, slen);
    if (hmac_sha256(ksecret, 4 + slen, datestamp, strlen(datestamp), k1) ||
        hmac_sha256(k1, sizeof(k1), region, strlen(region), k2) ||
        hmac_sha256(k2, sizeof(k2), service, strlen(service), k1) ||
        hmac_sha256(k1, sizeof(k1), SCOPE_TERM, strlen(SCOPE_TERM), key))
        goto fail;
    result = 0;

fail:
    if (result < 0)
        snprintf(err, errlen, "sigv4: HMAC-SHA256 failed deriving the signing key");
    OPENSSL_cleanse(ksecret, sizeof(ksecret));
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(k2, sizeof(k2));
    return result;
}

/* The signing key from the cache when it matches, else derived (and cached). */
static int get_signing_key(unsigned char key[SHA256_LEN], tp_sigv4_key_cache *cache,
                           const char *secret, const char *datestamp, const char *region,
                           const char *service, char *err, size_t errlen)
{
    unsigned char sh[SHA256_LEN];
    int result = -1;

    if (!cache)
        return derive_signing_key(key, secret, datestamp, region, service, err, errlen);
    if (sha256(secret, strlen(secret), sh) < 0) {
        snprintf(err, errlen, "sigv4: SHA-256 of the secret failed");
        goto fail;
    }
    if (cache->valid && !strcmp(cache->datestamp, datestamp) &&
        !strcmp(cache->region, region) && !strcmp(cache->service, service) &&
        !CRYPTO_memcmp(cache->secret_sha256, sh, sizeof(sh))) {
        memcpy(key, cache->key, SHA256_LEN);
        result = 0;
        goto fail;
    }
    tp_sigv4_key_cache_clear(cache);
    if (derive_signing_key(key, secret, datestamp, region, service, err, errlen) < 0)
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

static int calculate_signature(char sig[SHA256_HEX_LEN + 1], const unsigned char key[SHA256_LEN],
                               const char *sts, char *err, size_t errlen)
{
    unsigned char md[SHA256_LEN];

    if (hmac_sha256(key, SHA256_LEN, sts, strlen(sts), md) < 0) {
        snprintf(err, errlen, "sigv4: HMAC-SHA256 of the string to sign failed");
        return -1;
    }
    tp_hex_encode(md, sizeof(md), sig);
    return 0;
}

/* ------------------------------------------------- 5. Authorization */

static int make_authorization(tp_sigv4_result *out, const char *akid, const char *scope,
                              const char *signed_headers, size_t sh_len,
                              char *err, size_t errlen)
{
    int n;

    if (sh_len > INT_MAX)
        goto too_long;
    n = snprintf(out->authorization, sizeof(out->authorization),
                 "%s Credential=%s/%s, SignedHeaders=%.*s, Signature=%s",
                 ALGORITHM, akid, scope, (int)sh_len, signed_headers, out->signature);
    if (n < 0 || (size_t)n >= sizeof(out->authorization))
        goto too_long;
    return 0;

too_long:
    snprintf(err, errlen, "sigv4: Authorization value longer than %d bytes "
             "(too many or too long signed header names)", TP_SIGV4_AUTH_MAX - 1);
    return -1;
}

/* ------------------------------------------------- entry points */

static int check_request(const tp_sigv4_request *req, char *err, size_t errlen)
{
    if (!req->method || !valid_token(req->method, strlen(req->method))) {
        snprintf(err, errlen, "sigv4: bad or empty method");
        return -1;
    }
    if (req->path && *req->path) {
        if (req->path[0] != '/') {
            snprintf(err, errlen, "sigv4: path must start with '/'");
            return -1;
        }
        if (strpbrk(req->path, "?#") || !no_ctl(req->path)) {
            snprintf(err, errlen, "sigv4: path holds '?', '#' or a control character");
            return -1;
        }
    }
    if (req->body_len && !req->body) {
        snprintf(err, errlen, "sigv4: body is NULL but body_len is %zu", req->body_len);
        return -1;
    }
    return 0;
}

static int check_scope(const tp_sigv4_creds *creds, const tp_sigv4_params *params,
                       char *err, size_t errlen)
{
    if (!valid_scope_part(creds->access_key_id)) {
        snprintf(err, errlen, "sigv4: access key id missing, too long, or "
                 "not [A-Za-z0-9._-]");
        return -1;
    }
    if (!creds->secret_access_key || !*creds->secret_access_key ||
        strlen(creds->secret_access_key) > TP_SIGV4_SECRET_MAX) {
        snprintf(err, errlen, "sigv4: secret access key missing or longer "
                 "than %d bytes", TP_SIGV4_SECRET_MAX);
        return -1;
    }
    if (creds->session_token && !no_ctl(creds->session_token)) {
        snprintf(err, errlen, "sigv4: session token holds a control character");
        return -1;
    }
    if (!valid_scope_part(params->region)) {
        snprintf(err, errlen, "sigv4: region missing, too long, or not [A-Za-z0-9._-]");
        return -1;
    }
    if (!valid_scope_part(params->service)) {
        snprintf(err, errlen, "sigv4: service missing, too long, or not [A-Za-z0-9._-]");
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
    if (!gmtime_r(&now, &tm) || tm.tm_year < 1000 - 1900 || tm.tm_year > 9999 - 1900 ||
        strftime(amz_date, 17, "%Y%m%dT%H%M%SZ", &tm) != 16) {
        snprintf(err, errlen, "sigv4: signing time out of range");
        return -1;
    }
    memcpy(datestamp, amz_date, 8);
    datestamp[8] = '\0';
    return 0;
}

/* CredentialScope = Date/Region/Service/aws4_request */
static int make_scope(char *scope, size_t scopelen, const char *datestamp,
                      const tp_sigv4_params *params, char *err, size_t errlen)
{
    int n = snprintf(scope, scopelen, "%s/%s/%s/%s", datestamp, params->region,
                     params->service, SCOPE_TERM);

    if (n < 0 || (size_t)n >= scopelen) {
        snprintf(err, errlen, "sigv4: credential scope too long");
        return -1;
    }
    return 0;
}

/* out->content_sha256: the hex SHA-256 of the body. */
static int hash_payload(const tp_sigv4_request *req, tp_sigv4_result *out,
                        char *err, size_t errlen)
{
    if (sha256_hex(req->body_len ? (const void *)req->body : (const void *)"",
                   req->body_len, out->content_sha256) < 0) {
        snprintf(err, errlen, "sigv4: SHA-256 of the body failed");
        return -1;
    }
    return 0;
}

/* With keep_intermediates: the canonical request (taken from creq) and a
 * copy of the string to sign go into out. */
static int keep_intermediates(tp_sigv4_result *out, tp_buf *creq, const char *sts,
                              char *err, size_t errlen)
{
    out->string_to_sign = strdup(sts);
    if (!out->string_to_sign) {
        snprintf(err, errlen, "sigv4: out of memory");
        return -1;
    }
    out->canonical_request = creq->data;    /* handed over */
    creq->data = NULL;
    return 0;
}

int tp_sigv4_sign(const tp_sigv4_request *req, const tp_sigv4_creds *creds,
                  const tp_sigv4_params *params, tp_sigv4_result *out,
                  char *err, size_t errlen)
{
    return tp_sigv4_sign_cached(req, creds, params, NULL, out, err, errlen);
}

int tp_sigv4_sign_cached(const tp_sigv4_request *req, const tp_sigv4_creds *creds,
                         const tp_sigv4_params *params, tp_sigv4_key_cache *cache,
                         tp_sigv4_result *out, char *err, size_t errlen)
{
    tp_buf creq = { .max = TP_SIGV4_CANON_MAX }, qbuf = { .max = TP_SIGV4_CANON_MAX };
    unsigned char key[SHA256_LEN];
    char datestamp[9];
    char scope[8 + 1 + TP_SIGV4_SCOPE_PART_MAX + 1 + TP_SIGV4_SCOPE_PART_MAX +
               1 + sizeof(SCOPE_TERM)];
    char sts[sizeof(ALGORITHM) + 17 + sizeof(scope) + SHA256_HEX_LEN + 4];
    size_t sh_off = 0, sh_len = 0;
    int result = -1;

    if (err && errlen)
        err[0] = '\0';
    if (!out) {
        snprintf(err, errlen, "sigv4: NULL result");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    if (!req || !creds || !params) {
        snprintf(err, errlen, "sigv4: NULL request, credentials or parameters");
        goto fail;
    }
    if (check_request(req, err, errlen) < 0 || check_scope(creds, params, err, errlen) < 0 ||
        make_dates(params->now, out->amz_date, datestamp, err, errlen) < 0 ||
        hash_payload(req, out, err, errlen) < 0 ||
        make_scope(scope, sizeof(scope), datestamp, params, err, errlen) < 0)
        goto fail;
    if (make_canonical_request(&creq, &qbuf, req, creds, params, out, &sh_off, &sh_len,
                               err, errlen) < 0 ||
        make_string_to_sign(sts, sizeof(sts), out->amz_date, scope, &creq, err, errlen) < 0 ||
        get_signing_key(key, cache, creds->secret_access_key, datestamp, params->region,
                        params->service, err, errlen) < 0 ||
        calculate_signature(out->signature, key, sts, err, errlen) < 0 ||
        make_authorization(out, creds->access_key_id, scope, creq.data + sh_off, sh_len,
                           err, errlen) < 0)
        goto fail;
    if (params->keep_intermediates && keep_intermediates(out, &creq, sts, err, errlen) < 0)
        goto fail;
    result = 0;

fail:
    OPENSSL_cleanse(key, sizeof(key));
    tp_buf_free(&qbuf);
    tp_buf_free(&creq);
    if (result < 0) {
        tp_sigv4_result_free(out);
        memset(out, 0, sizeof(*out));
    }
    return result;
}

void tp_sigv4_result_free(tp_sigv4_result *out)
{
    if (!out)
        return;
    free(out->canonical_request);
    out->canonical_request = NULL;
    free(out->string_to_sign);
    out->string_to_sign = NULL;
}

void tp_sigv4_key_cache_clear(tp_sigv4_key_cache *cache)
{
    if (cache)
        OPENSSL_cleanse(cache, sizeof(*cache));
}
