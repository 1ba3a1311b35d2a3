#include "tp_output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tp_buf.h"
#include "tp_spool.h"

struct tp_output {
    int fd;
    tp_buf pair;      /* reused for each document */
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

int tp_output_append(tp_output *out, const char *index, const char *type,
                     const char *id, const char *doc, size_t doc_len,
                     char *err, size_t errlen)
{
    tp_buf_reset(&out->pair);
    if (tp_spool_bulk_pair(&out->pair, index, type, id, doc, doc_len) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return tp_spool_append_whole(out->fd, out->pair.data, out->pair.len, err, errlen);
}

void tp_output_close(tp_output *out)
{
    if (!out)
        return;
    if (out->fd >= 0)
        close(out->fd);
    tp_buf_free(&out->pair);
    free(out);
}
