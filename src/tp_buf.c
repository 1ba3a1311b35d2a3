#include "tp_buf.h"

#include <stdlib.h>

int tp_buf_grow(tp_buf *b, size_t more)
{
    size_t want, cap;
    char *p;

    if (b->oom)
        return -1;
    if (b->max && more >= b->max - b->len) {     /* len + more + 1 > max */
        b->too_big = 1;
        b->oom = 1;
        return -1;
    }
    if (more > (size_t)-1 / 2 - b->len) {
        b->oom = 1;
        return -1;
    }
    want = b->len + more + 1;
    if (want <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 1024;
    while (cap < want)
        cap *= 2;
    if (b->max && cap > b->max)
        cap = b->max;
    p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void tp_buf_free(tp_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}
