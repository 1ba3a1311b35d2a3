#include "tp_json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tp_hex.h"

/* 1 for the bytes json-c escapes (with NOSLASHESCAPE). */
static const unsigned char needs_escape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,   /* '\\' */
};

/* 1 when one of the eight bytes in w is one needs_escape[] marks: below
 * 0x20, '"' or '\\'.  (x - 0x01..) & ~x & 0x80.. has a bit set exactly when
 * x has a zero byte; x - 0x20.. likewise for a byte below 0x20. */
static int word_needs_escape(uint64_t w)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');

    return (((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) |
            ((backslash - ones) & ~backslash)) & highs ? 1 : 0;
}

/* The length of the run at p[0..n) that needs no escape. */
static size_t plain_run(const unsigned char *p, size_t n)
{
    size_t i = 0;
    uint64_t w;

    for (; n - i >= 8; i += 8) {
        memcpy(&w, p + i, 8);
        if (word_needs_escape(w))
            break;
    }
    while (i < n && !needs_escape[p[i]])
        i++;
    return i;
}

void tp_json_string(tp_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run;
    char *o;

    /* At most 6 bytes out for each byte in, and the quotes. */
    if (n > ((size_t)-1 / 2) / 6 || tp_buf_reserve(b, 6 * n + 2) < 0) {
        b->oom = 1;
        return;
    }
    o = b->data + b->len;
    *o++ = '"';
    while (i < n) {
        run = i + plain_run(p + i, n - i);
        memcpy(o, p + i, run - i);
        o += run - i;
        i = run;
        if (i == n)
            break;
        *o++ = '\\';
        switch (p[i]) {
        case '"':  *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = tp_hexdigit(p[i] >> 4);
            *o++ = tp_hexdigit(p[i]);
        }
        i++;
    }
    *o++ = '"';
    *o = '\0';
    b->len = (size_t)(o - b->data);
}

void tp_json_int64(tp_buf *b, int64_t v)
{
    char num[24], *o = num + sizeof(num);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do {
        *--o = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--o = '-';
    tp_buf_put(b, o, (size_t)(num + sizeof(num) - o));
}
