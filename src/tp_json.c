#include "tp_json.h"

#include <stdio.h>
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
        run = i;
        while (run < n && !needs_escape[p[run]])
            run++;
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
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", (long long)v);

    if (n > 0)
        tp_buf_put(b, num, (size_t)n);
}

