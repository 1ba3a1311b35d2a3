#include "tp_pixel.h"

#include <stdio.h>
#include <string.h>

const unsigned char tp_pixel_bmp[TP_PIXEL_LEN] = {
    0x42, 0x4d, 0x3c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x36, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x18, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x27, 0x00,
    0x00, 0x00, 0x27, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00,
};

/* Every cache between us and the browser must forget the pixel: a cached
 * pixel is a hit we never see. */
#define NO_CACHE \
    "Cache-Control: no-cache, no-store, must-revalidate, private\r\n" \
    "Pragma: no-cache\r\n" \
    "Expires: 0\r\n"

static const char not_allowed[] =
    "Status: 405 Method Not Allowed\r\n"
    "Allow: GET, HEAD, POST\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 19\r\n"
    NO_CACHE
    "\r\n"
    "method not allowed\n";

tp_method tp_pixel_method(const char *m)
{
    if (!m)
        return TP_METHOD_OTHER;
    if (strcmp(m, "GET") == 0)
        return TP_METHOD_GET;
    if (strcmp(m, "HEAD") == 0)
        return TP_METHOD_HEAD;
    if (strcmp(m, "POST") == 0)
        return TP_METHOD_POST;
    return TP_METHOD_OTHER;
}

long tp_pixel_response(tp_method m, const char *request_id, char *buf, size_t cap)
{
    int n;

    if (m == TP_METHOD_OTHER) {
        if (cap < sizeof(not_allowed) - 1)
            return -1;
        memcpy(buf, not_allowed, sizeof(not_allowed) - 1);
        return (long)(sizeof(not_allowed) - 1);
    }
    n = snprintf(buf, cap,
                 "Status: 200 OK\r\n"
                 "Content-Type: image/bmp\r\n"
                 "Content-Length: %d\r\n"
                 NO_CACHE
                 "X-Request-Id: %s\r\n"
                 "\r\n",
                 TP_PIXEL_LEN, request_id ? request_id : "");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    if (m == TP_METHOD_HEAD)
        return n;
    if ((size_t)n + TP_PIXEL_LEN > cap)
        return -1;
    memcpy(buf + n, tp_pixel_bmp, TP_PIXEL_LEN);
    return n + TP_PIXEL_LEN;
}
