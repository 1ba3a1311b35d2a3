/*
 * tp_stats - the whole server's figures, for _metrics and _health.
 *
 * Each worker counts in its own small file in the spool directory,
 * stats.<pid>.<random>: a fixed header and TP_ST_N 64-bit counters, mapped
 * shared and updated with atomic adds (no system call per hit).  The worker
 * holds an exclusive flock on it while it runs; the file stays when it
 * exits, so the totals include exited workers.  Bounded: whoever opens a
 * stats file or sums them (a new worker, a scrape) first merges the files
 * of exited workers into stats.total and removes them, under a lock on
 * stats.lock, so the directory holds one file per live worker, at most one
 * per worker exited since the last merge, and the total.  Without a spool
 * directory the counters are this worker's own, in memory.
 *
 * Leaf module: no logging; errors in a caller's buffer.
 */
#ifndef TP_STATS_H
#define TP_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tp_buf.h"
#include "tp_redirect.h"

/* Elasticsearch answers counted by code: these, then per class. */
#define TP_STATS_ES_CODES 19
/* Request duration buckets (upper bounds, seconds), then +Inf. */
#define TP_STATS_BUCKETS 11

/* Index of each counter. */
enum {
    TP_ST_HITS_GET, TP_ST_HITS_HEAD, TP_ST_HITS_POST,
    TP_ST_REDIRECT,                                      /* + tp_redirect_why */
    TP_ST_DELIVERED = TP_ST_REDIRECT + TP_REDIRECT_NWHY,
    TP_ST_DEADLETTERS, TP_ST_DROPPED, TP_ST_JOURNAL_ERRORS, TP_ST_DAMAGED,
    TP_ST_ES_CODE,                                       /* + tp_stats_es_code() */
    TP_ST_ES_BUCKET = TP_ST_ES_CODE + TP_STATS_ES_CODES, /* + bucket, +Inf last */
    TP_ST_ES_USEC = TP_ST_ES_BUCKET + TP_STATS_BUCKETS + 1,
    TP_ST_LAST_DELIVERY,      /* unix seconds of the last delivery (a maximum, not a sum) */
    TP_ST_N
};

/* One worker's counters (in its mapped file, or in memory). */
typedef struct tp_stats {
    _Atomic uint64_t v[TP_ST_N];
} tp_stats;

static inline void tp_stats_add(tp_stats *s, int i, uint64_t n)
{
    if (s)
        atomic_fetch_add_explicit(&s->v[i], n, memory_order_relaxed);
}

/* The slot of an HTTP status among the TP_STATS_ES_CODES (0: no answer). */
int tp_stats_es_code(long status);

/* Count one Elasticsearch request: its status and how long it took.  A
 * successful one (2xx) also sets the last delivery time to now. */
void tp_stats_es_request(tp_stats *s, long status, long usec, time_t now);

typedef struct tp_stats_file tp_stats_file;

/*
 * This worker's counters: a new stats file in dir (after merging exited
 * workers' files), or, when dir is NULL or "" or the file cannot be made,
 * memory (err then says why, else it is empty).  NULL only when out of
 * memory.  tp_stats_close() unmaps it; the file is kept.
 */
tp_stats_file *tp_stats_open(const char *dir, char *err, size_t errlen);
tp_stats *tp_stats_of(tp_stats_file *f);
void tp_stats_close(tp_stats_file *f);

/* The whole server's view, plain numbers. */
typedef struct tp_stats_view {
    uint64_t v[TP_ST_N];            /* summed over all stats files          */
    long workers;                   /* live stats files (this one included) */
    /* The spool. */
    int journal;                    /* 1: the spool takes documents; 0: it
                                       cannot (reason says why); -1: no
                                       journal is configured               */
    char reason[160];
    long long backlog_bytes;
    long long oldest_pending_s;     /* -1: nothing pending                  */
} tp_stats_view;

/*
 * Fill view for f: merge and sum the stats files in dir (or f's own
 * counters without one), and look at the spool: it can take documents when
 * a probe file can be written in dir and the spool holds less than
 * max_bytes; its backlog and the age of its oldest pending document at
 * now.  max_bytes <= 0: the spool is no journal, only looked at for the
 * stats files (journal -1).  Returns 0, or -1 with err set (view then
 * holds f's own counters, workers 1).
 */
int tp_stats_collect(tp_stats_file *f, const char *dir, long long max_bytes, time_t now,
                     tp_stats_view *view, char *err, size_t errlen);

/* The Prometheus text exposition (format 0.0.4) of view, appended to out. */
void tp_stats_prometheus(const tp_stats_view *view, tp_buf *out);

/* The health answer's JSON object for view, appended to out; *healthy
 * gets 0 when the spool cannot take documents or the oldest pending one is
 * older than max_lag_s. */
void tp_stats_health(const tp_stats_view *view, long max_lag_s, int *healthy,
                     tp_buf *out);

#endif
