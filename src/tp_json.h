/*
 * tp_json - JSON text written in one pass into a growable buffer.
 *
 * The document has a fixed shape of flat string maps, so it is written
 * directly rather than built as a json-c tree (about 60 allocations a hit)
 * and printed once.  The text is exactly what json-c prints with
 * JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE (tests/check_json.c
 * compares the two); json-c still parses everything we read (POST bodies,
 * Elasticsearch answers).  Strings must already be valid UTF-8 (tp_utf8).
 * The text goes into a tp_buf (tp_buf.h).
 */
#ifndef TP_JSON_H
#define TP_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "tp_buf.h"

/* Append s[0..n) as a quoted JSON string: " \ and control characters
 * escaped (\b \f \n \r \t, others \u00xx), '/' and everything else as is. */
void tp_json_string(tp_buf *b, const char *s, size_t n);

/* Append v in decimal. */
void tp_json_int64(tp_buf *b, int64_t v);

#endif
