/*
 * tp_response - the answers other than the pixel: the click redirect's
 * 302 and 400, the 404 of a path that is not served, the 405 of a method
 * an endpoint does not take, and the health and metrics answers.
 *
 * Builds bytes only (CGI header block and body), appended to a caller's
 * tp_buf; the accept loop writes them.  Nothing here varies with the
 * request but what the arguments say: the 404 is the same bytes for every
 * path it answers.
 */
#ifndef TP_RESPONSE_H
#define TP_RESPONSE_H

#include <stddef.h>

#include "tp_buf.h"

/* 302 to location (an absolute URL tp_redirect accepted: no CR, LF or
 * other control character), Cache-Control: no-store. */
void tp_response_redirect(const char *location, const char *request_id, tp_buf *out);

/* 400 with the text "redirect refused: <why>\n"; never a Location. */
void tp_response_refused(const char *why, const char *request_id, tp_buf *out);

/* 404 "not found\n": unknown paths, endpoints that are off or not for
 * this client. */
void tp_response_not_found(tp_buf *out);

/* 405 with Allow: allow. */
void tp_response_not_allowed(const char *allow, tp_buf *out);

/* status ("200 OK", "503 Service Unavailable") with body (len bytes) of
 * content_type, not cached; head: the headers only. */
void tp_response_body(const char *status, const char *content_type, const char *body,
                      size_t len, int head, tp_buf *out);

#endif
