/*
 * tp_privacy - what a document keeps of the visitor.
 *
 * - The client address: behind proxies listed in TRACKPIXEL_TRUSTED_PROXIES
 *   (CIDRs), the rightmost address of Forwarded's for= (RFC 7239) or else of
 *   X-Forwarded-For that is not itself trusted; forwarded headers count only
 *   when REMOTE_ADDR is trusted, so a client cannot choose its own address.
 * - What is kept of an address (TRACKPIXEL_IP_MODE): keep, truncate (IPv4 to
 *   /24, IPv6 to /48), hash (HMAC-SHA-256 under a key derived for each UTC
 *   day from the secret in TRACKPIXEL_IP_HASH_KEY_FILE), drop.  The mode
 *   applies to context.source-ip and to every address-carrying header.
 * - Headers never recorded (TRACKPIXEL_DROP_HEADERS), parameters whose values
 *   become "[redacted]" (TRACKPIXEL_REDACT_PARAMS), and what a request with
 *   Sec-GPC: 1 or DNT: 1 gets (TRACKPIXEL_GPC).
 *
 * A leaf: it never logs; errors come back in a caller's buffer.  A
 * tp_privacy is read-only once made, so any thread may use it; a
 * tp_privacy_hit belongs to the one hit being built.
 */
#ifndef TP_PRIVACY_H
#define TP_PRIVACY_H

#include <stddef.h>
#include <time.h>

#include "tp_buf.h"

typedef enum tp_ip_mode {
    TP_IP_KEEP, TP_IP_TRUNCATE, TP_IP_HASH, TP_IP_DROP
} tp_ip_mode;

typedef enum tp_gpc_mode {
    TP_GPC_IGNORE, TP_GPC_ANONYMIZE, TP_GPC_SKIP
} tp_gpc_mode;

/* The settings as text, as the configuration variables give them (NULL is
 * the default of each). */
typedef struct tp_privacy_settings {
    const char *trusted_proxies;    /* TRACKPIXEL_TRUSTED_PROXIES  */
    const char *ip_mode;            /* TRACKPIXEL_IP_MODE          */
    const char *key_file;           /* TRACKPIXEL_IP_HASH_KEY_FILE */
    const char *drop_headers;       /* TRACKPIXEL_DROP_HEADERS     */
    const char *redact_params;      /* TRACKPIXEL_REDACT_PARAMS    */
    const char *gpc;                /* TRACKPIXEL_GPC              */
} tp_privacy_settings;

/* Bounds on the lists (more is a start error). */
#define TP_PRIVACY_MAX_PROXIES 256
#define TP_PRIVACY_MAX_NAMES   64
/* Forwarded chains: only this many of the rightmost entries are looked at. */
#define TP_PRIVACY_MAX_HOPS    64
/* The hash key file: at least this many bytes (after a trailing newline). */
#define TP_PRIVACY_KEY_MIN     32
#define TP_PRIVACY_KEY_MAX     4096

/* "hmac-sha256:" and 64 hex digits. */
#define TP_PRIVACY_HASH_PREFIX "hmac-sha256:"
#define TP_PRIVACY_HASH_LEN    (sizeof(TP_PRIVACY_HASH_PREFIX) - 1 + 64)

/* Large enough for any address this module writes, and its NUL. */
#define TP_PRIVACY_ADDR_MAX    96

typedef struct tp_privacy tp_privacy;

/*
 * Parse the settings (and read the key file when the mode is hash).
 * Returns a new tp_privacy (free with tp_privacy_free), or NULL with one
 * line in err naming the variable at fault.
 */
tp_privacy *tp_privacy_new(const tp_privacy_settings *s, char *err, size_t errlen);

/* Release p; the key is wiped first.  NULL is fine. */
void tp_privacy_free(tp_privacy *p);

tp_ip_mode tp_privacy_ip_mode(const tp_privacy *p);
tp_gpc_mode tp_privacy_gpc(const tp_privacy *p);

/* 1 when the values of Sec-GPC and DNT (NULL: absent) ask not to be
 * tracked: either is "1", spaces around it aside. */
int tp_privacy_signal(const char *sec_gpc, const char *dnt);

/* One hit's view: the effective mode (drop under GPC anonymize) and the
 * day's hash key, derived on first use.  Plain data, nothing to free. */
typedef struct tp_privacy_hit {
    const tp_privacy *p;        /* NULL: everything kept */
    tp_ip_mode mode;
    int gpc;                    /* anonymized because the request asked */
    time_t now;
    int have_key;
    unsigned char key[32];
} tp_privacy_hit;

/* Start a hit at time now (seconds since the epoch, UTC) whose request
 * sent the GPC signal or not (tp_privacy_signal). */
void tp_privacy_hit_init(tp_privacy_hit *h, const tp_privacy *p, int signal, time_t now);

/*
 * The client address before any mode, in its canonical text (inet_ntop)
 * into out: from the forwarded headers (NULL: absent) when remote_addr is
 * trusted and they name an untrusted address; else remote_addr's canonical
 * form.  -1 (out empty) when remote_addr is needed and is not an address.
 */
int tp_privacy_client(const tp_privacy *p, const char *remote_addr, const char *xff,
                      const char *forwarded, char *out, size_t outcap);

/*
 * context.source-ip: tp_privacy_client() with the hit's mode applied.  In
 * keep mode with no forwarded address chosen it is remote_addr as it
 * stands.  Returns remote_addr, or out (capacity at least
 * TP_PRIVACY_ADDR_MAX), or "" when nothing may be kept.
 */
const char *tp_privacy_source_ip(tp_privacy_hit *h, const char *remote_addr, const char *xff,
                                 const char *forwarded, char *out, size_t outcap);

/*
 * The hit's mode applied to one address text (with or without brackets and
 * a port): into out (at least TP_PRIVACY_ADDR_MAX bytes); -1 when text is
 * not an address (or hashing failed).
 */
int tp_privacy_transform(tp_privacy_hit *h, const char *text, size_t len, char *out,
                         size_t outcap);

/* What to do with a header. */
enum { TP_PRIVACY_KEEP, TP_PRIVACY_DROP, TP_PRIVACY_REPLACE };

/*
 * The header name (as recorded, e.g. "X-Forwarded-For"; any case) with
 * value: TP_PRIVACY_KEEP, TP_PRIVACY_DROP (never recorded: listed in
 * TRACKPIXEL_DROP_HEADERS, Cookie and Referer under GPC anonymize, an
 * address-carrying header that the mode drops or that cannot be
 * transformed), or TP_PRIVACY_REPLACE with the new value in out (reset
 * first; the caller owns out and frees it with tp_buf_free).
 */
int tp_privacy_header(tp_privacy_hit *h, const char *name, const char *value, tp_buf *out);

/* 1 when a parameter named name[0..len) is to be recorded as "[redacted]"
 * (TRACKPIXEL_REDACT_PARAMS, case-sensitive). */
int tp_privacy_redacted(const tp_privacy *p, const char *name, size_t len);

/* The i-th name of TRACKPIXEL_REDACT_PARAMS, or NULL past the last. */
const char *tp_privacy_redact_name(const tp_privacy *p, size_t i);

#define TP_PRIVACY_REDACTED "[redacted]"

#endif
