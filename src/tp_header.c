#include "tp_header.h"

#include <string.h>

#include "tp_hex.h"

/* Headers that carry credentials: recording them would leak secrets. */
static const char *const never_recorded[] = {
    "Authorization",
    "Proxy-Authorization",
};

/* 1 when h[0..n) names a credential header, in any case and with '_' or
 * '-' between the words (CGI spells them both '_'). */
static int is_never_recorded(const char *h, size_t n)
{
    size_t i, k;

    for (i = 0; i < sizeof(never_recorded) / sizeof(never_recorded[0]); i++) {
        const char *name = never_recorded[i];
        if (strlen(name) != n)
            continue;
        for (k = 0; k < n; k++) {
            int a = tp_lower((unsigned char)h[k]), b = tp_lower((unsigned char)name[k]);
            if (a == '_')
                a = '-';
            if (a != b)
                break;
        }
        if (k == n)
            return 1;
    }
    return 0;
}

long tp_header_name(const char *var, size_t var_len, char *out, size_t outcap)
{
    const char *src;
    size_t len, i;
    int word_start = 1;

    if (var_len > 5 && memcmp(var, "HTTP_", 5) == 0) {
        src = var + 5;
        len = var_len - 5;
    } else if ((var_len == 12 && memcmp(var, "CONTENT_TYPE", 12) == 0) ||
               (var_len == 14 && memcmp(var, "CONTENT_LENGTH", 14) == 0)) {
        src = var;
        len = var_len;
    } else {
        return 0;
    }
    /* A variable name never holds a NUL; one that does is no header. */
    if (memchr(src, '\0', len))
        return 0;
    /* Before the size check: a credential is "not recorded", never "too
     * long", whatever the buffer. */
    if (is_never_recorded(src, len))
        return 0;
    if (len + 1 > outcap)
        return -1;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '_' || c == '-') {
            out[i] = '-';
            word_start = 1;
        } else {
            out[i] = (char)(word_start ? tp_upper(c) : tp_lower(c));
            word_start = 0;
        }
    }
    out[len] = '\0';
    return (long)len;
}
