/*
 * bare_pixel - the ceiling for any FastCGI pixel: accept a request, write the
 * same bytes trackpixel writes for a GET (the status, the same headers, an
 * X-Request-Id of the same length, the 60-byte BMP), finish, and nothing
 * else: no document, no journal, no post.  Only for the benchmarks.
 */
#include <fcgiapp.h>
#include <signal.h>
#include <string.h>

/* What tp_pixel_response() writes for a GET, with a fixed request-id. */
static const char head[] =
    "Status: 200 OK\r\n"
    "Content-Type: image/bmp\r\n"
    "Content-Length: 60\r\n"
    "Cache-Control: no-cache, no-store, must-revalidate, private\r\n"
    "Pragma: no-cache\r\n"
    "Expires: 0\r\n"
    "X-Request-Id: 0f8fad5b-d9cb-469f-a165-70867728950e\r\n"
    "\r\n";

static const unsigned char bmp[60] = {
    0x42, 0x4d, 0x3c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x36, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x18, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x27, 0x00,
    0x00, 0x00, 0x27, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00,
};

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
    FCGX_ShutdownPending();
}

int main(void)
{
    FCGX_Request req;
    struct sigaction sa;
    char out[sizeof(head) - 1 + sizeof(bmp)];

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    memcpy(out, head, sizeof(head) - 1);
    memcpy(out + sizeof(head) - 1, bmp, sizeof(bmp));
    if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0)
        return 1;
    while (!stopping && FCGX_Accept_r(&req) >= 0) {
        FCGX_PutStr(out, (int)sizeof(out), req.out);
        FCGX_Finish_r(&req);
    }
    FCGX_Free(&req, 1);
    return 0;
}
