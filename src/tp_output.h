/*
 * tp_output - the embedded default: documents appended to a local file in
 * Elasticsearch _bulk format, an action line then the document line:
 *
 *   {"create":{"_index":"events","_id":"<request-id>"}}
 *   {...the document...}
 *
 * Each pair goes out in one write() on an O_APPEND descriptor, under
 * flock(LOCK_EX), so lines from several worker processes never interleave,
 * and a write cut short (a full disk) is taken back without cutting another
 * worker's lines: the file stays whole lines.  It loads into a cluster with
 * one POST to _bulk (or `trackpixel --replay`).
 */
#ifndef TP_OUTPUT_H
#define TP_OUTPUT_H

#include <stddef.h>

typedef struct tp_output tp_output;

/* Open (create, mode 0640) path for appending.  NULL with err set on failure.
 * The caller frees the result with tp_output_close(). */
tp_output *tp_output_open(const char *path, char *err, size_t errlen);

/* Append one action line and one document line (tp_spool_bulk_pair()).
 * type may be NULL.  Returns 0, or -1 with err set ("short write ..." when
 * the disk took only part of it); the file is then unchanged, or has lost
 * only this document's lines when a short write could not be taken back. */
int tp_output_append(tp_output *out, const char *index, const char *type,
                     const char *id, const char *doc, size_t doc_len,
                     char *err, size_t errlen);

void tp_output_close(tp_output *out);

#endif
