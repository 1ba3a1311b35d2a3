/* tp_spool: the journal's format, damaged regions, claims, marks, dead
 * letters, stats, replay; tp_output's whole-line appends. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include "tp_check.h"
#include "tp_output.h"
#include "tp_spool.h"

#define DEST "http://es.example:9200 events"
#define HEADER "#trackpixel-journal 2 " DEST "\n"
#define PAIR(id, doc) "{\"create\":{\"_index\":\"events\",\"_id\":\"" id "\"}}\n" doc "\n"
#define DOC_A "{\"date\":1000,\"n\":1}"
#define DOC_B "{\"date\":2000,\"n\":2}"
#define PAIR_A PAIR("a", DOC_A)
#define PAIR_B PAIR("b", DOC_B)

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/tp-spool-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* ------------------------------------------------------------ helpers */

/* The framed entry for pair, computed here independently of tp_spool. */
static void put_entry(tp_buf *b, const char *pair, size_t n)
{
    char frame[32];
    int flen = snprintf(frame, sizeof(frame), "#%zu %08lx\n", n,
                        (unsigned long)crc32(0L, (const Bytef *)pair, (uInt)n));
    tp_buf_put(b, frame, (size_t)flen);
    tp_buf_put(b, pair, n);
}

static void put_entry_s(tp_buf *b, const char *pair)
{
    put_entry(b, pair, strlen(pair));
}

static void write_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* The whole file (malloc'd, NUL-terminated), NULL when missing. */
static char *read_all(const char *path, size_t *len)
{
    struct stat sb;
    char *s;
    int fd = open(path, O_RDONLY);

    *len = 0;
    if (fd < 0)
        return NULL;
    ck_assert_int_eq(fstat(fd, &sb), 0);
    s = malloc((size_t)sb.st_size + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(read(fd, s, (size_t)sb.st_size), sb.st_size);
    s[sb.st_size] = '\0';
    *len = (size_t)sb.st_size;
    close(fd);
    return s;
}

static long long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

static long count_files(const char *prefix)
{
    char cmd[256], buf[32];
    FILE *p;
    long n = -1;

    snprintf(cmd, sizeof(cmd), "ls -A %s | grep -c '^%s' || true", dir, prefix);
    p = popen(cmd, "r");
    if (p && fgets(buf, sizeof(buf), p))
        n = strtol(buf, NULL, 10);
    if (p)
        pclose(p);
    return n;
}

/* What a drain of a journal delivered: the ids in order, and the damage. */
typedef struct drained {
    char ids[4096];
    long damaged;
    long long damaged_bytes;
} drained;

/* Deliver everything pending in j (as a deliverer would, all accepted). */
static void drain(tp_journal *j, drained *d)
{
    char err[256];
    tp_batch b;
    long n, i, rounds = 0;

    memset(d, 0, sizeof(*d));
    while (tp_journal_done(j) < tp_journal_size(j)) {
        ck_assert_int_lt(rounds++, 1000);
        n = tp_journal_pending(j, tp_journal_size(j), 3, 1 << 20, &b, err, sizeof(err));
        ck_assert_msg(n >= 0, "%s", err);
        ck_assert_int_gt(b.consumed, tp_journal_done(j));
        for (i = 0; i < n; i++) {
            size_t start = i ? b.cut[i - 1] : 0, dlen;
            const char *doc;
            char id[300];
            ck_assert_int_eq(tp_spool_pair_split(b.body + start, b.cut[i] - start, &doc, &dlen,
                                                 id, sizeof(id)), 0);
            if (d->ids[0])
                strncat(d->ids, ",", sizeof(d->ids) - strlen(d->ids) - 1);
            strncat(d->ids, id, sizeof(d->ids) - strlen(d->ids) - 1);
        }
        d->damaged += b.damaged;
        d->damaged_bytes += b.damaged_bytes;
        ck_assert_int_eq(tp_journal_mark(j, b.consumed, err, sizeof(err)), 0);
    }
}

/* ------------------------------------------------------ destinations */

START_TEST(destination_has_no_credentials_nor_trailing_slash)
{
    static const struct {
        const char *name, *url, *index, *type, *want;
    } rows[] = {
        { "plain, with a port", "http://es.example:9200", "events", NULL,
          "http://es.example:9200 events" },
        { "user and password, trailing slash", "https://user:pw@es.example/", "events", NULL,
          "https://es.example events" },
        { "userinfo, port, path and a type", "http://u:p@es:9200/prefix/", "ev", "_doc",
          "http://es:9200/prefix ev _doc" },
        { "several trailing slashes", "http://h/a//", "events", NULL, "http://h/a events" },
        { "user without a password", "http://elastic@h:1234", "events", NULL,
          "http://h:1234 events" },
        { "an empty type is no type", "http://h", "events", "", "http://h events" },
        { "IPv6", "http://[::1]:9200/", "events", NULL, "http://[::1]:9200 events" },
    };
    char out[TP_SPOOL_DEST_MAX];
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ck_assert_msg(tp_spool_destination(rows[i].url, rows[i].index, rows[i].type, out,
                                           sizeof(out)) == 0, "%s", rows[i].name);
        ck_assert_msg(strcmp(out, rows[i].want) == 0, "%s: %s", rows[i].name, out);
    }
    /* "http://h events" is 15 bytes: 16 fit, 15 do not. */
    ck_assert_int_eq(tp_spool_destination("http://h", "events", NULL, out, 16), 0);
    ck_assert_int_eq(tp_spool_destination("http://h", "events", NULL, out, 15), -1);
    ck_assert_str_eq(out, "");
}
END_TEST

/* ------------------------------------------------------ pairs */

START_TEST(bulk_pair_and_split)
{
    tp_buf b = { 0 };
    const char *doc;
    size_t dlen;
    char id[16], *exact;

    ck_assert_int_eq(tp_spool_bulk_pair(&b, "events", NULL, "a", DOC_A, strlen(DOC_A)), 0);
    ck_assert_str_eq(b.data, PAIR_A);
    ck_assert_int_eq(tp_spool_pair_split(b.data, b.len, &doc, &dlen, id, sizeof(id)), 0);
    ck_assert_uint_eq(dlen, strlen(DOC_A));
    ck_assert_int_eq(memcmp(doc, DOC_A, dlen), 0);
    ck_assert_str_eq(id, "a");
    /* Exactly the pair's bytes, no NUL after them (ASan checks the reads). */
    exact = malloc(b.len);
    ck_assert_ptr_nonnull(exact);
    memcpy(exact, b.data, b.len);
    ck_assert_int_eq(tp_spool_pair_split(exact, b.len, &doc, &dlen, id, sizeof(id)), 0);
    ck_assert_str_eq(id, "a");
    /* Without the last newline too. */
    ck_assert_int_eq(tp_spool_pair_split(exact, b.len - 1, &doc, &dlen, id, sizeof(id)), 0);
    ck_assert_uint_eq(dlen, strlen(DOC_A));
    /* The action line alone, cut anywhere in it: no id, never past len. */
    ck_assert_int_eq(tp_spool_pair_split(exact, 20, &doc, &dlen, id, sizeof(id)), -1);
    free(exact);
    /* An id that does not fit: "". */
    tp_buf_reset(&b);
    ck_assert_int_eq(tp_spool_bulk_pair(&b, "events", NULL, "0123456789abcdef", "{}", 2), 0);
    ck_assert_int_eq(tp_spool_pair_split(b.data, b.len, &doc, &dlen, id, sizeof(id)), 0);
    ck_assert_str_eq(id, "");
    /* Malformed: no newline, no document, a third line. */
    ck_assert_int_eq(tp_spool_pair_split("no newline", 10, &doc, &dlen, id, sizeof(id)), -1);
    ck_assert_int_eq(tp_spool_pair_split("{}\n\n", 4, &doc, &dlen, id, sizeof(id)), -1);
    ck_assert_int_eq(tp_spool_pair_split("{}\n{}\n{}\n", 9, &doc, &dlen, id, sizeof(id)), -1);
    tp_buf_free(&b);
}
END_TEST

/* ------------------------------------------------------ own journal */

START_TEST(append_pending_mark_truncate)
{
    char err[256], want_done[32], *text;
    tp_buf want = { 0 };
    tp_journal *j;
    tp_batch b;
    off_t s1, e1, s2, e2, h = (off_t)strlen(HEADER);
    size_t len;

    make_dir();
    j = tp_journal_create(dir, DEST, 0, err, sizeof(err));
    ck_assert_msg(j != NULL, "%s", err);
    ck_assert_str_eq(tp_journal_destination(j), DEST);
    ck_assert_int_eq(tp_journal_size(j), h);
    ck_assert_int_eq(tp_journal_done(j), h);
    ck_assert_int_eq(tp_journal_append(j, "events", NULL, "a", DOC_A, strlen(DOC_A), &s1, &e1,
                                       err, sizeof(err)), 0);
    ck_assert_int_eq(tp_journal_append(j, "events", NULL, "b", DOC_B, strlen(DOC_B), &s2, &e2,
                                       err, sizeof(err)), 0);
    /* The exact bytes: the first line, then two framed entries. */
    tp_buf_put(&want, TP_LIT(HEADER));
    put_entry_s(&want, PAIR_A);
    put_entry_s(&want, PAIR_B);
    text = read_all(tp_journal_path(j), &len);
    ck_assert_uint_eq(len, want.len);
    ck_assert_int_eq(memcmp(text, want.data, len), 0);
    free(text);
    ck_assert_int_eq(s1, h);
    ck_assert_int_eq(e1, h + 13 + (off_t)strlen(PAIR_A));     /* "#61 xxxxxxxx\n" is 13 */
    ck_assert_int_eq(s2, e1);
    ck_assert_int_eq(e2, (off_t)want.len);

    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &b, err, sizeof(err)), 2);
    ck_assert_uint_eq(b.len, strlen(PAIR_A PAIR_B));
    ck_assert_int_eq(memcmp(b.body, PAIR_A PAIR_B, b.len), 0);
    ck_assert_uint_eq(b.cut[0], strlen(PAIR_A));
    ck_assert_uint_eq(b.cut[1], strlen(PAIR_A PAIR_B));
    ck_assert_int_eq(b.end[0], e1);
    ck_assert_int_eq(b.end[1], e2);
    ck_assert_int_eq(b.consumed, e2);
    ck_assert_int_eq(b.damaged, 0);
    /* One at a time, and a byte limit smaller than one entry still gives one. */
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 1, 1 << 20, &b, err, sizeof(err)), 1);
    ck_assert_int_eq(b.consumed, e1);
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 10, &b, err, sizeof(err)), 1);
    ck_assert_uint_eq(b.len, strlen(PAIR_A));
    /* upto: only what was there when the caller looked. */
    ck_assert_int_eq(tp_journal_pending(j, e1, 10, 1 << 20, &b, err, sizeof(err)), 1);

    ck_assert_int_eq(tp_journal_mark(j, e1, err, sizeof(err)), 0);
    ck_assert_int_eq(tp_journal_done(j), e1);
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &b, err, sizeof(err)), 1);
    ck_assert_int_eq(memcmp(b.body, PAIR_B, b.len), 0);
    ck_assert_int_eq(tp_journal_mark(j, e1 - 5, err, sizeof(err)), 0);   /* never back */
    ck_assert_int_eq(tp_journal_done(j), e1);
    /* All delivered: truncated back to the first line, the offset with it. */
    ck_assert_int_eq(tp_journal_mark(j, e2, err, sizeof(err)), 0);
    ck_assert_int_eq(tp_journal_size(j), h);
    ck_assert_int_eq(tp_journal_done(j), h);
    text = read_all(tp_journal_path(j), &len);
    ck_assert_str_eq(text, HEADER);
    free(text);
    {
        char done_path[512];
        snprintf(done_path, sizeof(done_path), "%s.done", tp_journal_path(j));
        text = read_all(done_path, &len);
        snprintf(want_done, sizeof(want_done), "%020lld\n", (long long)h);
        ck_assert_str_eq(text, want_done);
        free(text);
    }
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &b, err, sizeof(err)), 0);
    ck_assert_int_eq(b.consumed, h);
    /* Appends go on after the first line. */
    ck_assert_int_eq(tp_journal_append(j, "events", NULL, "b", DOC_B, strlen(DOC_B), &s2, &e2,
                                       err, sizeof(err)), 0);
    ck_assert_int_eq(s2, h);
    ck_assert_int_eq(tp_journal_mark(j, e2, err, sizeof(err)), 0);
    ck_assert_int_eq(count_files("journal."), 2);   /* the journal and its .done */
    tp_journal_close(j);                             /* all delivered: removed */
    ck_assert_int_eq(count_files("journal."), 0);
    tp_buf_free(&want);
}
END_TEST

/* Entries a worker appended itself are not checked again when its deliverer
 * reads them (their CRC is computed once, at the append); the same bytes
 * in a claimed journal are.  Here the first entry's CRC is changed on disk
 * behind the writer's back: its own deliverer still sends both, a claimer
 * saves the first aside and sends the second. */
START_TEST(own_entries_trusted_claimed_ones_checked)
{
    char err[256], path[256], *text;
    tp_journal *j;
    tp_batch b;
    tp_claim why;
    off_t s1, e1, s2, e2, h = (off_t)strlen(HEADER);
    drained d;
    size_t len;
    int fd;

    make_dir();
    j = tp_journal_create(dir, DEST, 0, err, sizeof(err));
    ck_assert_msg(j != NULL, "%s", err);
    ck_assert_int_eq(tp_journal_append(j, "events", NULL, "a", DOC_A, strlen(DOC_A), &s1, &e1,
                                       err, sizeof(err)), 0);
    ck_assert_int_eq(tp_journal_append(j, "events", NULL, "b", DOC_B, strlen(DOC_B), &s2, &e2,
                                       err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s", tp_journal_path(j));
    text = read_all(path, &len);
    ck_assert_int_eq(memcmp(text + h, "#61 ", 4), 0);
    fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    /* "#61 " then the CRC's first hex digit: another digit. */
    ck_assert_int_eq(pwrite(fd, text[h + 4] == '0' ? "1" : "0", 1, h + 4), 1);
    close(fd);
    free(text);

    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &b, err, sizeof(err)), 2);
    ck_assert_int_eq(b.damaged, 0);
    ck_assert_uint_eq(b.len, strlen(PAIR_A PAIR_B));
    ck_assert_int_eq(memcmp(b.body, PAIR_A PAIR_B, b.len), 0);
    tp_journal_close(j);                       /* nothing marked: the file stays */

    j = tp_journal_claim(path, DEST, &why, err, sizeof(err));
    ck_assert_msg(j != NULL, "claim: %d %s", why, err);
    drain(j, &d);
    tp_journal_close(j);
    ck_assert_str_eq(d.ids, "b");
    ck_assert_int_eq(d.damaged, 1);
    ck_assert_int_eq(d.damaged_bytes, e1 - s1);
}
END_TEST

/* Index names may be 255 bytes, ids and types long: no fixed buffer. */
START_TEST(long_index_type_and_id)
{
    char index[256], type[301], id[401], err[256], got[512];
    tp_buf pair = { 0 };
    tp_journal *j;
    tp_batch b;
    off_t s, e;
    const char *doc;
    size_t dlen;

    memset(index, 'i', 255);
    index[255] = '\0';
    memset(type, 't', 300);
    type[300] = '\0';
    memset(id, 'd', 400);
    id[400] = '\0';
    make_dir();
    j = tp_journal_create(dir, DEST, 0, err, sizeof(err));
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(tp_journal_append(j, index, type, id, DOC_A, strlen(DOC_A), &s, &e,
                                       err, sizeof(err)), 0);
    ck_assert_int_eq(tp_spool_bulk_pair(&pair, index, type, id, DOC_A, strlen(DOC_A)), 0);
    ck_assert_uint_eq(pair.len, 20 + (255 + 2) + 9 + (300 + 2) + 7 + (400 + 2) + 3 + strlen(DOC_A) + 1);
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &b, err, sizeof(err)), 1);
    ck_assert_uint_eq(b.len, pair.len);
    ck_assert_int_eq(memcmp(b.body, pair.data, pair.len), 0);
    ck_assert_int_eq(tp_spool_pair_split(b.body, b.len, &doc, &dlen, got, sizeof(got)), 0);
    ck_assert_str_eq(got, id);
    ck_assert_int_eq(tp_journal_mark(j, b.consumed, err, sizeof(err)), 0);
    tp_journal_close(j);
    tp_buf_free(&pair);
}
END_TEST

/* Many small batches through the reader's window, in order, none lost. */
START_TEST(many_entries_in_small_batches)
{
    char err[256], id[32], doc[64], want[32];
    tp_journal *j;
    tp_batch b;
    off_t s, e;
    long i, k, seen = 0;

    make_dir();
    j = tp_journal_create(dir, DEST, 0, err, sizeof(err));
    ck_assert_ptr_nonnull(j);
    for (i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "id-%ld", i);
        snprintf(doc, sizeof(doc), "{\"n\":%ld}", i);
        ck_assert_int_eq(tp_journal_append(j, "events", NULL, id, doc, strlen(doc), &s, &e,
                                           err, sizeof(err)), 0);
    }
    while (tp_journal_done(j) < tp_journal_size(j)) {
        long n = tp_journal_pending(j, tp_journal_size(j), 1000, 1500, &b, err, sizeof(err));
        ck_assert_int_gt(n, 0);
        ck_assert_uint_le(b.len, 1500);
        for (k = 0; k < n; k++, seen++) {
            size_t start = k ? b.cut[k - 1] : 0, dlen;
            const char *d;
            ck_assert_int_eq(tp_spool_pair_split(b.body + start, b.cut[k] - start, &d, &dlen,
                                                 id, sizeof(id)), 0);
            snprintf(want, sizeof(want), "id-%ld", seen);
            ck_assert_str_eq(id, want);
        }
        ck_assert_int_eq(tp_journal_mark(j, b.consumed, err, sizeof(err)), 0);
    }
    ck_assert_int_eq(seen, 3000);
    tp_journal_close(j);
}
END_TEST

/* ------------------------------------------------------ damaged regions */

/* A claimed journal of the given bytes: what is delivered, what saved. */
static void claim_and_drain(const char *data, size_t len, drained *d, char **saved,
                            size_t *saved_len)
{
    char path[256], dpath[256], err[256];
    tp_journal *j;
    tp_claim why;

    snprintf(path, sizeof(path), "%s/journal.1.x.ndjson", dir);
    snprintf(dpath, sizeof(dpath), "%s/damaged.journal.1.x.ndjson", dir);
    write_file(path, data, len);
    j = tp_journal_claim(path, DEST, &why, err, sizeof(err));
    ck_assert_msg(j != NULL, "claim: %d %s", why, err);
    ck_assert_int_eq(why, TP_CLAIM_OK);
    drain(j, d);
    tp_journal_close(j);
    ck_assert_int_eq(file_size(path), -1);          /* all done: removed */
    *saved = read_all(dpath, saved_len);
}

static void build_entries(tp_buf *f, int n, off_t *start)
{
    char pair[256], doc[160];
    int i;

    tp_buf_put(f, TP_LIT(HEADER));
    for (i = 0; i < n; i++) {
        /* About 150 bytes each: a page holds a few dozen. */
        snprintf(doc, sizeof(doc), "{\"n\":%d,\"pad\":\"%090d\"}", i, 0);
        snprintf(pair, sizeof(pair), "{\"create\":{\"_index\":\"events\",\"_id\":\"e%d\"}}\n%s\n",
                 i, doc);
        start[i] = (off_t)f->len;
        put_entry_s(f, pair);
    }
    start[n] = (off_t)f->len;
}

static void ids_except(char *out, size_t cap, int n, int lost_from, int lost_to)
{
    int i;

    out[0] = '\0';
    for (i = 0; i < n; i++) {
        char one[16];
        if (i >= lost_from && i < lost_to)
            continue;
        snprintf(one, sizeof(one), "%se%d", out[0] ? "," : "", i);
        strncat(out, one, cap - strlen(out) - 1);
    }
}

/* Zeroed bytes [zfrom, zto) in a run of 80 entries: the entries they touch
 * are one damaged region, up to the next entry that starts at zto or after;
 * everything else is delivered. */
START_TEST(zeroed_page_in_the_middle)
{
    static const struct {
        const char *name;
        off_t zfrom, zto;
    } rows[] = {
        { "a zeroed 4 KiB page", 4096, 8192 },
        { "a zeroed page, not aligned to entries", 4000, 8096 },
        { "zeroes up to the start of an entry", 4096, -1 },  /* -1: an entry's start */
    };
    off_t start[81];
    char want[4096];
    size_t r;

    for (r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        tp_buf f = { 0 };
        drained d;
        char *saved;
        size_t saved_len;
        off_t zfrom = rows[r].zfrom, zto = rows[r].zto;
        int first = 0, next = 0;

        make_dir();
        build_entries(&f, 80, start);
        if (zto < 0)
            zto = start[60];
        while (start[first + 1] <= zfrom)
            first++;                               /* the entry zfrom falls in */
        while (start[next] < zto)
            next++;                                /* the first one after */
        memset(f.data + zfrom, 0, (size_t)(zto - zfrom));
        claim_and_drain(f.data, f.len, &d, &saved, &saved_len);
        ids_except(want, sizeof(want), 80, first, next);
        ck_assert_msg(strcmp(d.ids, want) == 0, "%s: %s", rows[r].name, d.ids);
        ck_assert_msg(d.damaged == 1, "%s: %ld regions", rows[r].name, d.damaged);
        ck_assert_int_eq(d.damaged_bytes, start[next] - start[first]);
        ck_assert_uint_eq(saved_len, (size_t)(start[next] - start[first]));
        ck_assert_int_eq(memcmp(saved, f.data + start[first], saved_len), 0);
        free(saved);
        tp_buf_free(&f);
    }
}
END_TEST

/* Small damage, each row: the file after the first line, the ids
 * delivered and the exact bytes saved aside. */
START_TEST(damaged_regions_are_skipped_and_saved)
{
    tp_buf a = { 0 }, bb = { 0 }, c = { 0 };
    char flipped[128];

    put_entry_s(&a, PAIR_A);
    put_entry_s(&bb, PAIR_B);
    put_entry_s(&c, PAIR("c", "{\"n\":3}"));
    snprintf(flipped, sizeof(flipped), "%s", bb.data);
    flipped[bb.len - 5] ^= 0x01;                    /* a byte of B's document */
    {
        const struct {
            const char *name;
            const char *parts[4];
            size_t lens[4];
            const char *ids;
            const char *saved;
            size_t saved_len;
        } rows[] = {
            { "a stray line between entries", { a.data, "stray line\n", bb.data, NULL },
              { a.len, 11, bb.len, 0 }, "a,b", "stray line\n", 11 },
            { "half an entry at the end", { a.data, bb.data, NULL, NULL },
              { a.len, bb.len / 2, 0, 0 }, "a", bb.data, bb.len / 2 },
            { "a zeroed tail", { a.data, bb.data, "\0\0\0\0\0\0\0\0\0\0\0\0", NULL },
              { a.len, bb.len, 12, 0 }, "a,b", "\0\0\0\0\0\0\0\0\0\0\0\0", 12 },
            { "a flipped byte in a document", { a.data, flipped, c.data, NULL },
              { a.len, bb.len, c.len, 0 }, "a,c", flipped, bb.len },
            { "only garbage", { "hello\nworld\n#12 xyz\n\0\0", NULL, NULL, NULL },
              { 22, 0, 0, 0 }, "", "hello\nworld\n#12 xyz\n\0\0", 22 },
            { "a frame with a bad length", { "#999999999 00000000\n", a.data, NULL, NULL },
              { 20, a.len, 0, 0 }, "a", "#999999999 00000000\n", 20 },
        };
        size_t r, k;

        for (r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
            tp_buf f = { 0 };
            drained d;
            char *saved;
            size_t saved_len;

            make_dir();
            tp_buf_put(&f, TP_LIT(HEADER));
            for (k = 0; k < 4 && rows[r].parts[k]; k++)
                tp_buf_put(&f, rows[r].parts[k], rows[r].lens[k]);
            claim_and_drain(f.data, f.len, &d, &saved, &saved_len);
            ck_assert_msg(strcmp(d.ids, rows[r].ids) == 0, "%s: %s", rows[r].name, d.ids);
            ck_assert_msg(d.damaged == 1, "%s: %ld", rows[r].name, d.damaged);
            ck_assert_msg(saved_len == rows[r].saved_len, "%s: %zu", rows[r].name, saved_len);
            ck_assert_msg(memcmp(saved, rows[r].saved, saved_len) == 0, "%s", rows[r].name);
            ck_assert_int_eq(d.damaged_bytes, (long long)saved_len);
            free(saved);
            tp_buf_free(&f);
        }
    }
    tp_buf_free(&a);
    tp_buf_free(&bb);
    tp_buf_free(&c);
}
END_TEST

/* A region larger than the reader's search window (3 MiB of garbage, a
 * few '#' in it): read in pieces, saved whole, reported once. */
START_TEST(large_damaged_region_reported_once)
{
    tp_buf f = { 0 }, a = { 0 };
    size_t glen = 3 * 1024 * 1024, i, saved_len;
    char *saved;
    drained d;

    make_dir();
    tp_buf_put(&f, TP_LIT(HEADER));
    tp_buf_reserve(&f, glen);
    for (i = 0; i < glen; i++)
        f.data[f.len + i] = i % 1000 == 999 ? '#' : (char)('a' + i % 26);
    f.len += glen;
    put_entry_s(&a, PAIR_A);
    tp_buf_put(&f, a.data, a.len);
    claim_and_drain(f.data, f.len, &d, &saved, &saved_len);
    ck_assert_str_eq(d.ids, "a");
    ck_assert_int_eq(d.damaged, 1);
    ck_assert_int_eq(d.damaged_bytes, (long long)glen);
    ck_assert_uint_eq(saved_len, glen);
    ck_assert_int_eq(memcmp(saved, f.data + strlen(HEADER), glen), 0);
    free(saved);
    tp_buf_free(&f);
    tp_buf_free(&a);
}
END_TEST

/* A region is saved and reported once, however often it is read again
 * (a batch whose delivery failed is read again from the same offset). */
START_TEST(damaged_region_reported_once)
{
    char path[256], dpath[256], err[256], *saved;
    tp_buf f = { 0 };
    tp_journal *j;
    tp_claim why;
    tp_batch b;
    size_t len;

    make_dir();
    snprintf(path, sizeof(path), "%s/journal.1.x.ndjson", dir);
    snprintf(dpath, sizeof(dpath), "%s/damaged.journal.1.x.ndjson", dir);
    tp_buf_put(&f, TP_LIT(HEADER));
    put_entry_s(&f, PAIR_A);
    tp_buf_put(&f, TP_LIT("stray\n"));
    put_entry_s(&f, PAIR_B);
    write_file(path, f.data, f.len);
    j = tp_journal_claim(path, DEST, &why, err, sizeof(err));
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &b, err, sizeof(err)), 2);
    ck_assert_int_eq(b.damaged, 1);
    ck_assert_int_eq(b.damaged_bytes, 6);
    ck_assert_str_eq(b.damaged_path, dpath);
    ck_assert_int_eq(b.consumed, (off_t)f.len);
    ck_assert_int_eq(memcmp(b.body, PAIR_A PAIR_B, b.len), 0);
    /* Not delivered: read again. */
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &b, err, sizeof(err)), 2);
    ck_assert_int_eq(b.damaged, 0);
    ck_assert_int_eq(b.damaged_bytes, 0);
    saved = read_all(dpath, &len);
    ck_assert_str_eq(saved, "stray\n");
    free(saved);
    /* The first entry only, then the rest: the region once. */
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 1, 1 << 20, &b, err, sizeof(err)), 1);
    ck_assert_int_eq(b.damaged, 0);
    ck_assert_int_eq(tp_journal_mark(j, b.consumed, err, sizeof(err)), 0);
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &b, err, sizeof(err)), 1);
    ck_assert_int_eq(b.damaged, 0);
    ck_assert_int_eq(tp_journal_mark(j, b.consumed, err, sizeof(err)), 0);
    tp_journal_close(j);
    saved = read_all(dpath, &len);
    ck_assert_str_eq(saved, "stray\n");
    free(saved);
    tp_buf_free(&f);
}
END_TEST

typedef struct docs_seen {
    char ids[1024];
    char docs[4096];
} docs_seen;

static void collect(void *ctx, const char *id, const char *doc, size_t len)
{
    docs_seen *s = ctx;

    strncat(s->ids, id, sizeof(s->ids) - strlen(s->ids) - 2);
    strcat(s->ids, ";");
    strncat(s->docs, doc, len < sizeof(s->docs) - strlen(s->docs) - 2 ? len : 0);
    strcat(s->docs, ";");
}

/* A journal without a first line (an older version's): claimed by any
 * destination, saved aside whole, and that file replays. */
START_TEST(legacy_journal_saved_aside_whole)
{
    drained d;
    char *saved, dpath[256], err[256];
    size_t saved_len;
    docs_seen seen = { "", "" };
    long skipped = -1;

    make_dir();
    claim_and_drain(PAIR_A PAIR_B, strlen(PAIR_A PAIR_B), &d, &saved, &saved_len);
    ck_assert_str_eq(d.ids, "");
    ck_assert_int_eq(d.damaged, 1);
    ck_assert_str_eq(saved, PAIR_A PAIR_B);
    free(saved);
    snprintf(dpath, sizeof(dpath), "%s/damaged.journal.1.x.ndjson", dir);
    ck_assert_int_eq(tp_spool_each_document(dpath, collect, &seen, &skipped, err, sizeof(err)), 2);
    ck_assert_int_eq(skipped, 0);
    ck_assert_str_eq(seen.ids, "a;b;");
    ck_assert_str_eq(seen.docs, DOC_A ";" DOC_B ";");
}
END_TEST

/* ------------------------------------------------------ claims */

START_TEST(claim_by_destination)
{
    static const struct {
        const char *name, *first_line, *dest;
        tp_claim want, own;     /* own: claimed by DEST after that */
    } rows[] = {
        { "the same destination", HEADER, DEST, TP_CLAIM_OK, TP_CLAIM_OK },
        { "another cluster", HEADER, "http://other:9200 events", TP_CLAIM_ELSEWHERE,
          TP_CLAIM_OK },
        { "another index", HEADER, "http://es.example:9200 logs", TP_CLAIM_ELSEWHERE,
          TP_CLAIM_OK },
        { "an older journal", "", "http://other:9200 events", TP_CLAIM_OK, TP_CLAIM_OK },
        { "a format this version does not know", "#trackpixel-journal 3 x\n", DEST,
          TP_CLAIM_ELSEWHERE, TP_CLAIM_ELSEWHERE },
    };
    tp_claim why;
    char path[256], err[256];
    size_t r;

    make_dir();
    snprintf(path, sizeof(path), "%s/journal.1.x.ndjson", dir);
    for (r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        tp_buf f = { 0 };
        tp_journal *j;

        tp_buf_put(&f, rows[r].first_line, strlen(rows[r].first_line));
        put_entry_s(&f, PAIR_A);
        write_file(path, f.data, f.len);
        why = TP_CLAIM_ERROR;
        j = tp_journal_claim(path, rows[r].dest, &why, err, sizeof(err));
        ck_assert_msg(why == rows[r].want, "%s: %d", rows[r].name, why);
        ck_assert_msg((j != NULL) == (why == TP_CLAIM_OK), "%s", rows[r].name);
        ck_assert_str_eq(err, "");
        if (j) {
            ck_assert_str_eq(tp_journal_destination(j), rows[r].first_line[0] ? DEST : "");
            ck_assert_int_eq(tp_journal_done(j), (off_t)strlen(rows[r].first_line));
            tp_journal_close(j);                     /* pending: kept */
        } else {
            /* Left alone and unlocked: its own destination claims it. */
            j = tp_journal_claim(path, DEST, &why, err, sizeof(err));
            ck_assert_msg(why == rows[r].own, "%s, by its own: %d", rows[r].name, why);
            tp_journal_close(j);
        }
        ck_assert_int_eq(file_size(path), (long long)f.len);
        tp_buf_free(&f);
    }
    snprintf(path, sizeof(path), "%s/journal.gone.ndjson", dir);
    ck_assert_ptr_null(tp_journal_claim(path, DEST, &why, err, sizeof(err)));
    ck_assert_int_eq(why, TP_CLAIM_BUSY);                /* gone */
    ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(orphan_claimed_only_when_its_worker_is_gone)
{
    char err[256], path[512] = "";
    int fds[2];
    pid_t pid;
    tp_journal *j;
    tp_claim why;
    tp_batch b;
    off_t s, e, e1 = 0;

    make_dir();
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        /* A worker: two entries, one delivered, then it waits and dies. */
        tp_journal *w = tp_journal_create(dir, DEST, 0, err, sizeof(err));
        if (!w || tp_journal_append(w, "events", NULL, "a", DOC_A, strlen(DOC_A), &s, &e1,
                                    err, sizeof(err)) < 0 ||
            tp_journal_append(w, "events", NULL, "b", DOC_B, strlen(DOC_B), &s, &e,
                              err, sizeof(err)) < 0 ||
            tp_journal_mark(w, e1, err, sizeof(err)) < 0)
            _exit(1);
        if (write(fds[1], tp_journal_path(w), strlen(tp_journal_path(w))) < 0)
            _exit(1);
        close(fds[1]);
        for (;;)
            pause();                                 /* until the SIGKILL below */
    }
    close(fds[1]);
    ck_assert_int_gt(read(fds[0], path, sizeof(path) - 1), 0);
    j = tp_journal_claim(path, DEST, &why, err, sizeof(err));
    ck_assert_ptr_null(j);                           /* alive: not claimed */
    ck_assert_int_eq(why, TP_CLAIM_BUSY);
    ck_assert_str_eq(err, "");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    j = tp_journal_claim(path, DEST, &why, err, sizeof(err));
    ck_assert_msg(j != NULL, "claim: %s", err);
    ck_assert_int_eq(why, TP_CLAIM_OK);
    ck_assert_int_eq(tp_journal_done(j), (off_t)strlen(HEADER) + 13 + (off_t)strlen(PAIR_A));
    ck_assert_int_eq(tp_journal_pending(j, tp_journal_size(j), 10, 1 << 20, &b, err, sizeof(err)), 1);
    ck_assert_int_eq(memcmp(b.body, PAIR_B, b.len), 0);
    ck_assert_int_eq(tp_journal_mark(j, b.end[0], err, sizeof(err)), 0);
    /* A claimed journal is not truncated: removed at close. */
    ck_assert_int_eq(file_size(path), (long long)tp_journal_size(j));
    tp_journal_close(j);
    ck_assert_int_eq(count_files("journal."), 0);
    close(fds[0]);
}
END_TEST

START_TEST(create_fails_clearly)
{
    char err[256], longdest[TP_SPOOL_DEST_MAX + 1];

    ck_assert_ptr_null(tp_journal_create("/proc/no-such/spool", DEST, 0, err, sizeof(err)));
    ck_assert_str_eq(err, "TRACKPIXEL_SPOOL_DIR: cannot create /proc/no-such: No such file or directory");
    memset(longdest, 'x', TP_SPOOL_DEST_MAX);
    longdest[TP_SPOOL_DEST_MAX] = '\0';
    make_dir();
    ck_assert_ptr_null(tp_journal_create(dir, longdest, 0, err, sizeof(err)));
    ck_assert_str_eq(err, "journal destination too long");
}
END_TEST

/* ------------------------------------------------------ short writes */

/* RLIMIT_FSIZE with SIGXFSZ ignored: a write that crosses the limit is
 * cut short there, one that starts at it fails with EFBIG.  In a child
 * process: Check's own result file must not be limited. */
typedef int (*limited_fn)(void *ctx, char *err, size_t errlen);

static int run_limited(long long limit, limited_fn fn, void *ctx, char *err, size_t errlen)
{
    int fds[2], status = 0, rc = -2;
    char msg[600];
    ssize_t n;
    pid_t pid;

    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit rl;
        close(fds[0]);
        signal(SIGXFSZ, SIG_IGN);
        if (getrlimit(RLIMIT_FSIZE, &rl) < 0)
            _exit(1);
        rl.rlim_cur = (rlim_t)limit;
        if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
            _exit(1);
        msg[1] = '\0';
        msg[0] = (char)('0' - fn(ctx, msg + 1, sizeof(msg) - 1));    /* '0' or '1' */
        if (write(fds[1], msg, strlen(msg)) < 0)
            _exit(1);
        _exit(0);
    }
    close(fds[1]);
    n = read(fds[0], msg, sizeof(msg) - 1);
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(status, 0);
    ck_assert_int_gt(n, 0);
    msg[n] = '\0';
    rc = msg[0] == '0' ? 0 : -1;
    snprintf(err, errlen, "%.*s", (int)errlen - 1, rc < 0 ? msg + 1 : "");
    return rc;
}

typedef struct append_args {
    tp_journal *j;
    const char *id, *doc;
} append_args;

static int do_append(void *ctx, char *err, size_t errlen)
{
    append_args *a = ctx;
    off_t s, e;
    return tp_journal_append(a->j, "events", NULL, a->id, a->doc, strlen(a->doc), &s, &e,
                             err, errlen);
}

static int do_deadletter(void *ctx, char *err, size_t errlen)
{
    return tp_spool_deadletter(dir, "events", ctx, 400, "r", "{\"a\":1}", 7, err, errlen);
}

static int do_output(void *ctx, char *err, size_t errlen)
{
    return tp_output_append(ctx, "events", NULL, "b", DOC_B, strlen(DOC_B), err, errlen);
}

START_TEST(journal_short_write_is_taken_back)
{
    char err[256], want[128];
    tp_journal *j;
    off_t s, e, size;
    drained d;
    size_t elen = 13 + strlen(PAIR_B);

    make_dir();
    j = tp_journal_create(dir, DEST, 0, err, sizeof(err));
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(tp_journal_append(j, "events", NULL, "a", DOC_A, strlen(DOC_A), &s, &e,
                                       err, sizeof(err)), 0);
    size = tp_journal_size(j);
    {
        append_args a = { j, "b", DOC_B };
        ck_assert_int_eq(run_limited((long long)size + 10, do_append, &a, err, sizeof(err)), -1);
    }
    snprintf(want, sizeof(want), "cannot append to %s: short write (10 of %zu bytes)",
             tp_journal_path(j), elen);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(file_size(tp_journal_path(j)), (long long)size);
    ck_assert_int_eq(tp_journal_append(j, "events", NULL, "b", DOC_B, strlen(DOC_B), &s, &e,
                                       err, sizeof(err)), 0);
    ck_assert_int_eq(s, size);
    drain(j, &d);
    ck_assert_str_eq(d.ids, "a,b");
    ck_assert_int_eq(d.damaged, 0);
    tp_journal_close(j);
}
END_TEST

START_TEST(dead_letter_short_write_is_taken_back)
{
    char err[256], path[512], *text;
    long long size;
    size_t len;

    make_dir();
    snprintf(path, sizeof(path), "%s/" TP_SPOOL_DEADLETTER, dir);
    ck_assert_int_eq(tp_spool_deadletter(dir, "events", "id-1", 400, "r", "{\"a\":1}", 7,
                                         err, sizeof(err)), 0);
    size = file_size(path);
    ck_assert_int_eq(run_limited(size + 10, do_deadletter, "id-2", err, sizeof(err)), -1);
    /* The same line as the first but for the id: as long. */
    {
        char want[600];
        snprintf(want, sizeof(want), "cannot append to %s: short write (10 of %lld bytes)",
                 path, size);
        ck_assert_str_eq(err, want);
    }
    ck_assert_int_eq(file_size(path), size);
    /* At the limit: nothing written, the error as it is. */
    ck_assert_int_eq(run_limited(size, do_deadletter, "id-3", err, sizeof(err)), -1);
    {
        char want[600];
        snprintf(want, sizeof(want), "cannot append to %s: %s", path, strerror(EFBIG));
        ck_assert_str_eq(err, want);
    }
    text = read_all(path, &len);
    ck_assert_uint_eq(len, (size_t)size);
    ck_assert_ptr_null(memchr(text, '\0', len));
    ck_assert_int_eq(text[len - 1], '\n');
    free(text);
}
END_TEST

START_TEST(output_short_write_is_taken_back)
{
    char err[256], path[512], *text;
    tp_output *out;
    size_t len;

    make_dir();
    snprintf(path, sizeof(path), "%s/events.ndjson", dir);
    out = tp_output_open(path, err, sizeof(err));
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(tp_output_append(out, "events", NULL, "a", DOC_A, strlen(DOC_A),
                                      err, sizeof(err)), 0);
    ck_assert_int_eq(run_limited((long long)strlen(PAIR_A) + 10, do_output, out,
                                 err, sizeof(err)), -1);
    {
        char want[128];
        snprintf(want, sizeof(want), "short write (10 of %zu bytes)", strlen(PAIR_B));
        ck_assert_str_eq(err, want);
    }
    ck_assert_int_eq(tp_output_append(out, "events", "_doc", "c", "{}", 2, err, sizeof(err)), 0);
    tp_output_close(out);
    text = read_all(path, &len);
    ck_assert_str_eq(text, PAIR_A "{\"create\":{\"_index\":\"events\",\"_type\":\"_doc\","
                                  "\"_id\":\"c\"}}\n{}\n");
    free(text);
}
END_TEST

/* ------------------------------------------------------ dead letters, stats */

START_TEST(dead_letter_line)
{
    char err[256], path[512], line[1024];
    char *exact = malloc(7);               /* {"a":1} without a NUL */
    FILE *f;

    make_dir();
    ck_assert_ptr_nonnull(exact);
    memcpy(exact, "{\"a\":1}", 7);
    ck_assert_int_eq(tp_spool_deadletter(dir, "events", "id-1", 400, "HTTP 400: mapper_parsing_exception",
                                         exact, 7, err, sizeof(err)), 0);
    /* The first 5 bytes are not JSON: kept as a string, not parsed on. */
    ck_assert_int_eq(tp_spool_deadletter(dir, "events", "id-2", 400, "r", exact, 5,
                                         err, sizeof(err)), 0);
    free(exact);
    snprintf(path, sizeof(path), "%s/" TP_SPOOL_DEADLETTER, dir);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    /* {"time":"...Z","status":400,...}: all but the time. */
    ck_assert_int_eq(strncmp(line, "{\"time\":\"", 9), 0);
    ck_assert_str_eq(line + 30, ",\"status\":400,\"reason\":\"HTTP 400: mapper_parsing_exception\","
                                "\"_index\":\"events\",\"_id\":\"id-1\",\"document\":{\"a\":1}}\n");
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    ck_assert_str_eq(line + 30, ",\"status\":400,\"reason\":\"r\",\"_index\":\"events\","
                                "\"_id\":\"id-2\",\"document\":\"{\\\"a\\\":\"}\n");
    fclose(f);
}
END_TEST

/* A tp_doc-shaped document of about size bytes: body-json first (with
 * its own "date" keys), the document's own "date" near the end. */
static char *big_doc(size_t size, long long date)
{
    tp_buf b = { 0 };
    char tail[256];
    char *s;

    tp_buf_put(&b, TP_LIT("{\"body-json\":{\"date\":1,\"x\":{\"a\":1},\"date\":2,\"pad\":\""));
    while (b.len < size)
        tp_buf_put(&b, TP_LIT("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
    snprintf(tail, sizeof(tail), "\"},\"context\":{\"request-id\":\"r\"},\"date\":%lld,"
             "\"@timestamp\":\"2023-11-14T22:13:20.000Z\",\"truncated\":[\"a,\\\"date\\\":3\"]}",
             date);
    tp_buf_put(&b, tail, strlen(tail));
    s = b.data;
    return s;
}

START_TEST(stat_counts_pending_by_destination)
{
    char err[256], path[256];
    tp_spool_stat *st = malloc(sizeof(*st));
    tp_journal *j, *k;
    off_t s, e, big_start;
    char *big = big_doc(100 * 1024, 1700000000000LL);   /* over 64 KiB */
    char *small = big_doc(10, 1600000000000LL);
    long long bytes;

    ck_assert_ptr_nonnull(st);
    make_dir();
    j = tp_journal_create(dir, DEST, 0, err, sizeof(err));
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(tp_journal_append(j, "events", NULL, "small", small, strlen(small),
                                       &s, &e, err, sizeof(err)), 0);
    ck_assert_int_eq(tp_journal_append(j, "events", NULL, "big", big, strlen(big), &big_start,
                                       &e, err, sizeof(err)), 0);
    bytes = (long long)(tp_journal_size(j) - tp_journal_done(j));
    k = tp_journal_create(dir, "http://other:9200 logs", 0, err, sizeof(err));
    ck_assert_ptr_nonnull(k);
    ck_assert_int_eq(tp_journal_append(k, "logs", NULL, "x", DOC_A, strlen(DOC_A), &s, &e,
                                       err, sizeof(err)), 0);
    bytes += (long long)(tp_journal_size(k) - tp_journal_done(k));
    /* An older journal: pending bytes, no entries it can count. */
    snprintf(path, sizeof(path), "%s/journal.1.old.ndjson", dir);
    write_file(path, PAIR_B, strlen(PAIR_B));
    bytes += (long long)strlen(PAIR_B);
    snprintf(path, sizeof(path), "%s/damaged.journal.1.x.ndjson", dir);
    write_file(path, "x\n", 2);
    ck_assert_int_eq(tp_spool_deadletter(dir, "events", "id-1", 400, "r", "{}", 2,
                                         err, sizeof(err)), 0);

    ck_assert_int_eq(tp_spool_stat_dir(dir, 1, NULL, st, err, sizeof(err)), 0);
    ck_assert_int_eq(st->journals, 3);
    ck_assert_int_eq(st->orphans, 1);                /* the older one: nobody holds it */
    ck_assert_int_eq(st->entries, 3);
    ck_assert_int_eq(st->bytes, bytes);
    ck_assert_int_eq(st->oldest_ms, 1600000000000LL); /* the documents' own, not body-json's */
    ck_assert_int_eq(st->deadletters, 1);
    ck_assert_int_eq(st->damaged_files, 1);
    ck_assert_int_eq(st->ndests, 3);
    {
        long i, found = 0;
        for (i = 0; i < st->ndests; i++) {
            if (strcmp(st->dest[i], DEST) == 0)
                found += 1 + 10 * (st->dest_entries[i] == 2);
            else if (strcmp(st->dest[i], "http://other:9200 logs") == 0)
                found += 100 + 1000 * (st->dest_entries[i] == 1);
            else if (strcmp(st->dest[i], "") == 0)
                found += 10000 + 100000 * (st->dest_entries[i] == 0);
        }
        ck_assert_int_eq(found, 111111);
    }
    /* Only the big one pending: its own date. */
    ck_assert_int_eq(tp_journal_mark(k, tp_journal_size(k), err, sizeof(err)), 0);
    ck_assert_int_eq(tp_journal_mark(j, big_start, err, sizeof(err)), 0);
    unlink(path);
    snprintf(path, sizeof(path), "%s/journal.1.old.ndjson", dir);
    unlink(path);
    ck_assert_int_eq(tp_spool_stat_dir(dir, 1, NULL, st, err, sizeof(err)), 0);
    ck_assert_int_eq(st->entries, 1);
    ck_assert_int_eq(st->oldest_ms, 1700000000000LL);
    ck_assert_int_eq(st->damaged_files, 0);
    /* Only sizes: no entries read. */
    ck_assert_int_eq(tp_spool_stat_dir(dir, 0, NULL, st, err, sizeof(err)), 0);
    ck_assert_int_eq(st->journals, 2);
    ck_assert_int_eq(st->entries, 0);
    tp_journal_close(j);
    tp_journal_close(k);
    free(big);
    free(small);
    free(st);
}
END_TEST

/* --replay reads a journal (damage skipped, its lines counted), a _bulk
 * file and a dead-letter file. */
START_TEST(each_document_of_every_kind)
{
    char err[256], path[256];
    tp_buf f = { 0 };
    long skipped = -1;
    docs_seen seen;

    make_dir();
    snprintf(path, sizeof(path), "%s/j", dir);
    tp_buf_put(&f, TP_LIT(HEADER));
    put_entry_s(&f, PAIR_A);
    tp_buf_put(&f, TP_LIT("two\nlines"));
    put_entry_s(&f, PAIR_B);
    write_file(path, f.data, f.len);
    memset(&seen, 0, sizeof(seen));
    ck_assert_int_eq(tp_spool_each_document(path, collect, &seen, &skipped, err, sizeof(err)), 2);
    ck_assert_int_eq(skipped, 2);
    ck_assert_str_eq(seen.ids, "a;b;");
    ck_assert_str_eq(seen.docs, DOC_A ";" DOC_B ";");

    write_file(path, TP_LIT(PAIR_A "not json\n\n" PAIR("x", "{}")));
    memset(&seen, 0, sizeof(seen));
    ck_assert_int_eq(tp_spool_each_document(path, collect, &seen, &skipped, err, sizeof(err)), 2);
    ck_assert_int_eq(skipped, 1);
    ck_assert_str_eq(seen.ids, "a;x;");

    ck_assert_int_eq(tp_spool_deadletter(dir, "events", "id-1", 400, "r", "{\"a\": 1}", 8,
                                         err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/" TP_SPOOL_DEADLETTER, dir);
    memset(&seen, 0, sizeof(seen));
    ck_assert_int_eq(tp_spool_each_document(path, collect, &seen, &skipped, err, sizeof(err)), 1);
    ck_assert_int_eq(skipped, 0);
    ck_assert_str_eq(seen.ids, "id-1;");
    ck_assert_str_eq(seen.docs, "{\"a\":1};");

    snprintf(path, sizeof(path), "%s/missing", dir);
    ck_assert_int_eq(tp_spool_each_document(path, collect, &seen, &skipped, err, sizeof(err)), -1);
    tp_buf_free(&f);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("spool");
    TCase *tc = tcase_create("journal");
    tcase_add_test(tc, destination_has_no_credentials_nor_trailing_slash);
    tcase_add_test(tc, bulk_pair_and_split);
    tcase_add_test(tc, append_pending_mark_truncate);
    tcase_add_test(tc, own_entries_trusted_claimed_ones_checked);
    tcase_add_test(tc, long_index_type_and_id);
    tcase_add_test(tc, many_entries_in_small_batches);
    tcase_add_test(tc, zeroed_page_in_the_middle);
    tcase_add_test(tc, damaged_regions_are_skipped_and_saved);
    tcase_add_test(tc, damaged_region_reported_once);
    tcase_add_test(tc, large_damaged_region_reported_once);
    tcase_add_test(tc, legacy_journal_saved_aside_whole);
    tcase_add_test(tc, claim_by_destination);
    tcase_add_test(tc, orphan_claimed_only_when_its_worker_is_gone);
    tcase_add_test(tc, create_fails_clearly);
    tcase_add_test(tc, journal_short_write_is_taken_back);
    tcase_add_test(tc, dead_letter_short_write_is_taken_back);
    tcase_add_test(tc, output_short_write_is_taken_back);
    tcase_add_test(tc, dead_letter_line);
    tcase_add_test(tc, stat_counts_pending_by_destination);
    tcase_add_test(tc, each_document_of_every_kind);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
