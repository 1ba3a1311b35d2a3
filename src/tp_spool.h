/*
 * tp_spool - the on-disk journal and dead letters in TRACKPIXEL_SPOOL_DIR.
 *
 * Each worker owns one journal, journal.<pid>.<random>.ndjson, locked with
 * flock() for the worker's life: a journal nobody holds a lock on belongs to
 * a worker that is gone (flock locks die with their process, SIGKILL
 * included), and another worker may claim and deliver it.  A journal is
 * created under a temporary name, locked, then renamed, so nobody can claim
 * it between its creation and its lock.
 *
 * An entry is a _bulk action line and the document line; it is appended
 * with one write() on an O_APPEND descriptor.  Entries are delivered in
 * order, so "delivered" is one offset, kept in <journal>.done; when all is
 * delivered the journal is truncated to zero and the offset reset, so a
 * healthy worker's journal stays empty.  A crash between a delivery and its
 * mark means the entry is sent again: documents are created under their
 * request-id, so a second create is a 409, never a duplicate.
 *
 * Dead letters go to deadletter.ndjson, one JSON line per document with the
 * cluster's status and reason.
 *
 * This module is a leaf: not thread-safe (the caller locks), never logs.
 * Errors come back in the caller's err buffer.
 */
#ifndef TP_SPOOL_H
#define TP_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

#define TP_SPOOL_DEADLETTER "deadletter.ndjson"

typedef struct tp_journal tp_journal;

/* Create (mkdir -p, mode 0750) dir if needed and this worker's journal in
 * it.  fsync_each: fdatasync after each append.  NULL with err set. */
tp_journal *tp_journal_create(const char *dir, int fsync_each, char *err, size_t errlen);

/* Claim the journal at path if no live worker holds it.  Returns NULL with
 * err[0] == '\0' when it is held (or gone), NULL with err set on error. */
tp_journal *tp_journal_claim(const char *path, char *err, size_t errlen);

/* Append len bytes (whole lines).  *start and *end get the entry's offsets. */
int tp_journal_append(tp_journal *j, const char *data, size_t len,
                      off_t *start, off_t *end, char *err, size_t errlen);

/* Everything before done() is delivered; size() is the end of the file. */
off_t tp_journal_done(const tp_journal *j);
off_t tp_journal_size(const tp_journal *j);
const char *tp_journal_path(const tp_journal *j);

/* Mark everything before upto as delivered (upto never goes back).  When
 * all is delivered the journal is truncated to zero. */
int tp_journal_mark(tp_journal *j, off_t upto, char *err, size_t errlen);

/*
 * The pending entries from done() up to end (the journal's size when the
 * caller last held the lock that guards appends: this only reads the file,
 * so it may run without that lock while appends go on after end): at most
 * max_entries whole entries and about max_bytes bytes (at least one entry).
 * *data points into a buffer owned by j, valid until the next call or
 * tp_journal_mark(); *offsets gets the end offset (in the file) of each
 * entry, also owned by j.  Returns the number of entries, -1 on error, 0
 * when [done, end) holds no whole entry: nothing pending, or an incomplete
 * entry at the end (a write cut short by a full disk or a crash), which
 * nothing can deliver: the caller skips it with tp_journal_mark(j, end).
 */
long tp_journal_pending(tp_journal *j, off_t end, size_t max_entries, size_t max_bytes,
                        const char **data, size_t *len, const off_t **offsets,
                        char *err, size_t errlen);

/* Close (and unlock).  When everything is delivered the journal and its
 * .done file are removed. */
void tp_journal_close(tp_journal *j);

/* Split one entry (action line + document line) at data[0..len): the
 * document line without its newline.  Returns 0 or -1 when malformed. */
int tp_spool_entry_doc(const char *data, size_t len, const char **doc, size_t *doc_len);

/* Append a dead letter for doc (doc_len bytes, not NUL-terminated: JSON
 * is kept as JSON, anything else as a string) to dir/deadletter.ndjson.
 * status 0 = no answer.  One write(), so lines never interleave. */
int tp_spool_deadletter(const char *dir, const char *index, const char *id,
                        long status, const char *reason, const char *doc, size_t doc_len,
                        char *err, size_t errlen);

/* What is in the spool. */
typedef struct tp_spool_stat {
    long journals;          /* journal files                          */
    long orphans;           /* of which no live worker holds          */
    long entries;           /* pending entries in all of them         */
    long long bytes;        /* pending bytes                          */
    long long oldest_ms;    /* "date" of the oldest pending entry, 0 = none */
    long deadletters;       /* lines in deadletter.ndjson             */
    long long total_bytes;  /* everything in the spool dir            */
} tp_spool_stat;

/* Fill st for dir.  count_entries: also read the journals (for
 * --spool-status); otherwise only sizes (cheap, for the size limit). */
int tp_spool_stat_dir(const char *dir, int count_entries, tp_spool_stat *st,
                      char *err, size_t errlen);

/* Call fn for each journal path in dir other than own (NULL = all).
 * Returns the number of journals seen or -1. */
typedef void (*tp_spool_journal_fn)(void *ctx, const char *path);
int tp_spool_each_journal(const char *dir, const char *own, tp_spool_journal_fn fn, void *ctx);

#endif
