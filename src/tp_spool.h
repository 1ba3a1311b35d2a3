/*
 * tp_spool - the on-disk journal and dead letters in TRACKPIXEL_SPOOL_DIR,
 * and the one owner of the journal's entry format.
 *
 * Each worker owns one journal, journal.<pid>.<random>.ndjson, locked with
 * flock() for the worker's life: a journal nobody holds a lock on belongs to
 * a worker that is gone (flock locks die with their process, SIGKILL
 * included), and another worker may claim and deliver it.  A journal is
 * created under a temporary name, locked, then renamed, so nobody can claim
 * it between its creation and its lock.
 *
 * The file (format 2):
 *
 *   #trackpixel-journal 2 <destination>\n
 *   #<n> <crc>\n<action line>\n<document line>\n
 *   #<n> <crc>\n<action line>\n<document line>\n
 *   ...
 *
 * The first line records where the entries belong (the cluster's URL
 * without credentials, and the index: tp_spool_destination()), so that an
 * orphan is only claimed by a worker of the same destination.  Each entry
 * is framed: n is the decimal length of the two lines that follow (both
 * newlines included) and crc their CRC-32 (zlib's) in 8 lower-case hex
 * digits.  An entry is trusted only when its frame parses, its length fits,
 * its checksum matches and its two lines are a _bulk action line and a
 * document.  Anything else (a stray line, a zeroed page after a crash, half
 * an entry) is a damaged region: it is skipped up to the next valid entry,
 * appended as it was to damaged.<journal name> in the spool for inspection,
 * and reported to the caller, which counts and logs it.
 *
 * An entry is appended with one write() on an O_APPEND descriptor (a write
 * cut short by a full disk is truncated back, so the journal stays whole
 * entries).  Entries are delivered in order, so "delivered" is one offset,
 * kept in <journal>.done; when all is delivered the journal is truncated
 * back to its first line, so a healthy worker's journal stays that small.
 * A crash between a delivery and its mark means the entry is sent again:
 * documents are created under their request-id, so a second create is a
 * 409, never a duplicate.
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

#include "tp_buf.h"

#define TP_SPOOL_DEADLETTER "deadletter.ndjson"
#define TP_SPOOL_DAMAGED_PREFIX "damaged."
/* The longest destination line (URL and index are bounded by the
 * configuration; a longer one is refused at creation). */
#define TP_SPOOL_DEST_MAX 2048

/* ---------------------------------------------------------- entries */

/* The destination recorded in a journal: "<url> <index>[ <type>]", the
 * URL without userinfo (never credentials) and without a trailing '/'
 * (libcurl's URL parser; the host is kept as written).  An empty type is
 * no type.  Returns 0, or -1 (out "") when it does not fit in cap
 * (TP_SPOOL_DEST_MAX) or es_url does not parse. */
int tp_spool_destination(const char *es_url, const char *index, const char *type,
                         char *out, size_t cap);

/* Append the _bulk pair for one document to out: the action line
 * {"create":{"_index":...[,"_type":...],"_id":...}}, a newline, the
 * document (doc_len bytes), a newline.  type may be NULL; id NULL: no
 * _id (the cluster picks one, TRACKPIXEL_ES_IDS=auto).  Returns 0, or
 * -1 when out ran out of memory (out->oom). */
int tp_spool_bulk_pair(tp_buf *out, const char *index, const char *type, const char *id,
                       const char *doc, size_t doc_len);

/* Split one _bulk pair (action line + document line, as in a batch's body)
 * at data[0..len): *doc and *doc_len: the document line without its newline,
 * and its _id (from the action line) into id (idcap bytes, "" when there is
 * none or it does not fit).  Returns 0 or -1 when malformed.  Bounded: never
 * reads past len. */
int tp_spool_pair_split(const char *data, size_t len, const char **doc, size_t *doc_len,
                        char *id, size_t idcap);

/* ---------------------------------------------------------- journals */

typedef struct tp_journal tp_journal;

/* Create (mkdir -p, mode 0750) dir if needed and this worker's journal in
 * it, recording dest (from tp_spool_destination()).  fsync_each: fdatasync
 * after each append.  NULL with err set (e.g. a full or read-only disk:
 * the caller may try again later). */
tp_journal *tp_journal_create(const char *dir, const char *dest, int fsync_each,
                              char *err, size_t errlen);

typedef enum tp_claim {
    TP_CLAIM_OK,         /* claimed: deliver it                              */
    TP_CLAIM_BUSY,       /* a live worker holds it, or it is gone            */
    TP_CLAIM_ELSEWHERE,  /* it belongs to another destination: leave it      */
    TP_CLAIM_ERROR       /* err says why                                     */
} tp_claim;

/* Claim the journal at path if no live worker holds it and it belongs to
 * dest.  A journal without a first line (written by an older version) is
 * claimed by any destination, and its content (from its .done offset, 0
 * when it has none) is all one damaged region: saved aside whole, so
 * `trackpixel --replay` can send it.  A first line of another format
 * version is TP_CLAIM_ELSEWHERE.  Sets *why; returns the journal only with
 * TP_CLAIM_OK. */
tp_journal *tp_journal_claim(const char *path, const char *dest, tp_claim *why,
                             char *err, size_t errlen);

/* Append one document as an entry (framed _bulk pair; type may be NULL).
 * *start and *end get the entry's offsets.  On failure the journal is as
 * before (a short write is truncated back and named "short write" in err,
 * never with a stale errno). */
int tp_journal_append(tp_journal *j, const char *index, const char *type, const char *id,
                      const char *doc, size_t doc_len, off_t *start, off_t *end,
                      char *err, size_t errlen);

/* Everything before done() is delivered (or skipped as damaged); size() is
 * the end of the file.  done() == size() when nothing is pending. */
off_t tp_journal_done(const tp_journal *j);
off_t tp_journal_size(const tp_journal *j);
const char *tp_journal_path(const tp_journal *j);
/* The destination recorded in the journal ("" for an older journal). */
const char *tp_journal_destination(const tp_journal *j);

/* Mark everything before upto as delivered (upto never goes back).  When
 * all is delivered the journal (if it is the caller's own) is truncated back
 * to its first line, and its read buffers are freed if they are larger
 * than TP_JOURNAL_KEEP_BYTES (together), kept otherwise. */
#define TP_JOURNAL_KEEP_BYTES (2 * 1024 * 1024)
int tp_journal_mark(tp_journal *j, off_t upto, char *err, size_t errlen);

/* A batch of pending entries, as read by tp_journal_pending().  Everything
 * it points to is owned by the journal and valid until the next
 * tp_journal_pending() or tp_journal_mark() on it. */
typedef struct tp_batch {
    const char *body;      /* the _bulk body: the entries' pairs, unframed */
    size_t len;
    long n;                /* entries                                       */
    const size_t *cut;     /* cut[i]: end of entry i in body (its start is
                              cut[i - 1], or 0)                             */
    const off_t *end;      /* end[i]: file offset just after entry i         */
    off_t consumed;        /* file offset up to which the read went: the
                              entries and any damaged regions between or
                              after them; mark this when all n are done     */
    long damaged;          /* damaged regions found (and saved aside) by this
                              read; a region is reported once              */
    long long damaged_bytes;
    const char *damaged_path;  /* where they were saved (owned by j)        */
} tp_batch;

/*
 * The pending entries from done() up to upto (the journal's size when the
 * caller last held the lock that guards appends: this only reads the file,
 * so it may run without that lock while appends go on after upto): at most
 * max_entries entries and about max_bytes bytes of body (at least one
 * entry, however large).  Returns the number of entries (b->n), or -1 with
 * err set (also when a damaged region cannot be saved aside, a full disk:
 * nothing is skipped unsaved, the caller tries again later).  0 entries
 * with b->consumed > done(): only damaged regions were found, the caller
 * marks b->consumed.
 */
long tp_journal_pending(tp_journal *j, off_t upto, size_t max_entries, size_t max_bytes,
                        tp_batch *b, char *err, size_t errlen);

/* Close (and unlock).  When everything is delivered the journal and its
 * .done file are removed. */
void tp_journal_close(tp_journal *j);

/* Append len bytes to fd (an O_APPEND file other processes append to as
 * well) whole or not at all: under flock(LOCK_EX), so that taking back a
 * short write (a full disk) never cuts another process's line.  Returns 0,
 * or -1 with err: strerror, or "short write (...)". */
int tp_spool_append_whole(int fd, const char *data, size_t len, char *err, size_t errlen);

/* ------------------------------------------------------ dead letters */

/* Append a dead letter for doc (doc_len bytes, not NUL-terminated: JSON
 * is kept as JSON, anything else as a string) to dir/deadletter.ndjson.
 * status 0 = no answer.  One write(), so lines never interleave; a short
 * write (full disk) is truncated back and reported as "short write". */
int tp_spool_deadletter(const char *dir, const char *index, const char *id,
                        long status, const char *reason, const char *doc, size_t doc_len,
                        char *err, size_t errlen);

/* ------------------------------------------------------ the whole spool */

#define TP_SPOOL_STAT_DESTS 8

/* What is in the spool. */
typedef struct tp_spool_stat {
    long journals;          /* journal files                          */
    long orphans;           /* of which no live worker holds          */
    long entries;           /* pending entries in all of them         */
    long long bytes;        /* pending bytes                          */
    long long oldest_ms;    /* "date" of the oldest pending entry (the
                               document's own top-level "date"), 0 = none */
    long deadletters;       /* lines in deadletter.ndjson             */
    long damaged_files;     /* damaged.* files                        */
    long long total_bytes;  /* everything in the spool dir            */
    /* The destinations of the journals ("" for older journals): the
     * first TP_SPOOL_STAT_DESTS distinct ones, with their pending entries. */
    long ndests;
    char dest[TP_SPOOL_STAT_DESTS][TP_SPOOL_DEST_MAX];
    long dest_entries[TP_SPOOL_STAT_DESTS];
} tp_spool_stat;

/* Fill st for dir.  count_entries: also read the journals (for
 * --spool-status: bounded reads, never past what was read); otherwise only
 * sizes (cheap, for the size limit).  TP_SPOOL_STAT_OLDEST: sizes, pending
 * bytes and oldest_ms from the first pending entry of each journal only
 * (cheap enough for a health check; entries and destinations not counted).
 * own (NULL: none) is a path left out of total_bytes: a worker's own
 * journal, whose size it knows better than a stat() racing its appends. */
#define TP_SPOOL_STAT_OLDEST 2
int tp_spool_stat_dir(const char *dir, int count_entries, const char *own, tp_spool_stat *st,
                      char *err, size_t errlen);

/* Call fn for each journal path in dir other than own (NULL = all).
 * Returns the number of journals seen or -1. */
typedef void (*tp_spool_journal_fn)(void *ctx, const char *path);
int tp_spool_each_journal(const char *dir, const char *own, tp_spool_journal_fn fn, void *ctx);

/* For --replay: call fn for each document of the file at path, which is a
 * journal (either format), a _bulk file (TRACKPIXEL_OUTPUT, a damaged.*
 * file) or a dead-letter file, in order, with its _id ("" when unknown).
 * Returns the number of documents, or -1 with err set.  Lines that are
 * none of these are counted in *skipped. */
typedef void (*tp_spool_doc_fn)(void *ctx, const char *id, const char *doc, size_t doc_len);
long tp_spool_each_document(const char *path, tp_spool_doc_fn fn, void *ctx, long *skipped,
                            char *err, size_t errlen);

#endif
