/*
 * tp_utf8 - make any byte string valid UTF-8.
 *
 * Elasticsearch rejects a whole document for one invalid byte, so every
 * string that comes from a request passes through here.  Each maximal
 * invalid subsequence (WHATWG / Unicode "substitution of maximal subparts")
 * becomes U+FFFD: truncated and overlong sequences, encoded surrogates,
 * code points past U+10FFFF and stray continuation bytes.  NUL and other
 * control characters are valid UTF-8 and are kept (json-c escapes them).
 */
#ifndef TP_UTF8_H
#define TP_UTF8_H

#include <stddef.h>

/* 1 if s[0..len) is valid UTF-8, else 0. */
int tp_utf8_valid(const char *s, size_t len);

/*
 * Repair s[0..len) into out, which holds at most outcap bytes (3 * len is
 * always enough).  Writes at most outcap bytes, never splits a character,
 * and NUL-terminates when there is room.  Returns the number of bytes
 * written (without the NUL); *consumed (if not NULL) is how many input
 * bytes went in, less than len when out was too small.
 */
size_t tp_utf8_repair(const char *s, size_t len, char *out, size_t outcap,
                      size_t *consumed);

/*
 * Same, into a new malloc'd NUL-terminated string of at most max_bytes
 * bytes (0 = no limit); the caller frees it.  *cut is set to 1 when the
 * result was shortened to fit max_bytes.  Returns NULL when out of memory.
 */
char *tp_utf8_repair_dup(const char *s, size_t len, size_t max_bytes,
                         size_t *outlen, int *cut);

#endif
