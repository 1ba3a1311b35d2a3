#include "tp_uuid.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "tp_hex.h"

void tp_uuid_format(const unsigned char in[16], char out[TP_UUID_LEN + 1])
{
    unsigned char b[16];
    size_t i, o = 0;

    for (i = 0; i < 16; i++)
        b[i] = in[i];
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);   /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);   /* variant 10 */
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = tp_hexdigit(b[i] >> 4);
        out[o++] = tp_hexdigit(b[i]);
    }
    out[o] = '\0';
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
