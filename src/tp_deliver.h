/*
 * tp_deliver - getting documents to the cluster without losing one and
 * without making the pixel wait.
 *
 * Before the pixel, tp_deliver_record() appends the document to this
 * worker's journal (tp_spool).  After the pixel, tp_deliver_post() posts it
 * at once when that cannot hold up the next pixel: the cluster is up and
 * fast (its last answer took at most TRACKPIXEL_SLOW_MS), nothing is queued
 * before the document, and no other request waits for this worker; the
 * post then waits at most 4 x TRACKPIXEL_SLOW_MS.  Otherwise the document
 * is left to the delivery thread, which sends the backlog with _bulk
 * (backoff with jitter while the cluster is down, batches halved on 413),
 * claims the journals of workers of the same destination that died, and
 * keeps the spool size known.
 *
 * Without a journal (the spool is full, read-only or unwritable; it is
 * tried again every few seconds and taken back when it works) documents
 * are posted the same way, and what would have waited in the journal waits
 * in a bounded queue in memory instead: the pixel never waits longer than
 * with a journal; what cannot be delivered is counted and logged (rate
 * limited), not lost silently.
 *
 * This layer logs (tp_log); it never touches the FastCGI stream.
 * Thread-safety: the functions below are called by the accept loop's
 * thread only; the delivery thread is internal.
 */
#ifndef TP_DELIVER_H
#define TP_DELIVER_H

#include <stddef.h>
#include <sys/types.h>

#include "tp_config.h"
#include "tp_stats.h"

typedef struct tp_deliver tp_deliver;

/* One document on its way, owned by the caller (doc and id are borrowed
 * until tp_deliver_post() returns). */
typedef struct tp_entry {
    const char *id;          /* the request-id, also the document's _id */
    const char *doc;         /* the document's JSON text                */
    const char *index;       /* its index: TRACKPIXEL_ES_INDEX for the
                                hit's date (tp_index_expand)            */
    size_t len;
    int journaled;           /* set by tp_deliver_record()               */
    off_t start, end;        /* its place in the journal                 */
} tp_entry;

typedef struct tp_deliver_counters {
    unsigned long delivered;      /* accepted by the cluster              */
    unsigned long deadletters;    /* rejected, written to the dead letters */
    unsigned long dropped;        /* lost: spool full, or no journal and
                                     the cluster unavailable              */
    unsigned long journal_errors; /* appends that failed                  */
    unsigned long damaged;        /* damaged journal regions set aside     */
} tp_deliver_counters;

/* Start delivering for cfg (borrowed: it must outlive the result),
 * counting in stats (borrowed too; NULL: its own counters; it also gets
 * each cluster request's status and duration): open
 * the journal if TRACKPIXEL_SPOOL_DIR is set (a journal that cannot be
 * created is logged, not an error) and start the delivery thread.  NULL
 * with err set when the client or the thread cannot be made.  Free with
 * tp_deliver_stop(). */
tp_deliver *tp_deliver_start(const tp_config *cfg, tp_stats *stats, char *err, size_t errlen);

/* Before the pixel: put e in the journal (e->journaled says whether it
 * is).  Returns 0, or -1 when e is dropped because the spool is full
 * (counted and logged): it must not be posted then. */
int tp_deliver_record(tp_deliver *d, tp_entry *e);

/* After the pixel: post e, or leave it to the delivery thread.
 * others_waiting(ctx) (NULL: never) says whether requests wait for this
 * worker; it is asked only when posting at once is otherwise possible. */
void tp_deliver_post(tp_deliver *d, tp_entry *e, int (*others_waiting)(void *), void *ctx);

/* A count of one hit that was not recorded (it had no document). */
void tp_deliver_count_dropped(tp_deliver *d);

/* Stop the thread, try what is pending for at most TRACKPIXEL_SHUTDOWN_MS
 * (not at all while the cluster is known down), and free everything.  What
 * is left stays in the journal for the next worker; what is left in the
 * memory queue is counted as dropped and logged.  final (may be NULL) gets
 * the counters as they end.  NULL d is a no-op. */
void tp_deliver_stop(tp_deliver *d, tp_deliver_counters *final);

#endif
