#include "tp_response.h"

#include <stdio.h>
#include <string.h>

#define NO_STORE "Cache-Control: no-store\r\n"

static const char not_found[] =
    "Status: 404 Not Found\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 10\r\n"
    NO_STORE
    "\r\n"
    "not found\n";

/* The header lines every answer here has, and one more (extra_name: extra). */
static void put_head(tp_buf *out, const char *status, const char *content_type, size_t len,
                     const char *extra_name, const char *extra)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf),
                     "Status: %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     NO_STORE, status, content_type, len);

    if (n > 0)
        tp_buf_put(out, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
    if (extra_name) {
        tp_buf_put(out, extra_name, strlen(extra_name));
        tp_buf_put(out, TP_LIT(": "));
        tp_buf_put(out, extra, strlen(extra));
        tp_buf_put(out, TP_LIT("\r\n"));
    }
}

void tp_response_redirect(const char *location, const char *request_id, tp_buf *out)
{
    put_head(out, "302 Found", "text/plain; charset=utf-8", 0, "Location", location);
    tp_buf_put(out, TP_LIT("X-Request-Id: "));
    tp_buf_put(out, request_id, strlen(request_id));
    tp_buf_put(out, TP_LIT("\r\n\r\n"));
}

void tp_response_refused(const char *why, const char *request_id, tp_buf *out)
{
    char body[96];
    int n = snprintf(body, sizeof(body), "redirect refused: %s\n", why);
    size_t len = n > 0 ? ((size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1) : 0;

    put_head(out, "400 Bad Request", "text/plain; charset=utf-8", len, "X-Request-Id",
             request_id);
    tp_buf_put(out, TP_LIT("\r\n"));
    tp_buf_put(out, body, len);
}

void tp_response_not_found(tp_buf *out)
{
    tp_buf_put(out, not_found, sizeof(not_found) - 1);
}

void tp_response_not_allowed(const char *allow, tp_buf *out)
{
    put_head(out, "405 Method Not Allowed", "text/plain; charset=utf-8", 19, "Allow", allow);
    tp_buf_put(out, TP_LIT("\r\nmethod not allowed\n"));
}

void tp_response_body(const char *status, const char *content_type, const char *body,
                      size_t len, int head, tp_buf *out)
{
    put_head(out, status, content_type, len, NULL, NULL);
    tp_buf_put(out, TP_LIT("\r\n"));
    if (!head)
        tp_buf_put(out, body, len);
}
