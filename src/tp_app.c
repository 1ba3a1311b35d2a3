#include "tp_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tp_doc.h"
#include "tp_log.h"
#include "tp_pixel.h"

/* Bodies past the limit are read and dropped up to this many bytes, so the
 * web server can hand over the whole request; past it we stop reading. */
#define DRAIN_MAX (16L * 1024 * 1024)

int tp_app_init(tp_app *app, char *const *envp, char *err, size_t errlen)
{
    memset(app, 0, sizeof(*app));
    if (tp_config_load(&app->cfg, envp, err, errlen) < 0)
        return -1;
    app->body = malloc((size_t)app->cfg.max_body + 1);
    if (!app->body) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (app->cfg.es_url)
        app->es = tp_es_new(&app->cfg, err, errlen);
    else
        app->out = tp_output_open(app->cfg.output, err, errlen);
    return (app->es || app->out) ? 0 : -1;
}

void tp_app_free(tp_app *app)
{
    tp_es_free(app->es);
    tp_output_close(app->out);
    free(app->body);
    tp_config_free(&app->cfg);
    memset(app, 0, sizeof(*app));
}

/* Read the body into app->body; *complete is 0 when it was larger than
 * max_body.  The rest is drained (bounded) so the server is not blocked. */
static size_t read_body(tp_app *app, const tp_io *io, int *complete)
{
    size_t cap = (size_t)app->cfg.max_body + 1, len = 0;
    long n, drained = 0;
    char sink[4096];

    while (len < cap && (n = io->read(io->ctx, app->body + len, cap - len)) > 0)
        len += (size_t)n;
    *complete = len <= (size_t)app->cfg.max_body;
    if (!*complete)
        while (drained < DRAIN_MAX && (n = io->read(io->ctx, sink, sizeof(sink))) > 0)
            drained += n;
    return len;
}

static const char *env_get(char *const *envp, const char *name)
{
    size_t len = strlen(name);

    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, len) == 0 && (*envp)[len] == '=')
            return *envp + len + 1;
    return NULL;
}

int tp_app_respond(tp_app *app, char *const *envp, const tp_io *io, tp_hit *hit)
{
    tp_doc_input in;
    tp_method m = tp_pixel_method(env_get(envp, "REQUEST_METHOD"));
    char resp[512], err[256];
    long rlen;

    memset(hit, 0, sizeof(*hit));
    memset(&in, 0, sizeof(in));
    clock_gettime(CLOCK_REALTIME, &in.now);

    if (m != TP_METHOD_OTHER) {
        if (tp_uuid_v4(hit->request_id) < 0)
            tp_log("RAND_bytes failed: the request-id is empty");
        in.envp = envp;
        in.request_id = hit->request_id;
        if (m == TP_METHOD_POST) {
            in.body = app->body;
            in.body_len = read_body(app, io, &in.body_complete);
        }
        hit->doc = tp_doc_build(&app->cfg, &in, err, sizeof(err));
        if (!hit->doc)
            tp_log("hit %s not recorded: %s", hit->request_id, err);
        app->hits++;
    }

    rlen = tp_pixel_response(m, hit->request_id, resp, sizeof(resp));
    if (rlen < 0 || io->write(io->ctx, resp, (size_t)rlen) < 0)
        return -1;     /* the client is gone; the hit is still recorded */
    return 0;
}

void tp_app_deliver(tp_app *app, tp_hit *hit)
{
    char err[512];
    const char *text;
    size_t len = 0;

    if (!hit->doc)
        return;
    text = tp_doc_serialize(&app->cfg, hit->doc, &len);
    if (!text) {
        tp_log("hit %s not recorded: cannot serialize the document", hit->request_id);
        app->failed++;
        goto done;
    }
    if (app->es) {
        long status = 0;
        tp_es_result r = tp_es_create(app->es, hit->request_id, text, len,
                                      time(NULL), &status, err, sizeof(err));
        if (r != TP_ES_OK) {
            tp_log("hit %s dropped (%s): %s", hit->request_id,
                   r == TP_ES_RETRY ? "cluster unavailable" : "rejected", err);
            app->failed++;
            goto done;
        }
    } else if (tp_output_append(app->out, app->cfg.es_index, app->cfg.es_type,
                                hit->request_id, text, len, err, sizeof(err)) < 0) {
        tp_log("hit %s not written to %s: %s", hit->request_id, app->cfg.output, err);
        app->failed++;
        goto done;
    }
    app->delivered++;
done:
    json_object_put(hit->doc);
    hit->doc = NULL;
}
