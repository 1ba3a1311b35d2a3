/*
 * tp_json - JSON text written in one pass into a growable buffer.
 *
 * The document has a fixed shape of flat string maps, so it is written
 * directly rather than built as a json-c tree (about 60 allocations a hit)
 * and printed once.  The text is exactly what json-c prints with
 * JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE (tests/check_json.c
 * compares the two); json-c still parses everything we read (POST bodies,
 * Elasticsearch answers).  Strings must already be valid UTF-8 (tp_utf8).
 *
 * Errors are sticky: once an allocation failed, b->oom is set and later
 * calls do nothing.  The buffer's bytes belong to it: tp_buf_free().
 */
#ifndef TP_JSON_H
#define TP_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct tp_buf {
    char *data;             /* NUL-terminated when len > 0 or after a put */
    size_t len, cap;
    int oom;
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

/* Append s[0..n) as a quoted JSON string: " \ and control characters
 * escaped (\b \f \n \r \t, others \u00xx), '/' and everything else as is. */
void tp_json_string(tp_buf *b, const char *s, size_t n);

/* Append v in decimal. */
void tp_json_int64(tp_buf *b, int64_t v);

void tp_buf_free(tp_buf *b);

#endif
