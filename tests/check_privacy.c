/* tp_privacy: tables of addresses, chains, modes, headers and settings ->
 * the exact results. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tp_check.h"
#include "tp_config.h"
#include "tp_privacy.h"

/* The secret of the hash tests (32 bytes; its file ends with a newline). */
#define KEY "0123456789abcdef0123456789abcdef"
/* 2025-11-26T19:40:00Z, the day's last second, the next day's first. */
#define T_DAY   1764186000
#define T_LAST  1764201599
#define T_NEXT  1764201600
/* HMAC-SHA-256(HMAC-SHA-256(KEY, "trackpixel ip-hash 2025-11-26"), address),
 * computed with Python's hmac module. */
#define H_203_26 "hmac-sha256:9fe4eeda9916f1f0a5e9f9d48831b831e85a951e6f8d20ad0e3a6066be67e74a"
#define H_203_27 "hmac-sha256:4707c1f5d9962a30fd885539a546ca56b6b69b8befdb199cb5b6fa05bc8c3db6"
#define H_V6_26  "hmac-sha256:ce01e825a5851769c7696e93ab291bfc9e54c1d36a58ff1817ea4089105e7ae4"
#define H_198_26 "hmac-sha256:2522ab218ad396484d354c7913b7304b812e96b507a4fb0ac73380f2eac2060c"

/* A file holding text; its path in path (at least 64 bytes). */
static void temp_file(const char *text, char *path)
{
    int fd;

    snprintf(path, 64, "/tmp/tp-check-privacy-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
}

static tp_privacy *make(const char *proxies, const char *mode, const char *key_file,
                        const char *drop, const char *redact, const char *gpc)
{
    tp_privacy_settings s = { proxies, mode, key_file, drop, redact, gpc };
    char err[256] = "";
    tp_privacy *p = tp_privacy_new(&s, err, sizeof(err));

    ck_assert_msg(p != NULL, "tp_privacy_new: %s", err);
    return p;
}

/* ------------------------------------------------------------ the client */

#define TRUSTED "10.0.0.0/8, 2001:db8:ffff::/48 ,127.0.0.1"

static char chain_2k[2200], chain_trusted[2200], chain_deep[2200];

typedef struct client_row {
    const char *name, *remote, *xff, *fwd;
    const char *want;           /* NULL: -1 */
} client_row;

static const client_row client_rows[] = {
    { "untrusted REMOTE_ADDR: headers ignored", "203.0.113.9", "198.51.100.1", "for=192.0.2.1", "203.0.113.9" },
    { "trusted REMOTE_ADDR, no headers", "10.0.0.1", NULL, NULL, "10.0.0.1" },
    { "trusted: X-Forwarded-For", "10.0.0.1", "198.51.100.1", NULL, "198.51.100.1" },
    { "trusted: rightmost untrusted", "10.0.0.1", "198.51.100.1, 10.0.0.2", NULL, "198.51.100.1" },
    { "spoofed left part ignored", "10.0.0.1", "1.1.1.1, 198.51.100.1", NULL, "198.51.100.1" },
    { "malformed entries skipped", "10.0.0.1", "unknown, 300.1.1.1, [::1]", NULL, "::1" },
    { "malformed right of the client", "10.0.0.1", "198.51.100.7, unknown, 300.1.1.1, x y", NULL, "198.51.100.7" },
    { "all trusted: REMOTE_ADDR", "10.0.0.1", "10.0.0.3, 10.0.0.2", NULL, "10.0.0.1" },
    { "empty X-Forwarded-For", "10.0.0.1", "", NULL, "10.0.0.1" },
    { "port and brackets", "10.0.0.1", "[2001:db8::1]:443, 198.51.100.1:4711", NULL, "198.51.100.1" },
    { "bracketed IPv6 with a port", "10.0.0.1", "[2001:DB8:0::1]:443", NULL, "2001:db8::1" },
    { "IPv6 proxy", "2001:db8:ffff::5", "2001:db8::1", NULL, "2001:db8::1" },
    { "IPv6 outside the trusted /48", "2001:db8:fffe::5", "2001:db8::1", NULL, "2001:db8:fffe::5" },
    { "IPv4-mapped REMOTE_ADDR is IPv4", "::ffff:10.0.0.1", "198.51.100.1", NULL, "198.51.100.1" },
    { "Forwarded", "10.0.0.1", NULL, "for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60" },
    { "Forwarded before X-Forwarded-For", "10.0.0.1", "198.51.100.1", "for=192.0.2.60", "192.0.2.60" },
    { "Forwarded without for=: X-Forwarded-For", "10.0.0.1", "198.51.100.1", "proto=https", "198.51.100.1" },
    { "Forwarded list", "10.0.0.1", NULL,
      "for=192.0.2.43, for=\"[2001:db8:cafe::17]:4711\", For=10.0.0.9", "2001:db8:cafe::17" },
    { "Forwarded quoted comma, obfuscated and unknown nodes", "10.0.0.1", NULL,
      "for=192.0.2.1, for=\"_x,y\";proto=http, for=unknown, for=_hidden", "192.0.2.1" },
    { "Forwarded garbage", "10.0.0.1", "198.51.100.1", "for=\"unterminated", "198.51.100.1" },
    { "REMOTE_ADDR not an address", "unix:/run/x", NULL, NULL, NULL },
    { "no REMOTE_ADDR", NULL, "198.51.100.1", NULL, NULL },
    { "2 KiB chain, client last", "10.0.0.1", chain_2k, NULL, "198.51.100.1" },
    { "2 KiB chain from an untrusted address", "203.0.113.9", chain_2k, NULL, "203.0.113.9" },
    { "2 KiB chain, all trusted", "10.0.0.1", chain_trusted, NULL, "10.0.0.1" },
    { "client past the 64 rightmost entries", "10.0.0.1", chain_deep, NULL, "10.0.0.1" },
};

static void make_chains(void)
{
    size_t o = 0, t = 0, d = 0;

    while (o < 2000)
        o += (size_t)snprintf(chain_2k + o, sizeof(chain_2k) - o, "1.1.1.%zu, ", o % 250);
    snprintf(chain_2k + o, sizeof(chain_2k) - o, "198.51.100.1");
    for (int i = 0; t < 2040; i++)
        t += (size_t)snprintf(chain_trusted + t, sizeof(chain_trusted) - t, "%s10.0.%d.%d",
                              i ? ", " : "", i / 250, i % 250);
    d += (size_t)snprintf(chain_deep, sizeof(chain_deep), "198.51.100.1");
    for (int i = 0; i < 64; i++)
        d += (size_t)snprintf(chain_deep + d, sizeof(chain_deep) - d, ", 10.0.0.%d", i + 2);
    ck_assert_uint_ge(strlen(chain_2k), 2000);
    ck_assert_uint_ge(strlen(chain_trusted), 2000);
}

START_TEST(client_table)
{
    const client_row *r = &client_rows[_i];
    tp_privacy *p;
    char out[TP_PRIVACY_ADDR_MAX];
    int rc;

    make_chains();
    p = make(TRUSTED, NULL, NULL, NULL, NULL, NULL);
    rc = tp_privacy_client(p, r->remote, r->xff, r->fwd, out, sizeof(out));
    if (!r->want)
        ck_assert_msg(rc == -1 && out[0] == '\0', "row %s: got %d %s", r->name, rc, out);
    else
        ck_assert_msg(rc == 0 && strcmp(out, r->want) == 0, "row %s: got %d \"%s\" want \"%s\"",
                      r->name, rc, out, r->want);
    tp_privacy_free(p);
}
END_TEST

/* ------------------------------------------------------------ modes */

typedef struct mode_row {
    const char *mode, *in;
    long now;
    const char *want;           /* NULL: -1 */
} mode_row;

static const mode_row mode_rows[] = {
    { "keep", "2001:0db8:0::0001", T_DAY, "2001:db8::1" },
    { "keep", "[::ffff:203.0.113.9]:80", T_DAY, "203.0.113.9" },
    { "truncate", "203.0.113.9", T_DAY, "203.0.113.0" },
    { "truncate", "203.0.113.9:8080", T_DAY, "203.0.113.0" },
    { "truncate", "2001:db8:1234:5678:9abc::1", T_DAY, "2001:db8:1234::" },
    { "truncate", "[2001:db8::1]:80", T_DAY, "2001:db8::" },
    { "truncate", "::ffff:203.0.113.9", T_DAY, "203.0.113.0" },
    { "truncate", "300.1.1.1", T_DAY, NULL },
    { "truncate", "1.2.3", T_DAY, NULL },
    { "truncate", "01.2.3.4", T_DAY, NULL },
    { "truncate", "", T_DAY, NULL },
    { "truncate", "unknown", T_DAY, NULL },
    { "truncate", "[::1", T_DAY, NULL },
    { "truncate", "1.2.3.4:99999", T_DAY, NULL },
    { "truncate", "fe80::1%eth0", T_DAY, NULL },
    { "drop", "203.0.113.9", T_DAY, "" },
    { "hash", "203.0.113.9", T_DAY, H_203_26 },
    { "hash", "203.0.113.9", T_LAST, H_203_26 },
    { "hash", "203.0.113.9", T_LAST - 86399, H_203_26 },
    { "hash", "203.0.113.9", T_NEXT, H_203_27 },
    { "hash", "[2001:DB8::1]:443", T_DAY, H_V6_26 },
    { "hash", "::ffff:203.0.113.9", T_DAY, H_203_26 },
};

START_TEST(mode_table)
{
    const mode_row *r = &mode_rows[_i];
    char key[64], out[TP_PRIVACY_ADDR_MAX];
    tp_privacy *p;
    tp_privacy_hit h;
    int rc;

    temp_file(KEY "\n", key);
    p = make(NULL, r->mode, key, NULL, NULL, NULL);
    tp_privacy_hit_init(&h, p, 0, (time_t)r->now);
    rc = tp_privacy_transform(&h, r->in, strlen(r->in), out, sizeof(out));
    if (!r->want)
        ck_assert_msg(rc == -1, "%s %s: got %s", r->mode, r->in, out);
    else
        ck_assert_msg(rc == 0 && strcmp(out, r->want) == 0, "%s %s: got %d \"%s\" want \"%s\"",
                      r->mode, r->in, rc, out, r->want);
    if (r->want && strcmp(r->mode, "hash") == 0)
        ck_assert_uint_eq(strlen(out), TP_PRIVACY_HASH_LEN);
    tp_privacy_free(p);
    unlink(key);
}
END_TEST

/* Two configurations reading the same secret from different files give the
 * same values (two workers, two machines); another secret does not. */
START_TEST(hash_shared_key)
{
    char k1[64], k2[64], k3[64], a[TP_PRIVACY_ADDR_MAX], b[TP_PRIVACY_ADDR_MAX];
    char c[TP_PRIVACY_ADDR_MAX];
    tp_privacy *p1, *p2, *p3;
    tp_privacy_hit h1, h2, h3;

    temp_file(KEY "\n", k1);
    temp_file(KEY, k2);                    /* no newline: the same secret */
    temp_file("another secret of at least 32 bytes", k3);
    p1 = make(NULL, "hash", k1, NULL, NULL, NULL);
    p2 = make(NULL, "hash", k2, NULL, NULL, NULL);
    p3 = make(NULL, "hash", k3, NULL, NULL, NULL);
    tp_privacy_hit_init(&h1, p1, 0, T_DAY);
    tp_privacy_hit_init(&h2, p2, 0, T_DAY + 3600);
    tp_privacy_hit_init(&h3, p3, 0, T_DAY);
    ck_assert_int_eq(tp_privacy_transform(&h1, "198.51.100.1", 12, a, sizeof(a)), 0);
    ck_assert_int_eq(tp_privacy_transform(&h2, "198.51.100.1", 12, b, sizeof(b)), 0);
    ck_assert_int_eq(tp_privacy_transform(&h3, "198.51.100.1", 12, c, sizeof(c)), 0);
    ck_assert_str_eq(a, H_198_26);
    ck_assert_str_eq(b, H_198_26);
    ck_assert_str_ne(c, H_198_26);
    ck_assert_uint_eq(strlen(c), TP_PRIVACY_HASH_LEN);
    tp_privacy_free(p1);
    tp_privacy_free(p2);
    tp_privacy_free(p3);
    unlink(k1);
    unlink(k2);
    unlink(k3);
}
END_TEST

/* ------------------------------------------------------------ source-ip */

typedef struct source_row {
    const char *mode, *gpc;
    int signal;
    const char *remote, *xff;
    const char *want;
} source_row;

static const source_row source_rows[] = {
    { "keep", NULL, 0, "203.0.113.9", "198.51.100.1", "203.0.113.9" },
    { "keep", NULL, 0, "10.0.0.1", "198.51.100.1", "198.51.100.1" },
    { "keep", NULL, 0, "not an address", NULL, "not an address" },
    { "keep", NULL, 0, "::ffff:203.0.113.9", NULL, "::ffff:203.0.113.9" },
    { "truncate", NULL, 0, "203.0.113.9", NULL, "203.0.113.0" },
    { "truncate", NULL, 0, "10.0.0.1", "2001:db8:1:2::9", "2001:db8:1::" },
    { "truncate", NULL, 0, "not an address", NULL, "" },
    { "hash", NULL, 0, "203.0.113.9", NULL, H_203_26 },
    { "hash", NULL, 0, "10.0.0.1", "198.51.100.1", H_198_26 },
    { "drop", NULL, 0, "203.0.113.9", NULL, "" },
    { "keep", "anonymize", 1, "203.0.113.9", NULL, "" },
    { "keep", "anonymize", 0, "203.0.113.9", NULL, "203.0.113.9" },
    { "keep", "ignore", 1, "203.0.113.9", NULL, "203.0.113.9" },
};

START_TEST(source_table)
{
    const source_row *r = &source_rows[_i];
    char key[64], out[TP_PRIVACY_ADDR_MAX];
    tp_privacy *p;
    tp_privacy_hit h;
    const char *got;

    temp_file(KEY "\n", key);
    p = make(TRUSTED, r->mode, key, NULL, NULL, r->gpc);
    tp_privacy_hit_init(&h, p, r->signal, T_DAY);
    got = tp_privacy_source_ip(&h, r->remote, r->xff, NULL, out, sizeof(out));
    ck_assert_msg(strcmp(got, r->want) == 0, "row %d: got \"%s\" want \"%s\"", _i, got, r->want);
    tp_privacy_free(p);
    unlink(key);
}
END_TEST

/* ------------------------------------------------------------ headers */

typedef struct header_row {
    const char *mode, *drop, *gpc;
    int signal;
    const char *name, *value;
    int action;
    const char *want;           /* the new value, for TP_PRIVACY_REPLACE */
} header_row;

#define K TP_PRIVACY_KEEP
#define D TP_PRIVACY_DROP
#define R TP_PRIVACY_REPLACE

static const header_row header_rows[] = {
    { "truncate", NULL, NULL, 0, "Cookie", "a=b", D, NULL },
    { "keep", "", NULL, 0, "Cookie", "a=b", K, NULL },
    { "keep", "Cookie, X-Secret", NULL, 0, "x-secret", "s", D, NULL },
    { "keep", "Cookie, X-Secret", NULL, 0, "COOKIE", "a=b", D, NULL },
    { "keep", "Cookie", NULL, 0, "User-Agent", "ua", K, NULL },
    { "keep", NULL, NULL, 0, "X-Forwarded-For", "203.0.113.9", K, NULL },
    { "truncate", NULL, NULL, 0, "X-Forwarded-For", "203.0.113.9,2001:db8::1", R,
      "203.0.113.0, 2001:db8::" },
    { "truncate", NULL, NULL, 0, "X-Forwarded-For", "unknown, 203.0.113.9:99", R,
      "unknown, 203.0.113.0" },
    { "truncate", NULL, NULL, 0, "X-Forwarded-For", "unknown, 300.1.1.1, [::1]", D, NULL },
    { "truncate", NULL, NULL, 0, "X-Real-Ip", "203.0.113.9", R, "203.0.113.0" },
    { "truncate", NULL, NULL, 0, "Cf-Connecting-Ip", "2001:db8:1:2::3", R, "2001:db8:1::" },
    { "truncate", NULL, NULL, 0, "True-Client-Ip", "203.0.113.9", R, "203.0.113.0" },
    { "truncate", NULL, NULL, 0, "X-Client-Ip", "203.0.113.9", R, "203.0.113.0" },
    { "truncate", NULL, NULL, 0, "Fastly-Client-Ip", "203.0.113.9", R, "203.0.113.0" },
    { "truncate", NULL, NULL, 0, "X-Real-Ip", "", D, NULL },
    { "truncate", NULL, NULL, 0, "Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43", R,
      "for=192.0.2.0;proto=http;by=203.0.113.0" },
    { "truncate", NULL, NULL, 0, "Forwarded",
      "For=\"[2001:db8:cafe::17]:4711\", for=unknown;host=\"example.com\"", R,
      "For=\"[2001:db8:cafe::]\", for=unknown;host=example.com" },
    { "truncate", NULL, NULL, 0, "Forwarded", "for=_hidden;secret=203.0.113.9", R, "for=_hidden" },
    { "truncate", NULL, NULL, 0, "Forwarded", "for=garbage", D, NULL },
    { "truncate", NULL, NULL, 0, "Forwarded", "for=\"203.0.113.9", D, NULL },
    { "truncate", NULL, NULL, 0, "Forwarded", "secret=203.0.113.9", D, NULL },
    { "hash", NULL, NULL, 0, "X-Forwarded-For", "203.0.113.9", R, H_203_26 },
    { "hash", NULL, NULL, 0, "Forwarded", "for=203.0.113.9, for=\"[2001:db8::1]\"", R,
      "for=\"" H_203_26 "\", for=\"" H_V6_26 "\"" },
    { "drop", NULL, NULL, 0, "X-Forwarded-For", "203.0.113.9", D, NULL },
    { "drop", NULL, NULL, 0, "Forwarded", "for=203.0.113.9", D, NULL },
    { "drop", NULL, NULL, 0, "Referer", "https://example.com/", K, NULL },
    { "keep", "", "anonymize", 1, "Cookie", "a=b", D, NULL },
    { "keep", "", "anonymize", 1, "Referer", "https://example.com/", D, NULL },
    { "keep", "", "anonymize", 1, "X-Forwarded-For", "203.0.113.9", D, NULL },
    { "keep", "", "anonymize", 1, "User-Agent", "ua", K, NULL },
    { "keep", "", "anonymize", 0, "Referer", "https://example.com/", K, NULL },
    { "keep", "", "skip", 1, "Referer", "https://example.com/", K, NULL },
};

START_TEST(header_table)
{
    const header_row *r = &header_rows[_i];
    char key[64];
    tp_privacy *p;
    tp_privacy_hit h;
    tp_buf out = { 0 };
    int action;

    temp_file(KEY "\n", key);
    p = make(NULL, r->mode, key, r->drop, NULL, r->gpc);
    tp_privacy_hit_init(&h, p, r->signal, T_DAY);
    action = tp_privacy_header(&h, r->name, r->value, &out);
    ck_assert_msg(action == r->action, "row %d (%s: %s): action %d, want %d", _i, r->name,
                  r->value, action, r->action);
    if (r->want)
        ck_assert_msg(strcmp(out.data, r->want) == 0, "row %d: got \"%s\" want \"%s\"", _i,
                      out.data, r->want);
    tp_buf_free(&out);
    tp_privacy_free(p);
    unlink(key);
}
END_TEST

START_TEST(signal_and_redaction)
{
    tp_privacy *p = make(NULL, NULL, NULL, NULL, " email, token ,,Email2", NULL);

    ck_assert_int_eq(tp_privacy_signal("1", NULL), 1);
    ck_assert_int_eq(tp_privacy_signal(NULL, " 1 "), 1);
    ck_assert_int_eq(tp_privacy_signal("0", "0"), 0);
    ck_assert_int_eq(tp_privacy_signal("true", NULL), 0);
    ck_assert_int_eq(tp_privacy_signal("11", NULL), 0);
    ck_assert_int_eq(tp_privacy_signal(NULL, NULL), 0);
    ck_assert_int_eq(tp_privacy_redacted(p, "email", 5), 1);
    ck_assert_int_eq(tp_privacy_redacted(p, "token", 5), 1);
    ck_assert_int_eq(tp_privacy_redacted(p, "Email2", 6), 1);
    ck_assert_int_eq(tp_privacy_redacted(p, "Email", 5), 0);
    ck_assert_int_eq(tp_privacy_redacted(p, "emai", 4), 0);
    ck_assert_str_eq(tp_privacy_redact_name(p, 0), "email");
    ck_assert_str_eq(tp_privacy_redact_name(p, 2), "Email2");
    ck_assert_ptr_null(tp_privacy_redact_name(p, 3));
    ck_assert_int_eq(tp_privacy_redacted(NULL, "email", 5), 0);
    tp_privacy_free(p);
}
END_TEST

/* ------------------------------------------------------------ settings */

typedef struct setting_row {
    const char *env[4];
    const char *err;            /* NULL: accepted */
} setting_row;

static char key_short[128], key_ok[128], names_65[1024];

static const setting_row setting_rows[] = {
    { { "TRACKPIXEL_TRUSTED_PROXIES=10.0.0.0/8,, 2001:db8::/32 ,::ffff:10.0.0.0/104, 192.168.1.1/24, ::1", NULL }, NULL },
    { { "TRACKPIXEL_TRUSTED_PROXIES=10.0.0.0/33", NULL },
      "TRACKPIXEL_TRUSTED_PROXIES: \"10.0.0.0/33\" is not an IPv4 or IPv6 address or CIDR "
      "(e.g. 10.0.0.0/8, 2001:db8::/32)" },
    { { "TRACKPIXEL_TRUSTED_PROXIES=10.0.0.0/8, nonsense", NULL },
      "TRACKPIXEL_TRUSTED_PROXIES: \"nonsense\" is not an IPv4 or IPv6 address or CIDR "
      "(e.g. 10.0.0.0/8, 2001:db8::/32)" },
    { { "TRACKPIXEL_TRUSTED_PROXIES=10.0.0.1:80", NULL },
      "TRACKPIXEL_TRUSTED_PROXIES: \"10.0.0.1:80\" is not an IPv4 or IPv6 address or CIDR "
      "(e.g. 10.0.0.0/8, 2001:db8::/32)" },
    { { "TRACKPIXEL_TRUSTED_PROXIES=2001:db8::/129", NULL },
      "TRACKPIXEL_TRUSTED_PROXIES: \"2001:db8::/129\" is not an IPv4 or IPv6 address or CIDR "
      "(e.g. 10.0.0.0/8, 2001:db8::/32)" },
    { { "TRACKPIXEL_TRUSTED_PROXIES=10.0.0.0/", NULL },
      "TRACKPIXEL_TRUSTED_PROXIES: \"10.0.0.0/\" is not an IPv4 or IPv6 address or CIDR "
      "(e.g. 10.0.0.0/8, 2001:db8::/32)" },
    { { "TRACKPIXEL_IP_MODE=anonymise", NULL },
      "TRACKPIXEL_IP_MODE: \"anonymise\" is not one of keep, truncate, hash, drop" },
    { { "TRACKPIXEL_IP_MODE=Keep", NULL },
      "TRACKPIXEL_IP_MODE: \"Keep\" is not one of keep, truncate, hash, drop" },
    { { "TRACKPIXEL_GPC=yes", NULL },
      "TRACKPIXEL_GPC: \"yes\" is not one of ignore, anonymize, skip" },
    { { "TRACKPIXEL_IP_MODE=hash", NULL },
      "TRACKPIXEL_IP_HASH_KEY_FILE: not set, and TRACKPIXEL_IP_MODE is hash (the file holds "
      "the secret, at least 32 bytes)" },
    { { "TRACKPIXEL_IP_MODE=hash", "TRACKPIXEL_IP_HASH_KEY_FILE=/nonexistent/key", NULL },
      "TRACKPIXEL_IP_HASH_KEY_FILE: cannot open /nonexistent/key: No such file or directory" },
    { { "TRACKPIXEL_IP_MODE=hash", key_short, NULL }, "" /* filled in below */ },
    { { "TRACKPIXEL_IP_MODE=hash", key_ok, NULL }, NULL },
    { { "TRACKPIXEL_IP_MODE=truncate", "TRACKPIXEL_IP_HASH_KEY_FILE=/nonexistent/key", NULL }, NULL },
    { { names_65, NULL }, "TRACKPIXEL_DROP_HEADERS: more than 64 names" },
};

START_TEST(setting_table)
{
    const setting_row *r = &setting_rows[_i];
    char short_path[64], ok_path[64], err[512] = "", want[512];
    tp_config cfg;
    int rc;

    temp_file("0123456789abcdef0123456789abcde\n", short_path);   /* 31 bytes */
    temp_file(KEY, ok_path);
    snprintf(key_short, sizeof(key_short), "TRACKPIXEL_IP_HASH_KEY_FILE=%s", short_path);
    snprintf(key_ok, sizeof(key_ok), "TRACKPIXEL_IP_HASH_KEY_FILE=%s", ok_path);
    snprintf(names_65, sizeof(names_65), "TRACKPIXEL_DROP_HEADERS=");
    for (int i = 0; i < 65; i++)
        snprintf(names_65 + strlen(names_65), sizeof(names_65) - strlen(names_65), "H%d,", i);
    if (r->err && !*r->err)
        snprintf(want, sizeof(want), "TRACKPIXEL_IP_HASH_KEY_FILE: %s holds 31 bytes, at least "
                 "32 are needed", short_path);
    else
        snprintf(want, sizeof(want), "%s", r->err ? r->err : "");
    rc = tp_config_load(&cfg, (char *const *)r->env, err, sizeof(err));
    ck_assert_msg(rc == (r->err ? -1 : 0), "row %d: rc %d: %s", _i, rc, err);
    if (r->err)
        ck_assert_str_eq(err, want);
    else
        ck_assert_ptr_nonnull(cfg.privacy);
    tp_config_free(&cfg);
    unlink(short_path);
    unlink(ok_path);
}
END_TEST

START_TEST(defaults)
{
    char *env[] = { NULL };
    char err[256];
    tp_config cfg;
    tp_privacy_hit h;
    tp_buf out = { 0 };

    ck_assert_int_eq(tp_config_load(&cfg, env, err, sizeof(err)), 0);
    ck_assert_int_eq(tp_privacy_ip_mode(cfg.privacy), TP_IP_KEEP);
    ck_assert_int_eq(tp_privacy_gpc(cfg.privacy), TP_GPC_IGNORE);
    tp_privacy_hit_init(&h, cfg.privacy, 1, T_DAY);
    ck_assert_int_eq(tp_privacy_header(&h, "Cookie", "a=b", &out), TP_PRIVACY_DROP);
    ck_assert_int_eq(tp_privacy_header(&h, "X-Forwarded-For", "1.2.3.4", &out), TP_PRIVACY_KEEP);
    ck_assert_int_eq(tp_privacy_header(&h, "Referer", "r", &out), TP_PRIVACY_KEEP);
    tp_buf_free(&out);
    tp_config_free(&cfg);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("privacy");
    TCase *tc = tcase_create("privacy");
    tcase_add_loop_test(tc, client_table, 0, (int)(sizeof(client_rows) / sizeof(client_rows[0])));
    tcase_add_loop_test(tc, mode_table, 0, (int)(sizeof(mode_rows) / sizeof(mode_rows[0])));
    tcase_add_test(tc, hash_shared_key);
    tcase_add_loop_test(tc, source_table, 0, (int)(sizeof(source_rows) / sizeof(source_rows[0])));
    tcase_add_loop_test(tc, header_table, 0, (int)(sizeof(header_rows) / sizeof(header_rows[0])));
    tcase_add_test(tc, signal_and_redaction);
    tcase_add_loop_test(tc, setting_table, 0,
                        (int)(sizeof(setting_rows) / sizeof(setting_rows[0])));
    tcase_add_test(tc, defaults);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
