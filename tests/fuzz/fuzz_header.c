/*
 * fuzz_header - tp_header_name on arbitrary CGI variable names.
 *
 * Input: byte 0 picks the output capacity, the rest is the variable name.
 * Properties:
 *  - the result is -1, 0 or the length written; nothing is written past
 *    outcap (the buffer is exactly outcap bytes: ASan sees an overrun);
 *  - the name is that of an independent mapping (HTTP_ dropped, '_' and '-'
 *    become '-', each word capitalized and the rest lower case);
 *  - Authorization and Proxy-Authorization never come out, in any spelling;
 *  - names that differ only in case or in '-' vs '_' after the prefix map to
 *    the same header name (CGI merges them; so does the document).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tp_header.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

/* Independent: returns the header name length (written to out, which holds
 * len + 1), 0 for "not recorded". */
static long ref_name(const char *v, size_t len, char *out)
{
    size_t skip, i;
    int start = 1;

    if (len > 5 && strncmp(v, "HTTP_", 5) == 0)
        skip = 5;
    else if ((len == 12 && memcmp(v, "CONTENT_TYPE", 12) == 0) ||
             (len == 14 && memcmp(v, "CONTENT_LENGTH", 14) == 0))
        skip = 0;
    else
        return 0;
    for (i = skip; i < len; i++)
        if (v[i] == '\0')
            return 0;
    for (i = skip; i < len; i++) {
        char c = v[i];
        if (c == '_' || c == '-') {
            out[i - skip] = '-';
            start = 1;
            continue;
        }
        if (start && c >= 'a' && c <= 'z')
            c = (char)(c - 32);
        else if (!start && c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        out[i - skip] = c;
        start = 0;
    }
    out[len - skip] = '\0';
    if (strcasecmp(out, "authorization") == 0 || strcasecmp(out, "proxy-authorization") == 0)
        return 0;
    return (long)(len - skip);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *var;
    size_t len, cap, i;
    char *out, *ref, *big, *twin;
    long n, rn, n2;

    if (size < 1)
        return 0;
    cap = data[0];
    var = (const char *)data + 1;
    len = size - 1;

    out = malloc(cap ? cap : 1);
    ref = malloc(len + 1);
    big = malloc(len + 1);
    twin = malloc(len + 1);
    CHECK(out && ref && big && twin);

    rn = ref_name(var, len, ref);
    n = tp_header_name(var, len, out, cap);
    if (rn == 0)
        CHECK(n == 0);
    else if ((size_t)rn + 1 > cap)
        CHECK(n == -1);
    else
        CHECK(n == rn && memcmp(out, ref, (size_t)rn + 1) == 0);

    /* With room enough, only "not a header" is 0. */
    n = tp_header_name(var, len, big, len + 1);
    CHECK(n == rn);
    if (n > 0) {
        CHECK(strlen(big) == (size_t)n);
        CHECK(strcasecmp(big, "authorization") != 0 &&
              strcasecmp(big, "proxy-authorization") != 0);
    }

    /* A twin differing in case and '-'/'_' after the prefix: same header. */
    if (len > 5 && memcmp(var, "HTTP_", 5) == 0) {
        memcpy(twin, var, len);
        for (i = 5; i < len; i++) {
            unsigned char c = (unsigned char)twin[i];
            unsigned char k = data[1 + (i * 7) % len];
            if (c == '_' && (k & 1))
                twin[i] = '-';
            else if (c == '-' && (k & 1))
                twin[i] = '_';
            else if (c >= 'a' && c <= 'z' && (k & 2))
                twin[i] = (char)(c - 32);
            else if (c >= 'A' && c <= 'Z' && (k & 2))
                twin[i] = (char)(c + 32);
        }
        n2 = tp_header_name(twin, len, ref, len + 1);
        CHECK(n2 == n);
        if (n > 0)
            CHECK(memcmp(ref, big, (size_t)n) == 0);
    }
    free(out);
    free(ref);
    free(big);
    free(twin);
    return 0;
}
