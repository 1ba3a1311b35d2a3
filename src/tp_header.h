/*
 * tp_header - HTTP header names from CGI variable names.
 *
 * CGI hands headers over as HTTP_USER_AGENT=...; the document records them
 * in their usual spelling, "User-Agent": each dash-separated word
 * capitalized, the rest lower case.  CONTENT_TYPE and CONTENT_LENGTH are
 * headers too.  Authorization and Proxy-Authorization are never recorded.
 */
#ifndef TP_HEADER_H
#define TP_HEADER_H

#include <stddef.h>

/*
 * If var (a CGI variable name, not NUL-terminated: var_len bytes) names a
 * request header to record, write its header name into out (capacity
 * outcap, NUL-terminated) and return its length.  Return 0 when var is not
 * a header or must not be recorded, -1 when out is too small.
 */
long tp_header_name(const char *var, size_t var_len, char *out, size_t outcap);

#endif
