/*
 * tp_app - what one hit does, between the accept loop and the modules:
 * read the body, build the document, write the response (tp_app_respond),
 * then, after the loop has finished the request, deliver the document
 * (tp_app_deliver).  This layer logs; it never touches libfcgi itself: the
 * loop hands it an I/O vtable, so the same code serves FastCGI and plain CGI.
 */
#ifndef TP_APP_H
#define TP_APP_H

#include <json-c/json.h>
#include <stddef.h>

#include "tp_config.h"
#include "tp_es.h"
#include "tp_output.h"
#include "tp_uuid.h"

typedef struct tp_io {
    void *ctx;
    /* Read up to n body bytes; returns bytes read, 0 at the end, -1 on error. */
    long (*read)(void *ctx, char *buf, size_t n);
    /* Write all n bytes; returns 0 or -1. */
    int (*write)(void *ctx, const char *buf, size_t n);
} tp_io;

typedef struct tp_app {
    tp_config cfg;
    tp_es *es;             /* when TRACKPIXEL_ES_URL is set   */
    tp_output *out;        /* otherwise: the embedded default */
    char *body;            /* reused body buffer, max_body + 1 bytes */
    unsigned long hits, delivered, failed;
} tp_app;

typedef struct tp_hit {
    char request_id[TP_UUID_LEN + 1];
    json_object *doc;      /* owned; NULL when nothing is to be recorded */
} tp_hit;

/* Load the configuration from envp and open the sink.  -1 with err set (one
 * line naming the variable at fault).  Call tp_app_free() either way. */
int tp_app_init(tp_app *app, char *const *envp, char *err, size_t errlen);
void tp_app_free(tp_app *app);

/* Answer one request: returns 0 when the response was written (whatever the
 * request carried), -1 when the client went away.  hit->doc is set when the
 * hit is to be recorded. */
int tp_app_respond(tp_app *app, char *const *envp, const tp_io *io, tp_hit *hit);

/* Deliver hit->doc (if any) and release it.  Logs failures. */
void tp_app_deliver(tp_app *app, tp_hit *hit);

#endif
