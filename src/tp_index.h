/*
 * tp_index - the index name, which may hold the hit's UTC date:
 * TRACKPIXEL_ES_INDEX=events-%Y.%m.%d puts each document in its own day's
 * index (%Y the year, %m the month, %d the day, of the hit's UTC time).
 *
 * Pure functions on caller-supplied buffers; nothing is allocated.
 */
#ifndef TP_INDEX_H
#define TP_INDEX_H

#include <stddef.h>
#include <time.h>

/* Longest index name Elasticsearch accepts, in bytes. */
#define TP_INDEX_MAX 255

/* Non-zero when pattern holds a date conversion (%Y, %m or %d). */
int tp_index_dated(const char *pattern);

/*
 * Check a pattern: the only conversions are %Y %m %d, it does not start
 * with one, and every expansion is a valid index name (lower case, no
 * \/ *?"<>|,#: or space, not starting with - _ +, at most 255 bytes).
 * Returns 0, or -1 with the reason in err.
 */
int tp_index_check(const char *pattern, char *err, size_t errlen);

/*
 * The index for a hit at t (seconds since the epoch, UTC) into out (at
 * least TP_INDEX_MAX + 1 bytes).  A pattern without conversions is copied.
 * Returns 0, or -1 when out is too small or the pattern is invalid.
 */
int tp_index_expand(const char *pattern, time_t t, char *out, size_t outcap);

/*
 * The index of a recorded document: pattern expanded for the document's
 * "date" (milliseconds since the epoch), or copied when it holds no date.
 * For dead letters and --replay, which have the document but not the hit.
 * Returns 0, or -1 (a dated pattern and no "date" in doc, or out too small).
 */
int tp_index_for_doc(const char *pattern, const char *doc, size_t len, char *out,
                     size_t outcap);

/* The index template pattern covering every expansion: each conversion
 * becomes '*' ("events-%Y.%m.%d" gives "events-*.*.*").  Returns 0 or -1
 * (out too small). */
int tp_index_wildcard(const char *pattern, char *out, size_t outcap);

#endif
