/*
 * tp_app - what one hit does, between the accept loop and the modules.
 *
 * tp_app_respond(): read the body, build the document, append it to this
 * worker's journal, write the response.  Then the loop finishes the request,
 * and tp_app_deliver() posts the document synchronously when that cannot
 * hold up the next pixel: the cluster is up and fast (its last answer took
 * at most TRACKPIXEL_SLOW_MS), nothing is queued before the document, and no
 * other request waits for this worker.  Otherwise the document is left in
 * the journal for the deliverer, a thread of this worker that sends the
 * backlog with _bulk (backoff with jitter while the cluster is down), claims
 * the journals of workers that died, and keeps the spool size known.  So
 * under load or with a slow cluster documents go in batches and the pixel
 * never waits; when it is quiet each hit is posted at once.
 *
 * This layer logs; it never touches libfcgi itself: the loop hands it an I/O
 * vtable, so the same code serves FastCGI and plain CGI.
 */
#ifndef TP_APP_H
#define TP_APP_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "tp_config.h"
#include "tp_doc.h"
#include "tp_es.h"
#include "tp_log.h"
#include "tp_output.h"
#include "tp_spool.h"
#include "tp_uuid.h"

typedef struct tp_io {
    void *ctx;
    /* Read up to n body bytes; returns bytes read, 0 at the end, -1 on error. */
    long (*read)(void *ctx, char *buf, size_t n);
    /* Write all n bytes; returns 0 or -1. */
    int (*write)(void *ctx, const char *buf, size_t n);
} tp_io;

typedef struct tp_app_counters {
    unsigned long hits;           /* recorded hits (GET, HEAD, POST)        */
    unsigned long delivered;      /* accepted by the cluster or the file    */
    unsigned long deadletters;    /* rejected, written to the dead letters  */
    unsigned long dropped;        /* lost: spool full, or no journal        */
    unsigned long journal_errors; /* appends that failed                    */
} tp_app_counters;

typedef struct tp_app {
    tp_config cfg;
    tp_es *es;             /* when TRACKPIXEL_ES_URL is set   */
    tp_output *out;        /* otherwise: the embedded default */
    char *body;            /* reused body buffer, max_body + 1 bytes */
    char *entry;           /* reused journal entry buffer */
    size_t entry_cap;
    tp_uuid_pool ids;      /* request-ids (the loop's) */

    /* Durability: everything below is guarded by lock. */
    tp_journal *journal;   /* NULL when TRACKPIXEL_SPOOL_DIR is "" */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t deliverer;
    int deliverer_running;
    volatile int quit;         /* also aborts the deliverer's request */
    int deliverer_busy;    /* the deliverer is sending part of our journal */
    int inflight;          /* the loop has an entry it will post itself    */
    struct timespec retry_at;  /* the cluster is known down until then     */
    long backoff_ms;
    long last_answer_ms;       /* how long the cluster's last answer took */
    struct timespec pending_since; /* when our journal last stopped being
                                    * empty, or the deliverer's last send */
    int lingering;             /* the deliverer waits for a batch to gather:
                                * new entries need not wake it           */
    long long spool_others;    /* spool bytes besides our journal (last scan) */
    unsigned int rng;
    tp_log_limit full_log, journal_log, deliver_log;
    tp_app_counters n;
} tp_app;

typedef struct tp_hit {
    char request_id[TP_UUID_LEN + 1];
    tp_doc *doc;           /* owned; NULL when nothing is to be recorded */
    const char *text;      /* doc serialized (owned by doc) */
    size_t len;
    int journaled;         /* in the journal at [start, end) */
    off_t start, end;
} tp_hit;

/* Load the configuration from envp, open the sink, the journal, and start
 * the deliverer.  -1 with err set (one line naming the variable at fault).
 * Call tp_app_free() either way. */
int tp_app_init(tp_app *app, char *const *envp, char *err, size_t errlen);

/* Stop the deliverer, try what is pending for at most TRACKPIXEL_SHUTDOWN_MS,
 * log the counters, and free everything.  What is left stays in the journal
 * for the next worker. */
void tp_app_free(tp_app *app);

/* Answer one request: returns 0 when the response was written (whatever the
 * request carried), -1 when the client went away.  hit->doc is set when the
 * hit is to be recorded; it is already in the journal. */
int tp_app_respond(tp_app *app, char *const *envp, const tp_io *io, tp_hit *hit);

/* Deliver hit->doc (if any) and release it.  Logs failures.  others_waiting
 * (NULL: none) is asked, only when the loop could post the hit itself,
 * whether requests wait for this worker (then a journaled hit is left to the
 * deliverer): under load the question is not asked, it costs a syscall. */
void tp_app_deliver(tp_app *app, tp_hit *hit, int (*others_waiting)(void));

#endif
