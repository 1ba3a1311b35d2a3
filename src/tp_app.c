#include "config.h"
#include "tp_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tp_acl.h"
#include "tp_config.h"
#include "tp_log.h"
#include "tp_output.h"
#include "tp_pixel.h"
#include "tp_privacy.h"
#include "tp_redirect.h"
#include "tp_response.h"
#include "tp_stats.h"

/* Bodies past the limit are read and dropped up to this many bytes, so the
 * web server can hand over the whole request; past it we stop reading. */
#define DRAIN_MAX (16L * 1024 * 1024)
/* The largest answer (a metrics page is about 6 KiB). */
#define RESPONSE_MAX (64 * 1024)

/* What a path under the mount is (PATH_INFO, the part after SCRIPT_NAME). */
typedef enum route {
    ROUTE_PIXEL,           /* no PATH_INFO, or any other: the pixel, as always */
    ROUTE_REDIRECT,        /* /r                                   */
    ROUTE_HEALTH,          /* /_health                             */
    ROUTE_METRICS,         /* /_metrics                            */
    ROUTE_RESERVED         /* any other /_...: 404, not recorded   */
} route;

struct tp_app {
    tp_config cfg;
    tp_agents *agents;     /* who is asking: the list, compiled once */
    tp_deliver *deliver;   /* when TRACKPIXEL_ES_URL is set   */
    tp_output *out;        /* otherwise: the embedded default */
    char *body;            /* reused body buffer, max_body + 1 bytes */
    tp_uuid_pool ids;      /* request-ids */
    unsigned long hits;    /* recorded hits (GET, HEAD, POST) */
    unsigned long skipped; /* not recorded: Sec-GPC or DNT under TRACKPIXEL_GPC=skip */
    tp_stats_file *stats;  /* this worker's counters (shared with tp_deliver) */
    tp_stats *st;
    tp_redirect_allow *redirects;   /* NULL: redirects off */
    tp_acl *admin;         /* who may read _health and _metrics */
    tp_buf resp;           /* the answer being written (bounded) */
    unsigned long bots_skipped;   /* bots' hits not recorded (TRACKPIXEL_RECORD_BOTS=0) */
};

/* The redirect allow-list, the admin list and the stats file. */
static int open_clicks_and_stats(tp_app *app, char *err, size_t errlen)
{
    char why[256];

    app->redirects = tp_redirect_allow_parse(app->cfg.redirect_allow, err, errlen);
    if (!app->redirects && err[0])
        return -1;
    app->admin = tp_acl_parse(app->cfg.admin_allow, err, errlen);
    if (!app->admin)
        return -1;
    app->stats = tp_stats_open(app->cfg.spool_dir, why, sizeof(why));
    if (!app->stats) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (why[0])
        tp_log("metrics are this worker's only: %s", why);
    app->st = tp_stats_of(app->stats);
    app->resp.max = RESPONSE_MAX;
    return 0;
}

tp_app *tp_app_new(char *const *envp, char *err, size_t errlen)
{
    tp_app *app = calloc(1, sizeof(*app));
    char why[512];

    if (!app) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (tp_config_load(&app->cfg, envp, err, errlen) < 0)
        goto fail;
    if (app->cfg.config_warning[0])
        tp_log("warning: %s", app->cfg.config_warning);
    app->agents = tp_agents_load(app->cfg.agents_file, why, sizeof(why));
    if (!app->agents) {
        snprintf(err, errlen, "TRACKPIXEL_AGENTS_FILE: %s", why);
        goto fail;
    }
    app->body = malloc((size_t)app->cfg.max_body + 1);
    if (!app->body) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (open_clicks_and_stats(app, err, errlen) < 0)
        goto fail;
    if (app->cfg.es_url)
        app->deliver = tp_deliver_start(&app->cfg, app->st, err, errlen);
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
    if (!app->hits && !app->skipped && !app->bots_skipped)
        return;
    if (!app->cfg.es_url) {
        n.delivered = (unsigned long)app->st->v[TP_ST_DELIVERED];
        n.dropped = (unsigned long)app->st->v[TP_ST_DROPPED];
    }
    tp_log("stopping: %lu hits, %lu delivered, %lu dead letters, %lu dropped, "
           "%lu journal errors, %lu damaged journal regions, %lu not recorded for "
           "Sec-GPC/DNT, %lu bots not recorded", app->hits, n.delivered, n.deadletters,
           n.dropped, n.journal_errors, n.damaged, app->skipped, app->bots_skipped);
}

void tp_app_free(tp_app *app)
{
    tp_deliver_counters n = { 0 };

    if (!app)
        return;
    tp_deliver_stop(app->deliver, &n);    /* the counters are final now */
    log_counters(app, n);
    free(app->body);
    tp_agents_free(app->agents);
    tp_output_close(app->out);
    tp_stats_close(app->stats);     /* after the last count */
    tp_redirect_allow_free(app->redirects);
    tp_acl_free(app->admin);
    tp_buf_free(&app->resp);
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
    in.agents = app->agents;
    if (m == TP_METHOD_POST) {
        in.body = app->body;
        in.body_len = read_body(app, io, &in.body_complete);
    }
    app->hits++;
    hit->doc = tp_doc_build(&app->cfg, &in, err, sizeof(err));
    if (hit->doc && !app->cfg.record_bots && tp_doc_agent(hit->doc)->cls == TP_AGENT_BOT) {
        app->bots_skipped++;          /* served, not recorded */
        tp_doc_free(hit->doc);
        hit->doc = NULL;
        return;
    }
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
        tp_stats_add(app->st, TP_ST_DROPPED, 1);
    tp_doc_free(hit->doc);
    hit->doc = NULL;
}

/* TRACKPIXEL_GPC=skip and the request sent Sec-GPC: 1 or DNT: 1: the pixel
 * is served (with a request-id like any other), nothing is recorded. */
static int skip(tp_app *app, char *const *envp, const tp_io *io, tp_method m, tp_hit *hit)
{
    int complete;

    if (tp_privacy_gpc(app->cfg.privacy) != TP_GPC_SKIP ||
        !tp_privacy_signal(tp_env_get(envp, "HTTP_SEC_GPC"), tp_env_get(envp, "HTTP_DNT")))
        return 0;
    if (tp_uuid_v4_pooled(&app->ids, hit->request_id) < 0)
        tp_log("RAND_bytes failed: the request-id is empty");
    if (m == TP_METHOD_POST)
        read_body(app, io, &complete);       /* read and dropped */
    app->skipped++;
    return 1;
}

static route route_of(const char *path_info)
{
    if (!path_info || !*path_info)
        return ROUTE_PIXEL;
    if (strcmp(path_info, "/r") == 0)
        return ROUTE_REDIRECT;
    if (strcmp(path_info, "/_health") == 0)
        return ROUTE_HEALTH;
    if (strcmp(path_info, "/_metrics") == 0)
        return ROUTE_METRICS;
    return strncmp(path_info, "/_", 2) == 0 ? ROUTE_RESERVED : ROUTE_PIXEL;
}

/* Journal first: the entry is on disk before the answer goes out. */
static void record(tp_app *app, tp_hit *hit)
{
    if (hit->doc && app->deliver && tp_deliver_record(app->deliver, &hit->entry) < 0) {
        tp_doc_free(hit->doc);     /* dropped: the spool is full */
        hit->doc = NULL;
    }
}

static int send_resp(tp_app *app, const tp_io *io)
{
    if (app->resp.oom || io->write(io->ctx, app->resp.data, app->resp.len) < 0)
        return -1;
    return 0;
}

/* {mount}/r?u=...: 302 to an allowed target, 400 otherwise; both recorded.
 * A refusal's document has "redirect-refused=<reason>" for its query
 * string: the refused target is never stored, so a flood of refusals costs
 * the index no more per request than plain pixel hits. */
static int redirect(tp_app *app, char *const *envp, const tp_io *io, tp_method m, tp_hit *hit)
{
    char *target = NULL, refused[64], *env[512];
    tp_redirect_why why;
    size_t n = 0, max = sizeof(env) / sizeof(env[0]) - 2;
    int replaced = 0;

    if (m != TP_METHOD_GET && m != TP_METHOD_HEAD) {
        tp_response_not_allowed("GET, HEAD", &app->resp);
        return send_resp(app, io);
    }
    why = tp_redirect_target(app->redirects, tp_env_get(envp, "QUERY_STRING"), &target);
    tp_stats_add(app->st, TP_ST_REDIRECT + (int)why, 1);
    if (why != TP_REDIRECT_OK) {
        snprintf(refused, sizeof(refused), "QUERY_STRING=redirect-refused=%s",
                 tp_redirect_why_name(why));
        for (; envp && envp[n] && n < max; n++) {
            int qs = strncmp(envp[n], "QUERY_STRING=", 13) == 0;
            env[n] = qs ? refused : envp[n];
            replaced |= qs;
        }
        if (!replaced)
            env[n++] = refused;
        env[n] = NULL;
        envp = env;
    }
    build(app, envp, io, m, hit);
    record(app, hit);
    if (target)
        tp_response_redirect(target, hit->request_id, &app->resp);
    else
        tp_response_refused(tp_redirect_why_name(why), hit->request_id, &app->resp);
    free(target);
    return send_resp(app, io);
}

/* {mount}/_health and {mount}/_metrics, for the admin addresses only. */
static int admin(tp_app *app, const tp_io *io, tp_method m, route r)
{
    const char *dir = app->cfg.spool_dir[0] ? app->cfg.spool_dir : NULL;
    long long max = app->deliver ? app->cfg.spool_max_mb * 1024LL * 1024 : 0;
    time_t now = time(NULL);
    tp_stats_view view;
    tp_buf body = { 0 };
    char err[256];
    int healthy = 1, rc;

    if (m != TP_METHOD_GET && m != TP_METHOD_HEAD) {
        tp_response_not_allowed("GET, HEAD", &app->resp);
        return send_resp(app, io);
    }
    if (tp_stats_collect(app->stats, dir, max, now, &view, err, sizeof(err)) < 0)
        tp_log("%s: %s", r == ROUTE_HEALTH ? "health" : "metrics", err);
    body.max = RESPONSE_MAX;
    if (r == ROUTE_HEALTH)
        tp_stats_health(&view, app->cfg.health_max_lag_s, &healthy, &body);
    else
        tp_stats_prometheus(&view, &body);
    tp_response_body(healthy ? "200 OK" : "503 Service Unavailable",
                     r == ROUTE_HEALTH ? "application/json" : "text/plain; version=0.0.4",
                     body.data ? body.data : "", body.len, m == TP_METHOD_HEAD, &app->resp);
    rc = body.oom ? -1 : send_resp(app, io);
    tp_buf_free(&body);
    return rc;
}

static int pixel(tp_app *app, char *const *envp, const tp_io *io, tp_method m, tp_hit *hit)
{
    char resp[512];
    long rlen;

    if (m != TP_METHOD_OTHER && !skip(app, envp, io, m, hit)) {
        tp_stats_add(app->st, TP_ST_HITS_GET + (int)m, 1);
        build(app, envp, io, m, hit);
        record(app, hit);
    }
    rlen = tp_pixel_response(m, hit->request_id, resp, sizeof(resp));
    if (rlen < 0 || io->write(io->ctx, resp, (size_t)rlen) < 0)
        return -1;     /* the client is gone; the hit is still recorded */
    return 0;
}

int tp_app_respond(tp_app *app, char *const *envp, const tp_io *io, tp_hit *hit)
{
    tp_method m = tp_pixel_method(tp_env_get(envp, "REQUEST_METHOD"));
    route r = route_of(tp_env_get(envp, "PATH_INFO"));

    memset(hit, 0, sizeof(*hit));
    tp_buf_reset(&app->resp);
    if (r == ROUTE_PIXEL)
        return pixel(app, envp, io, m, hit);
    if (r == ROUTE_REDIRECT && app->redirects)
        return redirect(app, envp, io, m, hit);
    if ((r == ROUTE_HEALTH || r == ROUTE_METRICS) &&
        tp_acl_allows(app->admin, tp_env_get(envp, "REMOTE_ADDR")))
        return admin(app, io, m, r);
    tp_response_not_found(&app->resp);
    return send_resp(app, io);
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
        tp_stats_add(app->st, TP_ST_DROPPED, 1);
    } else {
        tp_stats_add(app->st, TP_ST_DELIVERED, 1);
    }
    tp_doc_free(hit->doc);
    hit->doc = NULL;
}
