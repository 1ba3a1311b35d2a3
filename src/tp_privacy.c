#include "tp_privacy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tp_hex.h"

/* An address: family 4 (b[0..4)) or 6 (b[0..16)). */
typedef struct addr {
    int family;
    unsigned char b[16];
} addr;

typedef struct cidr {
    addr a;
    int bits;
} cidr;

/* A comma list of names, split in place in one copy of the setting. */
typedef struct names {
    char *copy;
    const char *name[TP_PRIVACY_MAX_NAMES];
    size_t n;
} names;

struct tp_privacy {
    cidr trusted[TP_PRIVACY_MAX_PROXIES];
    size_t ntrusted;
    tp_ip_mode mode;
    tp_gpc_mode gpc;
    unsigned char key[TP_PRIVACY_KEY_MAX];
    size_t keylen;
    names drop, redact;
};

/* The headers that carry a client's address: a list of addresses like
 * X-Forwarded-For's, or RFC 7239's Forwarded. */
static const char *const address_headers[] = {
    "X-Forwarded-For", "X-Real-Ip", "Cf-Connecting-Ip", "True-Client-Ip",
    "X-Client-Ip", "Fastly-Client-Ip",
};

/* ------------------------------------------------------------ addresses */

/* IPv4-mapped IPv6 (::ffff:a.b.c.d) is the IPv4 address: dual-stack
 * servers show IPv4 clients that way. */
static void unmap(addr *a)
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

    if (a->family == 6 && memcmp(a->b, mapped, 12) == 0) {
        memmove(a->b, a->b + 12, 4);
        memset(a->b + 4, 0, 12);
        a->family = 4;
    }
}

/* A port after an address: 0 to 65535, or RFC 7239's obfuscated "_x". */
static int valid_port(const char *s, size_t n)
{
    size_t i;
    long port = 0;

    if (n == 0)
        return 0;
    if (s[0] == '_') {
        for (i = 1; i < n; i++)
            if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                  (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
                return 0;
        return n > 1;
    }
    if (n > 5)
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        port = port * 10 + (s[i] - '0');
    }
    return port <= 65535;
}

/*
 * s[0..n) as an address: "1.2.3.4", "1.2.3.4:80", "2001:db8::1",
 * "[2001:db8::1]", "[2001:db8::1]:80".  0, or -1 when it is none of these.
 */
static int parse_addr(const char *s, size_t n, addr *a)
{
    char tmp[64];
    const char *colon;

    if (n == 0 || n >= sizeof(tmp))
        return -1;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        size_t rest;
        if (!close)
            return -1;
        rest = n - (size_t)(close + 1 - s);
        if (rest && (close[1] != ':' || !valid_port(close + 2, rest - 1)))
            return -1;
        memcpy(tmp, s + 1, (size_t)(close - s - 1));
        tmp[close - s - 1] = '\0';
        a->family = 6;
        memset(a->b, 0, sizeof(a->b));
        if (inet_pton(AF_INET6, tmp, a->b) != 1)
            return -1;
        unmap(a);
        return 0;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    colon = strchr(tmp, ':');
    memset(a->b, 0, sizeof(a->b));
    if (colon && !strchr(colon + 1, ':')) {          /* IPv4 with a port */
        if (!valid_port(colon + 1, strlen(colon + 1)))
            return -1;
        tmp[colon - tmp] = '\0';
        colon = NULL;
    }
    a->family = colon ? 6 : 4;
    if (inet_pton(colon ? AF_INET6 : AF_INET, tmp, a->b) != 1)
        return -1;
    unmap(a);
    return 0;
}

static void addr_text(const addr *a, char *out, size_t outcap)
{
    if (!inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->b, out, (socklen_t)outcap))
        snprintf(out, outcap, "%s", "");
}

/* Zero every bit of a past the first bits. */
static void mask_bits(addr *a, int bits)
{
    int total = a->family == 4 ? 32 : 128;

    for (int i = bits; i < total; i++)
        a->b[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
}

static int in_cidr(const addr *a, const cidr *c)
{
    addr m = *a;

    if (a->family != c->a.family)
        return 0;
    mask_bits(&m, c->bits);
    return memcmp(m.b, c->a.b, 16) == 0;
}

static int trusted(const tp_privacy *p, const addr *a)
{
    for (size_t i = 0; i < p->ntrusted; i++)
        if (in_cidr(a, &p->trusted[i]))
            return 1;
    return 0;
}

/* "10.0.0.0/8", "2001:db8::/32", or an address alone (all its bits).  Host
 * bits past the prefix are ignored. */
static int parse_cidr(const char *s, size_t n, cidr *c)
{
    const char *slash = memchr(s, '/', n), *colon;
    size_t alen = slash ? (size_t)(slash - s) : n;
    int mapped, bits = 0;

    /* No brackets, no port: "1.2.3.4:80" is no network. */
    colon = memchr(s, ':', alen);
    if (alen == 0 || s[0] == '[' || (colon && !memchr(colon + 1, ':', alen - (size_t)(colon + 1 - s))) ||
        parse_addr(s, alen, &c->a) < 0)
        return -1;
    mapped = colon && c->a.family == 4;       /* ::ffff:a.b.c.d, made IPv4 */
    if (!slash) {
        c->bits = c->a.family == 4 ? 32 : 128;
        return 0;
    }
    if (n - alen - 1 == 0 || n - alen - 1 > 3)
        return -1;
    for (size_t i = alen + 1; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        bits = bits * 10 + (s[i] - '0');
    }
    if (mapped && bits < 96)
        return -1;
    if (mapped)
        bits -= 96;
    if (bits > (c->a.family == 4 ? 32 : 128))
        return -1;
    c->bits = bits;
    mask_bits(&c->a, c->bits);
    return 0;
}

/* ------------------------------------------------------------ lists */

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* The next comma-separated item of *s, spaces around it trimmed: its start
 * and length; *s moves past it.  0 at the end. */
static int next_item(const char **s, const char **item, size_t *len)
{
    const char *p = *s, *end;

    if (!p || !*p)
        return 0;
    end = strchr(p, ',');
    if (!end)
        end = p + strlen(p);
    *s = *end ? end + 1 : end;
    while (p < end && is_space(*p))
        p++;
    while (end > p && is_space(end[-1]))
        end--;
    *item = p;
    *len = (size_t)(end - p);
    return 1;
}

static int parse_names(const char *var, const char *val, names *ns, char *err, size_t errlen)
{
    const char *item, *s;
    size_t len, o = 0;

    if (!val || !*val)
        return 0;
    ns->copy = malloc(strlen(val) + 1);
    if (!ns->copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (s = val; next_item(&s, &item, &len);) {
        if (len == 0)
            continue;
        if (ns->n == TP_PRIVACY_MAX_NAMES) {
            snprintf(err, errlen, "%s: more than %d names", var, TP_PRIVACY_MAX_NAMES);
            return -1;
        }
        memcpy(ns->copy + o, item, len);
        ns->copy[o + len] = '\0';
        ns->name[ns->n++] = ns->copy + o;
        o += len + 1;
    }
    return 0;
}

static int parse_proxies(tp_privacy *p, const char *val, char *err, size_t errlen)
{
    const char *item, *s;
    size_t len;

    for (s = val; next_item(&s, &item, &len);) {
        if (len == 0)
            continue;
        if (p->ntrusted == TP_PRIVACY_MAX_PROXIES) {
            snprintf(err, errlen, "TRACKPIXEL_TRUSTED_PROXIES: more than %d entries",
                     TP_PRIVACY_MAX_PROXIES);
            return -1;
        }
        if (parse_cidr(item, len, &p->trusted[p->ntrusted]) < 0) {
            snprintf(err, errlen, "TRACKPIXEL_TRUSTED_PROXIES: \"%.*s\" is not an IPv4 "
                     "or IPv6 address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)",
                     (int)(len > 64 ? 64 : len), item);
            return -1;
        }
        p->ntrusted++;
    }
    return 0;
}

/* ------------------------------------------------------------ the key */

/* The secret from path: the file's bytes, a trailing newline aside. */
static int read_key(tp_privacy *p, const char *path, char *err, size_t errlen)
{
    int fd = -1, rc = -1;
    ssize_t n = 0;
    size_t len = 0;

    if (!path || !*path) {
        snprintf(err, errlen, "TRACKPIXEL_IP_HASH_KEY_FILE: not set, and TRACKPIXEL_IP_MODE "
                 "is hash (the file holds the secret, at least %d bytes)", TP_PRIVACY_KEY_MIN);
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "TRACKPIXEL_IP_HASH_KEY_FILE: cannot open %s: %s", path,
                 strerror(errno));
        goto fail;
    }
    while (len < sizeof(p->key) &&
           (n = read(fd, p->key + len, sizeof(p->key) - len)) > 0)
        len += (size_t)n;
    if (n < 0 || (len == sizeof(p->key) && read(fd, &(char){ 0 }, 1) != 0)) {
        snprintf(err, errlen, "TRACKPIXEL_IP_HASH_KEY_FILE: %s: %s", path,
                 n < 0 ? strerror(errno) : "larger than 4096 bytes");
        goto fail;
    }
    while (len > 0 && (p->key[len - 1] == '\n' || p->key[len - 1] == '\r'))
        len--;
    if (len < TP_PRIVACY_KEY_MIN) {
        snprintf(err, errlen, "TRACKPIXEL_IP_HASH_KEY_FILE: %s holds %zu bytes, at least "
                 "%d are needed", path, len, TP_PRIVACY_KEY_MIN);
        goto fail;
    }
    p->keylen = len;
    rc = 0;
fail:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* The day's key: HMAC-SHA-256(secret, "trackpixel ip-hash YYYY-MM-DD"), the
 * UTC day of h->now.  Every worker sharing the secret derives the same. */
static int day_key(tp_privacy_hit *h)
{
    struct tm tm;
    char label[64];
    unsigned int len = 0;
    int n;

    if (h->have_key)
        return 0;
    if (!gmtime_r(&h->now, &tm))
        return -1;
    n = snprintf(label, sizeof(label), "trackpixel ip-hash %04d-%02d-%02d",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    if (n < 0 || (size_t)n >= sizeof(label))
        return -1;
    if (!HMAC(EVP_sha256(), h->p->key, (int)h->p->keylen, (const unsigned char *)label,
              (size_t)n, h->key, &len) || len != sizeof(h->key))
        return -1;
    h->have_key = 1;
    return 0;
}

/* ------------------------------------------------------------ setup */

static int parse_mode(const char *var, const char *val, const char *const *words, size_t n,
                      int *out, char *err, size_t errlen)
{
    char list[64];
    size_t o = 0;

    if (!val || !*val)
        val = words[0];
    for (size_t i = 0; i < n; i++) {
        if (strcmp(val, words[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    list[0] = '\0';
    for (size_t i = 0; i < n && o < sizeof(list); i++) {
        int w = snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", words[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    snprintf(err, errlen, "%s: \"%.32s\" is not one of %s", var, val, list);
    return -1;
}

tp_privacy *tp_privacy_new(const tp_privacy_settings *s, char *err, size_t errlen)
{
    static const char *const ip_modes[] = { "keep", "truncate", "hash", "drop" };
    static const char *const gpc_modes[] = { "ignore", "anonymize", "skip" };
    tp_privacy *p = calloc(1, sizeof(*p));
    int mode = 0, gpc = 0;

    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (parse_proxies(p, s->trusted_proxies, err, errlen) < 0 ||
        parse_mode("TRACKPIXEL_IP_MODE", s->ip_mode, ip_modes, 4, &mode, err, errlen) < 0 ||
        parse_mode("TRACKPIXEL_GPC", s->gpc, gpc_modes, 3, &gpc, err, errlen) < 0 ||
        parse_names("TRACKPIXEL_DROP_HEADERS", s->drop_headers ? s->drop_headers : "Cookie",
                    &p->drop, err, errlen) < 0 ||
        parse_names("TRACKPIXEL_REDACT_PARAMS", s->redact_params, &p->redact, err, errlen) < 0)
        goto fail;
    p->mode = (tp_ip_mode)mode;
    p->gpc = (tp_gpc_mode)gpc;
    if (p->mode == TP_IP_HASH && read_key(p, s->key_file, err, errlen) < 0)
        goto fail;
    return p;
fail:
    tp_privacy_free(p);
    return NULL;
}

void tp_privacy_free(tp_privacy *p)
{
    if (!p)
        return;
    OPENSSL_cleanse(p->key, sizeof(p->key));
    free(p->drop.copy);
    free(p->redact.copy);
    free(p);
}

tp_ip_mode tp_privacy_ip_mode(const tp_privacy *p)
{
    return p ? p->mode : TP_IP_KEEP;
}

tp_gpc_mode tp_privacy_gpc(const tp_privacy *p)
{
    return p ? p->gpc : TP_GPC_IGNORE;
}

static int is_one(const char *v)
{
    if (!v)
        return 0;
    while (is_space(*v))
        v++;
    if (*v++ != '1')
        return 0;
    while (is_space(*v))
        v++;
    return *v == '\0';
}

int tp_privacy_signal(const char *sec_gpc, const char *dnt)
{
    return is_one(sec_gpc) || is_one(dnt);
}

void tp_privacy_hit_init(tp_privacy_hit *h, const tp_privacy *p, int signal, time_t now)
{
    memset(h, 0, sizeof(*h));
    h->p = p;
    h->now = now;
    h->mode = p ? p->mode : TP_IP_KEEP;
    if (p && signal && p->gpc == TP_GPC_ANONYMIZE) {
        h->mode = TP_IP_DROP;
        h->gpc = 1;
    }
}

/* ------------------------------------------------------------ modes */

/* a as the hit's mode keeps it, into out (TP_PRIVACY_ADDR_MAX bytes). */
static int apply_mode(tp_privacy_hit *h, addr a, char *out, size_t outcap)
{
    char text[INET6_ADDRSTRLEN];
    unsigned char md[32];
    unsigned int mdlen = 0;
    size_t plen = sizeof(TP_PRIVACY_HASH_PREFIX) - 1;

    if (outcap < TP_PRIVACY_ADDR_MAX)
        return -1;
    switch (h->mode) {
    case TP_IP_DROP:
        out[0] = '\0';
        return 0;
    case TP_IP_TRUNCATE:
        mask_bits(&a, a.family == 4 ? 24 : 48);
        /* fall through */
    case TP_IP_KEEP:
        addr_text(&a, out, outcap);
        return 0;
    case TP_IP_HASH:
        addr_text(&a, text, sizeof(text));
        if (day_key(h) < 0 ||
            !HMAC(EVP_sha256(), h->key, (int)sizeof(h->key), (const unsigned char *)text,
                  strlen(text), md, &mdlen) || mdlen != sizeof(md))
            return -1;
        memcpy(out, TP_PRIVACY_HASH_PREFIX, plen);
        tp_hex_encode(md, sizeof(md), out + plen);
        return 0;
    }
    return -1;
}

int tp_privacy_transform(tp_privacy_hit *h, const char *text, size_t len, char *out,
                         size_t outcap)
{
    addr a;

    if (outcap)
        out[0] = '\0';
    if (parse_addr(text, len, &a) < 0)
        return -1;
    return apply_mode(h, a, out, outcap);
}

/* ------------------------------------------------------------ Forwarded */

/* RFC 7230 tchar. */
static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* One pair of a Forwarded header, its value unquoted into val. */
typedef struct fpair {
    size_t element;             /* which comma-separated element */
    const char *name;
    size_t nlen;
    char val[256];
    size_t vlen;
    int bad;                    /* not token=value (or a value too long) */
} fpair;

typedef int (*fpair_fn)(void *ctx, const fpair *fp);

/* A quoted-string at *p (past its opening quote) into fp->val. */
static void read_quoted(const char **p, fpair *fp)
{
    const char *s = *p;

    while (*s && *s != '"') {
        if (*s == '\\' && s[1])
            s++;
        if (fp->vlen + 1 < sizeof(fp->val))
            fp->val[fp->vlen++] = *s;
        else
            fp->bad = 1;
        s++;
    }
    if (*s != '"')
        fp->bad = 1;
    else
        s++;
    *p = s;
}

/* Each pair of a Forwarded value (RFC 7239 section 4), in order, to fn;
 * stops when fn returns nonzero and returns that. */
static int forwarded_each(const char *v, fpair_fn fn, void *ctx)
{
    const char *p = v;
    size_t element = 0;
    int r;

    while (p && *p) {
        fpair fp = { .element = element };
        while (is_space(*p))
            p++;
        fp.name = p;
        while (is_tchar((unsigned char)*p))
            p++;
        fp.nlen = (size_t)(p - fp.name);
        if (fp.nlen == 0 || *p != '=') {
            fp.bad = 1;
        } else if (*++p == '"') {
            p++;
            read_quoted(&p, &fp);
        } else {
            const char *start = p;
            while (is_tchar((unsigned char)*p) || *p == ':' || *p == '[' || *p == ']')
                p++;
            fp.vlen = (size_t)(p - start);
            if (fp.vlen == 0 || fp.vlen >= sizeof(fp.val))
                fp.bad = 1;
            else
                memcpy(fp.val, start, fp.vlen);
        }
        while (*p && *p != ';' && *p != ',') {      /* what is left is junk */
            if (!is_space(*p))
                fp.bad = 1;
            p++;
        }
        if ((r = fn(ctx, &fp)) != 0)
            return r;
        if (*p == ',')
            element++;
        if (*p)
            p++;
    }
    return 0;
}

/* ------------------------------------------------------------ the client */

/* The last TP_PRIVACY_MAX_HOPS entries of a forwarded chain. */
typedef struct hops {
    addr a[TP_PRIVACY_MAX_HOPS];
    int ok[TP_PRIVACY_MAX_HOPS];
    size_t n;                   /* entries seen in all */
} hops;

static void hop(hops *hs, const char *s, size_t len)
{
    size_t i = hs->n++ % TP_PRIVACY_MAX_HOPS;

    hs->ok[i] = parse_addr(s, len, &hs->a[i]) == 0;
}

static int forwarded_for(void *ctx, const fpair *fp)
{
    if (!fp->bad && fp->nlen == 3 && strncasecmp(fp->name, "for", 3) == 0)
        hop(ctx, fp->val, fp->vlen);
    return 0;
}

/* The rightmost untrusted address of the chain into *a: 0, or -1. */
static int rightmost_untrusted(const tp_privacy *p, const hops *hs, addr *a)
{
    size_t k = hs->n < TP_PRIVACY_MAX_HOPS ? hs->n : TP_PRIVACY_MAX_HOPS;

    for (size_t j = 0; j < k; j++) {
        size_t i = (hs->n - 1 - j) % TP_PRIVACY_MAX_HOPS;
        if (hs->ok[i] && !trusted(p, &hs->a[i])) {
            *a = hs->a[i];
            return 0;
        }
    }
    return -1;
}

/* The client named by the forwarded headers: Forwarded when it has a for=,
 * else X-Forwarded-For.  0 with *a, or -1. */
static int forwarded_client(const tp_privacy *p, const char *xff, const char *fwd, addr *a)
{
    hops hs;
    const char *item, *s;
    size_t len;

    hs.n = 0;
    if (fwd)
        forwarded_each(fwd, forwarded_for, &hs);
    if (hs.n == 0)
        for (s = xff; next_item(&s, &item, &len);)
            hop(&hs, item, len);
    return rightmost_untrusted(p, &hs, a);
}

/* The client address (see tp_privacy_client); *from_header says where from. */
static int client_addr(const tp_privacy *p, const char *remote, const char *xff,
                       const char *fwd, addr *a, int *from_header)
{
    int ok = remote && parse_addr(remote, strlen(remote), a) == 0;

    *from_header = 0;
    if (ok && p && p->ntrusted && trusted(p, a) && forwarded_client(p, xff, fwd, a) == 0)
        *from_header = 1;
    return ok || *from_header ? 0 : -1;
}

int tp_privacy_client(const tp_privacy *p, const char *remote_addr, const char *xff,
                      const char *forwarded, char *out, size_t outcap)
{
    addr a;
    int from_header;

    if (outcap)
        out[0] = '\0';
    if (client_addr(p, remote_addr, xff, forwarded, &a, &from_header) < 0)
        return -1;
    addr_text(&a, out, outcap);
    return 0;
}

const char *tp_privacy_source_ip(tp_privacy_hit *h, const char *remote_addr, const char *xff,
                                 const char *forwarded, char *out, size_t outcap)
{
    addr a;
    int from_header = 0;

    if (!remote_addr)
        remote_addr = "";
    if (h->mode == TP_IP_KEEP && (!h->p || h->p->ntrusted == 0))
        return remote_addr;
    if (client_addr(h->p, remote_addr, xff, forwarded, &a, &from_header) < 0)
        return h->mode == TP_IP_KEEP ? remote_addr : "";
    if (h->mode == TP_IP_KEEP && !from_header)
        return remote_addr;
    if (apply_mode(h, a, out, outcap) < 0)
        return "";
    return out;
}

/* ------------------------------------------------------------ headers */

static int listed(const names *ns, const char *name)
{
    for (size_t i = 0; i < ns->n; i++)
        if (strcasecmp(ns->name[i], name) == 0)
            return 1;
    return 0;
}

/* X-Forwarded-For and the one-address headers: each address as the mode
 * keeps it, "unknown" as it is; -1 for anything else. */
static int rewrite_list(tp_privacy_hit *h, const char *value, tp_buf *out)
{
    const char *item, *s;
    size_t len;
    char t[TP_PRIVACY_ADDR_MAX];
    int first = 1;

    for (s = value; next_item(&s, &item, &len); first = 0) {
        if (!first)
            tp_buf_put(out, TP_LIT(", "));
        if (len == 7 && strncasecmp(item, "unknown", 7) == 0) {
            tp_buf_put(out, TP_LIT("unknown"));
            continue;
        }
        if (tp_privacy_transform(h, item, len, t, sizeof(t)) < 0)
            return -1;
        tp_buf_put(out, t, strlen(t));
    }
    return out->oom ? -1 : 0;
}

typedef struct fwd_ctx {
    tp_privacy_hit *h;
    tp_buf *out;
    size_t element;
    int any;                    /* a pair written in this element */
} fwd_ctx;

static void put_value(tp_buf *out, const char *v, size_t n)
{
    size_t i;

    for (i = 0; i < n && is_tchar((unsigned char)v[i]); i++)
        ;
    if (i == n && n > 0) {
        tp_buf_put(out, v, n);
        return;
    }
    tp_buf_put(out, TP_LIT("\""));
    for (i = 0; i < n; i++) {
        if (v[i] == '"' || v[i] == '\\')
            tp_buf_put(out, TP_LIT("\\"));
        tp_buf_put(out, v + i, 1);
    }
    tp_buf_put(out, TP_LIT("\""));
}

/* A node of for= or by=: unknown and obfuscated names ("_x") as they are,
 * an address as the mode keeps it (IPv6 in brackets). */
static int put_node(fwd_ctx *c, const fpair *fp)
{
    char t[TP_PRIVACY_ADDR_MAX + 2];
    addr a;

    if ((fp->vlen == 7 && strncasecmp(fp->val, "unknown", 7) == 0) ||
        (fp->vlen > 1 && fp->val[0] == '_' && !memchr(fp->val, ':', fp->vlen))) {
        put_value(c->out, fp->val, fp->vlen);
        return 0;
    }
    if (parse_addr(fp->val, fp->vlen, &a) < 0 || apply_mode(c->h, a, t + 1, sizeof(t) - 2) < 0)
        return -1;
    if (a.family == 6 && c->h->mode != TP_IP_HASH) {
        size_t n = strlen(t + 1);
        t[0] = '[';
        t[n + 1] = ']';
        put_value(c->out, t, n + 2);
    } else {
        put_value(c->out, t + 1, strlen(t + 1));
    }
    return 0;
}

/* One pair of Forwarded into the new value: for= and by= transformed,
 * host= and proto= as they are, other parameters left out. */
static int forwarded_pair(void *ctx, const fpair *fp)
{
    fwd_ctx *c = ctx;
    int node = (fp->nlen == 3 && strncasecmp(fp->name, "for", 3) == 0) ||
               (fp->nlen == 2 && strncasecmp(fp->name, "by", 2) == 0);
    int plain = (fp->nlen == 4 && strncasecmp(fp->name, "host", 4) == 0) ||
                (fp->nlen == 5 && strncasecmp(fp->name, "proto", 5) == 0);

    if (fp->bad)
        return -1;
    if (!node && !plain)
        return 0;
    if (fp->element != c->element || c->any)
        tp_buf_put(c->out, fp->element != c->element ? ", " : ";",
                   fp->element != c->element ? 2 : 1);
    c->element = fp->element;
    c->any = 1;
    tp_buf_put(c->out, fp->name, fp->nlen);
    tp_buf_put(c->out, TP_LIT("="));
    if (node)
        return put_node(c, fp);
    put_value(c->out, fp->val, fp->vlen);
    return 0;
}

int tp_privacy_header(tp_privacy_hit *h, const char *name, const char *value, tp_buf *out)
{
    const tp_privacy *p = h->p;
    int forwarded, list = 0;

    if (!p)
        return TP_PRIVACY_KEEP;
    if (listed(&p->drop, name) ||
        (h->gpc && (strcasecmp(name, "Cookie") == 0 || strcasecmp(name, "Referer") == 0)))
        return TP_PRIVACY_DROP;
    if (h->mode == TP_IP_KEEP)
        return TP_PRIVACY_KEEP;
    forwarded = strcasecmp(name, "Forwarded") == 0;
    for (size_t i = 0; !forwarded && !list && i < sizeof(address_headers) / sizeof(address_headers[0]); i++)
        list = strcasecmp(name, address_headers[i]) == 0;
    if (!forwarded && !list)
        return TP_PRIVACY_KEEP;
    if (h->mode == TP_IP_DROP)
        return TP_PRIVACY_DROP;
    tp_buf_reset(out);
    if (list) {
        if (rewrite_list(h, value, out) < 0)
            return TP_PRIVACY_DROP;
    } else {
        fwd_ctx c = { .h = h, .out = out };
        if (forwarded_each(value, forwarded_pair, &c) != 0 || out->oom)
            return TP_PRIVACY_DROP;
    }
    return out->len ? TP_PRIVACY_REPLACE : TP_PRIVACY_DROP;
}

/* ------------------------------------------------------------ parameters */

int tp_privacy_redacted(const tp_privacy *p, const char *name, size_t len)
{
    if (!p)
        return 0;
    for (size_t i = 0; i < p->redact.n; i++)
        if (strlen(p->redact.name[i]) == len && memcmp(p->redact.name[i], name, len) == 0)
            return 1;
    return 0;
}

const char *tp_privacy_redact_name(const tp_privacy *p, size_t i)
{
    return p && i < p->redact.n ? p->redact.name[i] : NULL;
}
