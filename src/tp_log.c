#include "tp_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void vlog(const char *suffix, const char *fmt, va_list ap)
{
    char line[1024];
    int n, m;

    n = snprintf(line, sizeof(line), "trackpixel[%ld]: ", (long)getpid());
    if (n < 0)
        return;
    m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    if (m < 0)
        return;
    n = (size_t)(n + m) >= sizeof(line) - 64 ? (int)sizeof(line) - 64 : n + m;
    m = snprintf(line + n, sizeof(line) - (size_t)n, "%s\n", suffix ? suffix : "");
    if (m < 0)
        return;
    n += m;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    /* One write, so lines of several workers do not interleave. */
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}

void tp_log(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(NULL, fmt, ap);
    va_end(ap);
}

void tp_log_limited(tp_log_limit *l, time_t now, const char *fmt, ...)
{
    char suffix[64] = "";
    va_list ap;

    if (l->last && now - l->last < l->interval) {
        l->suppressed++;
        return;
    }
    if (l->suppressed)
        snprintf(suffix, sizeof(suffix), " (%lu more like this suppressed)", l->suppressed);
    l->last = now;
    l->suppressed = 0;
    va_start(ap, fmt);
    vlog(suffix, fmt, ap);
    va_end(ap);
}
