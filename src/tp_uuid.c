#include "tp_uuid.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "tp_hex.h"

void tp_uuid_format(const unsigned char in[16], char out[TP_UUID_LEN + 1])
{
    /* Where each byte's two digits go in 8-4-4-4-12. */
    static const unsigned char at[16] = {
        0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34,
    };
    unsigned char b[16];
    size_t i;

    memcpy(b, in, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);   /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);   /* variant 10 */
    for (i = 0; i < 16; i++) {
        out[at[i]] = tp_hexdigit(b[i] >> 4);
        out[at[i] + 1] = tp_hexdigit(b[i]);
    }
    out[8] = out[13] = out[18] = out[23] = '-';
    out[TP_UUID_LEN] = '\0';
}

int tp_uuid_v4(char out[TP_UUID_LEN + 1])
{
    unsigned char b[16];

    out[0] = '\0';
    if (RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    tp_uuid_format(b, out);
    return 0;
}

int tp_uuid_v4_pooled(tp_uuid_pool *pool, char out[TP_UUID_LEN + 1])
{
    unsigned char *b;

    out[0] = '\0';
    if (pool->left < 16) {
        if (RAND_bytes(pool->bytes, (int)sizeof(pool->bytes)) != 1) {
            pool->left = 0;
            return -1;
        }
        pool->left = sizeof(pool->bytes);
    }
    b = pool->bytes + sizeof(pool->bytes) - pool->left;
    tp_uuid_format(b, out);
    OPENSSL_cleanse(b, 16);       /* used once */
    pool->left -= 16;
    return 0;
}
