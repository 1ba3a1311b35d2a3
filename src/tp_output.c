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

/* One write under the file's lock; a short one is truncated back to the
 * size before it (read under the same lock). */
static int write_locked(int fd, const char *data, size_t len, char *err, size_t errlen)
{
    struct stat sb;
    ssize_t w = -1;
    int rc = -1;

    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "flock: %s", strerror(errno));
            return -1;
        }
    }
    if (fstat(fd, &sb) < 0) {
        snprintf(err, errlen, "fstat: %s", strerror(errno));
        goto done;
    }
    do {
        w = write(fd, data, len);
    } while (w < 0 && errno == EINTR);
    if (w < 0)
        snprintf(err, errlen, "write: %s", strerror(errno));
    else if ((size_t)w != len && ftruncate(fd, sb.st_size) < 0)
        snprintf(err, errlen, "short write (%zd of %zu bytes), not taken back: %s",
                 w, len, strerror(errno));
    else if ((size_t)w != len)
        snprintf(err, errlen, "short write (%zd of %zu bytes): disk full?", w, len);
    else
        rc = 0;
done:
    flock(fd, LOCK_UN);
    return rc;
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
    return write_locked(out->fd, out->pair.data, out->pair.len, err, errlen);
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
