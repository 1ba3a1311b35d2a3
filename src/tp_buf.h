/*
 * tp_buf - a growable byte buffer, NUL-terminated after every put.
 *
 * Errors are sticky: once an allocation failed, b->oom is set and later
 * calls do nothing, so a caller checks once at the end.  A buffer may be
 * bounded: with max set (before the first put), it never holds more than
 * max - 1 bytes and their NUL; a put past that fails like an allocation,
 * and too_big tells the two apart.  The buffer's bytes belong to it:
 * tp_buf_free() (an all-zero tp_buf is empty, unbounded, and needs no free).
 */
#ifndef TP_BUF_H
#define TP_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct tp_buf {
    char *data;             /* NUL-terminated when len > 0 or after a put */
    size_t len, cap;
    int oom;                /* a put failed: out of memory, or too_big */
    size_t max;             /* 0: no bound; else len + 1 <= max, always */
    int too_big;            /* the failure was max, not memory */
} tp_buf;                   /* all zero: empty */

/* Room for more bytes plus a NUL; 0, or -1 (and oom) when out of memory. */
int tp_buf_grow(tp_buf *b, size_t more);
static inline int tp_buf_reserve(tp_buf *b, size_t more)
{
    if (!b->oom && more < b->cap - b->len)     /* room for more + NUL */
        return 0;
    return tp_buf_grow(b, more);
}

/* Append n raw bytes. */
static inline void tp_buf_put(tp_buf *b, const char *s, size_t n)
{
    if (tp_buf_reserve(b, n) < 0)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* Forget the contents, keep the memory. */
static inline void tp_buf_reset(tp_buf *b)
{
    b->len = 0;
    b->oom = 0;
    b->too_big = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Release the bytes; b is then all zero (its max forgotten too). */
void tp_buf_free(tp_buf *b);

/* A string literal and its length, for tp_buf_put(b, TP_LIT("...")). */
#define TP_LIT(s) s, sizeof(s) - 1

#endif
