#include "tp_index.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int tp_index_dated(const char *pattern)
{
    const char *p;

    for (p = pattern; (p = strchr(p, '%')) != NULL; p++)
        if (p[1] == 'Y' || p[1] == 'm' || p[1] == 'd')
            return 1;
    return 0;
}

/* n (0 <= n < 10^width) as width digits and a NUL, as "%0<width>d" writes it. */
static void zero_padded(char *out, int n, int width)
{
    for (int k = width - 1; k >= 0; k--, n /= 10)
        out[k] = (char)('0' + n % 10);
    out[width] = '\0';
}

/* Expand with given fields; conversions other than %Y %m %d fail. */
static int expand(const char *pattern, int year, int month, int day, char *out, size_t outcap)
{
    size_t o = 0;
    const char *p;

    for (p = pattern; *p; p++) {
        char piece[8];
        const char *src = piece;
        size_t len;

        if (*p != '%') {
            src = p;                           /* the text up to the next '%' */
            len = strcspn(p, "%");
            p += len - 1;
        } else if (p[1] == 'Y') {
            if (year % 10000 >= 0)
                zero_padded(piece, year % 10000, 4);
            else
                snprintf(piece, sizeof(piece), "%04d", year % 10000);
            p++;
        } else if (p[1] == 'm' || p[1] == 'd') {
            zero_padded(piece, p[1] == 'm' ? month : day, 2);
            p++;
        } else {
            return -1;
        }
        if (src == piece)
            len = strlen(piece);
        if (o + len >= outcap)
            return -1;
        memcpy(out + o, src, len);
        o += len;
    }
    if (outcap == 0)
        return -1;
    out[o] = '\0';
    return 0;
}

int tp_index_expand(const char *pattern, time_t t, char *out, size_t outcap)
{
    struct tm tm;

    if (!strchr(pattern, '%'))                 /* no date: no calendar needed */
        return expand(pattern, 0, 0, 0, out, outcap);
    if (!gmtime_r(&t, &tm))
        return -1;
    return expand(pattern, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, out, outcap);
}

/* Elasticsearch's rules for an index name (validateIndexOrAliasName). */
static int valid_name(const char *s)
{
    size_t len = strlen(s), i;

    if (len == 0 || len > TP_INDEX_MAX || s[0] == '-' || s[0] == '_' || s[0] == '+' ||
        strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || c <= ' ' || c >= 0x7f || strchr("\\/*?\"<>|,#:%", c))
            return 0;
    }
    return 1;
}

int tp_index_check(const char *pattern, char *err, size_t errlen)
{
    char out[TP_INDEX_MAX + 2];

    if (pattern[0] == '%') {
        snprintf(err, errlen, "must not start with a date (%%Y, %%m or %%d): "
                 "the template would cover every index");
        return -1;
    }
    /* The widest expansion: a four-digit year, two-digit month and day. */
    if (expand(pattern, 2000, 12, 31, out, sizeof(out)) < 0) {
        snprintf(err, errlen, "the only conversions are %%Y, %%m and %%d, and the name "
                 "is at most %d bytes", TP_INDEX_MAX);
        return -1;
    }
    if (!valid_name(out)) {
        snprintf(err, errlen, "not a valid index name (lower case, no spaces or "
                 "\\/*?\"<>|,#:, not starting with - _ +, at most %d bytes)", TP_INDEX_MAX);
        return -1;
    }
    return 0;
}

int tp_index_wildcard(const char *pattern, char *out, size_t outcap)
{
    size_t o = 0;
    const char *p;

    for (p = pattern; *p; p++) {
        char c = *p;

        if (c == '%' && (p[1] == 'Y' || p[1] == 'm' || p[1] == 'd')) {
            c = '*';
            p++;
        }
        if (o + 1 >= outcap)
            return -1;
        out[o++] = c;
    }
    if (outcap == 0)
        return -1;
    out[o] = '\0';
    return 0;
}

int tp_index_for_doc(const char *pattern, const char *doc, size_t len, char *out,
                     size_t outcap)
{
    json_tokener *tok = NULL;
    json_object *j = NULL, *date = NULL;
    int rc = -1;

    if (!tp_index_dated(pattern)) {
        if (strlen(pattern) >= outcap)
            return -1;
        memcpy(out, pattern, strlen(pattern) + 1);
        return 0;
    }
    if (len > (size_t)INT32_MAX || !(tok = json_tokener_new()))
        goto fail;
    j = json_tokener_parse_ex(tok, doc, (int)len);
    if (!j || !json_object_object_get_ex(j, "date", &date) ||
        !json_object_is_type(date, json_type_int))
        goto fail;
    rc = tp_index_expand(pattern, (time_t)(json_object_get_int64(date) / 1000), out, outcap);
fail:
    json_object_put(j);
    if (tok)
        json_tokener_free(tok);
    return rc;
}
