#include "tp_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/rand.h>
#include <zlib.h>

#include "tp_hex.h"
#include "tp_json.h"

#define JOURNAL_PREFIX "journal."
#define JOURNAL_SUFFIX ".ndjson"
#define DONE_SUFFIX ".done"
#define DONE_WIDTH 21                 /* 20 digits and a newline */
#define MAGIC "#trackpixel-journal "  /* the first line, then the version */
#define MAGIC2 MAGIC "2 "
#define ENTRY_MAX (64UL * 1024 * 1024) /* an entry's two lines, at most */
#define FRAME_MAX 20                  /* "#" 8 digits " " 8 hex "\n" is 19 */
#define MAX_PENDING_ENTRIES 100000
#define READ_CHUNK (64 * 1024)
/* A damaged region is searched for its end this far at most before it is
 * reported in pieces (memory stays bounded for a file of garbage). */
#define REGION_CHUNK (1024 * 1024)

struct tp_journal {
    int fd;
    int done_fd;
    int fsync_each;
    int claimed;                  /* someone else's journal */
    char *path;
    char *done_path;
    char *damaged_path;           /* damaged.<journal name> beside it */
    char dest[TP_SPOOL_DEST_MAX];
    off_t header;                 /* length of the first line (0: older format) */
    off_t done;
    off_t size;
    off_t trusted;                /* entries from here on were appended whole
                                     by this process, which has held the lock
                                     since: they read back as written, and
                                     their CRC is not computed again (a
                                     claimed journal, or what follows a short
                                     write, is checked) */
    off_t saved_upto;             /* damaged regions before this are saved */
    off_t open_end;               /* where a region reported in pieces goes on */
    tp_buf entry;                 /* tp_journal_append()'s framed entry */
    char *rbuf;                   /* tp_journal_pending()'s read window */
    size_t rcap;
    tp_buf body;                  /* the batch's _bulk body */
    size_t *cut;
    off_t *end;
    size_t ncap;
};

/* ------------------------------------------------------------ helpers */

static int mkdirs(const char *dir, char *err, size_t errlen)
{
    char tmp[4096];
    size_t len = strlen(dir), i;

    if (len == 0 || len >= sizeof(tmp)) {
        snprintf(err, errlen, "TRACKPIXEL_SPOOL_DIR: path empty or too long");
        return -1;
    }
    memcpy(tmp, dir, len + 1);
    for (i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        tmp[i] = '\0';
        if (mkdir(tmp, 0750) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "TRACKPIXEL_SPOOL_DIR: cannot create %s: %s", tmp, strerror(errno));
            return -1;
        }
        tmp[i] = dir[i];
    }
    return 0;
}

static char *join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);

    if (s)
        snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

/* dir/damaged.<name> for the file at path. */
static char *damaged_path_for(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
    size_t n = strlen(path) + sizeof(TP_SPOOL_DAMAGED_PREFIX);
    char *s = malloc(n);

    if (s)
        snprintf(s, n, "%.*s" TP_SPOOL_DAMAGED_PREFIX "%s", (int)dlen, path, path + dlen);
    return s;
}

/*
 * Append len bytes to fd (O_APPEND, shared with other processes) whole or
 * not at all: under flock(LOCK_EX), so that taking back a short write never
 * cuts another process's line.  err: strerror, or "short write".
 */
int tp_spool_append_whole(int fd, const char *data, size_t len, char *err, size_t errlen)
{
    struct stat sb;
    ssize_t w;
    int rc = -1;

    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "flock: %s", strerror(errno));
            return -1;
        }
    }
    if (fstat(fd, &sb) < 0) {
        snprintf(err, errlen, "fstat: %s", strerror(errno));
        goto done;
    }
    do {
        w = write(fd, data, len);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
        snprintf(err, errlen, "%s", strerror(errno));
    } else if ((size_t)w != len) {
        if (ftruncate(fd, sb.st_size) < 0)
            snprintf(err, errlen, "short write (%zd of %zu bytes), not taken back: %s",
                     w, len, strerror(errno));
        else
            snprintf(err, errlen, "short write (%zd of %zu bytes)", w, len);
    } else {
        rc = 0;
    }
done:
    flock(fd, LOCK_UN);
    return rc;
}

/* ------------------------------------------------------------ entries */

int tp_spool_destination(const char *es_url, const char *index, const char *type,
                         char *out, size_t cap)
{
    CURLU *u = curl_url();
    char *s = NULL;
    size_t len;
    int rc = -1, n;

    if (!u || curl_url_set(u, CURLUPART_URL, es_url, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_USER, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_OPTIONS, NULL, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK)
        goto done;
    len = strlen(s);
    while (len > 0 && s[len - 1] == '/')
        len--;
    if (type && !type[0])
        type = NULL;
    n = snprintf(out, cap, "%.*s %s%s%s", (int)len, s, index, type ? " " : "", type ? type : "");
    if (n >= 0 && (size_t)n < cap && !memchr(out, '\n', (size_t)n))
        rc = 0;
done:
    curl_free(s);
    curl_url_cleanup(u);
    if (rc < 0 && cap)
        out[0] = '\0';
    return rc;
}

int tp_spool_bulk_pair(tp_buf *out, const char *index, const char *type, const char *id,
                       const char *doc, size_t doc_len)
{
    size_t ilen = strlen(index), tlen = type ? strlen(type) : 0, idlen = id ? strlen(id) : 0;

    /* At most 6 bytes a character escaped, and the keys. */
    tp_buf_reserve(out, 6 * (ilen + tlen + idlen) + doc_len + 64);
    tp_buf_put(out, TP_LIT("{\"create\":{\"_index\":"));
    tp_json_string(out, index, ilen);
    if (type) {
        tp_buf_put(out, TP_LIT(",\"_type\":"));
        tp_json_string(out, type, tlen);
    }
    if (id) {
        tp_buf_put(out, TP_LIT(",\"_id\":"));
        tp_json_string(out, id, idlen);
    }
    tp_buf_put(out, TP_LIT("}}\n"));
    tp_buf_put(out, doc, doc_len);
    tp_buf_put(out, "\n", 1);
    return out->oom ? -1 : 0;
}

/* The _id of an action line (len bytes), "" when none or too long. */
static void action_id(const char *line, size_t len, char *id, size_t idcap)
{
    json_tokener *tok = json_tokener_new();
    json_object *o = NULL, *meta = NULL, *v = NULL;
    const char *s;

    id[0] = '\0';
    if (!tok || len > INT_MAX)
        goto done;
    o = json_tokener_parse_ex(tok, line, (int)len);
    if (json_tokener_get_error(tok) != json_tokener_success)
        goto done;
    if ((json_object_object_get_ex(o, "create", &meta) ||
         json_object_object_get_ex(o, "index", &meta)) &&
        json_object_object_get_ex(meta, "_id", &v) && json_object_is_type(v, json_type_string)) {
        s = json_object_get_string(v);
        if (strlen(s) < idcap)
            snprintf(id, idcap, "%s", s);
    }
done:
    json_object_put(o);
    if (tok)
        json_tokener_free(tok);
}

int tp_spool_pair_split(const char *data, size_t len, const char **doc, size_t *doc_len,
                        char *id, size_t idcap)
{
    const char *nl = memchr(data, '\n', len);
    size_t rest;

    if (idcap)
        id[0] = '\0';
    if (!nl)
        return -1;
    *doc = nl + 1;
    rest = len - (size_t)(nl - data) - 1;
    if (rest && (*doc)[rest - 1] == '\n')
        rest--;
    if (rest == 0 || memchr(*doc, '\n', rest))
        return -1;
    *doc_len = rest;
    if (idcap)
        action_id(data, (size_t)(nl - data), id, idcap);
    return 0;
}

typedef enum { E_VALID, E_NEED, E_BAD } echeck;

static int starts_with(const char *p, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len >= n && memcmp(p, lit, n) == 0;
}

/*
 * The entry at p[0..len): E_VALID with *frame (its frame line's length) and
 * *n (its two lines'); E_NEED with *need (> len) when p ends before it can
 * tell; E_BAD otherwise.  Never reads past len.
 */
static echeck entry_check(const char *p, size_t len, int verify, size_t *frame, size_t *n,
                          size_t *need)
{
    size_t i = 1, digits = 0, v = 0, k;
    unsigned long want = 0;
    const char *body, *nl;

    *need = FRAME_MAX;
    if (len == 0)
        return E_NEED;
    if (p[0] != '#')
        return E_BAD;
    for (; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
        if (++digits > 8)
            return E_BAD;
        v = v * 10 + (size_t)(p[i] - '0');
    }
    if (i == len)
        return E_NEED;
    if (digits == 0 || p[i++] != ' ')
        return E_BAD;
    for (k = 0; k < 8; k++, i++) {
        int h;
        if (i == len)
            return E_NEED;
        if ((h = tp_hexval((unsigned char)p[i])) < 0)
            return E_BAD;
        want = want << 4 | (unsigned long)h;
    }
    if (i == len)
        return E_NEED;
    if (p[i++] != '\n' || v < 4 || v > ENTRY_MAX)
        return E_BAD;
    if (len - i < v) {
        *need = i + v;
        return E_NEED;
    }
    body = p + i;
    /* Two lines: the action, then a non-empty document, nothing else. */
    nl = memchr(body, '\n', v - 1);
    if (body[v - 1] != '\n' || !nl || (size_t)(nl - body) + 2 >= v ||
        memchr(nl + 1, '\n', v - 1 - (size_t)(nl - body) - 1))
        return E_BAD;
    if (!starts_with(body, (size_t)(nl - body), "{\"create\":{") &&
        !starts_with(body, (size_t)(nl - body), "{\"index\":{"))
        return E_BAD;
    if (verify && crc32(0L, (const Bytef *)body, (uInt)v) != want)
        return E_BAD;
    *frame = i;
    *n = v;
    return E_VALID;
}

/* ------------------------------------------------------------ reading */

/* A window on [base, upto) of a file, parsed into entries and damaged
 * regions. */
typedef struct reader {
    int fd;
    off_t base;             /* file offset of buf[0]                         */
    off_t upto;             /* lowered when the file turns out shorter      */
    char *buf;              /* buf[0..len) read, buf[pos..len) not parsed   */
    size_t len, cap, pos;
    size_t chunk;           /* read at least this much at a time            */
    int open;               /* the last region was reported before its end  */
    off_t trusted;          /* entries starting here or later: no CRC check
                               (-1: none)                                    */
} reader;

enum { EV_END, EV_ENTRY, EV_DAMAGED };

/* One entry or damaged region; what it points to is valid until the next
 * rd_next(). */
typedef struct event {
    int kind;
    off_t off, end;         /* its place in the file                         */
    const char *data;       /* EV_ENTRY: the two lines; EV_DAMAGED: the bytes */
    size_t len;
    int continued;          /* EV_DAMAGED: the rest of the previous region   */
    int open;               /* EV_DAMAGED: cut before its end (see REGION_CHUNK) */
} event;

#define AT_END(r) ((r)->base + (off_t)(r)->len >= (r)->upto)
#define HAVE(r) ((r)->len - (r)->pos)

/* At least want bytes from pos in the window, or all there is up to upto. */
static int rd_fill(reader *r, size_t want, char *err, size_t errlen)
{
    size_t have = HAVE(r), left;

    if (have >= want || AT_END(r))
        return 0;
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, have);
        r->base += (off_t)r->pos;
        r->len = have;
        r->pos = 0;
    }
    left = (size_t)(r->upto - r->base - (off_t)r->len);
    if (want < r->chunk)
        want = r->chunk;
    if (want < have + READ_CHUNK)
        want = have + READ_CHUNK;
    if (want > have + left)
        want = have + left;
    if (want > r->cap) {
        char *nb = realloc(r->buf, want);
        if (!nb) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        r->buf = nb;
        r->cap = want;
    }
    while (r->len < want) {
        ssize_t n = pread(r->fd, r->buf + r->len, want - r->len, r->base + (off_t)r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "read: %s", strerror(errno));
            return -1;
        }
        if (n == 0) {
            r->upto = r->base + (off_t)r->len;     /* shorter than it was */
            break;
        }
        r->len += (size_t)n;
    }
    return 0;
}

/* A damaged region starts at pos: it ends where a valid entry starts (any
 * '#' is a candidate, checked whole), or at the end. */
static int rd_damaged(reader *r, event *ev, char *err, size_t errlen)
{
    size_t q = 1, frame, n, need;
    int open = 0;

    for (;;) {
        const char *h = q < HAVE(r) ? memchr(r->buf + r->pos + q, '#', HAVE(r) - q) : NULL;
        echeck c;

        if (!h) {
            q = HAVE(r);
            if (AT_END(r))
                break;
            if (q >= REGION_CHUNK) {
                open = 1;
                break;
            }
            if (rd_fill(r, q + READ_CHUNK, err, errlen) < 0)
                return -1;
            continue;
        }
        q = (size_t)(h - (r->buf + r->pos));
        c = entry_check(h, HAVE(r) - q, 1, &frame, &n, &need);
        if (c == E_VALID)
            break;
        if (c == E_NEED && !AT_END(r)) {
            if (rd_fill(r, q + need, err, errlen) < 0)
                return -1;
            continue;                                /* the same candidate */
        }
        q++;
    }
    ev->kind = EV_DAMAGED;
    ev->data = r->buf + r->pos;
    ev->len = q;
    ev->continued = r->open;
    ev->open = r->open = open;
    r->pos += q;
    ev->end = r->base + (off_t)r->pos;
    return 0;
}

static int rd_next(reader *r, event *ev, char *err, size_t errlen)
{
    size_t frame = 0, n = 0, need = FRAME_MAX;
    echeck c;

    memset(ev, 0, sizeof(*ev));
    for (;;) {
        if (rd_fill(r, need, err, errlen) < 0)
            return -1;
        if (HAVE(r) == 0) {
            ev->kind = EV_END;
            return 0;
        }
        c = entry_check(r->buf + r->pos, HAVE(r),
                        r->trusted < 0 || r->base + (off_t)r->pos < r->trusted,
                        &frame, &n, &need);
        if (c != E_NEED || AT_END(r))
            break;
    }
    ev->off = r->base + (off_t)r->pos;
    if (c != E_VALID)
        return rd_damaged(r, ev, err, errlen);
    ev->kind = EV_ENTRY;
    ev->data = r->buf + r->pos + frame;
    ev->len = n;
    r->pos += frame + n;
    r->open = 0;
    ev->end = r->base + (off_t)r->pos;
    return 0;
}

static void rd_init(reader *r, int fd, off_t from, off_t upto, size_t chunk)
{
    memset(r, 0, sizeof(*r));
    r->fd = fd;
    r->base = from;
    r->upto = upto;
    r->chunk = chunk;
    r->trusted = -1;              /* check every entry */
}

/* The journal's first line: its destination into dest and the line's
 * length; 0 and "" for an older journal (no first line); -1 for a format
 * this version does not know. */
static off_t read_header(int fd, char *dest, size_t cap)
{
    char line[sizeof(MAGIC2) + TP_SPOOL_DEST_MAX + 1];
    ssize_t n;
    const char *nl;
    size_t dlen, mlen = strlen(MAGIC2);

    dest[0] = '\0';
    do {
        n = pread(fd, line, sizeof(line), 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0 || !starts_with(line, (size_t)n, MAGIC))
        return 0;
    if (!starts_with(line, (size_t)n, MAGIC2))
        return -1;
    nl = memchr(line, '\n', (size_t)n);
    if (!nl || (dlen = (size_t)(nl - line) - mlen) >= cap)
        return -1;
    memcpy(dest, line + mlen, dlen);
    dest[dlen] = '\0';
    return (off_t)(nl - line) + 1;
}

/* ----------------------------------------------------------- journals */

static int write_done(tp_journal *j, char *err, size_t errlen)
{
    char line[DONE_WIDTH + 1];

    snprintf(line, sizeof(line), "%020lld\n", (long long)j->done);
    if (pwrite(j->done_fd, line, DONE_WIDTH, 0) != DONE_WIDTH) {
        snprintf(err, errlen, "cannot write %s: %s", j->done_path, strerror(errno));
        return -1;
    }
    return 0;
}

static off_t read_done(int fd)
{
    char line[DONE_WIDTH + 1];
    ssize_t n = pread(fd, line, DONE_WIDTH, 0);
    char *end = NULL;
    long long v;

    if (n <= 0)
        return 0;
    line[n] = '\0';
    errno = 0;
    v = strtoll(line, &end, 10);
    if (errno || end == line || v < 0)
        return 0;
    return (off_t)v;
}

static tp_journal *journal_new(void)
{
    tp_journal *j = calloc(1, sizeof(*j));

    if (j) {
        j->fd = -1;
        j->done_fd = -1;
        j->open_end = -1;
    }
    return j;
}

static void free_read_buffers(tp_journal *j)
{
    free(j->rbuf);
    free(j->cut);
    free(j->end);
    tp_buf_free(&j->body);
    memset(&j->body, 0, sizeof(j->body));
    j->rbuf = NULL;
    j->cut = NULL;
    j->end = NULL;
    j->rcap = j->ncap = 0;
}

static void journal_free(tp_journal *j)
{
    if (!j)
        return;
    if (j->fd >= 0)
        close(j->fd);
    if (j->done_fd >= 0)
        close(j->done_fd);
    free(j->path);
    free(j->done_path);
    free(j->damaged_path);
    tp_buf_free(&j->entry);
    free_read_buffers(j);
    free(j);
}

/* Paths for a journal at path (j->path set). */
static int journal_paths(tp_journal *j)
{
    j->done_path = join(j->path, DONE_SUFFIX, "");
    j->damaged_path = damaged_path_for(j->path);
    return j->done_path && j->damaged_path ? 0 : -1;
}

/* Write the first line to the new journal's fd and its .done offset. */
static int journal_start(tp_journal *j, const char *tmp, char *err, size_t errlen)
{
    char line[sizeof(MAGIC2) + TP_SPOOL_DEST_MAX + 1];
    int n = snprintf(line, sizeof(line), MAGIC2 "%s\n", j->dest);

    if (write(j->fd, line, (size_t)n) != n) {
        snprintf(err, errlen, "TRACKPIXEL_SPOOL_DIR: cannot write %s: %s", tmp,
                 errno ? strerror(errno) : "short write");
        return -1;
    }
    j->header = j->size = j->done = j->trusted = n;
    j->done_fd = open(j->done_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (j->done_fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", j->done_path, strerror(errno));
        return -1;
    }
    return write_done(j, err, errlen);
}

tp_journal *tp_journal_create(const char *dir, const char *dest, int fsync_each,
                              char *err, size_t errlen)
{
    tp_journal *j = NULL;
    char name[128], *tmp = NULL;
    unsigned char rnd[6];

    if (strlen(dest) >= TP_SPOOL_DEST_MAX || strchr(dest, '\n')) {
        snprintf(err, errlen, "journal destination too long");
        return NULL;
    }
    if (mkdirs(dir, err, errlen) < 0)
        return NULL;
    j = journal_new();
    if (!j || RAND_bytes(rnd, sizeof(rnd)) != 1)
        goto oom;
    j->fsync_each = fsync_each;
    snprintf(j->dest, sizeof(j->dest), "%s", dest);
    snprintf(name, sizeof(name), "%ld.%02x%02x%02x%02x%02x%02x" JOURNAL_SUFFIX, (long)getpid(),
             rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    tmp = join(dir, "/.creating.", name);
    j->path = join(dir, "/" JOURNAL_PREFIX, name);
    if (!tmp || !j->path || journal_paths(j) < 0)
        goto oom;

    /* Create, lock, then make it visible under its journal name. */
    j->fd = open(tmp, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (j->fd < 0) {
        snprintf(err, errlen, "TRACKPIXEL_SPOOL_DIR: cannot create a journal in %s: %s",
                 dir, strerror(errno));
        goto fail;
    }
    if (flock(j->fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "cannot lock %s: %s", tmp, strerror(errno));
        goto fail;
    }
    errno = 0;
    if (journal_start(j, tmp, err, errlen) < 0)
        goto fail;
    if (rename(tmp, j->path) < 0) {
        snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
        goto fail;
    }
    free(tmp);
    return j;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    if (tmp && j && j->fd >= 0)
        unlink(tmp);
    if (j && j->done_fd >= 0)
        unlink(j->done_path);
    free(tmp);
    journal_free(j);
    return NULL;
}

/* Open and lock path for j: 1 when held, 0 when busy or gone, -1 on error. */
static int claim_lock(tp_journal *j, const char *path, struct stat *a, char *err, size_t errlen)
{
    struct stat b;

    j->claimed = 1;
    j->path = strdup(path);
    if (!j->path || journal_paths(j) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    j->fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
    if (j->fd < 0)
        return 0;                           /* gone: someone finished it */
    if (flock(j->fd, LOCK_EX | LOCK_NB) < 0)
        return 0;                           /* its worker is alive */
    /* Still the same file under that name (not finished and removed by
     * another claimer between our open and our lock)? */
    if (fstat(j->fd, a) < 0 || stat(path, &b) < 0 || a->st_ino != b.st_ino ||
        a->st_dev != b.st_dev)
        return 0;
    return 1;
}

tp_journal *tp_journal_claim(const char *path, const char *dest, tp_claim *why,
                             char *err, size_t errlen)
{
    tp_journal *j = journal_new();
    struct stat a;
    int held;

    err[0] = '\0';
    *why = TP_CLAIM_ERROR;
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    held = claim_lock(j, path, &a, err, errlen);
    if (held <= 0) {
        if (held == 0)
            *why = TP_CLAIM_BUSY;
        goto fail;
    }
    /* Checked under the lock: closing the file releases it. */
    j->header = read_header(j->fd, j->dest, sizeof(j->dest));
    if (j->header < 0 || (j->header > 0 && strcmp(j->dest, dest) != 0)) {
        *why = TP_CLAIM_ELSEWHERE;
        goto fail;
    }
    j->done_fd = open(j->done_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (j->done_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", j->done_path, strerror(errno));
        goto fail;
    }
    j->size = j->trusted = a.st_size;   /* what others wrote is checked */
    j->done = read_done(j->done_fd);
    if (j->done < j->header)
        j->done = j->header;
    if (j->done > j->size)
        j->done = j->size;
    *why = TP_CLAIM_OK;
    return j;
fail:
    journal_free(j);
    return NULL;
}

/* Build the framed entry in j->entry; *p and *len: what to write. */
static int frame_entry(tp_journal *j, const char *index, const char *type, const char *id,
                       const char *doc, size_t doc_len, const char **p, size_t *len,
                       char *err, size_t errlen)
{
    char frame[FRAME_MAX + 1];
    size_t n;
    int flen;

    if (memchr(doc, '\n', doc_len)) {
        snprintf(err, errlen, "a document with a newline cannot be journaled");
        return -1;
    }
    tp_buf_reset(&j->entry);
    tp_buf_put(&j->entry, "####################", FRAME_MAX);   /* room for the frame */
    if (tp_spool_bulk_pair(&j->entry, index, type, id, doc, doc_len) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    n = j->entry.len - FRAME_MAX;
    if (n > ENTRY_MAX) {
        snprintf(err, errlen, "entry too large (%zu bytes)", n);
        return -1;
    }
    flen = snprintf(frame, sizeof(frame), "#%zu %08lx\n", n,
                    (unsigned long)crc32(0L, (const Bytef *)j->entry.data + FRAME_MAX, (uInt)n));
    *p = j->entry.data + FRAME_MAX - flen;
    memcpy(j->entry.data + FRAME_MAX - flen, frame, (size_t)flen);
    *len = (size_t)flen + n;
    return 0;
}

int tp_journal_append(tp_journal *j, const char *index, const char *type, const char *id,
                      const char *doc, size_t doc_len, off_t *start, off_t *end,
                      char *err, size_t errlen)
{
    const char *p;
    size_t len;
    ssize_t w;

    if (frame_entry(j, index, type, id, doc, doc_len, &p, &len, err, errlen) < 0)
        return -1;
    do {
        w = write(j->fd, p, len);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
        snprintf(err, errlen, "cannot append to %s: %s", j->path, strerror(errno));
        return -1;
    }
    if ((size_t)w != len || (j->fsync_each && fdatasync(j->fd) < 0)) {
        int e = errno;
        if ((size_t)w != len)
            snprintf(err, errlen, "cannot append to %s: short write (%zd of %zu bytes)",
                     j->path, w, len);
        else
            snprintf(err, errlen, "fdatasync %s: %s", j->path, strerror(e));
        /* Take it back, so the journal stays whole entries. */
        if (ftruncate(j->fd, j->size) < 0)
            j->size += w;          /* left as a damaged region for the reader */
        j->trusted = j->size;
        return -1;
    }
    *start = j->size;
    j->size += (off_t)len;
    *end = j->size;
    return 0;
}

off_t tp_journal_done(const tp_journal *j) { return j->done; }
off_t tp_journal_size(const tp_journal *j) { return j->size; }
const char *tp_journal_path(const tp_journal *j) { return j->path; }
const char *tp_journal_destination(const tp_journal *j) { return j->dest; }

int tp_journal_mark(tp_journal *j, off_t upto, char *err, size_t errlen)
{
    if (upto <= j->done)
        return 0;
    if (upto > j->size)
        upto = j->size;
    j->done = upto;
    if (j->done == j->size && !j->claimed && j->size > j->header) {
        /* All delivered: back to the first line, so a healthy journal stays
         * that small.  Safe: we are its only writer and hold its lock. */
        if (ftruncate(j->fd, j->header) < 0) {
            /* Keep the offset instead: correct, only not compact. */
            snprintf(err, errlen, "cannot truncate %s: %s", j->path, strerror(errno));
            write_done(j, err, errlen);
            return -1;
        }
        j->done = j->size = j->trusted = j->header;
        j->saved_upto = 0;                /* offsets start over */
        j->open_end = -1;
        /* A default batch's buffers (its read window and _bulk body, 512
         * KiB each) are kept, so that a busy worker does not allocate and
         * free them for every batch; a big backlog's go. */
        if (j->rcap + j->body.cap > TP_JOURNAL_KEEP_BYTES)
            free_read_buffers(j);
    }
    return write_done(j, err, errlen);
}

/* Save a damaged region to damaged.<journal> unless it was saved before. */
static int save_damaged(tp_journal *j, const event *ev, tp_batch *b, char *err, size_t errlen)
{
    size_t skip = 0;
    int fd;
    char why[256];

    if (ev->end <= j->saved_upto)
        return 0;                          /* reported by an earlier read */
    if (ev->off < j->saved_upto)
        skip = (size_t)(j->saved_upto - ev->off);
    fd = open(j->damaged_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 || tp_spool_append_whole(fd, ev->data + skip, ev->len - skip, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "cannot save a damaged region to %s: %s", j->damaged_path,
                 fd < 0 ? strerror(errno) : why);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    if (!ev->continued && ev->off != j->open_end && skip == 0)
        b->damaged++;                      /* a new region, not the rest of one */
    j->saved_upto = ev->end;
    j->open_end = ev->open ? ev->end : -1;
    b->damaged_bytes += (long long)(ev->len - skip);
    return 0;
}

/* Add entry ev as the batch's entry number i. */
static int push_entry(tp_journal *j, const event *ev, size_t i)
{
    if (i == j->ncap) {
        size_t cap = j->ncap ? 2 * j->ncap : 256;
        size_t *nc = realloc(j->cut, cap * sizeof(*nc));
        off_t *ne;
        if (!nc)
            return -1;
        j->cut = nc;
        ne = realloc(j->end, cap * sizeof(*ne));
        if (!ne)
            return -1;
        j->end = ne;
        j->ncap = cap;
    }
    tp_buf_put(&j->body, ev->data, ev->len);
    if (j->body.oom)
        return -1;
    j->cut[i] = j->body.len;
    j->end[i] = ev->end;
    return 0;
}

long tp_journal_pending(tp_journal *j, off_t upto, size_t max_entries, size_t max_bytes,
                        tp_batch *b, char *err, size_t errlen)
{
    reader r;
    event ev;
    long rc = -1;

    memset(b, 0, sizeof(*b));
    b->consumed = j->done;
    b->damaged_path = j->damaged_path;
    tp_buf_reset(&j->body);
    if (j->done >= upto)
        return 0;
    if (max_entries > MAX_PENDING_ENTRIES)
        max_entries = MAX_PENDING_ENTRIES;
    rd_init(&r, j->fd, j->done, upto, max_bytes + max_bytes / 8 + FRAME_MAX);
    r.trusted = j->trusted;
    r.buf = j->rbuf;
    r.cap = j->rcap;
    while ((size_t)b->n < max_entries) {
        if (rd_next(&r, &ev, err, errlen) < 0)
            goto done;
        if (ev.kind == EV_END)
            break;
        if (ev.kind == EV_DAMAGED) {
            if (save_damaged(j, &ev, b, err, errlen) < 0)
                goto done;
        } else if (b->n > 0 && j->body.len + ev.len > max_bytes) {
            break;                         /* the next batch's */
        } else if (push_entry(j, &ev, (size_t)b->n) < 0) {
            snprintf(err, errlen, "out of memory");
            goto done;
        } else {
            b->n++;
        }
        b->consumed = ev.end;
    }
    b->body = j->body.data;
    b->len = j->body.len;
    b->cut = j->cut;
    b->end = j->end;
    rc = b->n;
done:
    j->rbuf = r.buf;
    j->rcap = r.cap;
    return rc;
}

void tp_journal_close(tp_journal *j)
{
    if (!j)
        return;
    if (j->done >= j->size) {
        /* Remove while still holding the lock. */
        unlink(j->path);
        unlink(j->done_path);
    }
    journal_free(j);
}

/* ------------------------------------------------------- dead letters */

/* The dead letter's JSON line (with its newline) into *line (malloc'd). */
static int deadletter_line(const char *index, const char *id, long status, const char *reason,
                           const char *doc, size_t doc_len, char **line, size_t *len)
{
    json_object *o = json_object_new_object(), *d = NULL;
    char ts[32];
    const char *s;
    size_t slen = 0;
    struct timespec now;
    struct tm tm;
    int rc = -1;

    if (!o)
        return -1;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* doc is doc_len bytes, not a C string (a batch's body goes on). */
    if (doc && doc_len > 0 && doc_len <= INT_MAX) {
        json_tokener *tok = json_tokener_new();
        if (tok) {
            d = json_tokener_parse_ex(tok, doc, (int)doc_len);
            if (json_tokener_get_error(tok) != json_tokener_success) {
                json_object_put(d);
                d = NULL;
            }
            json_tokener_free(tok);
        }
    }
    if (!d)
        d = json_object_new_string_len(doc ? doc : "", doc && doc_len <= INT_MAX ? (int)doc_len : 0);
    json_object_object_add(o, "time", json_object_new_string(ts));
    json_object_object_add(o, "status", json_object_new_int64(status));
    json_object_object_add(o, "reason", json_object_new_string(reason ? reason : ""));
    json_object_object_add(o, "_index", json_object_new_string(index ? index : ""));
    json_object_object_add(o, "_id", json_object_new_string(id ? id : ""));
    json_object_object_add(o, "document", d);
    s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &slen);
    if (s && (*line = malloc(slen + 1)) != NULL) {
        memcpy(*line, s, slen);
        (*line)[slen] = '\n';
        *len = slen + 1;
        rc = 0;
    }
    json_object_put(o);
    return rc;
}

int tp_spool_deadletter(const char *dir, const char *index, const char *id,
                        long status, const char *reason, const char *doc, size_t doc_len,
                        char *err, size_t errlen)
{
    char *path = join(dir, "/", TP_SPOOL_DEADLETTER), *line = NULL, why[256];
    size_t len = 0;
    int fd = -1, rc = -1;

    if (!path || deadletter_line(index, id, status, reason, doc, doc_len, &line, &len) < 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot append to %s: %s", path, strerror(errno));
        goto done;
    }
    if (tp_spool_append_whole(fd, line, len, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "cannot append to %s: %s", path, why);
        goto done;
    }
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    free(line);
    free(path);
    return rc;
}

/* ---------------------------------------------------- the whole spool */

static int is_journal_name(const char *name)
{
    size_t n = strlen(name), p = strlen(JOURNAL_PREFIX), s = strlen(JOURNAL_SUFFIX);

    return n > p + s && strncmp(name, JOURNAL_PREFIX, p) == 0 &&
           strcmp(name + n - s, JOURNAL_SUFFIX) == 0;
}

int tp_spool_each_journal(const char *dir, const char *own, tp_spool_journal_fn fn, void *ctx)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int count = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char *path;
        if (!is_journal_name(e->d_name))
            continue;
        path = join(dir, "/", e->d_name);
        if (!path)
            continue;
        count++;
        if (!own || strcmp(own, path) != 0)
            fn(ctx, path);
        free(path);
    }
    closedir(d);
    return count;
}

/*
 * The document's own "date" (tp_doc writes it near the end:
 * ...},"date":<ms>,"@timestamp":"..."[,"truncated":[...]]}), 0 when none.
 * Searched from the end: after the top-level "date" come only strings, and
 * ,"date": (a quote after a comma) cannot be inside a JSON string, so
 * body-json's own "date" keys, earlier in the line, are never found first.
 */
static long long doc_date(const char *doc, size_t len)
{
    static const char key[] = ",\"date\":";
    size_t klen = sizeof(key) - 1, i;
    long long v = 0;

    for (i = len; i >= klen; i--) {
        const char *p = doc + i - klen;
        size_t k, digits = 0;
        if (memcmp(p, key, klen) != 0)
            continue;
        for (k = i; k < len && doc[k] >= '0' && doc[k] <= '9' && digits < 18; k++, digits++)
            v = v * 10 + (doc[k] - '0');
        return digits && k < len && doc[k] == ',' ? v : 0;
    }
    return 0;
}

/* Count dest's entries in st (the first TP_SPOOL_STAT_DESTS destinations). */
static void count_dest(tp_spool_stat *st, const char *dest, long entries)
{
    long i;

    for (i = 0; i < st->ndests; i++)
        if (strcmp(st->dest[i], dest) == 0)
            break;
    if (i == st->ndests) {
        if (i == TP_SPOOL_STAT_DESTS)
            return;
        snprintf(st->dest[i], sizeof(st->dest[i]), "%s", dest);
        st->ndests++;
    }
    st->dest_entries[i] += entries;
}

/* Pending entries of one journal file, and their oldest date. */
static void count_journal(const char *path, tp_spool_stat *st, int first_only)
{
    char *done_path = join(path, DONE_SUFFIX, ""), dest[TP_SPOOL_DEST_MAX], err[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC), dfd = -1;
    off_t done = 0, header;
    long entries = 0;
    struct stat sb;
    reader r;
    event ev;

    rd_init(&r, fd, 0, 0, READ_CHUNK);
    if (fd < 0 || !done_path || fstat(fd, &sb) < 0)
        goto done;
    header = read_header(fd, dest, sizeof(dest));
    if (header < 0)
        header = 0;                       /* another format: not read */
    dfd = open(done_path, O_RDONLY | O_CLOEXEC);
    if (dfd >= 0)
        done = read_done(dfd);
    if (done < header)
        done = header;
    if (done > sb.st_size)
        done = sb.st_size;
    st->bytes += sb.st_size - done;
    rd_init(&r, fd, done, sb.st_size, READ_CHUNK);
    while (rd_next(&r, &ev, err, sizeof(err)) == 0 && ev.kind != EV_END) {
        const char *doc;
        size_t dlen;
        long long ms;
        if (ev.kind != EV_ENTRY || tp_spool_pair_split(ev.data, ev.len, &doc, &dlen, NULL, 0) < 0)
            continue;
        entries++;
        ms = doc_date(doc, dlen);
        if (ms > 0 && (st->oldest_ms == 0 || ms < st->oldest_ms))
            st->oldest_ms = ms;
        if (first_only)
            goto done;
    }
    st->entries += entries;
    count_dest(st, dest, entries);
done:
    free(r.buf);
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    free(done_path);
}

static long count_lines(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char buf[65536];
    ssize_t r, i;
    long n = 0;

    if (fd < 0)
        return 0;
    while ((r = read(fd, buf, sizeof(buf))) > 0)
        for (i = 0; i < r; i++)
            n += buf[i] == '\n';
    close(fd);
    return n;
}

static int is_orphan(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), free_ = 0;

    if (fd >= 0) {
        if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
            free_ = 1;
            flock(fd, LOCK_UN);
        }
        close(fd);
    }
    return free_;
}

int tp_spool_stat_dir(const char *dir, int count_entries, const char *own, tp_spool_stat *st,
                      char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    memset(st, 0, sizeof(*st));
    if (!d) {
        snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        char *path = join(dir, "/", e->d_name);
        struct stat sb;

        if (!path)
            continue;
        if ((!own || strcmp(path, own) != 0) && stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
            st->total_bytes += sb.st_size;
        if (is_journal_name(e->d_name)) {
            st->journals++;
            if (count_entries == TP_SPOOL_STAT_OLDEST) {
                count_journal(path, st, 1);
            } else if (count_entries) {
                st->orphans += is_orphan(path);
                count_journal(path, st, 0);
            }
        } else if (strncmp(e->d_name, TP_SPOOL_DAMAGED_PREFIX,
                           strlen(TP_SPOOL_DAMAGED_PREFIX)) == 0) {
            st->damaged_files++;
        } else if (count_entries == 1 && strcmp(e->d_name, TP_SPOOL_DEADLETTER) == 0) {
            st->deadletters = count_lines(path);
        }
        free(path);
    }
    closedir(d);
    return 0;
}

/* ------------------------------------------------------------- replay */

/* A format-2 journal's entries (after its first line, header bytes). */
static long each_entry(int fd, off_t header, tp_spool_doc_fn fn, void *ctx, long *skipped,
                       char *err, size_t errlen)
{
    struct stat sb;
    reader r;
    event ev;
    long n = -1;

    rd_init(&r, fd, header, 0, READ_CHUNK);
    if (fstat(fd, &sb) < 0) {
        snprintf(err, errlen, "fstat: %s", strerror(errno));
        goto done;
    }
    r.upto = sb.st_size;
    n = 0;
    for (;;) {
        const char *doc;
        size_t dlen, i;
        char id[512];
        if (rd_next(&r, &ev, err, errlen) < 0) {
            n = -1;
            break;
        }
        if (ev.kind == EV_END)
            break;
        if (ev.kind == EV_ENTRY &&
            tp_spool_pair_split(ev.data, ev.len, &doc, &dlen, id, sizeof(id)) == 0) {
            fn(ctx, id, doc, dlen);
            n++;
            continue;
        }
        /* Its lines, the last one maybe without its newline. */
        for (i = 0; i < ev.len; i++)
            *skipped += ev.data[i] == '\n';
        *skipped += ev.len > 0 && ev.data[ev.len - 1] != '\n';
    }
done:
    free(r.buf);
    return n;
}

/* One line of a _bulk or dead-letter file (len bytes, NUL-terminated):
 * an action (its _id into *action), a document after an action, or a
 * dead letter.  Returns 1 when a document went to fn, 0 otherwise. */
static int each_line_one(char *line, size_t len, char **action, tp_spool_doc_fn fn,
                         void *ctx, long *skipped)
{
    json_object *o, *meta = NULL, *id = NULL, *doc = NULL;
    char buf[512];
    int rc = 0;

    if (*action) {
        fn(ctx, *action, line, len);
        free(*action);
        *action = NULL;
        return 1;
    }
    o = json_tokener_parse(line);
    if (o && (json_object_object_get_ex(o, "create", &meta) ||
              json_object_object_get_ex(o, "index", &meta))) {
        action_id(line, len, buf, sizeof(buf));
        *action = strdup(buf);
        if (!*action)
            (*skipped)++;
    } else if (o && json_object_object_get_ex(o, "document", &doc)) {
        size_t dlen = 0;
        const char *text = json_object_to_json_string_length(doc,
            JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &dlen);
        json_object_object_get_ex(o, "_id", &id);
        fn(ctx, id && json_object_is_type(id, json_type_string) ? json_object_get_string(id) : "",
           text, dlen);
        rc = 1;
    } else {
        (*skipped)++;
    }
    json_object_put(o);
    return rc;
}

/* A _bulk file (action and document lines) or dead letters (one a line). */
static long each_line(FILE *f, tp_spool_doc_fn fn, void *ctx, long *skipped)
{
    char *line = NULL, *action = NULL;
    size_t cap = 0;
    ssize_t n;
    long docs = 0;

    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n > 0)
            docs += each_line_one(line, (size_t)n, &action, fn, ctx, skipped);
    }
    if (action)
        (*skipped)++;                     /* an action without its document */
    free(action);
    free(line);
    return docs;
}

long tp_spool_each_document(const char *path, tp_spool_doc_fn fn, void *ctx, long *skipped,
                            char *err, size_t errlen)
{
    char dest[TP_SPOOL_DEST_MAX];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    off_t header;
    FILE *f;
    long n;

    *skipped = 0;
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    header = read_header(fd, dest, sizeof(dest));
    if (header < 0) {
        snprintf(err, errlen, "%s: a journal format this version does not read", path);
        close(fd);
        return -1;
    }
    if (header > 0) {
        n = each_entry(fd, header, fn, ctx, skipped, err, errlen);
        close(fd);
        return n;
    }
    f = fdopen(fd, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    n = each_line(f, fn, ctx, skipped);
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read %s", path);
        n = -1;
    }
    fclose(f);
    return n;
}
