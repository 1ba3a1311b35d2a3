#include "tp_header.h"

#include <string.h>
#include <strings.h>

/* Headers that carry credentials: recording them would leak secrets. */
static const char *const never_recorded[] = {
    "Authorization",
    "Proxy-Authorization",
};

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int upper(int c)
{
    return (c >= 'a' && c <= 'z') ? c - ('a' - 'A') : c;
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
    if (len + 1 > outcap)
        return -1;

    for (i = 0; i < len; i++) {
        int c = (unsigned char)src[i];
        if (c == '_' || c == '-') {
            out[i] = '-';
            word_start = 1;
        } else {
            out[i] = (char)(word_start ? upper(c) : lower(c));
            word_start = 0;
        }
    }
    out[len] = '\0';

    for (i = 0; i < sizeof(never_recorded) / sizeof(never_recorded[0]); i++)
        if (strcasecmp(out, never_recorded[i]) == 0)
            return 0;
    return (long)len;
}
