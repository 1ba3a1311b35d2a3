#include "config.h"
#include "tp_app.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tp_doc.h"
#include "tp_pixel.h"

/* Bodies past the limit are read and dropped up to this many bytes, so the
 * web server can hand over the whole request; past it we stop reading. */
#define DRAIN_MAX (16L * 1024 * 1024)

/* The deliverer's pace. */
#define SCAN_INTERVAL_MS 5000       /* orphans and spool size          */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 16000        /* + a 5 s request: back within 30 s */
#define BULK_MAX_ENTRIES 1000
#define BULK_MAX_BYTES (4u * 1024 * 1024)
/* Elasticsearch's response filtering: each item's answer is then
 * {"create":{"status":201}} (and "error" when it failed) instead of ~250
 * bytes of _index, _id, _version, _shards...: a tenth to read and parse. */
#define BULK_QUERY "filter_path=errors%2Citems.%2A.status%2Citems.%2A.error"
/* Under load the deliverer lets a small backlog gather this long (or this
 * big) before it sends it: fewer, larger _bulk requests cost less CPU per
 * document. */
#define LINGER_MS 20
#define LINGER_BYTES (256 * 1024)
/* The deliverer's nice value (the loop keeps the process's). */
#define DELIVERER_NICE 10

/* ---------------------------------------------------------------- time */

static struct timespec mono_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t;
}

static struct timespec add_ms(struct timespec t, long ms)
{
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static int before(struct timespec a, struct timespec b)
{
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

/* ------------------------------------------------- cluster up or down */

/* Called with the lock held.  Exponential backoff with full jitter over
 * the upper half: the next try is in [backoff/2, backoff). */
static void cluster_down(tp_app *app)
{
    long jitter;

    app->backoff_ms = app->backoff_ms ? app->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (app->backoff_ms > BACKOFF_MAX_MS)
        app->backoff_ms = BACKOFF_MAX_MS;
    app->rng = app->rng * 1103515245u + 12345u;
    jitter = (long)((app->rng >> 8) % (unsigned long)(app->backoff_ms / 2));
    app->retry_at = add_ms(mono_now(), app->backoff_ms / 2 + jitter);
}

static void cluster_up(tp_app *app)
{
    app->backoff_ms = 0;
    app->retry_at.tv_sec = 0;
    app->retry_at.tv_nsec = 0;
}

static long ms_since(struct timespec t0)
{
    struct timespec t1 = mono_now();
    return (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
}

static int known_down(const tp_app *app)
{
    return app->retry_at.tv_sec && before(mono_now(), app->retry_at);
}

/* Bytes of our journal not delivered yet.  Called with the lock held. */
static off_t pending_bytes(const tp_app *app)
{
    return tp_journal_size(app->journal) - tp_journal_done(app->journal);
}

/* ------------------------------------------------------ dead letters */

/* Needs no lock (the caller counts it in app->n.deadletters). */
static void dead_letter(tp_app *app, const char *id, long status, const char *reason,
                        const char *doc, size_t doc_len)
{
    char err[256];

    if (!app->cfg.spool_dir[0] ||
        tp_spool_deadletter(app->cfg.spool_dir, app->cfg.es_index, id, status, reason,
                            doc, doc_len, err, sizeof(err)) < 0)
        tp_log("hit %s rejected (%s) and lost: no dead-letter file%s%s", id, reason,
               app->cfg.spool_dir[0] ? ": " : "", app->cfg.spool_dir[0] ? err : "");
    else
        tp_log("hit %s rejected, kept in %s/" TP_SPOOL_DEADLETTER ": %s", id,
               app->cfg.spool_dir, reason);
}

/* -------------------------------------------- delivering a journal */

typedef struct bulk_ctx {
    tp_app *app;
    const tp_batch *batch;
    long n;
    long prefix;               /* entries done, in order          */
    int stopped;               /* an item must be tried again     */
    unsigned long delivered, deadletters;  /* counted in app->n after */
} bulk_ctx;

static void on_item(void *ctx, size_t i, long status, const char *reason)
{
    bulk_ctx *b = ctx;
    size_t start;
    const char *doc;
    size_t dlen;
    char id[256];

    if (b->stopped || (long)i >= b->n || (long)i != b->prefix)
        return;
    if ((status >= 200 && status < 300) || status == 409) {
        b->prefix++;
        b->delivered++;
        return;
    }
    if (status == 0 || status == 429 || status >= 500 || status == 401 || status == 403 ||
        status == 408) {
        b->stopped = 1;
        return;
    }
    /* Rejected for good: a dead letter, and on with the next one. */
    start = i ? b->batch->cut[i - 1] : 0;
    if (tp_spool_pair_split(b->batch->body + start, b->batch->cut[i] - start, &doc, &dlen,
                            id, sizeof(id)) < 0) {
        doc = "";
        dlen = 0;
    }
    {
        char why[600];
        snprintf(why, sizeof(why), "HTTP %ld: %s", status, reason);
        dead_letter(b->app, id, status, why, doc, dlen);
    }
    b->deadletters++;
    b->prefix++;
}

/*
 * Send one batch of j's pending entries with _bulk and mark what is done.
 * own: j is this worker's journal (the loop appends to it meanwhile).
 * Called with the lock held; releases it while it reads the journal, sends
 * the request and reads the answer, so the loop's appends never wait for
 * more than the bookkeeping (the deliverer runs at a lower priority and
 * must not be preempted holding the lock).  Returns 1 when a batch went
 * through (maybe more is pending), 0 when nothing was pending, -1 when the
 * cluster failed (it is marked down).
 */
static int deliver_batch(tp_app *app, tp_es *es, tp_journal *j, int own)
{
    tp_batch batch;
    bulk_ctx b;
    char err[512];
    long status = 0, n, took;
    tp_es_result r;
    struct timespec t0;
    off_t end = tp_journal_size(j);

    if (tp_journal_done(j) >= end)
        return 0;
    /* Only this thread reads or marks j while deliverer_busy is set (for
     * an orphan, nobody else at all); the loop may append after end
     * meanwhile, which touches neither the entries before end, nor data
     * and offsets (j's read buffers). */
    if (own)
        app->deliverer_busy = 1;
    pthread_mutex_unlock(&app->lock);
    n = tp_journal_pending(j, end, BULK_MAX_ENTRIES, BULK_MAX_BYTES, &batch,
                           err, sizeof(err));
    if (n >= 0 && batch.damaged)
        tp_log("journal %s: %ld damaged regions (%lld bytes) skipped, saved to %s",
               tp_journal_path(j), batch.damaged, batch.damaged_bytes, batch.damaged_path);
    if (n <= 0) {
        pthread_mutex_lock(&app->lock);
        if (own)
            app->deliverer_busy = 0;
        if (n < 0)
            tp_log_limited(&app->deliver_log, time(NULL), "journal %s: %s",
                           tp_journal_path(j), err);
        else if (tp_journal_mark(j, batch.consumed, err, sizeof(err)) < 0)
            tp_log("journal %s: %s", tp_journal_path(j), err);
        return n < 0 || batch.consumed == end ? 0 : 1;
    }
    memset(&b, 0, sizeof(b));
    b.app = app;
    b.n = n;
    b.batch = &batch;

    t0 = mono_now();
    r = tp_es_request(es, "POST", "/_bulk", BULK_QUERY, "application/x-ndjson", batch.body,
                      batch.len,
                      time(NULL), &status, err, sizeof(err));
    took = ms_since(t0);
    /* The answer is read without the lock (a big batch's takes a few ms):
     * on_item touches only b, the batch's entries and the dead letters. */
    if (r == TP_ES_OK && tp_es_bulk_items(es, on_item, &b) < 0) {
        snprintf(err, sizeof(err), "HTTP %ld: not a _bulk answer", status);
        r = TP_ES_RETRY;
    }
    tp_es_trim(es);            /* a big backlog's answer need not stay */

    pthread_mutex_lock(&app->lock);
    app->last_answer_ms = took;
    app->n.delivered += b.delivered;
    app->n.deadletters += b.deadletters;
    if (own)
        app->deliverer_busy = 0;
    if (r == TP_ES_REJECT) {
        /* The whole request refused (not per item): the cluster does not
         * take _bulk from us; keep everything and try later. */
        r = TP_ES_RETRY;
    }
    if (b.prefix > 0 &&
        tp_journal_mark(j, b.prefix == n ? batch.consumed : batch.end[b.prefix - 1],
                        err, sizeof(err)) < 0)
        tp_log("journal %s: %s", tp_journal_path(j), err);
    if (batch.len > LINGER_BYTES && tp_journal_done(j) == tp_journal_size(j)) {
        /* A backlog is delivered: glibc keeps the pages of what it took
         * (the batches' buffers) in the thread's arena; give them back. */
        malloc_trim(0);
    }
    if (app->quit && r != TP_ES_OK) {
        /* Cut short by a stop, not the cluster's fault: no backoff, so
         * the last attempts at exit still go out. */
        return -1;
    }
    if (r != TP_ES_OK || b.stopped) {
        if (r != TP_ES_OK)
            tp_log_limited(&app->deliver_log, time(NULL),
                           "cluster unavailable, %ld documents wait in the journal: %s",
                           n, err);
        cluster_down(app);
        return -1;
    }
    cluster_up(app);
    return 1;
}

typedef struct orphan_ctx {
    tp_app *app;
    tp_es *es;
} orphan_ctx;

/* A journal whose worker is gone: claim it and deliver it all. */
static void take_orphan(void *ctx, const char *path)
{
    orphan_ctx *o = ctx;
    tp_app *app = o->app;
    char err[256], dest[TP_SPOOL_DEST_MAX];
    tp_journal *j;
    tp_claim why;
    int rc;

    if (app->quit || known_down(app))
        return;
    if (tp_spool_destination(app->cfg.es_url, app->cfg.es_index, app->cfg.es_type, dest,
                             sizeof(dest)) < 0)
        return;
    j = tp_journal_claim(path, dest, &why, err, sizeof(err));
    if (!j) {
        if (why == TP_CLAIM_ERROR)
            tp_log_limited(&app->deliver_log, time(NULL), "cannot claim %s: %s", path, err);
        return;
    }
    if (tp_journal_size(j) > tp_journal_done(j))
        tp_log("delivering %lld bytes left in %s by a worker that is gone",
               (long long)(tp_journal_size(j) - tp_journal_done(j)), path);
    while ((rc = deliver_batch(app, o->es, j, 0)) > 0 && !app->quit)
        ;
    tp_journal_close(j);   /* removed when all is delivered, else left */
}

static void scan_spool(tp_app *app, tp_es *es)
{
    tp_spool_stat st;
    orphan_ctx o = { app, es };
    char err[256];

    tp_spool_each_journal(app->cfg.spool_dir, tp_journal_path(app->journal), take_orphan, &o);
    if (tp_spool_stat_dir(app->cfg.spool_dir, 0, &st, err, sizeof(err)) == 0)
        app->spool_others = st.total_bytes - (long long)tp_journal_size(app->journal);
}

static void *deliverer_main(void *arg)
{
    tp_app *app = arg;
    tp_es *es;
    char err[256];
    struct timespec next_scan = mono_now();

    /* Delivery is background work: when the cores are busy, the loop (the
     * pixel) goes first.  Linux applies a thread's nice value to it alone.
     * Failing is harmless (a sandbox may forbid it). */
    setpriority(PRIO_PROCESS, (id_t)gettid(), DELIVERER_NICE);
    es = tp_es_new(&app->cfg, err, sizeof(err));
    pthread_mutex_lock(&app->lock);
    if (!es) {
        tp_log("deliverer not started: %s", err);
        pthread_mutex_unlock(&app->lock);
        return NULL;
    }
    /* A stop does not wait for a slow cluster: the entries stay. */
    tp_es_set_abort(es, &app->quit, NULL);
    while (!app->quit) {
        struct timespec now = mono_now(), until;
        int rc, pending = pending_bytes(app) > 0;

        if (pending && !known_down(app)) {
            struct timespec ripe = add_ms(app->pending_since, LINGER_MS);
            if (pending_bytes(app) < LINGER_BYTES && before(now, ripe)) {
                app->lingering = 1;
                pthread_cond_timedwait(&app->wake, &app->lock, &ripe);
                app->lingering = 0;
                continue;
            }
        }
        if (pending && !app->inflight && !known_down(app)) {
            rc = deliver_batch(app, es, app->journal, 1);
            if (rc == 0 && pending_bytes(app) > 0)
                cluster_down(app);     /* unreadable: do not spin */
            /* What arrived during the request gathers again for LINGER_MS
             * (or LINGER_BYTES): otherwise, under load, each batch would
             * carry only the few hits of one round trip. */
            if (rc > 0)
                app->pending_since = mono_now();
            continue;
        }
        if (!before(now, next_scan)) {
            scan_spool(app, es);
            next_scan = add_ms(mono_now(), SCAN_INTERVAL_MS);
            continue;
        }
        until = next_scan;
        if (pending && known_down(app) && before(app->retry_at, until))
            until = app->retry_at;
        pthread_cond_timedwait(&app->wake, &app->lock, &until);
    }
    pthread_mutex_unlock(&app->lock);
    tp_es_free(es);
    return NULL;
}

/* ------------------------------------------------------------ life */

int tp_app_init(tp_app *app, char *const *envp, char *err, size_t errlen)
{
    pthread_condattr_t ca;
    sigset_t block, old;
    int rc;

    memset(app, 0, sizeof(*app));
    pthread_mutex_init(&app->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&app->wake, &ca);
    pthread_condattr_destroy(&ca);
    app->full_log.interval = app->journal_log.interval = app->deliver_log.interval = 10;
    app->rng = (unsigned int)getpid() ^ (unsigned int)time(NULL);

    if (tp_config_load(&app->cfg, envp, err, errlen) < 0)
        return -1;
    app->body = malloc((size_t)app->cfg.max_body + 1);
    if (!app->body) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!app->cfg.es_url) {
        app->out = tp_output_open(app->cfg.output, err, errlen);
        return app->out ? 0 : -1;
    }
    app->es = tp_es_new(&app->cfg, err, errlen);
    if (!app->es)
        return -1;
    if (!app->cfg.spool_dir[0])
        return 0;                  /* no journal: failures are dropped */
    {
        char dest[TP_SPOOL_DEST_MAX];
        if (tp_spool_destination(app->cfg.es_url, app->cfg.es_index, app->cfg.es_type, dest,
                                 sizeof(dest)) < 0) {
            snprintf(err, errlen, "TRACKPIXEL_ES_URL and TRACKPIXEL_ES_INDEX: too long");
            return -1;
        }
        app->journal = tp_journal_create(app->cfg.spool_dir, dest, (int)app->cfg.spool_fsync,
                                         err, errlen);
    }
    if (!app->journal)
        return -1;
    /* The deliverer takes no signals: SIGTERM and the like must reach the
     * accept loop, whose accept() they interrupt. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGALRM);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = pthread_create(&app->deliverer, NULL, deliverer_main, app);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the deliverer thread");
        return -1;
    }
    app->deliverer_running = 1;
    return 0;
}

void tp_app_free(tp_app *app)
{
    if (app->deliverer_running) {
        struct timespec deadline;
        int rc = 1;

        pthread_mutex_lock(&app->lock);
        app->quit = 1;
        pthread_cond_signal(&app->wake);
        pthread_mutex_unlock(&app->lock);
        pthread_join(app->deliverer, NULL);

        /* Bounded: what is pending gets until the deadline. */
        deadline = add_ms(mono_now(), app->cfg.shutdown_ms);
        tp_es_set_abort(app->es, NULL, &deadline);   /* even mid-request */
        pthread_mutex_lock(&app->lock);
        if (known_down(app))
            rc = 0;                /* no timeout at exit: the next worker sends them */
        while (rc > 0 && before(mono_now(), deadline))
            rc = deliver_batch(app, app->es, app->journal, 1);
        if (tp_journal_size(app->journal) > tp_journal_done(app->journal))
            tp_log("stopping with %lld bytes undelivered in %s: the next worker sends them",
                   (long long)(tp_journal_size(app->journal) - tp_journal_done(app->journal)),
                   tp_journal_path(app->journal));
        pthread_mutex_unlock(&app->lock);
    }
    if (app->n.hits)
        tp_log("stopping: %lu hits, %lu delivered, %lu dead letters, %lu dropped, "
               "%lu journal errors", app->n.hits, app->n.delivered, app->n.deadletters,
               app->n.dropped, app->n.journal_errors);
    tp_journal_close(app->journal);
    tp_es_free(app->es);
    tp_output_close(app->out);
    free(app->body);
    free(app->entry);
    tp_config_free(&app->cfg);
    pthread_cond_destroy(&app->wake);
    pthread_mutex_destroy(&app->lock);
    memset(app, 0, sizeof(*app));
}

/* ------------------------------------------------------------ a hit */

/* Read the body into app->body; *complete is 0 when it was larger than
 * max_body or did not all arrive.  The rest is drained (bounded). */
static size_t read_body(tp_app *app, const tp_io *io, int *complete)
{
    size_t cap = (size_t)app->cfg.max_body + 1, len = 0;
    long n = 0, drained = 0;
    char sink[4096];

    while (len < cap && (n = io->read(io->ctx, app->body + len, cap - len)) > 0)
        len += (size_t)n;
    *complete = len <= (size_t)app->cfg.max_body && n == 0;
    if (len == cap)
        while (drained < DRAIN_MAX && (n = io->read(io->ctx, sink, sizeof(sink))) > 0)
            drained += n;
    return len;
}

/* Journal first: the entry is on disk before the pixel is served. */
static void journal_hit(tp_app *app, tp_hit *hit)
{
    char err[256];
    size_t need = hit->len + 128;     /* about: the frame and the action line */
    time_t now = time(NULL);
    int was_empty;

    pthread_mutex_lock(&app->lock);
    was_empty = tp_journal_done(app->journal) == tp_journal_size(app->journal);
    if (app->spool_others + (long long)tp_journal_size(app->journal) + (long long)need >
        app->cfg.spool_max_mb * 1024LL * 1024LL) {
        app->n.dropped++;
        tp_log_limited(&app->full_log, now, "spool %s is full (TRACKPIXEL_SPOOL_MAX_MB=%ld): "
                       "hit %s dropped, %lu dropped so far", app->cfg.spool_dir,
                       app->cfg.spool_max_mb, hit->request_id, app->n.dropped);
        tp_doc_free(hit->doc);
        hit->doc = NULL;
    } else if (tp_journal_append(app->journal, app->cfg.es_index, app->cfg.es_type,
                                 hit->request_id, hit->text, hit->len, &hit->start, &hit->end,
                                 err, sizeof(err)) < 0) {
        app->n.journal_errors++;
        tp_log_limited(&app->journal_log, now, "journal append failed (%lu so far), hit %s "
                       "is posted without a safety net: %s", app->n.journal_errors,
                       hit->request_id, err);
    } else {
        hit->journaled = 1;
        if (was_empty)
            app->pending_since = mono_now();
        /* The loop posts this entry itself after the pixel (if nothing is
         * queued before it): the deliverer keeps off until then. */
        app->inflight = 1;
    }
    pthread_mutex_unlock(&app->lock);
}

int tp_app_respond(tp_app *app, char *const *envp, const tp_io *io, tp_hit *hit)
{
    tp_doc_input in;
    tp_method m = tp_pixel_method(tp_env_get(envp, "REQUEST_METHOD"));
    char resp[512], err[256];
    long rlen;

    memset(hit, 0, sizeof(*hit));
    memset(&in, 0, sizeof(in));
    clock_gettime(CLOCK_REALTIME, &in.now);

    if (m != TP_METHOD_OTHER) {
        if (tp_uuid_v4_pooled(&app->ids, hit->request_id) < 0)
            tp_log("RAND_bytes failed: the request-id is empty");
        in.envp = envp;
        in.request_id = hit->request_id;
        if (m == TP_METHOD_POST) {
            in.body = app->body;
            in.body_len = read_body(app, io, &in.body_complete);
        }
        app->n.hits++;
        hit->doc = tp_doc_build(&app->cfg, &in, err, sizeof(err));
        if (hit->doc)
            hit->text = tp_doc_serialize(&app->cfg, hit->doc, &hit->len);
        if (!hit->doc || !hit->text) {
            tp_log("hit %s not recorded: %s", hit->request_id,
                   hit->doc ? "cannot serialize the document" : err);
            app->n.dropped++;
            tp_doc_free(hit->doc);
            hit->doc = NULL;
        } else if (app->journal) {
            journal_hit(app, hit);
        }
    }

    rlen = tp_pixel_response(m, hit->request_id, resp, sizeof(resp));
    if (rlen < 0 || io->write(io->ctx, resp, (size_t)rlen) < 0)
        return -1;     /* the client is gone; the hit is still recorded */
    return 0;
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

/* No journal: post once; a failure loses the document (logged). */
static void deliver_unjournaled(tp_app *app, tp_hit *hit)
{
    char err[512];
    long status = 0;
    tp_es_result r = tp_es_create(app->es, hit->request_id, hit->text, hit->len,
                                  time(NULL), &status, err, sizeof(err));

    if (r == TP_ES_OK) {
        app->n.delivered++;
    } else if (r == TP_ES_REJECT) {
        app->n.deadletters++;
        dead_letter(app, hit->request_id, status, err, hit->text, hit->len);
    } else {
        app->n.dropped++;
        tp_log("hit %s dropped (cluster unavailable, no journal): %s", hit->request_id, err);
    }
}

static void deliver_journaled(tp_app *app, tp_hit *hit, int (*others_waiting)(void))
{
    char err[512];
    long status = 0;
    tp_es_result r;
    struct timespec t0, budget;
    int down;

    pthread_mutex_lock(&app->lock);
    down = known_down(app);
    if (down || app->deliverer_busy || app->last_answer_ms > app->cfg.slow_ms ||
        tp_journal_done(app->journal) != hit->start ||
        (others_waiting && others_waiting())) {
        /* Requests wait for us, the cluster is down or slow, or others are
         * queued before this one: the deliverer sends it, in order and in
         * a batch, while we answer the next pixel.  This hit cost one
         * append. */
        app->inflight = 0;
        /* Waking the deliverer costs two context switches: only when it
         * waits for nothing else.  It wakes by itself when a lingering
         * batch is ripe or when the cluster is to be tried again, and looks
         * at the journal again when its request is done. */
        if (!down && !app->deliverer_busy &&
            (!app->lingering || pending_bytes(app) >= LINGER_BYTES))
            pthread_cond_signal(&app->wake);
        pthread_mutex_unlock(&app->lock);
        return;
    }
    pthread_mutex_unlock(&app->lock);

    /* The next request may be waiting by the time the cluster answers: the
     * loop waits at most 4 x TRACKPIXEL_SLOW_MS, then leaves the hit (it is
     * in the journal) to the deliverer, which waits the full timeout. */
    t0 = mono_now();
    budget = add_ms(t0, 4 * app->cfg.slow_ms);
    tp_es_set_abort(app->es, NULL, &budget);
    r = tp_es_create(app->es, hit->request_id, hit->text, hit->len, time(NULL),
                     &status, err, sizeof(err));
    tp_es_set_abort(app->es, NULL, NULL);

    pthread_mutex_lock(&app->lock);
    app->last_answer_ms = ms_since(t0);
    app->inflight = 0;
    if (r == TP_ES_RETRY && status == 0 && !before(mono_now(), budget)) {
        /* Slow, not down: the deliverer takes it (and the next ones). */
        pthread_cond_signal(&app->wake);
        pthread_mutex_unlock(&app->lock);
        return;
    }
    if (r == TP_ES_OK) {
        app->n.delivered++;
        cluster_up(app);
    } else if (r == TP_ES_REJECT) {
        app->n.deadletters++;
        dead_letter(app, hit->request_id, status, err, hit->text, hit->len);
    } else {
        tp_log_limited(&app->deliver_log, time(NULL),
                       "cluster unavailable, hit %s waits in the journal: %s",
                       hit->request_id, err);
        cluster_down(app);
        pthread_cond_signal(&app->wake);
        pthread_mutex_unlock(&app->lock);
        return;
    }
    if (tp_journal_mark(app->journal, hit->end, err, sizeof(err)) < 0)
        tp_log("journal: %s", err);
    pthread_mutex_unlock(&app->lock);
}

void tp_app_deliver(tp_app *app, tp_hit *hit, int (*others_waiting)(void))
{
    char err[512];

    if (!hit->doc)
        return;
    test_pause();
    if (app->out) {
        if (tp_output_append(app->out, app->cfg.es_index, app->cfg.es_type, hit->request_id,
                             hit->text, hit->len, err, sizeof(err)) < 0) {
            tp_log("hit %s not written to %s: %s", hit->request_id, app->cfg.output, err);
            app->n.dropped++;
        } else {
            app->n.delivered++;
        }
    } else if (hit->journaled) {
        deliver_journaled(app, hit, others_waiting);
    } else {
        deliver_unjournaled(app, hit);
    }
    tp_doc_free(hit->doc);
    hit->doc = NULL;
}
