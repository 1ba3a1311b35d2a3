/*
 * tp_pixel - the response: the 1x1 BMP and the CGI headers around it.
 *
 * Builds bytes only; the accept loop writes them to the stream.
 */
#ifndef TP_PIXEL_H
#define TP_PIXEL_H

#include <stddef.h>

#define TP_PIXEL_LEN 60

/* The original function's pixel: a 1x1 white 24-bit BMP. */
extern const unsigned char tp_pixel_bmp[TP_PIXEL_LEN];

typedef enum tp_method {
    TP_METHOD_GET,
    TP_METHOD_HEAD,
    TP_METHOD_POST,
    TP_METHOD_OTHER        /* answered 405, not recorded */
} tp_method;

/* Classify REQUEST_METHOD (NULL or "" is OTHER). */
tp_method tp_pixel_method(const char *request_method);

/*
 * Write the whole response for method m into buf (capacity cap): the CGI
 * header block, then the pixel for GET and POST, or the 405 text for OTHER.
 * request_id goes into X-Request-Id (GET/HEAD/POST).  Returns the number of
 * bytes, or -1 when buf is too small (512 bytes is always enough).
 */
long tp_pixel_response(tp_method m, const char *request_id, char *buf, size_t cap);

#endif
