/*
 * trackpixel - the accept loop.  Everything a hit does is in tp_app; this
 * file only owns the FastCGI (or CGI) request, the order of the steps, and
 * the signals.
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <fastcgi.h>
#include <fcgiapp.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "tp_app.h"
#include "tp_cli.h"
#include "tp_log.h"
#include "tp_time.h"

extern char **environ;

/* GnuTLS is in our process only because Debian's libcurl (the OpenSSL
 * flavour) links librtmp and libldap, which use it for protocols we never
 * speak (CURLOPT_PROTOCOLS_STR is "http,https").  Its library constructor
 * still runs gnutls_global_init() at load, which costs every worker
 * resident memory (GnuTLS's own pages and p11-kit's, tasn1 trees on the
 * heap) for nothing.  Defining this function is GnuTLS's documented way to
 * skip that implicit initialization (GNUTLS_SKIP_GLOBAL_INIT in
 * <gnutls/gnutls.h>, the same as GNUTLS_NO_IMPLICIT_INIT=1 in the
 * environment): GnuTLS declares it weak and calls it through the PLT, and
 * the program's definition wins.  A library that does use GnuTLS calls
 * gnutls_global_init() itself, so nothing breaks.  The symbol must be in
 * the program's dynamic symbol table: configure adds
 * -Wl,--export-dynamic-symbol for it (ld also exports it by itself when it
 * sees libgnutls among libcurl's dependencies). */
int _gnutls_global_init_skip(void);
int _gnutls_global_init_skip(void)
{
    return 1;
}

static volatile sig_atomic_t stopping;

/* SIGTERM (mod_fcgid, lighttpd, systemd), SIGINT, and SIGUSR1 (the FastCGI
 * spec's "finish and exit"): finish the current hit and the ones already
 * queued on our socket (serve_fastcgi), then leave.  Not
 * FCGX_ShutdownPending(): libfcgi would then refuse to accept those queued
 * ones.  The signals are only let in while the loop waits for a request
 * (ppoll), or taken by the loop itself (take_pending_stop). */
static void on_stop(int sig)
{
    struct sigaction sa;

    (void)sig;
    stopping = 1;
    /* The first signal interrupts the wait; later ones (mod_fcgid repeats
     * SIGTERM after a second) must not interrupt the reads of a queued
     * request being answered: libfcgi fails a read on EINTR. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

/* SIGALRM only bounds an accept() while draining the queue, when the
 * listening socket could not be made non-blocking. */
static void on_alarm(int sig)
{
    (void)sig;
}

static int install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;      /* no SA_RESTART: the wait must return */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
        sigaction(SIGUSR1, &sa, NULL) < 0)
        return -1;
    sa.sa_handler = on_alarm;
    if (sigaction(SIGALRM, &sa, NULL) < 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

/* ---- FastCGI streams as tp_io ---- */
typedef struct fcgi_ctx {
    FCGX_Request req;
    struct timespec deadline;     /* the whole body must arrive by then */
    int timeout_set;              /* SO_RCVTIMEO is set on req.ipcFd    */
} fcgi_ctx;

/* A body read with a total deadline: a client that sends slowly, or never,
 * cannot hold the worker (the socket's receive timeout is what is left). */
static long fcgi_read(void *ctx, char *buf, size_t n)
{
    fcgi_ctx *c = ctx;
    int chunk = n > 65536 ? 65536 : (int)n, got;
    long left_ms;
    struct timeval tv;

    left_ms = tp_ts_ms(tp_mono_now(), c->deadline);
    if (left_ms <= 0)
        return -1;
    tv.tv_sec = left_ms / 1000;
    tv.tv_usec = (left_ms % 1000) * 1000;
    setsockopt(c->req.ipcFd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    c->timeout_set = 1;
    got = FCGX_GetStr(buf, chunk, c->req.in);
    if (got == 0 && FCGX_GetError(c->req.in) != 0)
        return -1;
    return got < 0 ? -1 : got;
}

static int fcgi_write(void *ctx, const char *buf, size_t n)
{
    fcgi_ctx *c = ctx;
    return FCGX_PutStr(buf, (int)n, c->req.out) == (int)n ? 0 : -1;
}

/* ---- plain CGI (stdin/stdout, CONTENT_LENGTH bounds the body) ---- */
typedef struct cgi_ctx {
    long remaining;
} cgi_ctx;

static long cgi_read(void *ctx, char *buf, size_t n)
{
    cgi_ctx *c = ctx;
    size_t want = n, got;

    if (c->remaining <= 0)
        return 0;
    if ((long)want > c->remaining)
        want = (size_t)c->remaining;
    got = fread(buf, 1, want, stdin);
    c->remaining -= (long)got;
    return (long)got;
}

static int cgi_write(void *ctx, const char *buf, size_t n)
{
    (void)ctx;
    return fwrite(buf, 1, n, stdout) == n && fflush(stdout) == 0 ? 0 : -1;
}

static int serve_cgi(tp_app *app)
{
    const char *cl = getenv("CONTENT_LENGTH");
    cgi_ctx c = { cl ? strtol(cl, NULL, 10) : 0 };
    tp_io io = { &c, cgi_read, cgi_write };
    tp_hit hit;

    tp_app_respond(app, environ, &io, &hit);
    fclose(stdout);               /* the client has its answer */
    tp_app_deliver(app, &hit, NULL, NULL);
    return 0;
}

/* More requests waiting for us where the loop reads next: on the
 * connection the web server kept open (FCGI_KEEP_CONN), or else on the
 * listening socket. */
static int requests_waiting(void *ctx)
{
    const fcgi_ctx *c = ctx;
    struct pollfd next = { c->req.ipcFd >= 0 ? c->req.ipcFd : FCGI_LISTENSOCK_FILENO, POLLIN, 0 };

    return poll(&next, 1, 0) == 1 && (next.revents & POLLIN);
}

/* One accepted request: answer, finish, post. */
static void serve_one(tp_app *app, fcgi_ctx *c, const tp_io *io)
{
    struct timeval none = { 0, 0 };
    tp_hit hit;

    c->deadline = tp_ts_add_ms(tp_mono_now(), tp_app_body_timeout_ms(app));
    c->timeout_set = 0;
    tp_app_respond(app, c->req.envp, io, &hit);
    if (c->timeout_set)           /* a kept connection's next request */
        setsockopt(c->req.ipcFd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    FCGX_Finish_r(&c->req);       /* the browser is done before we post */
    tp_app_deliver(app, &hit, requests_waiting, c);
}

/* At a stop, requests already queued on the socket are answered for at
 * most this long. */
#define DRAIN_MS 2000

/* The listening socket is made non-blocking, so an accept() never waits:
 * when the socket is shared (spawn-fcgi -F, several workers) another
 * process may take the connection between our poll and our accept, and
 * libfcgi then answers -EAGAIN.  So the stop signals can stay blocked
 * around accept() (no sigprocmask pair per request).  Accepted sockets do
 * not inherit O_NONBLOCK (Linux accept(2)).  Returns 0, or -1 when the
 * socket could not be made non-blocking. */
static int listen_nonblocking(void)
{
    int fl = fcntl(FCGI_LISTENSOCK_FILENO, F_GETFL);

    return fl < 0 || fcntl(FCGI_LISTENSOCK_FILENO, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

/* One request waits: accept it (stop signals blocked; when the socket could
 * not be made non-blocking, they are let in around the accept so that a
 * stop is not held up by a connection another process took). */
static int accept_one(fcgi_ctx *c, int nonblocking, const sigset_t *open_mask,
                      const sigset_t *stops)
{
    int rc;

    if (nonblocking)
        return FCGX_Accept_r(&c->req);
    sigprocmask(SIG_SETMASK, open_mask, NULL);
    rc = FCGX_Accept_r(&c->req);
    sigprocmask(SIG_BLOCK, stops, NULL);
    return rc;
}

/* Stopping.  While a hit was posted, the web server may have queued more
 * requests on our socket (mod_fcgid and lighttpd pass requests to a process
 * whose answer is finished): answer those waiting now, or they get a reset
 * - no pixel, no document.  A shared socket under steady load is never
 * empty: DRAIN_MS bounds the whole. */
static void drain(tp_app *app, fcgi_ctx *c, const tp_io *io, int nonblocking)
{
    struct timespec drain_end = tp_ts_add_ms(tp_mono_now(), DRAIN_MS);

    while (tp_ts_before(tp_mono_now(), drain_end)) {
        struct pollfd p = { FCGI_LISTENSOCK_FILENO, POLLIN, 0 };

        if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
            break;
        if (!nonblocking)
            alarm(1);      /* bounds an accept another process wins */
        if (FCGX_Accept_r(&c->req) < 0)
            break;
        alarm(0);
        serve_one(app, c, io);
    }
    alarm(0);
}

/* The stop signals are blocked except while the loop waits for a request
 * in ppoll(), which unblocks them atomically: a SIGTERM that comes between
 * the check of `stopping` and the wait is not missed (it is pending, and
 * ppoll returns at once), and none interrupts a request's reads.  But
 * ppoll() only takes a pending signal when it has to wait: when a request
 * is already there it returns it and blocks the signals again (Linux
 * restores the mask unless the call ends in EINTR).  Under continuous load
 * there is always one, so the loop also takes a pending stop signal itself
 * at least every LET_IN_MS.  And under load the loop accepts a waiting
 * request at once, without a ppoll() first: one system call a hit less. */
#define LET_IN_MS 50

/* A stop signal pending (blocked), taken as if it had been delivered. */
static void take_pending_stop(const sigset_t *stops)
{
    struct timespec now = { 0, 0 };
    int sig = sigtimedwait(stops, NULL, &now);

    if (sig > 0)
        on_stop(sig);
}

/* accept_one()'s answer when no request was taken: another process took
 * it, or there was none (the listening socket is non-blocking). */
static int none_taken(int rc)
{
    return rc == -EINTR || rc == -EAGAIN || rc == -EWOULDBLOCK;
}

static int serve_fastcgi(tp_app *app)
{
    sigset_t stops, open_mask;
    fcgi_ctx c;
    tp_io io = { &c, fcgi_read, fcgi_write };
    int nonblocking = listen_nonblocking() == 0;
    struct timespec let_in = tp_ts_add_ms(tp_mono_now(), LET_IN_MS);

    if (FCGX_InitRequest(&c.req, 0, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
        tp_log("FCGX_InitRequest failed");
        return 1;
    }
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGUSR1);
    sigprocmask(SIG_BLOCK, &stops, &open_mask);
    while (!stopping) {
        /* The next request comes on the listening socket, or on the
         * connection the web server kept open (FCGI_KEEP_CONN), whose
         * reads block: that one is always waited for in ppoll(). */
        struct pollfd p = { c.req.ipcFd >= 0 ? c.req.ipcFd : FCGI_LISTENSOCK_FILENO,
                            POLLIN, 0 };
        int rc;

        if (!tp_ts_before(tp_mono_now(), let_in)) {
            take_pending_stop(&stops);
            let_in = tp_ts_add_ms(tp_mono_now(), LET_IN_MS);
            if (stopping)
                break;
        }
        if (nonblocking && c.req.ipcFd < 0) {
            rc = accept_one(&c, nonblocking, &open_mask, &stops);
            if (rc == 0) {
                serve_one(app, &c, &io);
                continue;
            }
            if (!none_taken(rc))
                break;
        }
        if (ppoll(&p, 1, NULL, &open_mask) < 0) {
            if (errno == EINTR)
                continue;         /* stopping, or a stray signal */
            break;
        }
        if (stopping)
            break;
        rc = accept_one(&c, nonblocking, &open_mask, &stops);
        if (none_taken(rc))
            continue;
        if (rc < 0)
            break;
        serve_one(app, &c, &io);
    }
    drain(app, &c, &io, nonblocking);
    FCGX_Free(&c.req, 1);
    /* No more connections: from now on the web server's connect() is
     * refused at once instead of queued, then reset when we exit. */
    close(FCGI_LISTENSOCK_FILENO);
    return 0;
}

int main(int argc, char **argv)
{
    tp_app *app;
    char err[512];
    int rc;

    rc = tp_cli_main(argc, argv, environ);
    if (rc >= 0)
        return rc;

    /* Big buffers (a backlog's _bulk batches, up to 4 MiB) are mmap'ed and
     * so given back when freed.  By default glibc raises this threshold to
     * the largest block freed, after which such blocks come from the
     * delivery thread's arena, whose top it does not give back. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    /* OpenSSL initializes each part once and the first caller's choice
     * stands, so OPENSSL_init_crypto must come before curl_global_init(),
     * whose OPENSSL_init_ssl() would load libcrypto's error strings
     * (thousands of entries in a hash table: about 400 KiB resident per
     * worker).  No code of ours prints OpenSSL's error queue; libcurl's TLS
     * messages stay readable, because libssl's own strings are still loaded
     * and certificate problems come from X509_verify_cert_error_string() (a
     * libcrypto-level failure would read "error:05800088:lib(11)::
     * reason(136)" instead of its text: `openssl errstr 05800088` decodes
     * it).  The configuration file (/etc/ssl/openssl.cnf) is still read. */
    if (install_signals() < 0 ||
        OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, NULL) != 1 ||
        FCGX_Init() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        tp_log("cannot initialize (signals, OpenSSL, libfcgi or libcurl)");
        return 1;
    }
    app = tp_app_new(environ, err, sizeof(err));
    if (!app) {
        tp_log("%s", err);
        curl_global_cleanup();
        return 1;
    }
    rc = FCGX_IsCGI() ? serve_cgi(app) : serve_fastcgi(app);
    tp_app_free(app);
    curl_global_cleanup();
    return rc;
}
