#include "config.h"
#include "tp_deliver.h"
#include "tp_index.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "tp_buf.h"
#include "tp_creds.h"
#include "tp_es.h"
#include "tp_log.h"
#include "tp_spool.h"
#include "tp_stats.h"
#include "tp_time.h"

/* The delivery thread's pace. */
#define SCAN_INTERVAL_MS 5000       /* orphans, spool size, a lost journal */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 16000        /* + a 5 s request: back within 30 s */
#define BULK_MAX_ENTRIES 1000
/* Elasticsearch's response filtering: each item's answer is then
 * {"create":{"status":201}} (and "error" when it failed) instead of ~250
 * bytes of _index, _id, _version, _shards...: a tenth to read and parse. */
#define BULK_QUERY "filter_path=errors%2Citems.%2A.status%2Citems.%2A.error"
/* Under load the thread lets a small backlog gather this long (or this
 * big) before it sends it: fewer, larger _bulk requests cost less CPU per
 * document (each request has its signature, headers, answer and wake-ups).
 * A document searchable 100 ms later is still within Elasticsearch's
 * default refresh interval (1 s). */
#define LINGER_MS 100
#define LINGER_BYTES (256 * 1024)
/* The delivery thread's nice value (the loop keeps the process's). */
#define DELIVERER_NICE 10
/* Without a journal, documents wait in memory, at most this many. */
#define MEMQ_MAX_ENTRIES 1000
#define MEMQ_MAX_BYTES (4L * 1024 * 1024)
#define LOG_INTERVAL_S 10

/* Documents waiting in memory, as a _bulk body and the end of each. */
typedef struct memq {
    tp_buf body;
    size_t cut[MEMQ_MAX_ENTRIES];
    long n;
} memq;

struct tp_deliver {
    const tp_config *cfg;
    char dest[TP_SPOOL_DEST_MAX];  /* recorded in journals we create/claim */
    tp_es *es;                     /* the loop's client                    */
    tp_creds_cache *creds;         /* AWS credentials (NULL: not signing)  */
    tp_creds_chain *chain;         /* the thread's, to refresh them        */
    pthread_t thread;
    int running;
    atomic_int quit;               /* also aborts the thread's request     */
    tp_stats *st;                  /* the counters: the caller's, or own   */
    tp_stats own;

    /* Guarded by lock. */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    tp_journal *journal;           /* NULL: none (yet, or turned off)      */
    int busy;                      /* the thread sends part of journal     */
    int inflight;                  /* the loop will post its entry itself  */
    off_t inflight_at;             /* where that entry starts              */
    struct timespec retry_at;      /* the cluster is known down until then */
    long backoff_ms;
    long last_answer_ms;           /* how long the last answer took        */
    struct timespec pending_since; /* what waits (journal, memory) last
                                      stopped being empty,
                                      or the thread's last send            */
    int lingering;                 /* the thread lets a batch gather       */
    long long spool_others;        /* spool bytes besides our journal      */
    size_t bulk_limit;             /* largest _bulk body; halved on 413    */
    memq q;                        /* without a journal: waiting           */
    unsigned int rng;
    tp_log_limit full_log, journal_log, loop_log, drop_log;
    long loop_status;              /* the status loop_log last spoke of     */

    /* The thread's own. */
    memq sending;                  /* taken from q, being delivered        */
    tp_log_limit thread_log, creds_log;
    long thread_status;            /* the status thread_log last spoke of   */
};

/* One _bulk request's worth of documents. */
typedef struct batch_view {
    const char *body;
    size_t len;
    long n;
    const size_t *cut;             /* cut[i]: end of document i in body */
} batch_view;

/* What came of sending a batch view. */
typedef struct sent {
    tp_deliver *d;
    const batch_view *v;
    tp_es_result r;
    long status;
    long took_ms;
    long prefix;                   /* documents done (delivered or dead), in order */
    int stopped;                   /* an item must be tried again */
    int shrunk;                    /* 413: try again at once, smaller */
    char err[512];
} sent;

/* Microseconds from t0 (monotonic) to now. */
static long usec_since(struct timespec t0)
{
    struct timespec t = tp_mono_now();

    return (long)(t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000;
}

/* ------------------------------------------------- cluster up or down */

/* A failure of another kind than the last one logged (a redirect after a
 * stretch of 503s, say) is logged at once, not held back by the rate
 * limit: it is news. */
static void news(tp_log_limit *l, long *last_status, long status)
{
    if (status != *last_status) {
        l->last = 0;
        *last_status = status;
    }
}

/* Lock held.  Exponential backoff with full jitter over the upper half:
 * the next try is in [backoff/2, backoff). */
static void cluster_down(tp_deliver *d)
{
    long jitter;

    d->backoff_ms = d->backoff_ms ? d->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (d->backoff_ms > BACKOFF_MAX_MS)
        d->backoff_ms = BACKOFF_MAX_MS;
    d->rng = d->rng * 1103515245u + 12345u;
    jitter = (long)((d->rng >> 8) % (unsigned long)(d->backoff_ms / 2));
    d->retry_at = tp_ts_add_ms(tp_mono_now(), d->backoff_ms / 2 + jitter);
}

/* Lock held. */
static void cluster_up(tp_deliver *d)
{
    d->backoff_ms = 0;
    d->retry_at.tv_sec = 0;
    d->retry_at.tv_nsec = 0;
}

/* Are valid AWS credentials there (or not needed)? */
static int creds_ready(const tp_deliver *d)
{
    return !d->creds ||
           tp_creds_cache_get(d->creds, tp_creds_cache_now(d->creds), NULL, NULL, 0) == 0;
}

/* Lock held.  Without valid credentials the cluster counts as down: the
 * hits wait in the journal until the thread has fetched them. */
static int known_down(const tp_deliver *d)
{
    if (!creds_ready(d))
        return 1;
    return d->retry_at.tv_sec && tp_ts_before(tp_mono_now(), d->retry_at);
}

/* Bytes of our journal not delivered yet.  Lock held. */
static off_t pending_bytes(const tp_deliver *d)
{
    return d->journal ? tp_journal_size(d->journal) - tp_journal_done(d->journal) : 0;
}

/* Bytes waiting for the thread: in our journal and in memory.  Lock held. */
static size_t waiting_bytes(const tp_deliver *d)
{
    return (size_t)pending_bytes(d) + d->q.body.len + d->sending.body.len;
}

/* ------------------------------------------------------ dead letters */

/* Takes no lock: the dead-letter file is appended with one write. */
static void dead_letter(tp_deliver *d, const char *id, long status, const char *reason,
                        const char *doc, size_t doc_len)
{
    const tp_config *cfg = d->cfg;
    char err[256], index[TP_INDEX_MAX + 1];

    atomic_fetch_add(&d->st->v[TP_ST_DEADLETTERS], 1);
    if (tp_index_for_doc(cfg->es_index, doc, doc_len, index, sizeof(index)) < 0)
        snprintf(index, sizeof(index), "%s", cfg->es_index);   /* no date: the pattern */
    if (!cfg->spool_dir[0] ||
        tp_spool_deadletter(cfg->spool_dir, index, id, status, reason, doc, doc_len,
                            err, sizeof(err)) < 0)
        tp_log("hit %s rejected (%s) and lost: no dead-letter file%s%s", id, reason,
               cfg->spool_dir[0] ? ": " : "", cfg->spool_dir[0] ? err : "");
    else
        tp_log("hit %s rejected, kept in %s/" TP_SPOOL_DEADLETTER ": %s", id,
               cfg->spool_dir, reason);
}

/* Document i of a view as a dead letter. */
static void view_dead_letter(tp_deliver *d, const batch_view *v, long i, long status,
                             const char *reason)
{
    size_t start = i ? v->cut[i - 1] : 0;
    const char *doc = "";
    size_t dlen = 0;
    char id[128];

    if (tp_spool_pair_split(v->body + start, v->cut[i] - start, &doc, &dlen, id,
                            sizeof(id)) < 0) {
        doc = "";
        dlen = 0;
    }
    dead_letter(d, id, status, reason, doc, dlen);
}

/* -------------------------------------------------- sending a batch */

static void on_item(void *ctx, size_t i, long status, const char *reason)
{
    sent *s = ctx;
    char why[600];

    if (s->stopped || (long)i != s->prefix)
        return;
    switch (tp_es_classify(status)) {
    case TP_ES_OK:
        atomic_fetch_add(&s->d->st->v[TP_ST_DELIVERED], 1);
        s->prefix++;
        return;
    case TP_ES_RETRY:
        s->stopped = 1;
        return;
    case TP_ES_REJECT:
        snprintf(why, sizeof(why), "HTTP %ld: %s", status, reason);
        view_dead_letter(s->d, s->v, (long)i, status, why);
        s->prefix++;
        return;
    }
}

/* Send v with _bulk (no lock held).  A 413 for the whole request halves
 * the batch size (s->shrunk: try again at once); for a single document it
 * makes that document a dead letter, since no size fits it. */
static void send_view(tp_deliver *d, tp_es *es, const batch_view *v, size_t limit, sent *s)
{
    struct timespec t0 = tp_mono_now();

    memset(s, 0, sizeof(*s));
    s->d = d;
    s->v = v;
    s->r = tp_es_bulk(es, BULK_QUERY, v->body, v->len, v->n, on_item, s, time(NULL),
                      &s->status, s->err, sizeof(s->err));
    s->took_ms = tp_ts_ms(t0, tp_mono_now());
    tp_stats_es_request(d->st, s->status, usec_since(t0), time(NULL));
    if (s->r == TP_ES_REJECT && s->status == 413) {
        if (v->n > 1) {
            s->shrunk = 1;
            tp_log("cluster refused a %zu-byte _bulk request (HTTP 413, body too large): "
                   "trying %zu-byte batches", v->len, limit / 2);
        } else {
            view_dead_letter(d, v, 0, 413, s->err);
            s->prefix = 1;
            s->r = TP_ES_OK;
        }
    }
}

/* Lock held: what a send means for the cluster's state.  Returns 1 when
 * it went through (or should be tried again at once), -1 otherwise. */
static int settle(tp_deliver *d, sent *s, long n, const char *where)
{
    d->last_answer_ms = s->took_ms;
    if (s->shrunk) {
        d->bulk_limit = s->v->len / 2 > 1 ? s->v->len / 2 : 1;
        return 1;
    }
    if (s->r == TP_ES_OK && !s->stopped) {
        cluster_up(d);
        return 1;
    }
    if (atomic_load(&d->quit))
        return -1;     /* cut short by a stop: no backoff, last tries go out */
    if (s->r == TP_ES_REJECT) {
        /* The whole request refused (not per item): keep everything. */
        s->r = TP_ES_RETRY;
    }
    news(&d->thread_log, &d->thread_status, s->status);
    if (s->r != TP_ES_OK)
        tp_log_limited(&d->thread_log, time(NULL),
                       "cluster unavailable, %ld documents wait in %s: %s", n - s->prefix,
                       where, s->err);
    cluster_down(d);
    return -1;
}

/* ------------------------------------------- delivering a journal */

static void report_damage(tp_deliver *d, tp_journal *j, const tp_batch *b)
{
    if (!b->damaged)
        return;
    atomic_fetch_add(&d->st->v[TP_ST_DAMAGED], (unsigned long)b->damaged);
    tp_log("journal %s: %ld damaged region(s), %lld bytes, skipped and saved in %s",
           tp_journal_path(j), b->damaged, b->damaged_bytes,
           b->damaged_path ? b->damaged_path : "(nowhere)");
}

/* Lock held: the end of what the thread may send of our journal: all of
 * it, or what is before the entry the loop is about to post itself. */
static off_t sendable_upto(const tp_deliver *d)
{
    return d->inflight ? d->inflight_at : tp_journal_size(d->journal);
}

/* Lock held; released while the journal is read and the batch is sent, so
 * the loop's appends never wait for more than the bookkeeping.  own: j is
 * ours (the loop appends to it meanwhile, after upto, and may post its
 * latest entry itself).  Returns 1 when a batch went through (maybe more is
 * pending), 0 when nothing was pending, -1 when the cluster failed (it is
 * marked down). */
static int deliver_journal(tp_deliver *d, tp_es *es, tp_journal *j, int own)
{
    off_t upto = own ? sendable_upto(d) : tp_journal_size(j), done = tp_journal_done(j);
    size_t limit = d->bulk_limit;
    char err[512];
    batch_view v;
    tp_batch b;
    sent s;
    long n;
    int rc;

    if (done >= upto)
        return 0;
    memset(&s, 0, sizeof(s));
    d->busy = own;
    pthread_mutex_unlock(&d->lock);
    n = tp_journal_pending(j, upto, BULK_MAX_ENTRIES, limit, &b, err, sizeof(err));
    if (n >= 0)
        report_damage(d, j, &b);
    if (n > 0) {
        v.body = b.body;
        v.len = b.len;
        v.n = n;
        v.cut = b.cut;
        send_view(d, es, &v, limit, &s);   /* s.v points to v: same scope */
        tp_es_trim(es);            /* a big backlog's answer need not stay */
    }
    pthread_mutex_lock(&d->lock);
    d->busy = 0;
    if (n < 0) {
        tp_log_limited(&d->thread_log, time(NULL), "journal %s: %s", tp_journal_path(j), err);
        cluster_down(d);           /* not the cluster's fault, but do not spin */
        return -1;
    }
    if (n == 0 || s.prefix == n)
        rc = tp_journal_mark(j, b.consumed, err, sizeof(err));
    else
        rc = s.prefix > 0 ? tp_journal_mark(j, b.end[s.prefix - 1], err, sizeof(err)) : 0;
    if (rc < 0)
        tp_log("journal %s: %s", tp_journal_path(j), err);
    if (n == 0)
        return b.consumed > done ? 1 : 0;
    /* A backlog is gone, and its buffers with it (tp_journal_mark): give
     * their pages back.  Not after a batch of a busy worker, whose buffers
     * are kept (malloc_trim walks the heap and drops every free page). */
    if (b.len > TP_JOURNAL_KEEP_BYTES / 2 && tp_journal_done(j) == tp_journal_size(j))
        malloc_trim(0);
    return settle(d, &s, n, "the journal");
}

/* ------------------------------------------- the queue in memory */

static void memq_free(memq *q)
{
    tp_buf_free(&q->body);
    q->n = 0;
}

/* Lock held.  Adds e to q; -1 when the memory is full: the limits hold
 * for what waits (d->q) and what the thread is sending (d->sending)
 * together. */
static int memq_push(tp_deliver *d, memq *q, const tp_entry *e)
{
    if (d->q.n + d->sending.n >= MEMQ_MAX_ENTRIES ||
        (long)(d->q.body.len + d->sending.body.len) > MEMQ_MAX_BYTES)
        return -1;
    if (tp_spool_bulk_pair(&q->body, e->index, d->cfg->es_type,
                           d->cfg->ids_auto ? NULL : e->id, e->doc, e->len) < 0) {
        tp_buf_free(&q->body);     /* out of memory: what it held is gone */
        q->n = 0;
        return -1;
    }
    q->cut[q->n++] = q->body.len;
    return 0;
}

/* Drop the first k documents of q. */
static void memq_shift(memq *q, long k)
{
    size_t gone = k ? q->cut[k - 1] : 0;
    long i;

    if (k <= 0)
        return;
    memmove(q->body.data, q->body.data + gone, q->body.len - gone);
    q->body.len -= gone;
    for (i = k; i < q->n; i++)
        q->cut[i - k] = q->cut[i] - gone;
    q->n -= k;
    if (q->n == 0)
        memq_free(q);
}

/* Lock held (released while sending).  Delivers the start of the queue;
 * returns as deliver_journal(). */
static int deliver_memq(tp_deliver *d, tp_es *es)
{
    memq *m = &d->sending;
    size_t limit = d->bulk_limit;
    batch_view v;
    sent s;
    long k = 1;

    if (m->n == 0 && d->q.n > 0) {
        memq t = d->q;             /* take what waits; the loop starts anew */
        d->q = *m;
        *m = t;
    }
    if (m->n == 0)
        return 0;
    while (k < m->n && m->cut[k] <= limit)
        k++;
    v.body = m->body.data;
    v.len = m->cut[k - 1];
    v.n = k;
    v.cut = m->cut;
    pthread_mutex_unlock(&d->lock);
    send_view(d, es, &v, limit, &s);
    pthread_mutex_lock(&d->lock);
    memq_shift(m, s.prefix);
    return settle(d, &s, k, "memory (no journal)");
}

/* ------------------------------------------------------ the spool */

typedef struct orphan_ctx {
    tp_deliver *d;
    tp_es *es;
} orphan_ctx;

/* A journal whose worker is gone: claim it if it is ours to deliver (the
 * same destination), and deliver it all.  No lock held. */
static void take_orphan(void *ctx, const char *path)
{
    orphan_ctx *o = ctx;
    tp_deliver *d = o->d;
    char err[256];
    tp_journal *j;
    tp_claim why;
    int down;

    pthread_mutex_lock(&d->lock);
    down = known_down(d);
    pthread_mutex_unlock(&d->lock);
    if (atomic_load(&d->quit) || down)
        return;
    j = tp_journal_claim(path, d->dest, &why, err, sizeof(err));
    if (!j) {
        if (why == TP_CLAIM_ERROR)
            tp_log_limited(&d->thread_log, time(NULL), "cannot claim %s: %s", path, err);
        return;
    }
    if (tp_journal_size(j) > tp_journal_done(j))
        tp_log("delivering %lld bytes left in %s by a worker that is gone",
               (long long)(tp_journal_size(j) - tp_journal_done(j)), path);
    pthread_mutex_lock(&d->lock);
    while (deliver_journal(d, o->es, j, 0) > 0 && !atomic_load(&d->quit))
        ;
    pthread_mutex_unlock(&d->lock);
    tp_journal_close(j);   /* removed when all is delivered, else left */
}

/* Without a journal (the spool was full or read-only): try again. */
static void retry_journal(tp_deliver *d)
{
    char err[512];
    tp_journal *j = tp_journal_create(d->cfg->spool_dir, d->dest, (int)d->cfg->spool_fsync,
                                      err, sizeof(err));

    if (!j)
        return;
    pthread_mutex_lock(&d->lock);
    d->journal = j;
    pthread_mutex_unlock(&d->lock);
    tp_log("journal back: %s; hits are journaled again", tp_journal_path(j));
}

/* No lock held.  Only this thread sets d->journal, so it reads it freely. */
static void scan_spool(tp_deliver *d, tp_es *es)
{
    tp_spool_stat st;
    orphan_ctx o = { d, es };
    char err[256];

    if (!d->cfg->spool_dir[0])
        return;
    if (!d->journal)
        retry_journal(d);
    tp_spool_each_journal(d->cfg->spool_dir, d->journal ? tp_journal_path(d->journal) : NULL,
                          take_orphan, &o);
    /* Our own journal is left out of the sum: its size is known exactly
     * under the lock, where a stat() would race the loop's appends. */
    if (tp_spool_stat_dir(d->cfg->spool_dir, 0, d->journal ? tp_journal_path(d->journal) : NULL,
                          &st, err, sizeof(err)) == 0) {
        pthread_mutex_lock(&d->lock);
        d->spool_others = st.total_bytes;
        pthread_mutex_unlock(&d->lock);
    }
}

/* ------------------------------------------------- AWS credentials */

/* No lock held.  Fetch credentials (and the region, when only instance
 * metadata knows it) when they are due; never on the loop's path. */
static void refresh_creds(tp_deliver *d)
{
    char err[512], region[TP_CREDS_REGION_MAX], when[32];
    time_t now = tp_creds_cache_now(d->creds), next;
    tp_creds c;
    struct tm tm;

    if (!tp_creds_cache_due(d->creds, now, &next))
        return;
    if (!tp_creds_cache_has_region(d->creds)) {
        if (tp_creds_chain_imds_region(d->chain, region, sizeof(region), err, sizeof(err)) < 0) {
            tp_creds_cache_failed(d->creds, now);
            tp_log_limited(&d->creds_log, time(NULL), "AWS region unknown, hits wait in the "
                           "journal: %s", err);
            return;
        }
        tp_creds_cache_set_region(d->creds, region);
        tp_log("AWS region %s from instance metadata", region);
    }
    if (tp_creds_chain_get(d->chain, d->cfg->region, &c, err, sizeof(err)) < 0) {
        tp_creds_cache_failed(d->creds, now);
        tp_log_limited(&d->creds_log, time(NULL), "AWS credentials unavailable (%s), hits wait "
                       "in the journal while none are valid", err);
        return;
    }
    tp_creds_cache_store(d->creds, now, &c);
    if (c.expiration) {
        gmtime_r(&c.expiration, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    tp_log("AWS credentials from %s%s%s", c.provider, c.expiration ? ", valid until " : "",
           c.expiration ? when : "");
    tp_creds_wipe(&c);
}

/* Lock held: when the thread is to look at the credentials again. */
static struct timespec creds_wake(tp_deliver *d, struct timespec until)
{
    time_t now, next;
    struct timespec at;

    if (!d->creds)
        return until;
    now = tp_creds_cache_now(d->creds);
    tp_creds_cache_due(d->creds, now, &next);
    if (!next)
        return until;
    at = tp_ts_add_ms(tp_mono_now(), next > now ? (long)(next - now) * 1000 : 0);
    return tp_ts_before(at, until) ? at : until;
}

/* ------------------------------------------------------ the thread */

/* Lock held.  One step of the thread's loop; *next_scan is when the spool
 * is looked at next.  Returns after doing one thing or waiting once. */
static void thread_step(tp_deliver *d, tp_es *es, struct timespec *next_scan)
{
    struct timespec now = tp_mono_now(), until;
    int pending = pending_bytes(d) > 0, queued = d->q.n + d->sending.n > 0, rc;
    time_t due_at;
    long skew;

    if (d->creds && tp_creds_cache_skew_news(d->creds, &skew))
        tp_log("clock: the cluster's Date differs from ours by %ld s: signing with its time "
               "from now on", skew);
    if (d->creds && tp_creds_cache_due(d->creds, tp_creds_cache_now(d->creds), &due_at)) {
        pthread_mutex_unlock(&d->lock);
        refresh_creds(d);
        pthread_mutex_lock(&d->lock);
        return;
    }

    if ((pending || queued) && !known_down(d)) {
        struct timespec ripe = tp_ts_add_ms(d->pending_since, LINGER_MS);
        if (waiting_bytes(d) < LINGER_BYTES && tp_ts_before(now, ripe)) {
            d->lingering = 1;
            pthread_cond_timedwait(&d->wake, &d->lock, &ripe);
            d->lingering = 0;
            return;
        }
    }
    /* What is before the loop's entry in flight goes now; that entry is
     * the loop's until it posts it or hands it over. */
    if (pending && !known_down(d) && sendable_upto(d) > tp_journal_done(d->journal)) {
        rc = deliver_journal(d, es, d->journal, 1);
        /* What arrived during the request gathers again for LINGER_MS
         * (or LINGER_BYTES): otherwise, under load, each batch would
         * carry only the few hits of one round trip. */
        if (rc > 0)
            d->pending_since = tp_mono_now();
        return;
    }
    if (queued && !known_down(d)) {
        if (deliver_memq(d, es) > 0)
            d->pending_since = tp_mono_now();   /* as for the journal */
        return;
    }
    if (!tp_ts_before(now, *next_scan)) {
        pthread_mutex_unlock(&d->lock);
        scan_spool(d, es);
        pthread_mutex_lock(&d->lock);
        *next_scan = tp_ts_add_ms(tp_mono_now(), SCAN_INTERVAL_MS);
        return;
    }
    until = creds_wake(d, *next_scan);
    if ((pending || queued) && known_down(d) && d->retry_at.tv_sec &&
        tp_ts_before(d->retry_at, until))
        until = d->retry_at;
    pthread_cond_timedwait(&d->wake, &d->lock, &until);
}

static void *thread_main(void *arg)
{
    tp_deliver *d = arg;
    tp_es *es;
    char err[256];
    struct timespec next_scan = tp_mono_now();

    /* Delivery is background work: when the cores are busy, the loop (the
     * pixel) goes first.  Linux applies a thread's nice value to it alone.
     * Failing is harmless (a sandbox may forbid it). */
    setpriority(PRIO_PROCESS, (id_t)gettid(), DELIVERER_NICE);
    es = tp_es_new(d->cfg, err, sizeof(err));
    if (!es) {
        tp_log("delivery thread not started: %s", err);
        return NULL;
    }
    /* A stop does not wait for a slow cluster: the entries stay. */
    tp_es_set_abort(es, &d->quit, NULL);
    tp_es_set_creds(es, d->creds);
    if (d->chain)
        tp_creds_chain_set_abort(d->chain, &d->quit);
    pthread_mutex_lock(&d->lock);
    while (!atomic_load(&d->quit))
        thread_step(d, es, &next_scan);
    pthread_mutex_unlock(&d->lock);
    tp_es_free(es);
    return NULL;
}

/* ------------------------------------------------------------ life */

/* The journal at start: its absence is not fatal (a full or read-only
 * disk must not take the pixel down); the thread tries again. */
static void open_journal(tp_deliver *d)
{
    const tp_config *cfg = d->cfg;
    char err[512];

    if (!cfg->spool_dir[0])
        return;                    /* turned off */
    d->journal = tp_journal_create(cfg->spool_dir, d->dest, (int)cfg->spool_fsync, err,
                                   sizeof(err));
    if (!d->journal)
        tp_log("journal unavailable (%s): hits are posted without a safety net until the "
               "spool is writable again (tried every %d s)", err, SCAN_INTERVAL_MS / 1000);
}

static int start_thread(tp_deliver *d)
{
    sigset_t block, old;
    int rc;

    /* The thread takes no signals: SIGTERM and the like must reach the
     * accept loop. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGALRM);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = pthread_create(&d->thread, NULL, thread_main, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        d->running = 1;
    return rc == 0 ? 0 : -1;
}

/* With signing: the credentials' cache, empty until the thread's first
 * step fills it (the loop leaves hits to the thread until then). */
static int start_creds(tp_deliver *d, char *err, size_t errlen)
{
    if (!d->cfg->signing)
        return 0;
    d->creds = tp_creds_cache_new(d->cfg->region);
    d->chain = tp_creds_chain_new(d->cfg->envp);
    if (!d->creds || !d->chain) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    d->creds_log.interval = LOG_INTERVAL_S;
    tp_es_set_creds(d->es, d->creds);
    /* Keys in the environment need no network: there from the first hit. */
    if (tp_env_get(d->cfg->envp, "AWS_ACCESS_KEY_ID") && d->cfg->region) {
        tp_creds c;
        char cerr[256];
        if (tp_creds_chain_get(d->chain, d->cfg->region, &c, cerr, sizeof(cerr)) == 0)
            tp_creds_cache_store(d->creds, tp_creds_cache_now(d->creds), &c);
        tp_creds_wipe(&c);
    }
    return 0;
}

tp_deliver *tp_deliver_start(const tp_config *cfg, tp_stats *stats, char *err, size_t errlen)
{
    tp_deliver *d = calloc(1, sizeof(*d));
    pthread_condattr_t ca;
    long limit = cfg->bulk_max_kb * 1024L;

    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->cfg = cfg;
    d->st = stats ? stats : &d->own;
    pthread_mutex_init(&d->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->wake, &ca);
    pthread_condattr_destroy(&ca);
    d->full_log.interval = d->journal_log.interval = d->loop_log.interval = LOG_INTERVAL_S;
    d->drop_log.interval = d->thread_log.interval = LOG_INTERVAL_S;
    d->rng = (unsigned int)getpid() ^ (unsigned int)time(NULL);
    d->bulk_limit = (size_t)limit;   /* at most 64 MiB (tp_config) */
    if (tp_spool_destination(cfg->es_url, cfg->es_index, cfg->es_type, d->dest,
                             sizeof(d->dest)) < 0) {
        snprintf(err, errlen, "TRACKPIXEL_ES_URL and TRACKPIXEL_ES_INDEX: too long together");
        goto fail;
    }
    d->es = tp_es_new(cfg, err, errlen);
    if (!d->es || start_creds(d, err, errlen) < 0)
        goto fail;
    open_journal(d);
    if (start_thread(d) < 0) {
        snprintf(err, errlen, "cannot start the delivery thread");
        goto fail;
    }
    return d;
fail:
    tp_deliver_stop(d, NULL);
    return NULL;
}

/* Lock held: the last tries at a stop, until deadline. */
static void last_tries(tp_deliver *d, struct timespec deadline)
{
    int rc = 1;

    if (known_down(d))
        return;                /* no timeout at exit: the next worker sends them */
    while (rc > 0 && d->journal && tp_ts_before(tp_mono_now(), deadline))
        rc = deliver_journal(d, d->es, d->journal, 1);
    rc = 1;
    while (rc > 0 && d->q.n + d->sending.n > 0 && tp_ts_before(tp_mono_now(), deadline))
        rc = deliver_memq(d, d->es);
}

/* Lock held: say what is left, count what is lost. */
static void report_left(tp_deliver *d)
{
    long lost = d->q.n + d->sending.n;

    if (pending_bytes(d) > 0)
        tp_log("stopping with %lld bytes undelivered in %s: the next worker sends them",
               (long long)pending_bytes(d), tp_journal_path(d->journal));
    if (lost > 0) {
        atomic_fetch_add(&d->st->v[TP_ST_DROPPED], (unsigned long)lost);
        tp_log("stopping: %ld hits dropped (no journal, the cluster did not take them in time)",
               lost);
    }
}

/* The counters as they stand. */
static void counters_get(tp_deliver *d, tp_deliver_counters *out)
{
    out->delivered = atomic_load(&d->st->v[TP_ST_DELIVERED]);
    out->deadletters = atomic_load(&d->st->v[TP_ST_DEADLETTERS]);
    out->dropped = atomic_load(&d->st->v[TP_ST_DROPPED]);
    out->journal_errors = atomic_load(&d->st->v[TP_ST_JOURNAL_ERRORS]);
    out->damaged = atomic_load(&d->st->v[TP_ST_DAMAGED]);
}

void tp_deliver_stop(tp_deliver *d, tp_deliver_counters *final)
{
    struct timespec deadline;

    if (!d)
        return;
    if (d->running) {
        pthread_mutex_lock(&d->lock);
        atomic_store(&d->quit, 1);
        pthread_cond_signal(&d->wake);
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->thread, NULL);
    }
    if (d->es) {
        /* Bounded: what is pending gets until the deadline, even mid-request. */
        deadline = tp_ts_add_ms(tp_mono_now(), d->cfg->shutdown_ms);
        tp_es_set_abort(d->es, NULL, &deadline);
        pthread_mutex_lock(&d->lock);
        last_tries(d, deadline);
        report_left(d);
        pthread_mutex_unlock(&d->lock);
    }
    if (final)
        counters_get(d, final);
    tp_journal_close(d->journal);
    tp_es_free(d->es);
    tp_creds_chain_free(d->chain);
    tp_creds_cache_free(d->creds);
    memq_free(&d->q);
    memq_free(&d->sending);
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

void tp_deliver_count_dropped(tp_deliver *d)
{
    atomic_fetch_add(&d->st->v[TP_ST_DROPPED], 1);
}

/* ------------------------------------------------------------ a hit */

/* Lock held: would e take the spool past its limit? */
static int spool_full(const tp_deliver *d, const tp_entry *e)
{
    return d->spool_others + (long long)tp_journal_size(d->journal) + (long long)e->len + 512 >
           d->cfg->spool_max_mb * 1024LL * 1024LL;
}

int tp_deliver_record(tp_deliver *d, tp_entry *e)
{
    const tp_config *cfg = d->cfg;
    time_t now = time(NULL);
    char err[256];
    int was_empty, rc = 0;

    e->journaled = 0;
    pthread_mutex_lock(&d->lock);
    if (!d->journal)
        goto done;                 /* posted without a safety net */
    was_empty = tp_journal_done(d->journal) == tp_journal_size(d->journal);
    if (spool_full(d, e)) {
        unsigned long n = atomic_fetch_add(&d->st->v[TP_ST_DROPPED], 1) + 1;
        tp_log_limited(&d->full_log, now, "spool %s is full (TRACKPIXEL_SPOOL_MAX_MB=%ld): "
                       "hit %s dropped, %lu dropped so far", cfg->spool_dir, cfg->spool_max_mb,
                       e->id, n);
        rc = -1;
    } else if (tp_journal_append(d->journal, e->index, cfg->es_type,
                                 cfg->ids_auto ? NULL : e->id, e->doc, e->len,
                                 &e->start, &e->end, err, sizeof(err)) < 0) {
        unsigned long n = atomic_fetch_add(&d->st->v[TP_ST_JOURNAL_ERRORS], 1) + 1;
        tp_log_limited(&d->journal_log, now, "journal append failed (%lu so far), hit %s "
                       "is posted without a safety net: %s", n, e->id, err);
    } else {
        e->journaled = 1;
        if (was_empty)
            d->pending_since = tp_mono_now();
        /* The loop posts this entry itself after the pixel (if nothing is
         * queued before it): the thread keeps off until then. */
        d->inflight = 1;
        d->inflight_at = e->start;
    }
done:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

#ifdef TP_TEST_HOOKS
/* Test builds only: TRACKPIXEL_TEST_PAUSE_MS pauses between the pixel and
 * the post, so a test can kill the worker there. */
static void test_pause(void)
{
    const char *ms = getenv("TRACKPIXEL_TEST_PAUSE_MS");
    if (ms && *ms) {
        long v = strtol(ms, NULL, 10);
        struct timespec t = { v / 1000, (v % 1000) * 1000000L };
        nanosleep(&t, NULL);
    }
}
#else
#define test_pause() ((void)0)
#endif

/* Lock held: leave e to the thread (it is in the journal, or goes to the
 * queue in memory).  Wakes the thread only when it waits for nothing else
 * (a wake costs two context switches): it wakes by itself when a lingering
 * batch is ripe or the cluster is to be tried again, and looks again when
 * its request is done. */
static void hand_over(tp_deliver *d, const tp_entry *e, const char *why)
{
    int down = known_down(d);

    if (!e->journaled && waiting_bytes(d) == 0)
        d->pending_since = tp_mono_now();
    if (!e->journaled && memq_push(d, &d->q, e) < 0) {
        unsigned long n = atomic_fetch_add(&d->st->v[TP_ST_DROPPED], 1) + 1;
        tp_log_limited(&d->drop_log, time(NULL), "%lu hits dropped so far without a journal "
                       "(the queue in memory is full): %s", n, why);
        return;
    }
    if (!down && !d->busy && (!d->lingering || waiting_bytes(d) >= LINGER_BYTES))
        pthread_cond_signal(&d->wake);
}

/* Lock held: may the loop post e itself, now? */
static int post_now(tp_deliver *d, const tp_entry *e, int (*others_waiting)(void *), void *ctx)
{
    if (known_down(d) || d->busy || d->last_answer_ms > d->cfg->slow_ms)
        return 0;
    if (e->journaled ? tp_journal_done(d->journal) != e->start : d->q.n + d->sending.n > 0)
        return 0;                  /* others are queued before it */
    return !(others_waiting && others_waiting(ctx));
}

/* The loop's own post came back (no lock held).  A dead letter is written
 * before the entry leaves the journal, and without the lock; the thread
 * keeps off the entry (inflight) until it is marked. */
static void posted(tp_deliver *d, const tp_entry *e, tp_es_result r, long status,
                   const char *err)
{
    char merr[256];

    if (r == TP_ES_REJECT)
        dead_letter(d, e->id, status, err, e->doc, e->len);
    pthread_mutex_lock(&d->lock);
    if (r == TP_ES_OK) {
        atomic_fetch_add(&d->st->v[TP_ST_DELIVERED], 1);
        cluster_up(d);
    }
    if (e->journaled && tp_journal_mark(d->journal, e->end, merr, sizeof(merr)) < 0)
        tp_log("journal: %s", merr);
    d->inflight = 0;
    pthread_mutex_unlock(&d->lock);
}

void tp_deliver_post(tp_deliver *d, tp_entry *e, int (*others_waiting)(void *), void *ctx)
{
    char err[512];
    long status = 0;
    tp_es_result r;
    struct timespec t0, budget;

    test_pause();
    pthread_mutex_lock(&d->lock);
    if (!post_now(d, e, others_waiting, ctx)) {
        /* Requests wait for us, the cluster is down or slow, or others
         * are queued before this one: the thread sends it, in order and
         * in a batch, while we answer the next pixel. */
        d->inflight = 0;
        hand_over(d, e, "cluster unavailable or slow");
        pthread_mutex_unlock(&d->lock);
        return;
    }
    pthread_mutex_unlock(&d->lock);

    /* The next request may be waiting by the time the cluster answers: the
     * loop waits at most 4 x TRACKPIXEL_SLOW_MS, then leaves the hit to the
     * thread, which waits the full timeout. */
    t0 = tp_mono_now();
    budget = tp_ts_add_ms(t0, 4 * d->cfg->slow_ms);
    tp_es_set_abort(d->es, NULL, &budget);
    r = tp_es_create_in(d->es, e->index, e->id, e->doc, e->len, time(NULL), &status, err,
                        sizeof(err));
    tp_es_set_abort(d->es, NULL, NULL);
    tp_stats_es_request(d->st, status, usec_since(t0), time(NULL));

    pthread_mutex_lock(&d->lock);
    d->last_answer_ms = tp_ts_ms(t0, tp_mono_now());
    if (r != TP_ES_RETRY) {
        pthread_mutex_unlock(&d->lock);
        posted(d, e, r, status, err);
        return;
    }
    d->inflight = 0;
    if (status != 0 || tp_ts_before(tp_mono_now(), budget)) {
        /* Down (or answering what is not a create): not slow. */
        news(&d->loop_log, &d->loop_status, status);
        tp_log_limited(&d->loop_log, time(NULL), "cluster unavailable, hit %s waits in %s: %s",
                       e->id, e->journaled ? "the journal" : "memory (no journal)", err);
        cluster_down(d);
        pthread_cond_signal(&d->wake);     /* to wait for the retry time */
    }
    hand_over(d, e, err);
    pthread_mutex_unlock(&d->lock);
}
