/*
 * tp_uuid - random version-4 UUIDs (RFC 4122) from OpenSSL's RAND_bytes.
 */
#ifndef TP_UUID_H
#define TP_UUID_H

#include <stddef.h>

#define TP_UUID_LEN 36   /* "0f8fad5b-d9cb-469f-a165-70867728950e" */

/* Write a fresh UUID and a NUL into out.  Returns 0, or -1 when the random
 * generator fails (out then holds ""). */
int tp_uuid_v4(char out[TP_UUID_LEN + 1]);

/*
 * The same from a pool refilled with one RAND_bytes call per 32 UUIDs (a
 * call per hit costs more than the rest of the UUID).  A zeroed pool is empty.
 * The caller owns the pool; one thread uses it.  A process that forks must
 * not share a filled pool with its child (trackpixel never forks).
 */
#define TP_UUID_POOL_BYTES 512

typedef struct tp_uuid_pool {
    unsigned char bytes[TP_UUID_POOL_BYTES];
    size_t left;                  /* unused bytes at the end of bytes */
} tp_uuid_pool;

int tp_uuid_v4_pooled(tp_uuid_pool *pool, char out[TP_UUID_LEN + 1]);

/* Format 16 bytes as a version-4 UUID (sets the version and variant bits). */
void tp_uuid_format(const unsigned char bytes[16], char out[TP_UUID_LEN + 1]);

#endif
