/*
 * tp_doc - one hit's CGI variables into the passthrough-shaped document.
 *
 * The shape is API Gateway's "method request passthrough" template (body-json,
 * params, stage-variables, context) plus "date" (epoch milliseconds) and
 * "@timestamp" (RFC 3339 UTC with milliseconds), and "agent" (who is asking:
 * {"class":...,"name":...}, from tp_agent) after "context".  Every string in it is
 * valid UTF-8 whatever the request carried.  It is written in one pass
 * (tp_json); json-c parses and prints a POST body for body-json.
 * Limits from tp_config cut it down; what was cut is listed in a top-level
 * "truncated" array, which is present only when something was cut.  The
 * privacy settings (tp_privacy) decide source-ip, which headers and values
 * are kept, and add a top-level "privacy":"gpc" to a hit anonymized for
 * Sec-GPC / DNT; the time of the hit (in->now) picks the hash mode's key.
 */
#ifndef TP_DOC_H
#define TP_DOC_H

#include <stddef.h>
#include <time.h>

#include "tp_agent.h"
#include "tp_config.h"

typedef struct tp_doc_input {
    char *const *envp;        /* the request's CGI variables, NAME=value   */
    const char *body;         /* POST body as read, NULL when none          */
    size_t body_len;
    int body_complete;        /* 0 when more arrived than body_len / the limit */
    const char *request_id;   /* context.request-id                         */
    struct timespec now;      /* CLOCK_REALTIME of the hit                  */
    const tp_agents *agents;  /* the agents list; NULL: none (tp_agent.h)   */
} tp_doc_input;

/* A document being built: opaque; tp_doc_free() releases it. */
typedef struct tp_doc tp_doc;

/*
 * Build the document.  Returns a new tp_doc (the caller releases it with
 * tp_doc_free), or NULL with a message in err when memory ran out.
 */
tp_doc *tp_doc_build(const tp_config *cfg, const tp_doc_input *in,
                     char *err, size_t errlen);

/*
 * Serialize doc as one line of compact JSON (what json-c prints with
 * JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), enforcing
 * cfg->max_doc: when the text is larger, body-json, then params.querystring,
 * params.header, params.path, and last the request's own values in context
 * (http-method, source-ip, user, user-agent, resource-path become "") are
 * emptied and listed in "truncated" (which then drops its per-name entries
 * under what was emptied) until it fits.  Returns a string owned by doc
 * (valid until the next call or tp_doc_free) and its length in *len, or NULL
 * on failure.
 */
const char *tp_doc_serialize(const tp_config *cfg, tp_doc *doc, size_t *len);

/* Who is asking, as the document says (owned by doc and the list). */
const tp_agent *tp_doc_agent(const tp_doc *doc);

/* Release doc (NULL is fine).  Its text (tp_doc_serialize) and agent name
 * are then no longer the caller's: one released document's memory, when it
 * is at most 64 KiB, is kept by this module and reused by the next
 * tp_doc_build (in any thread); the rest is freed. */
void tp_doc_free(tp_doc *doc);

/* Format t as "2025-11-26T19:40:00.123Z" into out (at least 25 bytes).
 * -1 when out is smaller, or the year is not within 0 to 9999. */
int tp_doc_rfc3339(struct timespec t, char *out, size_t outcap);

#endif
