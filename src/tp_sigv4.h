/*
 * tp_sigv4 - AWS Signature Version 4, header form.
 *
 * A pure function of (request, credentials, time): no globals, no clock,
 * no logging, no I/O.  OpenSSL does SHA-256 and HMAC.
 *
 * Ownership: every input is borrowed.  The result's strings live in the
 * caller's tp_sigv4_result; the optional canonical request and string to sign
 * are malloc'd and freed by tp_sigv4_result_free().
 */
#ifndef TP_SIGV4_H
#define TP_SIGV4_H

#include <stddef.h>
#include <time.h>

#define TP_SIGV4_MAX_HEADERS 64       /* input headers accepted, more is an error */
#define TP_SIGV4_AUTH_MAX    1024     /* Authorization header value, bounded      */
#define TP_SIGV4_MAX_QUERY_PARTS 256  /* key[=value] parts in the query, more is an error */
#define TP_SIGV4_CANON_MAX   (64 * 1024) /* canonical request size (and encoded query), more is an error */
#define TP_SIGV4_SECRET_MAX  256      /* secret access key length                 */
#define TP_SIGV4_SCOPE_PART_MAX 64    /* access key id, region, service length    */

typedef struct tp_sigv4_header {
    const char *name;   /* any case, e.g. "Host"                       */
    const char *value;  /* raw; trimmed and whitespace-collapsed here  */
} tp_sigv4_header;

typedef struct tp_sigv4_request {
    const char *method;            /* "GET", "POST"                          */
    const char *path;              /* as on the wire, e.g. "/events/_create/x" */
    const char *query;             /* without '?', NULL or "" for none        */
    const tp_sigv4_header *headers;/* must contain Host                       */
    size_t nheaders;
    const unsigned char *body;     /* may be NULL when body_len is 0          */
    size_t body_len;
} tp_sigv4_request;

typedef struct tp_sigv4_creds {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;     /* NULL or "" when there is none */
} tp_sigv4_creds;

typedef struct tp_sigv4_params {
    const char *region;            /* "us-east-1"                       */
    const char *service;           /* "es", "aoss", "service" (tests)   */
    time_t now;                    /* the signing time, UTC epoch secs  */
    int normalize_path;            /* remove ".", ".." and empty segments */
    int sign_body;                 /* add and sign x-amz-content-sha256 */
    int omit_session_token;        /* token sent but not signed         */
    int keep_intermediates;        /* fill canonical_request/string_to_sign */
} tp_sigv4_params;

typedef struct tp_sigv4_result {
    char amz_date[17];                      /* X-Amz-Date: 20150830T123600Z       */
    char content_sha256[65];                /* hex SHA-256 of the body            */
    char authorization[TP_SIGV4_AUTH_MAX];  /* Authorization header value         */
    char signature[65];                     /* hex, also inside authorization     */
    char *canonical_request;                /* malloc'd if keep_intermediates     */
    char *string_to_sign;                   /* malloc'd if keep_intermediates     */
} tp_sigv4_result;

/*
 * Sign a request.  On success returns 0 and fills *out; the caller then sends
 * X-Amz-Date: out->amz_date, Authorization: out->authorization,
 * X-Amz-Security-Token: creds->session_token (when set), and
 * x-amz-content-sha256: out->content_sha256 (when params->sign_body).
 * On failure returns -1 and writes a message (never a secret) into err.
 * Always call tp_sigv4_result_free() afterwards.
 *
 * *out is overwritten without being freed first: free a reused result before
 * signing into it again.  On failure *out is left zeroed (no partial
 * signature).
 *
 * Input rules (breaking one is -1 with a message, never a crash):
 *  - at most TP_SIGV4_MAX_HEADERS headers, one of them Host; names are HTTP
 *    tokens; values may hold obs-fold (CRLF or LF then SP/HT) but no other
 *    control characters.  The signer owns X-Amz-Date, Authorization,
 *    X-Amz-Security-Token, and (with sign_body) x-amz-content-sha256: passing
 *    one of those in headers is an error.
 *  - path starts with '/' (NULL or "" means "/") and holds no '?', '#' or
 *    control character.  It is taken as already encoded for the wire and is
 *    encoded once more (the SigV4 rule for every service but S3).
 *  - query: at most TP_SIGV4_MAX_QUERY_PARTS '&'-separated parts; each key and
 *    value is percent-decoded (a '%' not followed by two hex digits is an
 *    error; '+' is a literal plus) and re-encoded.
 *  - access key id, region and service: 1..TP_SIGV4_SCOPE_PART_MAX-1 bytes of
 *    [A-Za-z0-9._-]; secret: 1..TP_SIGV4_SECRET_MAX bytes.
 *  - the canonical request must fit in TP_SIGV4_CANON_MAX bytes and the
 *    Authorization value in TP_SIGV4_AUTH_MAX.
 */
int tp_sigv4_sign(const tp_sigv4_request *req, const tp_sigv4_creds *creds,
                  const tp_sigv4_params *params, tp_sigv4_result *out,
                  char *err, size_t errlen);

/* Frees the intermediates; safe on a zeroed or failed result, and twice. */
void tp_sigv4_result_free(tp_sigv4_result *out);

/*
 * Optional signing-key cache, owned by the caller (one per thread; no
 * globals here).  The signing key depends only on the secret, the date,
 * the region and the service, so it changes once a day: caching it saves
 * four of the five HMACs per request.
 * A changed secret (rotated or refreshed credentials) is noticed through a
 * SHA-256 of it; the secret itself is not kept.  The cache holds key
 * material: zero-initialise it (= {0} or tp_sigv4_key_cache_clear) and call
 * tp_sigv4_key_cache_clear() when done with it.
 */
typedef struct tp_sigv4_key_cache {
    int valid;
    char datestamp[9];                          /* YYYYMMDD   */
    char region[TP_SIGV4_SCOPE_PART_MAX];
    char service[TP_SIGV4_SCOPE_PART_MAX];
    unsigned char secret_sha256[32];
    unsigned char key[32];                      /* kSigning   */
} tp_sigv4_key_cache;

/* tp_sigv4_sign() with a key cache; cache may be NULL (no caching). */
int tp_sigv4_sign_cached(const tp_sigv4_request *req,
                         const tp_sigv4_creds *creds,
                         const tp_sigv4_params *params,
                         tp_sigv4_key_cache *cache, tp_sigv4_result *out,
                         char *err, size_t errlen);

/* Forget (and wipe) the cached key. */
void tp_sigv4_key_cache_clear(tp_sigv4_key_cache *cache);

#endif
