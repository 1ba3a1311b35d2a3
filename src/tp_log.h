/*
 * tp_log - one line per event on stderr, which the web server puts in its
 * error log ("trackpixel[pid]: message").  Only the program's top level
 * (main loop, tp_app, tp_cli) logs; leaf modules hand back messages.
 * Messages must never contain secrets.
 */
#ifndef TP_LOG_H
#define TP_LOG_H

#include <time.h>

void tp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A rate limit for a message that can repeat on every hit: at most one
 * line per interval seconds, saying how many were suppressed. */
typedef struct tp_log_limit {
    time_t interval;
    time_t last;
    unsigned long suppressed;
} tp_log_limit;

void tp_log_limited(tp_log_limit *l, time_t now, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
