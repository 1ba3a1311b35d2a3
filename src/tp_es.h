/*
 * tp_es - the Elasticsearch client: one libcurl easy handle per worker,
 * kept for the worker's life so the connection (and TLS session) is reused
 * hit after hit; requests signed with SigV4 when the configuration has
 * credentials and a region, or carrying an API key or basic auth.  TLS
 * certificates and host names are always verified (with
 * TRACKPIXEL_ES_CA_FILE when set); a failure is a TP_ES_RETRY whose err
 * has libcurl's reason.
 *
 * The client only classifies an answer (ok / retry later / rejected); what
 * to do about it is the caller's policy.  It never logs: a failure comes back
 * as one line in the caller's err buffer, with the HTTP status and
 * Elasticsearch's reason, and never a secret.
 */
#ifndef TP_ES_H
#define TP_ES_H

#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "tp_config.h"

typedef struct tp_es tp_es;

typedef enum tp_es_result {
    TP_ES_OK,        /* the answer says the document is there          */
    TP_ES_RETRY,     /* no answer, timeout, 3xx, 401, 403, 408, 429,
                        5xx, or an answer that is not what
                        Elasticsearch sends: may work later            */
    TP_ES_REJECT     /* another 4xx: this document will never work    */
} tp_es_result;

/*
 * The one rule for an HTTP status, for a whole answer or a _bulk item:
 * 2xx and 409 (already there: documents are created under their id) are
 * TP_ES_OK; 0 (no answer), 3xx (redirects are never followed, so
 * credentials never go elsewhere: a configuration problem, not the
 * document's), 401/403 (credentials, access policy), 408, 429 and 5xx are
 * TP_ES_RETRY; any other 4xx (413 included: this body is too large) is
 * TP_ES_REJECT.
 */
tp_es_result tp_es_classify(long status);

/* A client for cfg (borrowed: it must outlive the client).  NULL with err
 * set on failure.  Free with tp_es_free(). */
tp_es *tp_es_new(const tp_config *cfg, char *err, size_t errlen);
void tp_es_free(tp_es *es);

/*
 * Create one document under id: POST {url}/{index}/_create/{id}, or with a
 * type POST {url}/{index}/{type}/{id}?op_type=create; with ids_auto
 * (TRACKPIXEL_ES_IDS=auto) id is not used and the cluster picks one:
 * POST {url}/{index}/_doc, or {url}/{index}/{type}.  now is the signing
 * time.  *status gets the HTTP status (0 when there was no answer).
 * TP_ES_OK only for what Elasticsearch answers to a create: 201 with
 * "result":"created", or 409 version_conflict_engine_exception (a retry of
 * a document that is there).  Any other 2xx or 409 (a proxy's page, say)
 * is TP_ES_RETRY, "not a create answer" with the first 200 bytes.
 */
tp_es_result tp_es_create(tp_es *es, const char *id, const char *doc, size_t len,
                          time_t now, long *status, char *err, size_t errlen);

/* The same in another index than TRACKPIXEL_ES_INDEX (a day's index). */
tp_es_result tp_es_create_in(tp_es *es, const char *index, const char *id, const char *doc,
                             size_t len, time_t now, long *status, char *err, size_t errlen);

/*
 * Any request: path starts with '/' (relative to the URL's own path), query
 * without '?' or NULL, content_type NULL when there is no body.  The answer's
 * body (at most TP_ES_MAX_ANSWER bytes) is readable with tp_es_answer()
 * until the next request.  The result is tp_es_classify(status); err says
 * what went wrong (for a 3xx, where it pointed).  Anything the cluster (or
 * a proxy before it) sends back is scrubbed of the configured secrets
 * (secret key, session token, the URL's password, its Basic credentials)
 * before it reaches the answer or err: they read "[hidden]"; so are the
 * API key, TRACKPIXEL_ES_PASSWORD and its Basic credentials.
 */
#define TP_ES_MAX_ANSWER (1024 * 1024)
tp_es_result tp_es_request(tp_es *es, const char *method, const char *path,
                           const char *query, const char *content_type,
                           const char *body, size_t len, time_t now,
                           long *status, char *err, size_t errlen);

/*
 * Give up on a request in progress (as a TP_ES_RETRY, "aborted") when *flag
 * becomes non-zero, or when the monotonic clock passes *deadline (NULL: no
 * deadline, or the deadline's tv_sec is 0).  Both pointers are borrowed and
 * read during requests; NULL turns the check off.
 */
void tp_es_set_abort(tp_es *es, const atomic_int *flag, const struct timespec *deadline);

/*
 * Sign with the credentials and region of creds (borrowed; NULL: the
 * configuration's keys) and its corrected clock.  Without valid
 * credentials a request is TP_ES_RETRY with status 0 and not sent.  A 400
 * or 403 answer naming expired or invalid credentials or signature asks
 * creds for a refresh (tp_creds_cache_reject); one naming a clock skew
 * sets its offset from the answer's Date header.
 */
struct tp_creds_cache;
void tp_es_set_creds(tp_es *es, struct tp_creds_cache *creds);

/* Free the answer buffer if a large answer made it grow (keeps a worker's
 * memory flat after a big backlog); the last answer is then gone. */
void tp_es_trim(tp_es *es);

/* The last answer's body, NUL-terminated, owned by es. */
const char *tp_es_answer(const tp_es *es, size_t *len);

/*
 * Send a _bulk body of n actions (POST /_bulk?query; query NULL for none).
 * TP_ES_OK only when the answer is 200 with an "items" array of exactly n
 * objects, each {"<action>":{"status":<int>,...}}; then fn is called for
 * each item, in order, with its status and, for a failed item,
 * "type: reason".  Any other 2xx answer is TP_ES_RETRY ("not a _bulk
 * answer for n documents: " and the first 200 bytes), and fn is not
 * called: nothing counts as delivered.  Other statuses as tp_es_request().
 */
typedef void (*tp_es_item_fn)(void *ctx, size_t i, long status, const char *reason);
tp_es_result tp_es_bulk(tp_es *es, const char *query, const char *body, size_t len, long n,
                        tp_es_item_fn fn, void *ctx, time_t now, long *status,
                        char *err, size_t errlen);

#endif
