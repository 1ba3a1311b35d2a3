/*
 * tp_es - the Elasticsearch client: one libcurl easy handle per worker,
 * kept for the worker's life so the connection (and TLS session) is reused
 * hit after hit; requests signed with SigV4 when the configuration has
 * credentials and a region.
 *
 * The client only classifies an answer (ok / retry later / rejected); what
 * to do about it is the caller's policy.  It never logs: a failure comes back
 * as one line in the caller's err buffer, with the HTTP status and
 * Elasticsearch's reason, and never a secret.
 */
#ifndef TP_ES_H
#define TP_ES_H

#include <stddef.h>
#include <time.h>

#include "tp_config.h"

typedef struct tp_es tp_es;

typedef enum tp_es_result {
    TP_ES_OK,        /* 2xx, or 409: the document is there            */
    TP_ES_RETRY,     /* no answer, timeout, 401, 403, 408, 429, 5xx:
                        may work later                                 */
    TP_ES_REJECT     /* another 4xx: this document will never work    */
} tp_es_result;

/* A client for cfg (borrowed: it must outlive the client).  NULL with err
 * set on failure.  Free with tp_es_free(). */
tp_es *tp_es_new(const tp_config *cfg, char *err, size_t errlen);
void tp_es_free(tp_es *es);

/*
 * Create one document under id: POST {url}/{index}/_create/{id}, or with a
 * type POST {url}/{index}/{type}/{id}?op_type=create.  now is the signing
 * time.  *status gets the HTTP status (0 when there was no answer).
 */
tp_es_result tp_es_create(tp_es *es, const char *id, const char *doc, size_t len,
                          time_t now, long *status, char *err, size_t errlen);

/*
 * Any request: path starts with '/' (relative to the URL's own path), query
 * without '?' or NULL, content_type NULL when there is no body.  The answer's
 * body (at most TP_ES_MAX_ANSWER bytes) is readable with tp_es_answer()
 * until the next request.
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
void tp_es_set_abort(tp_es *es, const volatile int *flag, const struct timespec *deadline);

/* Free the answer buffer if a large answer made it grow (keeps a worker's
 * memory flat after a big backlog); the last answer is then gone. */
void tp_es_trim(tp_es *es);

/* The last answer's body, NUL-terminated, owned by es. */
const char *tp_es_answer(const tp_es *es, size_t *len);


/*
 * After a _bulk request answered 2xx: call fn for each item of the answer, in
 * order, with its status and (for a failed item) "type: reason".  Returns
 * the number of items, or -1 when the answer is not a _bulk answer.
 */
typedef void (*tp_es_item_fn)(void *ctx, size_t i, long status, const char *reason);
long tp_es_bulk_items(const tp_es *es, tp_es_item_fn fn, void *ctx);

#endif
