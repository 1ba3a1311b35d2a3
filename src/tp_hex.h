/*
 * tp_hex - hex digits and ASCII case, the same everywhere: percent-encoding
 * (query strings, SigV4), JSON \u00XX escapes, hex digests and UUIDs.  ASCII
 * only, whatever the locale (the C library's tolower() follows it).
 */
#ifndef TP_HEX_H
#define TP_HEX_H

#include <stddef.h>

/* The value of hex digit c (either case), or -1 when c is not one. */
static inline int tp_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The hex digit for the low four bits of v: lower case, or upper case
 * (percent-encoding as SigV4 signs it). */
static inline char tp_hexdigit(unsigned v)
{
    return "0123456789abcdef"[v & 0x0f];
}

static inline char tp_hexdigit_upper(unsigned v)
{
    return "0123456789ABCDEF"[v & 0x0f];
}

/* in[0..n) as 2n lower-case hex digits into out, then a NUL (2n + 1 bytes). */
static inline void tp_hex_encode(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = tp_hexdigit(in[i] >> 4);
        out[2 * i + 1] = tp_hexdigit(in[i]);
    }
    out[2 * n] = '\0';
}

/* ASCII letters' case; every other byte as it is. */
static inline unsigned char tp_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static inline unsigned char tp_upper(unsigned char c)
{
    return (c >= 'a' && c <= 'z') ? (unsigned char)(c - ('a' - 'A')) : c;
}

#endif
