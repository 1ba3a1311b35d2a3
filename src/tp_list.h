/*
 * tp_list - the comma lists of the configuration (TRACKPIXEL_ADMIN_ALLOW,
 * TRACKPIXEL_REDIRECT_ALLOW, ...): each item in turn, as it stands (the
 * callback trims and checks it).
 */
#ifndef TP_LIST_H
#define TP_LIST_H

#include <stddef.h>
#include <string.h>

/* fn(ctx, item, len, err, errlen) for each comma-separated item of list;
 * stops at the first -1 and returns it, else 0. */
typedef int (*tp_list_fn)(void *ctx, const char *item, size_t len, char *err, size_t errlen);

static inline int tp_list_each(const char *list, tp_list_fn fn, void *ctx, char *err,
                               size_t errlen)
{
    const char *s = list, *comma;

    for (;;) {
        comma = strchr(s, ',');
        if (fn(ctx, s, comma ? (size_t)(comma - s) : strlen(s), err, errlen) < 0)
            return -1;
        if (!comma)
            return 0;
        s = comma + 1;
    }
}

#endif
