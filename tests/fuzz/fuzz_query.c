/*
 * fuzz_query - tp_query_decode and tp_query_each.
 *
 * Properties:
 *  - decoding never grows: into a buffer of exactly len bytes (ASan sees any
 *    overrun), it writes at most len bytes, and the bytes are those of an
 *    independent decoder;
 *  - tp_query_each hands over exactly the pairs an independent splitter finds
 *    ('&'-separated, first '=' splits, empty names skipped), in order, and
 *    returns their count; a callback that stops makes it return -1 at once.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tp_query.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static int hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

static size_t ref_decode(const char *s, size_t len, char *out, int plus)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && hex((unsigned char)s[i + 1]) >= 0 &&
            hex((unsigned char)s[i + 2]) >= 0) {
            out[o++] = (char)(hex((unsigned char)s[i + 1]) * 16 + hex((unsigned char)s[i + 2]));
            i += 2;
        } else {
            out[o++] = (plus && s[i] == '+') ? ' ' : s[i];
        }
    }
    return o;
}

typedef struct expect {
    const char *qs;     /* the query string */
    size_t len;
    size_t pos;         /* where the next pair is looked for */
    long seen;
    long stop_at;       /* stop (return 1) at this pair, -1: never */
    char *buf;          /* scratch, len + 1 bytes */
} expect;

/* The next pair with a non-empty decoded name, decoded into e->buf. */
static int next_pair(expect *e, size_t *nlen, size_t *voff, size_t *vlen)
{
    while (e->pos < e->len) {
        const char *p = e->qs + e->pos;
        size_t rest = e->len - e->pos, seg = 0, eq;

        while (seg < rest && p[seg] != '&')
            seg++;
        for (eq = 0; eq < seg && p[eq] != '='; eq++)
            ;
        *nlen = ref_decode(p, eq, e->buf, 1);
        *voff = *nlen;
        *vlen = eq < seg ? ref_decode(p + eq + 1, seg - eq - 1, e->buf + *nlen, 1) : 0;
        e->pos += seg + 1;
        if (*nlen > 0)
            return 1;
    }
    return 0;
}

static int cb(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen)
{
    expect *e = ctx;
    size_t en, evoff, evlen;

    CHECK(nlen > 0);
    CHECK(next_pair(e, &en, &evoff, &evlen));
    CHECK(nlen == en && memcmp(name, e->buf, nlen) == 0);
    CHECK(vlen == evlen && (vlen == 0 || memcmp(value, e->buf + evoff, vlen) == 0));
    if (e->seen++ == e->stop_at)
        return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1), *out = malloc(size ? size : 1), *ref = malloc(size + 1);
    size_t n, rn, qlen, a, b, c;
    expect e;
    long count;

    CHECK(in && out && ref);
    memcpy(in, data, size);
    in[size] = '\0';

    for (int plus = 0; plus <= 1; plus++) {
        n = tp_query_decode(in, size, out, plus);
        rn = ref_decode(in, size, ref, plus);
        CHECK(n <= size && n == rn && memcmp(out, ref, n) == 0);
    }

    /* As a QUERY_STRING: a C string, so up to the first NUL. */
    qlen = strlen(in);
    memset(&e, 0, sizeof(e));
    e.qs = in;
    e.len = qlen;
    e.stop_at = -1;
    e.buf = malloc(qlen + 1);
    CHECK(e.buf);
    count = tp_query_each(in, cb, &e);
    CHECK(count == e.seen);
    CHECK(!next_pair(&e, &a, &b, &c));          /* nothing left over */

    free(e.buf);
    e.buf = NULL;
    if (count > 0) {
        /* Stop at one of the pairs: -1, and no pair after it. */
        memset(&e, 0, sizeof(e));
        e.qs = in;
        e.len = qlen;
        e.stop_at = size ? (long)(data[0] % (unsigned)count) : 0;
        e.buf = malloc(qlen + 1);
        CHECK(e.buf);
        CHECK(tp_query_each(in, cb, &e) == -1);
        CHECK(e.seen == e.stop_at + 1);
    }
    free(e.buf);
    free(in);
    free(out);
    free(ref);
    return 0;
}
