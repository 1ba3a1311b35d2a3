#include "tp_query.h"

#include <stdlib.h>
#include <string.h>

#include "tp_hex.h"

size_t tp_query_decode(const char *s, size_t len, char *out, int plus_is_space)
{
    size_t i = 0, o = 0;

    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && len - i >= 3) {
            int hi = tp_hexval((unsigned char)s[i + 1]);
            int lo = tp_hexval((unsigned char)s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out[o++] = (char)(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out[o++] = (plus_is_space && c == '+') ? ' ' : (char)c;
        i++;
    }
    return o;
}

long tp_query_each(const char *qs, tp_query_cb cb, void *ctx)
{
    long count = -1;
    char small[512], *scratch = NULL;
    const char *p, *end;
    size_t qlen;

    if (!qs)
        qs = "";
    qlen = strlen(qs);
    /* A usual query string is decoded on the stack. */
    scratch = qlen < sizeof(small) ? small : malloc(qlen + 1);
    if (!scratch)
        goto fail;

    count = 0;
    p = qs;
    end = qs + qlen;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pend = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pend - p));
        const char *nend = eq ? eq : pend;
        size_t nlen, vlen = 0;

        nlen = tp_query_decode(p, (size_t)(nend - p), scratch, 1);
        if (eq)
            vlen = tp_query_decode(eq + 1, (size_t)(pend - eq - 1),
                                   scratch + nlen, 1);
        if (nlen > 0) {
            if (cb(ctx, scratch, nlen, scratch + nlen, vlen) != 0) {
                count = -1;
                goto fail;
            }
            count++;
        }
        p = pend + 1;
    }

fail:
    if (scratch != small)
        free(scratch);
    return count;
}
