#include "tp_utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char REPLACEMENT[3] = { (char)0xEF, (char)0xBF, (char)0xBD };

/*
 * Length of the valid UTF-8 character at s[0..len), or 0 if the bytes there
 * do not start one.  *bad is then the length of the maximal subpart to
 * replace with one U+FFFD (at least 1).  Table 3-7 of the Unicode standard.
 */
static size_t char_len(const unsigned char *s, size_t len, size_t *bad)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need, i;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;                   /* overlong */
        else if (c == 0xED)
            hi = 0x9F;                   /* surrogates D800-DFFF */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;                   /* overlong */
        else if (c == 0xF4)
            hi = 0x8F;                   /* past U+10FFFF */
    } else {
        *bad = 1;                        /* C0, C1, F5-FF, continuation */
        return 0;
    }
    for (i = 1; i < need; i++) {
        unsigned char min = (i == 1) ? lo : 0x80;
        unsigned char max = (i == 1) ? hi : 0xBF;
        if (i >= len || s[i] < min || s[i] > max) {
            *bad = i;
            return 0;
        }
    }
    return need;
}

/* 1 when every byte of p[0..len) is below 0x80: the usual case, tested
 * eight bytes at a time without a branch per byte. */
static int all_ascii(const unsigned char *p, size_t len)
{
    uint64_t w, any = 0;
    unsigned char tail = 0;
    size_t i = 0;

    for (; len - i >= 8; i += 8) {
        memcpy(&w, p + i, 8);
        any |= w;
    }
    for (; i < len; i++)
        tail |= p[i];
    return !(any & UINT64_C(0x8080808080808080)) && !(tail & 0x80);
}

int tp_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, bad;

    if (all_ascii(p, len))
        return 1;
    while (i < len) {
        size_t n;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        n = char_len(p + i, len - i, &bad);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

size_t tp_utf8_repair(const char *s, size_t len, char *out, size_t outcap,
                      size_t *consumed)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;

    while (i < len) {
        size_t n, bad = 0;
        const char *src;
        size_t srclen;

        n = char_len(p + i, len - i, &bad);
        if (n) {
            src = s + i;
            srclen = n;
        } else {
            src = REPLACEMENT;
            srclen = sizeof(REPLACEMENT);
            n = bad;
        }
        if (o + srclen > outcap)
            break;
        memcpy(out + o, src, srclen);
        o += srclen;
        i += n;
    }
    if (o < outcap)
        out[o] = '\0';
    if (consumed)
        *consumed = i;
    return o;
}

char *tp_utf8_repair_dup(const char *s, size_t len, size_t max_bytes,
                         size_t *outlen, int *cut)
{
    char *out = NULL;
    size_t cap, n, used = 0;

    /* Valid input (the common case) needs exactly len bytes. */
    cap = tp_utf8_valid(s, len) ? len : (len > (size_t)-1 / 3 ? len : 3 * len);
    if (max_bytes && cap > max_bytes)
        cap = max_bytes;
    out = malloc(cap + 1);
    if (!out)
        return NULL;
    n = tp_utf8_repair(s, len, out, cap, &used);
    out[n] = '\0';
    if (outlen)
        *outlen = n;
    if (cut)
        *cut = used < len;
    return out;
}
