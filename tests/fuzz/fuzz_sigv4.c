/*
 * fuzz_sigv4 - the canonicalizer and signer with arbitrary requests.
 *
 * Input: byte 0 holds flags (normalize_path, sign_body, keep_intermediates,
 * omit_session_token, a session token, a NULL path, a NULL query, a Host
 * header added), bytes 1-4 the signing time; the rest is NUL-separated:
 * method, path, query, body, then header name/value pairs.
 *
 * Properties: tp_sigv4_sign returns 0 or -1 and never crashes; on -1 the
 * result is zeroed and err holds a message; on 0 the date, the body hash, the
 * signature (64 hex digits) and the Authorization value are set and the
 * intermediates are there exactly when asked for; the cached signer gives the
 * same signature, from a cold and from a warm cache.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tp_sigv4.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)
#define MAX_FIELDS (4 + 2 * (TP_SIGV4_MAX_HEADERS + 4))

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static int is_hex64(const char *s)
{
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[64] == '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *field[MAX_FIELDS];
    size_t flen[MAX_FIELDS], nf = 0, i, start, nh = 0;
    tp_sigv4_header hdr[TP_SIGV4_MAX_HEADERS + 8];
    tp_sigv4_request req;
    tp_sigv4_creds creds = { "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL };
    tp_sigv4_params params;
    tp_sigv4_result r1, r2, r3;
    tp_sigv4_key_cache cache;
    char err1[256], err2[256], err3[256], *copy;
    unsigned flags;
    int rc1, rc2, rc3;

    if (size < 5)
        return 0;
    flags = data[0];
    copy = malloc(size - 5 + 1);
    CHECK(copy);
    memcpy(copy, data + 5, size - 5);
    copy[size - 5] = '\0';
    for (i = 0, start = 0; i <= size - 5 && nf < MAX_FIELDS; i++) {
        if (copy[i] == '\0') {
            field[nf] = copy + start;
            flen[nf++] = i - start;
            start = i + 1;
        }
    }
    while (nf < 4) {
        field[nf] = "";
        flen[nf++] = 0;
    }

    memset(&req, 0, sizeof(req));
    req.method = field[0];
    req.path = (flags & 0x20) ? NULL : field[1];
    req.query = (flags & 0x40) ? NULL : field[2];
    req.body = (const unsigned char *)field[3];
    req.body_len = flen[3];
    if (flags & 0x80) {
        hdr[nh].name = "Host";
        hdr[nh++].value = "search-x.us-east-1.es.amazonaws.com";
    }
    for (i = 4; i + 1 < nf && nh < sizeof(hdr) / sizeof(hdr[0]); i += 2) {
        hdr[nh].name = field[i];
        hdr[nh++].value = field[i + 1];
    }
    req.headers = hdr;
    req.nheaders = nh;

    memset(&params, 0, sizeof(params));
    params.region = "us-east-1";
    params.service = "es";
    params.now = (time_t)((uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 |
                          (uint32_t)data[3] << 8 | data[4]);
    params.normalize_path = flags & 1;
    params.sign_body = (flags >> 1) & 1;
    params.keep_intermediates = (flags >> 2) & 1;
    params.omit_session_token = (flags >> 3) & 1;
    if (flags & 0x10)
        creds.session_token = "IQoJb3JpZ2luX2VjEXAMPLE/Token+with/slashes=";

    rc1 = tp_sigv4_sign(&req, &creds, &params, &r1, err1, sizeof(err1));
    CHECK(rc1 == 0 || rc1 == -1);
    CHECK(memchr(err1, '\0', sizeof(err1)) != NULL);
    if (rc1 == 0) {
        CHECK(strlen(r1.amz_date) == 16);
        CHECK(is_hex64(r1.content_sha256));
        CHECK(is_hex64(r1.signature));
        CHECK(memchr(r1.authorization, '\0', sizeof(r1.authorization)) != NULL);
        CHECK(strncmp(r1.authorization, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/", 40) == 0);
        CHECK(strstr(r1.authorization, r1.signature) != NULL);
        CHECK(!r1.canonical_request == !params.keep_intermediates);
        CHECK(!r1.string_to_sign == !params.keep_intermediates);
        if (params.keep_intermediates)
            CHECK(strlen(r1.canonical_request) <= TP_SIGV4_CANON_MAX);
    } else {
        CHECK(err1[0] != '\0');
        CHECK(all_zero(&r1, sizeof(r1)));
    }

    /* The cached signer: same answer from a cold cache, then a warm one. */
    memset(&cache, 0, sizeof(cache));
    rc2 = tp_sigv4_sign_cached(&req, &creds, &params, &cache, &r2, err2, sizeof(err2));
    rc3 = tp_sigv4_sign_cached(&req, &creds, &params, &cache, &r3, err3, sizeof(err3));
    CHECK(rc2 == rc1 && rc3 == rc1);
    if (rc1 == 0) {
        CHECK(strcmp(r1.signature, r2.signature) == 0);
        CHECK(strcmp(r1.signature, r3.signature) == 0);
        CHECK(strcmp(r1.authorization, r3.authorization) == 0);
    } else {
        CHECK(strcmp(err1, err2) == 0 && strcmp(err1, err3) == 0);
    }

    tp_sigv4_result_free(&r1);
    tp_sigv4_result_free(&r1);              /* twice is safe */
    tp_sigv4_result_free(&r2);
    tp_sigv4_result_free(&r3);
    tp_sigv4_key_cache_clear(&cache);
    free(copy);
    return 0;
}
