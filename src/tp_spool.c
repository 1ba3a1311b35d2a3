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

#include <json-c/json.h>
#include <openssl/rand.h>

#define JOURNAL_PREFIX "journal."
#define JOURNAL_SUFFIX ".ndjson"
#define DONE_SUFFIX ".done"
#define DONE_WIDTH 21             /* 20 digits and a newline */
#define MAX_PENDING_ENTRIES 100000

struct tp_journal {
    int fd;
    int done_fd;
    int fsync_each;
    int claimed;                  /* someone else's journal */
    char *path;
    char *done_path;
    off_t done;
    off_t size;
    char *buf;                    /* tp_journal_pending()'s buffer */
    size_t buf_cap;
    off_t *offsets;
    size_t offsets_cap;
};

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
    }
    return j;
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
    free(j->buf);
    free(j->offsets);
    free(j);
}

tp_journal *tp_journal_create(const char *dir, int fsync_each, char *err, size_t errlen)
{
    tp_journal *j = NULL;
    char name[128], *tmp = NULL;
    unsigned char rnd[6];

    if (mkdirs(dir, err, errlen) < 0)
        return NULL;
    j = journal_new();
    if (!j || RAND_bytes(rnd, sizeof(rnd)) != 1)
        goto oom;
    j->fsync_each = fsync_each;
    snprintf(name, sizeof(name), "%ld.%02x%02x%02x%02x%02x%02x", (long)getpid(),
             rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    tmp = join(dir, "/.creating.", name);
    j->path = malloc(strlen(dir) + strlen(name) + 32);
    if (!tmp || !j->path)
        goto oom;
    snprintf(j->path, strlen(dir) + strlen(name) + 32, "%s/" JOURNAL_PREFIX "%s" JOURNAL_SUFFIX, dir, name);
    j->done_path = join(j->path, DONE_SUFFIX, "");
    if (!j->done_path)
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
    j->done_fd = open(j->done_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (j->done_fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", j->done_path, strerror(errno));
        goto fail;
    }
    if (write_done(j, err, errlen) < 0)
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
    if (tmp)
        unlink(tmp);
    if (j && j->done_fd >= 0)
        unlink(j->done_path);
    free(tmp);
    journal_free(j);
    return NULL;
}

tp_journal *tp_journal_claim(const char *path, char *err, size_t errlen)
{
    tp_journal *j = journal_new();
    struct stat a, b;

    err[0] = '\0';
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    j->claimed = 1;
    j->path = strdup(path);
    j->done_path = join(path, DONE_SUFFIX, "");
    if (!j->path || !j->done_path) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    j->fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
    if (j->fd < 0)
        goto fail;                          /* gone: someone finished it */
    if (flock(j->fd, LOCK_EX | LOCK_NB) < 0)
        goto fail;                          /* its worker is alive */
    /* Still the same file under that name (not finished and removed by
     * another claimer between our open and our lock)? */
    if (fstat(j->fd, &a) < 0 || stat(path, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
        goto fail;
    j->done_fd = open(j->done_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (j->done_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", j->done_path, strerror(errno));
        goto fail;
    }
    j->done = read_done(j->done_fd);
    j->size = a.st_size;
    if (j->done > j->size)
        j->done = j->size;
    return j;
fail:
    journal_free(j);
    return NULL;
}

int tp_journal_append(tp_journal *j, const char *data, size_t len,
                      off_t *start, off_t *end, char *err, size_t errlen)
{
    ssize_t w;

    do {
        w = write(j->fd, data, len);
    } while (w < 0 && errno == EINTR);
    if (w < 0 || (size_t)w != len) {
        int e = w < 0 ? errno : ENOSPC;
        /* Take back a partial line so the journal stays whole lines. */
        if (w > 0 && ftruncate(j->fd, j->size) < 0)
            j->size += w;
        snprintf(err, errlen, "cannot append to %s: %s", j->path, strerror(e));
        return -1;
    }
    if (j->fsync_each && fdatasync(j->fd) < 0) {
        snprintf(err, errlen, "fdatasync %s: %s", j->path, strerror(errno));
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

int tp_journal_mark(tp_journal *j, off_t upto, char *err, size_t errlen)
{
    if (upto <= j->done)
        return 0;
    if (upto > j->size)
        upto = j->size;
    j->done = upto;
    if (j->done == j->size && !j->claimed) {
        /* All delivered: start over, so a healthy journal stays empty.
         * Safe because we are its only writer and hold its lock. */
        if (ftruncate(j->fd, 0) < 0) {
            /* Keep the offset instead: correct, only not compact. */
            snprintf(err, errlen, "cannot truncate %s: %s", j->path, strerror(errno));
            write_done(j, err, errlen);
            return -1;
        }
        j->done = j->size = 0;
        if (j->buf_cap > 256 * 1024) {
            /* A big backlog is gone: so is its read buffer. */
            free(j->buf);
            free(j->offsets);
            j->buf = NULL;
            j->offsets = NULL;
            j->buf_cap = j->offsets_cap = 0;
        }
    }
    return write_done(j, err, errlen);
}

long tp_journal_pending(tp_journal *j, off_t end, size_t max_entries, size_t max_bytes,
                        const char **data, size_t *len, const off_t **offsets,
                        char *err, size_t errlen)
{
    size_t want, avail, got = 0, pos = 0, n = 0;
    ssize_t r;

    *data = NULL;
    *len = 0;
    if (j->done >= end)
        return 0;
    if (max_entries > MAX_PENDING_ENTRIES)
        max_entries = MAX_PENDING_ENTRIES;
    avail = (size_t)(end - j->done);
    want = avail;
    if (want > max_bytes)
        want = max_bytes;
    for (;;) {
        if (want + 1 > j->buf_cap) {
            char *nb = realloc(j->buf, want + 1);
            if (!nb) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            j->buf = nb;
            j->buf_cap = want + 1;
        }
        while (got < want) {
            r = pread(j->fd, j->buf + got, want - got, j->done + (off_t)got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                snprintf(err, errlen, "cannot read %s: %s", j->path, strerror(errno));
                return -1;
            }
            if (r == 0)
                break;
            got += (size_t)r;
        }
        /* Whole entries: two newlines each. */
        n = 0;
        pos = 0;
        {
            size_t i, lines = 0;
            const char *nl;
            /* From newline to newline (memchr: a batch is 100s of KiB). */
            for (i = 0; i < got && n < max_entries; i++) {
                nl = memchr(j->buf + i, '\n', got - i);
                if (!nl)
                    break;
                i = (size_t)(nl - j->buf);
                if (++lines % 2 == 0) {
                    if (n == j->offsets_cap) {
                        size_t cap = j->offsets_cap ? 2 * j->offsets_cap : 256;
                        off_t *no = realloc(j->offsets, cap * sizeof(*no));
                        if (!no) {
                            snprintf(err, errlen, "out of memory");
                            return -1;
                        }
                        j->offsets = no;
                        j->offsets_cap = cap;
                    }
                    j->offsets[n++] = j->done + (off_t)(i + 1);
                    pos = i + 1;
                }
            }
        }
        if (n > 0 || got < want || want == avail)
            break;
        /* One entry is larger than max_bytes: read more. */
        want = want * 2 > avail ? avail : want * 2;
    }
    if (n == 0)
        return 0;                 /* an incomplete entry: see the header */
    *data = j->buf;
    *len = pos;
    *offsets = j->offsets;
    return (long)n;
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

int tp_spool_entry_doc(const char *data, size_t len, const char **doc, size_t *doc_len)
{
    const char *nl = memchr(data, '\n', len);

    if (!nl || (size_t)(nl - data) + 1 >= len)
        return -1;
    *doc = nl + 1;
    *doc_len = len - (size_t)(nl - data) - 1;
    if (*doc_len && (*doc)[*doc_len - 1] == '\n')
        (*doc_len)--;
    return 0;
}

int tp_spool_deadletter(const char *dir, const char *index, const char *id,
                        long status, const char *reason, const char *doc, size_t doc_len,
                        char *err, size_t errlen)
{
    json_object *o = json_object_new_object(), *d = NULL;
    char *path = join(dir, "/", TP_SPOOL_DEADLETTER), *line = NULL;
    char ts[32];
    const char *s;
    size_t slen = 0;
    struct timespec now;
    struct tm tm;
    int fd = -1, rc = -1;

    if (!o || !path)
        goto oom;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* doc is doc_len bytes, not a C string: in a journal's read buffer the
     * next entry follows it (or the end of the buffer). */
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
        d = json_object_new_string_len(doc ? doc : "", doc ? (int)doc_len : 0);
    json_object_object_add(o, "time", json_object_new_string(ts));
    json_object_object_add(o, "status", json_object_new_int64(status));
    json_object_object_add(o, "reason", json_object_new_string(reason ? reason : ""));
    json_object_object_add(o, "_index", json_object_new_string(index ? index : ""));
    json_object_object_add(o, "_id", json_object_new_string(id ? id : ""));
    json_object_object_add(o, "document", d);
    d = NULL;
    s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &slen);
    if (!s)
        goto oom;
    line = malloc(slen + 1);
    if (!line)
        goto oom;
    memcpy(line, s, slen);
    line[slen] = '\n';
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 || write(fd, line, slen + 1) != (ssize_t)(slen + 1)) {
        snprintf(err, errlen, "cannot append to %s: %s", path, strerror(errno));
        goto done;
    }
    rc = 0;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
done:
    if (fd >= 0)
        close(fd);
    json_object_put(d);
    json_object_put(o);
    free(line);
    free(path);
    return rc;
}

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

/* Pending entries of one journal file, and the date of its first one. */
static void count_journal(const char *path, tp_spool_stat *st)
{
    char *done_path = join(path, DONE_SUFFIX, "");
    int fd = open(path, O_RDONLY | O_CLOEXEC), dfd = -1;
    off_t done = 0;
    char buf[65536];
    ssize_t r;
    long lines = 0;
    int first = 1;
    struct stat sb;
    off_t pos;

    if (fd < 0 || !done_path || fstat(fd, &sb) < 0)
        goto done;
    dfd = open(done_path, O_RDONLY | O_CLOEXEC);
    if (dfd >= 0)
        done = read_done(dfd);
    if (done > sb.st_size)
        done = sb.st_size;
    st->bytes += sb.st_size - done;
    pos = done;
    while ((r = pread(fd, buf, sizeof(buf), pos)) > 0) {
        ssize_t i;
        if (first) {
            /* The first document line: its "date". */
            char *nl = memchr(buf, '\n', (size_t)r), *date;
            if (nl && (date = strstr(nl, "\"date\":")) != NULL) {
                long long ms = strtoll(date + 7, NULL, 10);
                if (ms > 0 && (st->oldest_ms == 0 || ms < st->oldest_ms))
                    st->oldest_ms = ms;
            }
            first = 0;
        }
        for (i = 0; i < r; i++)
            if (buf[i] == '\n')
                lines++;
        pos += r;
    }
    st->entries += lines / 2;
done:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    free(done_path);
}

int tp_spool_stat_dir(const char *dir, int count_entries, tp_spool_stat *st,
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
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
            st->total_bytes += sb.st_size;
        if (is_journal_name(e->d_name)) {
            st->journals++;
            if (count_entries) {
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd >= 0) {
                    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
                        st->orphans++;
                        flock(fd, LOCK_UN);
                    }
                    close(fd);
                }
                count_journal(path, st);
            }
        } else if (count_entries && strcmp(e->d_name, TP_SPOOL_DEADLETTER) == 0) {
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            char buf[65536];
            ssize_t r;
            if (fd >= 0) {
                while ((r = read(fd, buf, sizeof(buf))) > 0)
                    for (ssize_t i = 0; i < r; i++)
                        if (buf[i] == '\n')
                            st->deadletters++;
                close(fd);
            }
        }
        free(path);
    }
    closedir(d);
    return 0;
}
