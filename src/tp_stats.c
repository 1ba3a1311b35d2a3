#include "config.h"
#include "tp_stats.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tp_spool.h"

#define STATS_PREFIX "stats."
#define TOTAL_NAME "stats.total"
#define LOCK_NAME "stats.lock"
#define MAGIC "tpstats1"
#define NAME_MAX_LEN 64

/* The file: this header, then TP_ST_N counters; one page. */
typedef struct header {
    char magic[8];
    uint32_t n;                   /* TP_ST_N of the writer          */
    uint32_t reserved;
    char merged[NAME_MAX_LEN];    /* stats.total: the last file merged in */
} header;

typedef struct layout {
    header h;
    tp_stats s;
} layout;

struct tp_stats_file {
    int fd;                       /* holds the flock; -1 in memory */
    layout *map;                  /* mapped file, or malloc'd      */
};

/* ------------------------------------------------------------ counting */

static const long es_codes[] = { 0, 200, 201, 400, 401, 403, 404, 408, 409, 413, 429,
                                 500, 502, 503, 504 };
#define NAMED_CODES (sizeof(es_codes) / sizeof(es_codes[0]))
static const char *const es_classes[] = { "2xx", "3xx", "4xx", "5xx" };
static const long bucket_usec[TP_STATS_BUCKETS] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
static const char *const bucket_le[TP_STATS_BUCKETS] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
};

_Static_assert(NAMED_CODES + 4 == TP_STATS_ES_CODES, "es code slots");
_Static_assert(sizeof(layout) <= 4096, "a stats file is one page");

int tp_stats_es_code(long status)
{
    size_t i;

    for (i = 0; i < NAMED_CODES; i++)
        if (es_codes[i] == status)
            return (int)i;
    if (status >= 200 && status < 600)
        return (int)NAMED_CODES + (int)(status / 100) - 2;
    return (int)NAMED_CODES + 3;     /* nonsense counts as a server error */
}

void tp_stats_es_request(tp_stats *s, long status, long usec, time_t now)
{
    int b;

    if (!s)
        return;
    for (b = 0; b < TP_STATS_BUCKETS && usec > bucket_usec[b]; b++)
        ;
    tp_stats_add(s, TP_ST_ES_CODE + tp_stats_es_code(status), 1);
    tp_stats_add(s, TP_ST_ES_BUCKET + b, 1);
    tp_stats_add(s, TP_ST_ES_USEC, usec > 0 ? (uint64_t)usec : 0);
    if (status >= 200 && status < 300)
        atomic_store_explicit(&s->v[TP_ST_LAST_DELIVERY], (uint64_t)now, memory_order_relaxed);
}

/* ------------------------------------------------------- the files */

static int is_worker_file(const char *name)
{
    return strncmp(name, STATS_PREFIX, strlen(STATS_PREFIX)) == 0 &&
           strcmp(name, TOTAL_NAME) != 0 && strcmp(name, LOCK_NAME) != 0 &&
           !strstr(name, ".tmp") && strlen(name) < NAME_MAX_LEN;
}

/* The directory's lock (exclusive), or -1. */
static int lock_dir(const char *dir)
{
    char path[4096];
    int fd;

    if ((size_t)snprintf(path, sizeof(path), "%s/" LOCK_NAME, dir) >= sizeof(path))
        return -1;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd >= 0 && flock(fd, LOCK_EX) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Read a whole stats file's layout; 0, or -1 when it is not one. */
static int read_layout(int fd, layout *l)
{
    ssize_t r = pread(fd, l, sizeof(*l), 0);

    return r == (ssize_t)sizeof(*l) && memcmp(l->h.magic, MAGIC, 8) == 0 &&
           l->h.n == TP_ST_N ? 0 : -1;
}

static void add_values(uint64_t *sum, const layout *l)
{
    int i;

    for (i = 0; i < TP_ST_N; i++) {
        uint64_t x = atomic_load_explicit(&l->s.v[i], memory_order_relaxed);
        if (i == TP_ST_LAST_DELIVERY)
            sum[i] = x > sum[i] ? x : sum[i];
        else
            sum[i] += x;
    }
}

/* Write total as dir/stats.total (a new file renamed over the old). */
static int write_total(const char *dir, const layout *total)
{
    char tmp[4096], path[4096];
    int fd, ok;

    snprintf(tmp, sizeof(tmp), "%s/" TOTAL_NAME ".tmp", dir);
    snprintf(path, sizeof(path), "%s/" TOTAL_NAME, dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    ok = write(fd, total, sizeof(*total)) == (ssize_t)sizeof(*total);
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* A live worker's file: its counters through a read-only mapping (atomic
 * loads, never a torn value). */
static void add_live(int fd, uint64_t *sum)
{
    struct stat sb;
    layout *l;

    if (fstat(fd, &sb) < 0 || sb.st_size < (off_t)sizeof(layout))
        return;
    l = mmap(NULL, sizeof(layout), PROT_READ, MAP_SHARED, fd, 0);
    if (l == MAP_FAILED)
        return;
    if (memcmp(l->h.magic, MAGIC, 8) == 0 && l->h.n == TP_ST_N)
        add_values(sum, l);
    munmap(l, sizeof(layout));
}

/* An exited worker's file (fd, named name) folded into total and written;
 * 0 when the file may go.  A file already merged (the process merging it
 * stopped before removing it) or unreadable (another version) just goes. */
static int fold(const char *dir, int fd, const char *name, layout *total)
{
    uint64_t t[TP_ST_N];
    layout l;
    int i;

    if (read_layout(fd, &l) < 0 || strcmp(total->h.merged, name) == 0)
        return 0;
    for (i = 0; i < TP_ST_N; i++)
        t[i] = atomic_load_explicit(&total->s.v[i], memory_order_relaxed);
    add_values(t, &l);
    for (i = 0; i < TP_ST_N; i++)
        atomic_store_explicit(&total->s.v[i], t[i], memory_order_relaxed);
    snprintf(total->h.merged, sizeof(total->h.merged), "%s", name);
    return write_total(dir, total);
}

/* dir's lock held: fold the files of exited workers into stats.total and
 * remove them; with sum, add up stats.total and the live workers' files
 * (*workers: how many). */
static int merge_and_sum(const char *dir, uint64_t *sum, long *workers)
{
    char path[4096];
    layout total;
    struct dirent *e;
    DIR *d = opendir(dir);
    int fd, rc = -1;

    memset(&total, 0, sizeof(total));
    snprintf(path, sizeof(path), "%s/" TOTAL_NAME, dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read_layout(fd, &total) < 0) {
        memset(&total, 0, sizeof(total));
        memcpy(total.h.magic, MAGIC, 8);
        total.h.n = TP_ST_N;
    }
    if (fd >= 0)
        close(fd);
    if (!d)
        goto fail;
    while ((e = readdir(d)) != NULL) {
        if (!is_worker_file(e->d_name) ||
            (size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= sizeof(path))
            continue;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            if (sum)
                add_live(fd, sum);
            if (workers)
                (*workers)++;
        } else if (fold(dir, fd, e->d_name, &total) == 0) {
            unlink(path);
        }
        close(fd);
    }
    closedir(d);
    rc = 0;
fail:
    if (sum)
        add_values(sum, &total);
    return rc;
}

/* A new stats file in dir for this worker, locked and mapped; dir's lock
 * held.  NULL with err set. */
static layout *create_own(const char *dir, int *fdp, char *err, size_t errlen)
{
    char path[4096];
    uint32_t rnd = 0;
    layout *l = MAP_FAILED;
    int fd;

    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (uint32_t)time(NULL);
    snprintf(path, sizeof(path), "%s/" STATS_PREFIX "%ld.%08" PRIx32, dir, (long)getpid(), rnd);
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
        goto fail;
    /* Blocks allocated now, not at the first count: a shared mapping of a
     * hole on a full file system is a SIGBUS when written. */
    errno = posix_fallocate(fd, 0, sizeof(layout));
    if (errno)
        goto fail;
    l = mmap(NULL, sizeof(layout), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (l == MAP_FAILED)
        goto fail;
    memcpy(l->h.magic, MAGIC, 8);
    l->h.n = TP_ST_N;
    *fdp = fd;
    return l;
fail:
    snprintf(err, errlen, "cannot make a stats file in %s: %s", dir, strerror(errno));
    if (fd >= 0) {
        unlink(path);
        close(fd);
    }
    return NULL;
}

tp_stats_file *tp_stats_open(const char *dir, char *err, size_t errlen)
{
    tp_stats_file *f = calloc(1, sizeof(*f));
    int lockfd = -1;

    if (errlen)
        err[0] = '\0';
    if (!f)
        return NULL;
    f->fd = -1;
    if (!dir || !*dir)
        goto memory;
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot make %s: %s", dir, strerror(errno));
        goto memory;
    }
    lockfd = lock_dir(dir);
    if (lockfd < 0) {
        snprintf(err, errlen, "cannot lock %s/" LOCK_NAME ": %s", dir, strerror(errno));
        goto memory;
    }
    merge_and_sum(dir, NULL, NULL);
    f->map = create_own(dir, &f->fd, err, errlen);
    close(lockfd);
    if (f->map)
        return f;
memory:
    f->map = calloc(1, sizeof(layout));
    if (!f->map) {
        free(f);
        return NULL;
    }
    return f;
}

tp_stats *tp_stats_of(tp_stats_file *f)
{
    return f ? &f->map->s : NULL;
}

void tp_stats_close(tp_stats_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0) {
        munmap(f->map, sizeof(layout));
        close(f->fd);             /* the lock goes: the file is an exited worker's */
    } else {
        free(f->map);
    }
    free(f);
}

/* ------------------------------------------------------- the view */

/* Can dir take a document?  A byte written to a probe file tells (a full
 * or read-only file system, a directory the worker cannot write). */
static int probe(const char *dir, char *why, size_t whylen)
{
    char path[4096];
    int fd, ok;

    snprintf(path, sizeof(path), "%s/health.probe.%ld", dir, (long)getpid());
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(why, whylen, "spool not writable: %s", strerror(errno));
        return 0;
    }
    ok = write(fd, "x", 1) == 1;
    if (!ok)
        snprintf(why, whylen, "spool not writable: %s", strerror(errno));
    close(fd);
    unlink(path);
    return ok;
}

static void look_at_spool(const char *dir, long long max_bytes, time_t now, tp_stats_view *view)
{
    tp_spool_stat st;
    char err[256];

    view->journal = 0;
    if (tp_spool_stat_dir(dir, TP_SPOOL_STAT_OLDEST, NULL, &st, err, sizeof(err)) < 0) {
        snprintf(view->reason, sizeof(view->reason), "spool not readable: %.120s", err);
        return;
    }
    view->backlog_bytes = st.bytes;
    if (st.oldest_ms > 0) {
        long long age = (long long)now - st.oldest_ms / 1000;
        view->oldest_pending_s = age > 0 ? age : 0;    /* a clock set back: 0 */
    }
    if (st.total_bytes >= max_bytes) {
        snprintf(view->reason, sizeof(view->reason), "spool full: %lld bytes, limit %lld",
                 st.total_bytes, max_bytes);
        return;
    }
    view->journal = probe(dir, view->reason, sizeof(view->reason));
}

int tp_stats_collect(tp_stats_file *f, const char *dir, long long max_bytes, time_t now,
                     tp_stats_view *view, char *err, size_t errlen)
{
    int lockfd = -1;

    memset(view, 0, sizeof(*view));
    view->journal = -1;
    view->oldest_pending_s = -1;
    if (errlen)
        err[0] = '\0';
    if (f->fd >= 0) {
        lockfd = lock_dir(dir);
        if (lockfd < 0 || merge_and_sum(dir, view->v, &view->workers) < 0) {
            snprintf(err, errlen, "cannot read the stats files in %s: %s", dir, strerror(errno));
            memset(view->v, 0, sizeof(view->v));
            view->workers = 0;
        }
        if (lockfd >= 0)
            close(lockfd);
    }
    if (view->workers == 0) {         /* in memory, or the files failed */
        add_values(view->v, f->map);
        view->workers = 1;
    }
    if (max_bytes > 0 && dir && *dir)
        look_at_spool(dir, max_bytes, now, view);
    return errlen && err[0] ? -1 : 0;
}

/* ------------------------------------------------------ the answers */

static void line(tp_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(tp_buf *out, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        tp_buf_put(out, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void family(tp_buf *out, const char *name, const char *type, const char *help)
{
    line(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(tp_buf *out, const char *name, const char *help, uint64_t v)
{
    family(out, name, "counter", help);
    line(out, "%s %" PRIu64 "\n", name, v);
}

static void es_metrics(const tp_stats_view *view, tp_buf *out)
{
    const uint64_t *v = view->v;
    uint64_t cumulative = 0;
    size_t i;

    family(out, "trackpixel_es_requests_total", "counter",
           "Requests to Elasticsearch, by HTTP status (none: no answer).");
    for (i = 0; i < TP_STATS_ES_CODES; i++) {
        char code[8];
        if (!v[TP_ST_ES_CODE + i] && i != 0)
            continue;
        if (i == 0)
            snprintf(code, sizeof(code), "none");
        else if (i < NAMED_CODES)
            snprintf(code, sizeof(code), "%ld", es_codes[i]);
        else
            snprintf(code, sizeof(code), "%s", es_classes[i - NAMED_CODES]);
        line(out, "trackpixel_es_requests_total{code=\"%s\"} %" PRIu64 "\n", code,
             v[TP_ST_ES_CODE + i]);
    }
    family(out, "trackpixel_es_request_duration_seconds", "histogram",
           "How long requests to Elasticsearch took.");
    for (i = 0; i < TP_STATS_BUCKETS; i++) {
        cumulative += v[TP_ST_ES_BUCKET + i];
        line(out, "trackpixel_es_request_duration_seconds_bucket{le=\"%s\"} %" PRIu64 "\n",
             bucket_le[i], cumulative);
    }
    cumulative += v[TP_ST_ES_BUCKET + TP_STATS_BUCKETS];
    line(out, "trackpixel_es_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
         "trackpixel_es_request_duration_seconds_sum %" PRIu64 ".%06" PRIu64 "\n"
         "trackpixel_es_request_duration_seconds_count %" PRIu64 "\n", cumulative,
         v[TP_ST_ES_USEC] / 1000000, v[TP_ST_ES_USEC] % 1000000, cumulative);
}

void tp_stats_prometheus(const tp_stats_view *view, tp_buf *out)
{
    static const char *const methods[] = { "GET", "HEAD", "POST" };
    const uint64_t *v = view->v;
    int i;

    family(out, "trackpixel_hits_total", "counter", "Pixel hits served, by method.");
    for (i = 0; i < 3; i++)
        line(out, "trackpixel_hits_total{method=\"%s\"} %" PRIu64 "\n", methods[i],
             v[TP_ST_HITS_GET + i]);
    family(out, "trackpixel_redirects_total", "counter",
           "Click redirects: ok, or the reason of the refusal.");
    for (i = 0; i < TP_REDIRECT_NWHY; i++)
        line(out, "trackpixel_redirects_total{result=\"%s\"} %" PRIu64 "\n",
             tp_redirect_why_name((tp_redirect_why)i), v[TP_ST_REDIRECT + i]);
    counter(out, "trackpixel_documents_delivered_total", "Documents the cluster accepted.",
            v[TP_ST_DELIVERED]);
    counter(out, "trackpixel_dead_letters_total", "Documents the cluster rejected.",
            v[TP_ST_DEADLETTERS]);
    counter(out, "trackpixel_dropped_total", "Documents lost: spool full, or no journal "
            "and the cluster unavailable.", v[TP_ST_DROPPED]);
    counter(out, "trackpixel_journal_errors_total", "Journal appends that failed.",
            v[TP_ST_JOURNAL_ERRORS]);
    counter(out, "trackpixel_damaged_regions_total", "Damaged journal regions set aside.",
            v[TP_ST_DAMAGED]);
    es_metrics(view, out);
    family(out, "trackpixel_backlog_bytes", "gauge", "Journal bytes not delivered yet.");
    line(out, "trackpixel_backlog_bytes %lld\n", view->backlog_bytes);
    family(out, "trackpixel_oldest_pending_seconds", "gauge",
           "Age of the oldest undelivered document (0: none).");
    line(out, "trackpixel_oldest_pending_seconds %lld\n",
         view->oldest_pending_s > 0 ? view->oldest_pending_s : 0);
    family(out, "trackpixel_last_delivery_timestamp_seconds", "gauge",
           "When the cluster last accepted a request (0: never).");
    line(out, "trackpixel_last_delivery_timestamp_seconds %" PRIu64 "\n",
         v[TP_ST_LAST_DELIVERY]);
    family(out, "trackpixel_spool_writable", "gauge",
           "1 when the journal can take documents, 0 when not, -1 without a journal.");
    line(out, "trackpixel_spool_writable %d\n", view->journal);
    family(out, "trackpixel_workers", "gauge", "Worker processes running.");
    line(out, "trackpixel_workers %ld\n", view->workers);
}

/* s as JSON string content: printable ASCII, '"' and '\\' replaced. */
static void json_text(tp_buf *out, const char *s)
{
    for (; *s; s++) {
        char c = (*s < 0x20 || *s == 0x7f || *s == '"' || *s == '\\') ? '?' : *s;
        tp_buf_put(out, &c, 1);
    }
}

void tp_stats_health(const tp_stats_view *view, long max_lag_s, int *healthy,
                     tp_buf *out)
{
    char reason[200], when[32] = "null";
    time_t last = (time_t)view->v[TP_ST_LAST_DELIVERY];
    struct tm tm;

    snprintf(reason, sizeof(reason), "%s", view->journal == 0 ? view->reason : "");
    if (!reason[0] && view->oldest_pending_s > max_lag_s)
        snprintf(reason, sizeof(reason), "oldest pending document is %lld s old (limit %ld s)",
                 view->oldest_pending_s, max_lag_s);
    *healthy = reason[0] == '\0';
    if (last && gmtime_r(&last, &tm))
        strftime(when, sizeof(when), "\"%Y-%m-%dT%H:%M:%SZ\"", &tm);
    line(out, "{\"status\":\"%s\"", *healthy ? "ok" : "unavailable");
    if (!*healthy) {
        tp_buf_put(out, TP_LIT(",\"reason\":\""));
        json_text(out, reason);
        tp_buf_put(out, TP_LIT("\""));
    }
    line(out, ",\"journal\":\"%s\",\"backlog_bytes\":%lld,\"oldest_pending_seconds\":",
         view->journal > 0 ? "ok" : view->journal == 0 ? "failing" : "off", view->backlog_bytes);
    if (view->oldest_pending_s >= 0)
        line(out, "%lld", view->oldest_pending_s);
    else
        tp_buf_put(out, TP_LIT("null"));
    line(out, ",\"last_delivery\":%s,\"dead_letters\":%" PRIu64 ",\"dropped\":%" PRIu64
         ",\"workers\":%ld}\n", when, view->v[TP_ST_DEADLETTERS],
         view->v[TP_ST_DROPPED], view->workers);
}
