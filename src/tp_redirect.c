#include "tp_redirect.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tp_list.h"
#include "tp_query.h"

#define MAX_PATTERNS 64
#define MAX_HOST 253

typedef struct pattern {
    char host[MAX_HOST + 1];     /* lower case; for *.x, "x" */
    size_t len;
    int subdomains;              /* "*.x": any host under x, not x itself */
} pattern;

struct tp_redirect_allow {
    pattern p[MAX_PATTERNS];
    size_t n;
};

static const char *const why_names[TP_REDIRECT_NWHY] = {
    "ok", "missing", "too-long", "bad-char", "not-absolute", "scheme", "userinfo",
    "host-not-allowed",
};

const char *tp_redirect_why_name(tp_redirect_why why)
{
    return why < TP_REDIRECT_NWHY ? why_names[why] : "?";
}

/* Letters, digits, '-' and '.' only, no empty label, at most MAX_HOST. */
static int is_host_name(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > MAX_HOST || s[0] == '.' || s[len - 1] == '.')
        return 0;
    for (i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.' && s[i + 1] == '.')
            return 0;
        if (!(c == '.' || c == '-' || (c >= '0' && c <= '9') ||
              (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return 0;
    }
    return 1;
}

static int add_pattern(void *ctx, const char *s, size_t len, char *err, size_t errlen)
{
    tp_redirect_allow *a = ctx;
    pattern *p;
    size_t i;

    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (a->n == MAX_PATTERNS) {
        snprintf(err, errlen, "TRACKPIXEL_REDIRECT_ALLOW: more than %d patterns", MAX_PATTERNS);
        return -1;
    }
    p = &a->p[a->n];
    if (len > 2 && s[0] == '*' && s[1] == '.') {
        p->subdomains = 1;
        s += 2;
        len -= 2;
    }
    if (!is_host_name(s, len)) {
        snprintf(err, errlen, "TRACKPIXEL_REDIRECT_ALLOW: \"%.*s\" is not a host name or "
                 "*.<host name> (a bare * is never allowed)", (int)(len > 80 ? 80 : len), s);
        return -1;
    }
    for (i = 0; i < len; i++)
        p->host[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] - 'A' + 'a' : s[i]);
    p->host[len] = '\0';
    p->len = len;
    a->n++;
    return 0;
}

tp_redirect_allow *tp_redirect_allow_parse(const char *list, char *err, size_t errlen)
{
    tp_redirect_allow *a = NULL;

    if (errlen)
        err[0] = '\0';
    if (!list || !*list)
        return NULL;
    a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (tp_list_each(list, add_pattern, a, err, errlen) < 0)
        goto fail;
    return a;
fail:
    free(a);
    return NULL;
}

void tp_redirect_allow_free(tp_redirect_allow *a)
{
    free(a);
}

int tp_redirect_host_allowed(const tp_redirect_allow *a, const char *host, size_t len)
{
    size_t i;

    if (!a || !is_host_name(host, len))
        return 0;
    for (i = 0; i < a->n; i++) {
        const pattern *p = &a->p[i];
        if (!p->subdomains && len == p->len && strncasecmp(host, p->host, len) == 0)
            return 1;
        if (p->subdomains && len > p->len + 1 && host[len - p->len - 1] == '.' &&
            strncasecmp(host + len - p->len, p->host, p->len) == 0)
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ a target */

typedef struct found {
    char *u;                 /* malloc'd, NUL-terminated */
    size_t len;
    int seen, oom;
} found;

static int take_u(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen)
{
    found *f = ctx;

    if (nlen != 1 || name[0] != 'u')
        return 0;
    f->seen = 1;
    f->len = vlen;
    if (vlen <= TP_REDIRECT_MAX_URL) {
        f->u = malloc(vlen + 1);
        if (!f->u)
            f->oom = 1;
        else {
            memcpy(f->u, value, vlen);
            f->u[vlen] = '\0';
        }
    }
    return 1;                /* the first u only */
}

/* Printable ASCII but space and backslash: browsers read a backslash as a
 * slash, curl does not, so a URL with one could go where curl did not
 * look. */
static int clean(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '\\')
            return 0;
    }
    return 1;
}

/* u parsed by libcurl: scheme, no userinfo, an allowed host; *out gets
 * the URL as libcurl writes it back (what was checked is what is sent). */
static tp_redirect_why check_url(const tp_redirect_allow *a, const char *u, char **out)
{
    tp_redirect_why why = TP_REDIRECT_NOT_ABSOLUTE;
    CURLU *h = curl_url();
    char *scheme = NULL, *user = NULL, *pw = NULL, *host = NULL, *url = NULL;
    CURLUcode rc;

    if (!h)
        goto fail;
    rc = curl_url_set(h, CURLUPART_URL, u, 0);
    if (rc == CURLUE_UNSUPPORTED_SCHEME)
        why = TP_REDIRECT_SCHEME;
    if (rc != CURLUE_OK)
        goto fail;
    if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        why = TP_REDIRECT_SCHEME;
        goto fail;
    }
    if (curl_url_get(h, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(h, CURLUPART_PASSWORD, &pw, 0) == CURLUE_OK) {
        why = TP_REDIRECT_USERINFO;
        goto fail;
    }
    if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto fail;
    why = TP_REDIRECT_HOST;
    if (!tp_redirect_host_allowed(a, host, strlen(host)))
        goto fail;
    why = TP_REDIRECT_NOT_ABSOLUTE;
    if (curl_url_get(h, CURLUPART_URL, &url, 0) != CURLUE_OK || !clean(url, strlen(url)))
        goto fail;
    *out = strdup(url);
    why = *out ? TP_REDIRECT_OK : TP_REDIRECT_NOT_ABSOLUTE;
fail:
    curl_free(scheme);
    curl_free(user);
    curl_free(pw);
    curl_free(host);
    curl_free(url);
    curl_url_cleanup(h);
    return why;
}

tp_redirect_why tp_redirect_target(const tp_redirect_allow *a, const char *qs, char **target)
{
    found f = { NULL, 0, 0, 0 };
    tp_redirect_why why;

    *target = NULL;
    tp_query_each(qs, take_u, &f);
    if (!f.seen || f.len == 0)
        why = TP_REDIRECT_MISSING;
    else if (f.len > TP_REDIRECT_MAX_URL)
        why = TP_REDIRECT_TOO_LONG;
    else if (f.oom)
        why = TP_REDIRECT_NOT_ABSOLUTE;
    else if (!clean(f.u, f.len))
        why = TP_REDIRECT_BAD_CHAR;
    else
        why = check_url(a, f.u, target);
    free(f.u);
    return why;
}
