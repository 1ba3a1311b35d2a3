#include "config.h"
#include "tp_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tp_config.h"
#include "tp_log.h"
#include "tp_output.h"
#include "tp_pixel.h"

/* Bodies past the limit are read and dropped up to this many bytes, so the
 * web server can hand over the whole request; past it we stop reading. */
#define DRAIN_MAX (16L * 1024 * 1024)

struct tp_app {
    tp_config cfg;
    tp_deliver *deliver;   /* when TRACKPIXEL_ES_URL is set   */
    tp_output *out;        /* otherwise: the embedded default */
    char *body;            /* reused body buffer, max_body + 1 bytes */
    tp_uuid_pool ids;      /* request-ids */
    unsigned long hits;    /* recorded hits (GET, HEAD, POST) */
    unsigned long out_written, out_dropped;   /* the embedded default's */
};

tp_app *tp_app_new(char *const *envp, char *err, size_t errlen)
{
    tp_app *app = calloc(1, sizeof(*app));

    if (!app) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (tp_config_load(&app->cfg, envp, err, errlen) < 0)
        goto fail;
    app->body = malloc((size_t)app->cfg.max_body + 1);
    if (!app->body) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (app->cfg.es_url)
        app->deliver = tp_deliver_start(&app->cfg, err, errlen);
    else
        app->out = tp_output_open(app->cfg.output, err, errlen);
    if (!app->deliver && !app->out)
        goto fail;
    return app;
fail:
    tp_app_free(app);
    return NULL;
}

static void log_counters(const tp_app *app, tp_deliver_counters n)
{
    if (!app->hits)
        return;
    if (!app->cfg.es_url) {
        n.delivered = app->out_written;
        n.dropped = app->out_dropped;
    }
    tp_log("stopping: %lu hits, %lu delivered, %lu dead letters, %lu dropped, "
           "%lu journal errors, %lu damaged journal regions", app->hits, n.delivered,
           n.deadletters, n.dropped, n.journal_errors, n.damaged);
}

void tp_app_free(tp_app *app)
{
    tp_deliver_counters n = { 0 };

    if (!app)
        return;
    tp_deliver_stop(app->deliver, &n);    /* the counters are final now */
    log_counters(app, n);
    free(app->body);
    tp_output_close(app->out);
    tp_config_free(&app->cfg);
    free(app);
}

long tp_app_body_timeout_ms(const tp_app *app)
{
    return app->cfg.body_timeout_ms;
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

#ifdef TP_TEST_HOOKS
/* Test builds only: TRACKPIXEL_TEST_CLOCK_OFFSET_S moves the hits' time
 * (their date, @timestamp and daily index), so a test can cross midnight. */
static void test_clock(struct timespec *now)
{
    const char *s = getenv("TRACKPIXEL_TEST_CLOCK_OFFSET_S");
    if (s && *s)
        now->tv_sec += (time_t)strtoll(s, NULL, 10);
}
#else
#define test_clock(now) ((void)0)
#endif

/* The hit's document, built and serialized; hit->doc stays NULL (and the
 * hit is counted as dropped) when that fails. */
static void build(tp_app *app, char *const *envp, const tp_io *io, tp_method m, tp_hit *hit)
{
    tp_doc_input in;
    char err[256];

    memset(&in, 0, sizeof(in));
    clock_gettime(CLOCK_REALTIME, &in.now);
    test_clock(&in.now);
    if (tp_uuid_v4_pooled(&app->ids, hit->request_id) < 0)
        tp_log("RAND_bytes failed: the request-id is empty");
    in.envp = envp;
    in.request_id = hit->request_id;
    if (m == TP_METHOD_POST) {
        in.body = app->body;
        in.body_len = read_body(app, io, &in.body_complete);
    }
    app->hits++;
    hit->doc = tp_doc_build(&app->cfg, &in, err, sizeof(err));
    if (hit->doc)
        hit->entry.doc = tp_doc_serialize(&app->cfg, hit->doc, &hit->entry.len);
    if (hit->doc && hit->entry.doc &&
        tp_index_expand(app->cfg.es_index, in.now.tv_sec, hit->index, sizeof(hit->index)) == 0) {
        hit->entry.id = hit->request_id;
        hit->entry.index = hit->index;
        return;
    }
    tp_log("hit %s not recorded: %s", hit->request_id,
           hit->doc ? "cannot serialize the document" : err);
    if (app->deliver)
        tp_deliver_count_dropped(app->deliver);
    else
        app->out_dropped++;
    tp_doc_free(hit->doc);
    hit->doc = NULL;
}

int tp_app_respond(tp_app *app, char *const *envp, const tp_io *io, tp_hit *hit)
{
    tp_method m = tp_pixel_method(tp_env_get(envp, "REQUEST_METHOD"));
    char resp[512];
    long rlen;

    memset(hit, 0, sizeof(*hit));
    if (m != TP_METHOD_OTHER) {
        build(app, envp, io, m, hit);
        /* Journal first: the entry is on disk before the pixel is served. */
        if (hit->doc && app->deliver && tp_deliver_record(app->deliver, &hit->entry) < 0) {
            tp_doc_free(hit->doc);     /* dropped: the spool is full */
            hit->doc = NULL;
        }
    }
    rlen = tp_pixel_response(m, hit->request_id, resp, sizeof(resp));
    if (rlen < 0 || io->write(io->ctx, resp, (size_t)rlen) < 0)
        return -1;     /* the client is gone; the hit is still recorded */
    return 0;
}

void tp_app_deliver(tp_app *app, tp_hit *hit, int (*others_waiting)(void *), void *ctx)
{
    char err[512];

    if (!hit->doc)
        return;
    if (app->deliver) {
        tp_deliver_post(app->deliver, &hit->entry, others_waiting, ctx);
    } else if (tp_output_append(app->out, hit->index, app->cfg.es_type, hit->request_id,
                                hit->entry.doc, hit->entry.len, err, sizeof(err)) < 0) {
        tp_log("hit %s not written to %s: %s", hit->request_id, app->cfg.output, err);
        app->out_dropped++;
    } else {
        app->out_written++;
    }
    tp_doc_free(hit->doc);
    hit->doc = NULL;
}
