/*
 * es_fast - an Elasticsearch stand-in for the benchmarks: it answers at once
 * (or after --delay-ms) and verifies nothing, so that it is never what limits
 * a benchmark.  tests/es_standin.py is the one that checks documents and
 * signatures; this one only counts.
 *
 *   es_fast [--port N] [--delay-ms MS]
 *
 * Listens on 127.0.0.1 (port 0: any free port), prints "port N" on stdout
 * once it accepts connections, and serves until SIGTERM or SIGINT:
 *
 *   POST .../_bulk         200, one item with status 201 for each action line
 *                          of the body (an entry is an action line and a
 *                          document line, so items = lines / 2), named after
 *                          the body's first action: "index" (rsyslog's
 *                          omelasticsearch) or "create" (trackpixel); only
 *                          {"create":{"status":201}} when the request has a
 *                          filter_path (as trackpixel's do)
 *   POST or PUT elsewhere  201 {"_index":"events","_id":...,"result":"created"}
 *   GET /_bench/stats      200, the counters as JSON (not counted)
 *   GET anything else      200 {} (trackpixel --check's GET /)
 *   HEAD anything          200 and no body (omelasticsearch's health check,
 *                          HEAD /_cat/health)
 *
 * A request that says "Expect: 100-continue" gets "100 Continue" once its
 * head has arrived, as Elasticsearch answers (libcurl sends it for large
 * bodies and would otherwise wait a second before sending the body).
 *
 * With --delay-ms each answer is sent that long after its request arrived
 * (every connection on its own: many requests can be waiting at once).
 *
 * One thread, epoll, HTTP/1.1 keep-alive, Content-Length bodies only (what
 * libcurl sends for trackpixel).  Only loopback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD (64 * 1024)
#define MAX_BODY (64L * 1024 * 1024)
#define MAX_EVENTS 64

typedef struct conn {
    int fd;
    char *in;                  /* what was read and not yet consumed      */
    size_t in_len, in_cap;
    char *out;                 /* the answer being written                */
    size_t out_len, out_off, out_cap;
    int close_after;           /* the client said Connection: close       */
    int continued;             /* 100 Continue sent for the current request */
    int waiting;               /* an answer is held until due             */
    long long due_ms;
    struct conn *next_wait;    /* the list of held answers                */
} conn;

static volatile sig_atomic_t stopping;
static long delay_ms;
static int epfd;
static conn *wait_list;

static struct {
    unsigned long long requests, creates, bulks, bulk_docs, signed_requests, other;
} stats;

static const char create_body[] =
    "{\"_index\":\"events\",\"_id\":\"x\",\"_version\":1,\"result\":\"created\","
    "\"_shards\":{\"total\":1,\"successful\":1,\"failed\":0},\"_seq_no\":0,\"_primary_term\":1}";
/* An item as Elasticsearch 7.10 writes it, and as filter_path=errors,
 * items.*.status,items.*.error leaves it (what trackpixel asks for). */
static const char bulk_item[] =
    "{\"create\":{\"_index\":\"events\",\"_type\":\"_doc\",\"_id\":"
    "\"0f8fad5b-d9cb-469f-a165-70867728950e\",\"_version\":1,\"result\":\"created\","
    "\"_shards\":{\"total\":2,\"successful\":1,\"failed\":0},\"_seq_no\":0,"
    "\"_primary_term\":1,\"status\":201}}";
static const char bulk_item_filtered[] = "{\"create\":{\"status\":201}}";
/* The same item for an "index" action (no _id given: the cluster makes one). */
static const char bulk_item_index[] =
    "{\"index\":{\"_index\":\"events\",\"_type\":\"_doc\",\"_id\":"
    "\"kGmvYZoBnBvF7DCVCsUe\",\"_version\":1,\"result\":\"created\","
    "\"_shards\":{\"total\":2,\"successful\":1,\"failed\":0},\"_seq_no\":0,"
    "\"_primary_term\":1,\"status\":201}}";

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int reserve(char **buf, size_t *cap, size_t need)
{
    size_t c = *cap ? *cap : 4096;
    char *nb;

    if (need <= *cap)
        return 0;
    while (c < need)
        c *= 2;
    nb = realloc(*buf, c);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = c;
    return 0;
}

static void conn_free(conn *c)
{
    conn **p;

    for (p = &wait_list; *p; p = &(*p)->next_wait)
        if (*p == c) {
            *p = c->next_wait;
            break;
        }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* The value of header name in head[0..len) (a copy, at most cap-1 bytes),
 * or -1 when absent. */
static int header_value(const char *head, size_t len, const char *name, char *val, size_t cap)
{
    size_t nlen = strlen(name);
    const char *p = head, *end = head + len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        if ((size_t)(le - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            size_t vl;
            while (v < le && (*v == ' ' || *v == '\t'))
                v++;
            vl = (size_t)(le - v);
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            if (vl >= cap)
                vl = cap - 1;
            memcpy(val, v, vl);
            val[vl] = '\0';
            return 0;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    return -1;
}

/* head_only: the headers of the answer without its body (HEAD). */
static int answer_as(conn *c, int status, const char *reason, const char *body, size_t blen,
                     int head_only)
{
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=UTF-8\r\n"
                      "Content-Length: %zu\r\n%s\r\n",
                      status, reason, blen, c->close_after ? "Connection: close\r\n" : "");

    if (head_only)
        blen = 0;
    if (reserve(&c->out, &c->out_cap, (size_t)hl + blen) < 0)
        return -1;
    memcpy(c->out, head, (size_t)hl);
    memcpy(c->out + hl, body, blen);
    c->out_len = (size_t)hl + blen;
    c->out_off = 0;
    return 0;
}

static int answer(conn *c, int status, const char *reason, const char *body, size_t blen)
{
    return answer_as(c, status, reason, body, blen, 0);
}

/* "100 Continue" straight away (blocking sends are not worth a state for
 * 25 bytes on loopback: a full socket buffer just drops the connection). */
static int send_continue(conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    ssize_t n = send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL);

    c->continued = 1;
    return n == (ssize_t)(sizeof(cont) - 1) ? 0 : -1;
}

static int bulk_answer(conn *c, const char *body, size_t blen, int filtered)
{
    int is_index = blen >= 8 && memcmp(body, "{\"index\"", 8) == 0;
    const char *item = filtered ? bulk_item_filtered : is_index ? bulk_item_index : bulk_item;
    size_t ilen = strlen(item);
    size_t lines = 0, items, i, need, off;
    const char *p = body, *end = body + blen;
    char *text = NULL;
    int rc;

    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        lines++;
        p++;
    }
    if (blen && body[blen - 1] != '\n')
        lines++;
    items = lines / 2;
    stats.bulks++;
    stats.bulk_docs += items;
    need = 64 + items * (ilen + 1) + 1;
    text = malloc(need);
    if (!text)
        return -1;
    off = (size_t)snprintf(text, need, filtered ? "{\"errors\":false,\"items\":[" :
                           "{\"took\":1,\"errors\":false,\"items\":[");
    for (i = 0; i < items; i++) {
        if (i)
            text[off++] = ',';
        memcpy(text + off, item, ilen);
        off += ilen;
    }
    text[off++] = ']';
    text[off++] = '}';
    rc = answer(c, 200, "OK", text, off);
    free(text);
    return rc;
}

/* Write what is pending; 0 when all is out (or would block), -1 to close. */
static int flush_out(conn *c)
{
    struct epoll_event ev;

    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ev.events = EPOLLIN | EPOLLOUT;
                ev.data.ptr = c;
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                return 0;
            }
            return -1;
        }
        c->out_off += (size_t)n;
    }
    c->out_len = c->out_off = 0;
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    return c->close_after ? -1 : 0;
}

/* Handle every whole request in c->in.  -1: close the connection. */
static int serve(conn *c)
{
    while (!c->waiting && c->out_len == 0) {
        char *hend, method[16], target[2048], val[64];
        size_t hlen, total;
        long clen = 0;
        const char *body;
        int rc;

        if (c->in_len == 0)
            return 0;
        hend = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!hend)
            return c->in_len > MAX_HEAD ? -1 : 0;
        hlen = (size_t)(hend - c->in) + 4;
        if (sscanf(c->in, "%15s %2047s", method, target) != 2)
            return -1;
        if (header_value(c->in, hlen, "Content-Length", val, sizeof(val)) == 0) {
            char *e = NULL;
            clen = strtol(val, &e, 10);
            if (e == val || clen < 0 || clen > MAX_BODY)
                return -1;
        } else if (header_value(c->in, hlen, "Transfer-Encoding", val, sizeof(val)) == 0) {
            return -1;             /* not what libcurl sends us */
        }
        total = hlen + (size_t)clen;
        if (c->in_len < total) {
            if (!c->continued &&
                header_value(c->in, hlen, "Expect", val, sizeof(val)) == 0 &&
                strcasecmp(val, "100-continue") == 0)
                return send_continue(c);
            return 0;
        }
        c->continued = 0;
        c->close_after = header_value(c->in, hlen, "Connection", val, sizeof(val)) == 0 &&
                         strcasecmp(val, "close") == 0;
        body = c->in + hlen;

        if (strcmp(method, "GET") == 0 && strcmp(target, "/_bench/stats") == 0) {
            char js[512];
            int jl = snprintf(js, sizeof(js),
                              "{\"requests\":%llu,\"creates\":%llu,\"bulks\":%llu,"
                              "\"bulk_docs\":%llu,\"signed\":%llu,\"other\":%llu}",
                              stats.requests, stats.creates, stats.bulks, stats.bulk_docs,
                              stats.signed_requests, stats.other);
            rc = answer(c, 200, "OK", js, (size_t)jl);
        } else {
            stats.requests++;
            if (header_value(c->in, hlen, "Authorization", val, sizeof(val)) == 0 &&
                strncmp(val, "AWS4-HMAC-SHA256 ", 17) == 0)
                stats.signed_requests++;
            if (strcmp(method, "POST") == 0 && strstr(target, "/_bulk")) {
                rc = bulk_answer(c, body, (size_t)clen, strstr(target, "filter_path=") != NULL);
            } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
                stats.creates++;
                rc = answer(c, 201, "Created", create_body, sizeof(create_body) - 1);
            } else {
                stats.other++;
                rc = answer_as(c, 200, "OK", "{}", 2, strcmp(method, "HEAD") == 0);
            }
        }
        memmove(c->in, c->in + total, c->in_len - total);
        c->in_len -= total;
        if (rc < 0)
            return -1;
        if (delay_ms > 0 && strcmp(target, "/_bench/stats") != 0) {
            c->waiting = 1;
            c->due_ms = now_ms() + delay_ms;
            c->next_wait = wait_list;
            wait_list = c;
            return 0;
        }
        if (flush_out(c) < 0)
            return -1;
    }
    return 0;
}

static void on_readable(conn *c)
{
    for (;;) {
        ssize_t n;
        if (reserve(&c->in, &c->in_cap, c->in_len + 65536) < 0) {
            conn_free(c);
            return;
        }
        n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_free(c);              /* closed by the client, or an error */
        return;
    }
    if (serve(c) < 0)
        conn_free(c);
}

/* Send the held answers that are due; returns ms until the next one (-1: none). */
static int release_due(void)
{
    long long now = now_ms(), next = -1;
    conn **p = &wait_list;

    while (*p) {
        conn *c = *p;
        if (c->due_ms <= now) {
            *p = c->next_wait;
            c->waiting = 0;
            c->next_wait = NULL;
            if (flush_out(c) < 0 || serve(c) < 0)
                conn_free(c);
            p = &wait_list;        /* the list may have changed */
            now = now_ms();
            continue;
        }
        if (next < 0 || c->due_ms < next)
            next = c->due_ms;
        p = &c->next_wait;
    }
    return next < 0 ? -1 : (int)(next - now);
}

int main(int argc, char **argv)
{
    struct sockaddr_in addr;
    socklen_t alen = sizeof(addr);
    struct epoll_event ev, events[MAX_EVENTS];
    struct sigaction sa;
    int lfd, one = 1, i;
    long port = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--delay-ms") == 0 && i + 1 < argc)
            delay_ms = strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: es_fast [--port N] [--delay-ms MS]\n");
            return 2;
        }
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        return 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 1024) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) {
        perror("es_fast: listen");
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;            /* NULL: the listening socket */
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    printf("port %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    while (!stopping) {
        int timeout = release_due(), n;

        n = epoll_wait(epfd, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR)
            break;
        for (i = 0; i < n; i++) {
            conn *c = events[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    conn *nc = calloc(1, sizeof(*nc));
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    ev.events = EPOLLIN;
                    ev.data.ptr = nc;
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (events[i].events & EPOLLOUT) {
                if (flush_out(c) < 0 || serve(c) < 0) {
                    conn_free(c);
                    continue;
                }
            }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c);
        }
    }
    fprintf(stderr, "es_fast: %llu requests, %llu creates, %llu bulks (%llu documents), "
            "%llu signed\n", stats.requests, stats.creates, stats.bulks, stats.bulk_docs,
            stats.signed_requests);
    return 0;
}
