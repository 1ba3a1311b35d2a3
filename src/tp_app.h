/*
 * tp_app - what one hit does, between the accept loop and the modules.
 *
 * tp_app_respond(): read the body, build the document, record it (the
 * journal, through tp_deliver), write the response.  Then the loop finishes
 * the request, and tp_app_deliver() hands the document on: to tp_deliver
 * (posted at once or by the delivery thread), or, without a cluster, to the
 * embedded default's file (tp_output).
 *
 * This layer logs; it never touches libfcgi itself: the loop hands it an I/O
 * vtable, so the same code serves FastCGI and plain CGI.  Called from the
 * accept loop's thread only.
 */
#ifndef TP_APP_H
#define TP_APP_H

#include <stddef.h>

#include "tp_deliver.h"
#include "tp_doc.h"
#include "tp_index.h"
#include "tp_uuid.h"

typedef struct tp_io {
    void *ctx;
    /* Read up to n body bytes; returns bytes read, 0 at the end, -1 on error. */
    long (*read)(void *ctx, char *buf, size_t n);
    /* Write all n bytes; returns 0 or -1. */
    int (*write)(void *ctx, const char *buf, size_t n);
} tp_io;

typedef struct tp_app tp_app;

/* One request's hit, on the loop's stack between respond and deliver. */
typedef struct tp_hit {
    char request_id[TP_UUID_LEN + 1];
    tp_doc *doc;           /* owned; NULL when nothing is to be recorded */
    tp_entry entry;        /* the serialized document (owned by doc)     */
    char index[TP_INDEX_MAX + 1];  /* its index (entry.index points here) */
} tp_hit;

/* Load the configuration from envp, open the sink (the cluster's delivery,
 * or the embedded default's file).  NULL with err set (one line naming the
 * variable at fault).  Free with tp_app_free(). */
tp_app *tp_app_new(char *const *envp, char *err, size_t errlen);

/* Stop delivering (what is pending is tried for at most
 * TRACKPIXEL_SHUTDOWN_MS), log the counters, and free everything.  What is
 * left stays in the journal for the next worker.  NULL is a no-op. */
void tp_app_free(tp_app *app);

/* TRACKPIXEL_BODY_TIMEOUT_MS: the loop's read deadline for a body. */
long tp_app_body_timeout_ms(const tp_app *app);

/* Answer one request: returns 0 when the response was written (whatever the
 * request carried), -1 when the client went away.  hit->doc is set when the
 * hit is to be recorded; it is already journaled. */
int tp_app_respond(tp_app *app, char *const *envp, const tp_io *io, tp_hit *hit);

/* Deliver hit->doc (if any) and release it.  others_waiting(ctx) (NULL:
 * none) is asked, only when the loop could post the hit itself, whether
 * requests wait for this worker (then the hit is left to the delivery
 * thread): under load the question is not asked, it costs a syscall. */
void tp_app_deliver(tp_app *app, tp_hit *hit, int (*others_waiting)(void *), void *ctx);

#endif
