/*
 * tp_query - split a QUERY_STRING into decoded name/value pairs.
 *
 * Pairs are separated by '&'; names and values are percent-decoded and '+'
 * is a space.  An invalid escape ("%zz", a trailing "%4") is kept as it
 * stands.  The decoded bytes may be anything, NUL included: callers get
 * lengths, and repair UTF-8 themselves.
 */
#ifndef TP_QUERY_H
#define TP_QUERY_H

#include <stddef.h>

/*
 * Percent-decode s[0..len) into out, which must hold len bytes (decoding
 * never grows).  '+' becomes a space when plus_is_space.  Returns the number
 * of bytes written; out is not NUL-terminated.
 */
size_t tp_query_decode(const char *s, size_t len, char *out, int plus_is_space);

/*
 * Called once per pair with a non-empty decoded name, in order.  name and
 * value point into a scratch buffer valid only during the call.  Return 0
 * to go on, non-zero to stop (tp_query_each then returns -1).
 */
typedef int (*tp_query_cb)(void *ctx, const char *name, size_t name_len,
                           const char *value, size_t value_len);

/*
 * Call cb for each pair of qs (NULL counts as "").  A name without '=' has
 * the value "".  Empty names are skipped.  Returns the number of pairs
 * passed to cb, or -1 when cb stopped or memory ran out.
 */
long tp_query_each(const char *qs, tp_query_cb cb, void *ctx);

#endif
