/*
 * tp_redirect - the click redirect's target: is u an absolute http(s) URL
 * whose host TRACKPIXEL_REDIRECT_ALLOW names?
 *
 * The allow-list is a comma list of host patterns: "example.com" (that host
 * only) or "*.example.com" (any subdomain of example.com, not example.com
 * itself).  A bare "*", an empty pattern or a pattern that is not a host
 * name is a configuration error.  Hosts compare case-insensitively, in
 * ASCII: an internationalized host must be written in punycode (xn--).
 *
 * A target is refused for one of a fixed set of reasons (tp_redirect_why):
 * the reason, not the target, is what a refusal records, so a flood of
 * refusals cannot grow the index by more than one small document each.
 *
 * Leaf module: no logging.  Parsing is libcurl's (CURLU).
 */
#ifndef TP_REDIRECT_H
#define TP_REDIRECT_H

#include <stddef.h>

/* The longest target accepted, in bytes (decoded). */
#define TP_REDIRECT_MAX_URL 2048

typedef enum tp_redirect_why {
    TP_REDIRECT_OK,
    TP_REDIRECT_MISSING,      /* no u, or an empty one                     */
    TP_REDIRECT_TOO_LONG,     /* more than TP_REDIRECT_MAX_URL bytes        */
    TP_REDIRECT_BAD_CHAR,     /* a control character, space, backslash or
                                 a byte outside ASCII                       */
    TP_REDIRECT_NOT_ABSOLUTE, /* not a URL with a scheme and a host         */
    TP_REDIRECT_SCHEME,       /* not http or https                          */
    TP_REDIRECT_USERINFO,     /* user or password before the host           */
    TP_REDIRECT_HOST,         /* host not in the allow-list                 */
    TP_REDIRECT_NWHY
} tp_redirect_why;

/* A short fixed name for why ("ok", "missing", "too-long", ...). */
const char *tp_redirect_why_name(tp_redirect_why why);

typedef struct tp_redirect_allow tp_redirect_allow;

/* Parse list.  NULL or "" gives NULL with err empty (redirects off);
 * NULL with err set on a bad pattern.  Free with tp_redirect_allow_free(). */
tp_redirect_allow *tp_redirect_allow_parse(const char *list, char *err, size_t errlen);
void tp_redirect_allow_free(tp_redirect_allow *a);

/* Does host match a pattern of a?  host: len bytes, not NUL-terminated. */
int tp_redirect_host_allowed(const tp_redirect_allow *a, const char *host, size_t len);

/*
 * The target of query string qs (its first "u" parameter, percent-decoded,
 * '+' a space) checked against a.  TP_REDIRECT_OK: *target is the URL as
 * given, malloc'd (free() it), safe to send as a Location header.
 * Otherwise *target is NULL.
 */
tp_redirect_why tp_redirect_target(const tp_redirect_allow *a, const char *qs, char **target);

#endif
