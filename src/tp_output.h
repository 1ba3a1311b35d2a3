/*
 * tp_output - the embedded default: documents appended to a local file in
 * Elasticsearch _bulk format, an action line then the document line:
 *
 *   {"create":{"_index":"events","_id":"<request-id>"}}
 *   {...the document...}
 *
 * Each pair goes out in one write() on an O_APPEND descriptor, so lines from
 * several worker processes never interleave.  The file loads into a cluster
 * with one POST to _bulk.
 */
#ifndef TP_OUTPUT_H
#define TP_OUTPUT_H

#include <stddef.h>

typedef struct tp_output tp_output;

/* Open (create, mode 0640) path for appending.  NULL with err set on failure.
 * The caller frees the result with tp_output_close(). */
tp_output *tp_output_open(const char *path, char *err, size_t errlen);

/* Append one action line and one document line.  type may be NULL.
 * Returns 0, or -1 with err set (the file is then unchanged, or has lost
 * only this document's lines to a full disk). */
int tp_output_append(tp_output *out, const char *index, const char *type,
                     const char *id, const char *doc, size_t doc_len,
                     char *err, size_t errlen);

void tp_output_close(tp_output *out);

/*
 * The _bulk action line for one document, without a newline, into buf.
 * Returns its length, or -1 when buf (capacity cap) is too small.
 */
long tp_output_action(const char *index, const char *type, const char *id,
                      char *buf, size_t cap);

#endif
