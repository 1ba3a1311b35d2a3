/*
 * tp_time - monotonic-clock arithmetic on struct timespec, for deadlines
 * and durations (never for timestamps: those use CLOCK_REALTIME).
 */
#ifndef TP_TIME_H
#define TP_TIME_H

#include <time.h>

static inline struct timespec tp_mono_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t;
}

/* t + ms (ms >= 0). */
static inline struct timespec tp_ts_add_ms(struct timespec t, long ms)
{
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* a is strictly before b. */
static inline int tp_ts_before(struct timespec a, struct timespec b)
{
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

/* Milliseconds from a to b (negative when b is before a). */
static inline long tp_ts_ms(struct timespec a, struct timespec b)
{
    return (long)((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000);
}

#endif
