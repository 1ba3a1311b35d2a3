#include "tp_acl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp_list.h"

#define MAX_RANGES 64
#define MAX_ENTRY 64

/* Every range as IPv6; an IPv4 one as ::ffff:a.b.c.d/(96 + len). */
typedef struct range {
    unsigned char addr[16];
    int bits;
} range;

struct tp_acl {
    range r[MAX_RANGES];
    size_t n;
};

static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Text address -> 16 bytes; returns 4 or 6 (its family), 0 if none. */
static int to_v6(const char *s, unsigned char out[16])
{
    unsigned char v4[4];

    if (inet_pton(AF_INET, s, v4) == 1) {
        memcpy(out, mapped, 12);
        memcpy(out + 12, v4, 4);
        return 4;
    }
    return inet_pton(AF_INET6, s, out) == 1 ? 6 : 0;
}

static int add_range(void *ctx, const char *s, size_t len, char *err, size_t errlen)
{
    tp_acl *a = ctx;
    char buf[MAX_ENTRY + 1], *slash, *end = NULL;
    long bits;
    int fam;

    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0 || len > MAX_ENTRY || a->n == MAX_RANGES)
        goto bad;
    memcpy(buf, s, len);
    buf[len] = '\0';
    slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    fam = to_v6(buf, a->r[a->n].addr);
    if (!fam)
        goto bad;
    bits = fam == 4 ? 32 : 128;
    if (slash) {
        errno = 0;
        bits = strtol(slash + 1, &end, 10);
        if (errno || end == slash + 1 || *end || bits < 0 || bits > (fam == 4 ? 32 : 128))
            goto bad;
    }
    a->r[a->n].bits = (int)(fam == 4 ? bits + 96 : bits);
    a->n++;
    return 0;
bad:
    snprintf(err, errlen, "TRACKPIXEL_ADMIN_ALLOW: \"%.*s\" is not an address or "
             "address/prefix-length%s", (int)(len > MAX_ENTRY ? MAX_ENTRY : len), s,
             a->n == MAX_RANGES ? " (or more than 64 ranges)" : "");
    return -1;
}

tp_acl *tp_acl_parse(const char *list, char *err, size_t errlen)
{
    tp_acl *a = calloc(1, sizeof(*a));

    if (!a) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!list || !*list)
        return a;
    if (tp_list_each(list, add_range, a, err, errlen) < 0)
        goto fail;
    return a;
fail:
    free(a);
    return NULL;
}

void tp_acl_free(tp_acl *a)
{
    free(a);
}

static int in_range(const range *r, const unsigned char addr[16])
{
    int full = r->bits / 8, rest = r->bits % 8;

    if (memcmp(r->addr, addr, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    return ((r->addr[full] ^ addr[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

int tp_acl_allows(const tp_acl *a, const char *addr)
{
    unsigned char v6[16];
    size_t i;

    if (!a || !addr || !to_v6(addr, v6))
        return 0;
    for (i = 0; i < a->n; i++)
        if (in_range(&a->r[i], v6))
            return 1;
    return 0;
}
