#include "tp_output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "tp_json.h"

struct tp_output {
    int fd;
    char *buf;        /* reused line buffer */
    size_t cap;
};

tp_output *tp_output_open(const char *path, char *err, size_t errlen)
{
    tp_output *out = calloc(1, sizeof(*out));

    if (!out) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    out->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (out->fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        free(out);
        return NULL;
    }
    return out;
}

/* A string literal and its length. */
#define LIT(s) s, sizeof(s) - 1

long tp_output_action(const char *index, const char *type, const char *id,
                      char *buf, size_t cap)
{
    tp_buf b = { 0 };
    long rc = -1;

    tp_buf_put(&b, LIT("{\"create\":{\"_index\":"));
    tp_json_string(&b, index, strlen(index));
    if (type) {
        tp_buf_put(&b, LIT(",\"_type\":"));
        tp_json_string(&b, type, strlen(type));
    }
    tp_buf_put(&b, LIT(",\"_id\":"));
    tp_json_string(&b, id, strlen(id));
    tp_buf_put(&b, LIT("}}"));
    if (!b.oom && b.len + 1 <= cap) {
        memcpy(buf, b.data, b.len + 1);
        rc = (long)b.len;
    }
    tp_buf_free(&b);
    return rc;
}

int tp_output_append(tp_output *out, const char *index, const char *type,
                     const char *id, const char *doc, size_t doc_len,
                     char *err, size_t errlen)
{
    char action[512];
    long alen = tp_output_action(index, type, id, action, sizeof(action));
    size_t need;
    ssize_t w;

    if (alen < 0) {
        snprintf(err, errlen, "cannot build the _bulk action line");
        return -1;
    }
    need = (size_t)alen + 1 + doc_len + 1;
    if (need > out->cap) {
        char *nb = realloc(out->buf, need);
        if (!nb) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        out->buf = nb;
        out->cap = need;
    }
    memcpy(out->buf, action, (size_t)alen);
    out->buf[alen] = '\n';
    memcpy(out->buf + alen + 1, doc, doc_len);
    out->buf[need - 1] = '\n';

    /* One write: O_APPEND makes it atomic against other workers' appends. */
    do {
        w = write(out->fd, out->buf, need);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
        snprintf(err, errlen, "write: %s", strerror(errno));
        return -1;
    }
    if ((size_t)w != need) {
        snprintf(err, errlen, "short write (%zd of %zu bytes): disk full?", w, need);
        return -1;
    }
    return 0;
}

void tp_output_close(tp_output *out)
{
    if (!out)
        return;
    if (out->fd >= 0)
        close(out->fd);
    free(out->buf);
    free(out);
}
