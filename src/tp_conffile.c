#include "tp_conffile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tp_config.h"

#define STAGE_VAR_PREFIX "TRACKPIXEL_STAGE_VAR_"

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int name_char(char c, int first)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

/* The table's entry for name (namelen bytes), or NULL. */
static const tp_config_var *table_var(const char *name, size_t namelen)
{
    size_t n, i;
    const tp_config_var *vars = tp_config_vars(&n);

    for (i = 0; i < n; i++)
        if (vars[i].kind != TP_CONF_PREFIX && strlen(vars[i].name) == namelen &&
            memcmp(vars[i].name, name, namelen) == 0)
            return &vars[i];
    return NULL;
}

/* May the file set name?  0 with err set when not. */
static int name_allowed(const char *name, size_t len, size_t lineno, char *err, size_t errlen)
{
    size_t plen = strlen(STAGE_VAR_PREFIX);

    if (len == strlen("TRACKPIXEL_CONFIG") && memcmp(name, "TRACKPIXEL_CONFIG", len) == 0) {
        snprintf(err, errlen, "line %zu: TRACKPIXEL_CONFIG cannot be set in the "
                 "configuration file (it names the file)", lineno);
        return 0;
    }
    if (table_var(name, len) || (len > plen && memcmp(name, STAGE_VAR_PREFIX, plen) == 0) ||
        (len > 4 && memcmp(name, "AWS_", 4) == 0))
        return 1;
    snprintf(err, errlen, "line %zu: unknown variable %.*s (see trackpixel --help)", lineno,
             (int)(len > 64 ? 64 : len), name);
    return 0;
}

/* Is name=value something --check hides? */
static int is_secret(const char *name, size_t len, const char *value)
{
    const tp_config_var *v = table_var(name, len);

    if (v && v->secret)
        return 1;
    /* A URL with userinfo: user:password@host. */
    return v && v->kind == TP_CONF_URL && strchr(value, '@') != NULL;
}

/* Is name (len bytes) already among the first n entries? */
static size_t find_entry(char *const *env, size_t n, const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
            return i;
    return n;
}

/* One line (no newline, len bytes) into cf.  0, or -1 with err set. */
static int parse_line(const char *s, size_t len, size_t lineno, size_t *lines_of,
                      tp_conffile *cf, char *err, size_t errlen)
{
    size_t i = 0, name_at, name_len, v_at, v_end, dup;
    char *entry;

    while (i < len && is_blank(s[i]))
        i++;
    if (i == len || s[i] == '#')
        return 0;
    name_at = i;
    while (i < len && name_char(s[i], i == name_at))
        i++;
    name_len = i - name_at;
    while (i < len && is_blank(s[i]))
        i++;
    if (name_len == 0 || i == len || s[i] != '=') {
        snprintf(err, errlen, "line %zu: not NAME=value", lineno);
        return -1;
    }
    if (!name_allowed(s + name_at, name_len, lineno, err, errlen))
        return -1;
    dup = find_entry(cf->env, cf->n, s + name_at, name_len);
    if (dup < cf->n) {
        snprintf(err, errlen, "line %zu: %.*s is already set on line %zu", lineno,
                 (int)name_len, s + name_at, lines_of[dup]);
        return -1;
    }
    v_at = i + 1;
    while (v_at < len && is_blank(s[v_at]))
        v_at++;
    v_end = len;
    while (v_end > v_at && is_blank(s[v_end - 1]))
        v_end--;
    if (v_end - v_at >= 2 && (s[v_at] == '"' || s[v_at] == '\'') && s[v_end - 1] == s[v_at]) {
        v_at++;
        v_end--;
    }
    entry = malloc(name_len + 1 + (v_end - v_at) + 1);
    if (!entry) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(entry, name_len + 1 + (v_end - v_at) + 1, "%.*s=%.*s", (int)name_len,
             s + name_at, (int)(v_end - v_at), s + v_at);
    if (is_secret(s + name_at, name_len, entry + name_len + 1))
        cf->has_secret = 1;
    lines_of[cf->n] = lineno;
    cf->env[cf->n++] = entry;
    cf->env[cf->n] = NULL;
    return 0;
}

int tp_conffile_parse(const char *text, size_t len, tp_conffile *cf, char *err, size_t errlen)
{
    size_t at = 0, lineno = 0, *lines_of = NULL;
    int rc = -1;

    memset(cf, 0, sizeof(*cf));
    err[0] = '\0';
    cf->env = calloc(TP_CONFFILE_MAX_LINES + 1, sizeof(*cf->env));
    lines_of = calloc(TP_CONFFILE_MAX_LINES, sizeof(*lines_of));
    if (!cf->env || !lines_of) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (len > TP_CONFFILE_MAX_BYTES) {
        snprintf(err, errlen, "larger than %d bytes", TP_CONFFILE_MAX_BYTES);
        goto fail;
    }
    while (at < len) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len, llen = end - at;

        if (++lineno > TP_CONFFILE_MAX_LINES) {
            snprintf(err, errlen, "more than %d lines", TP_CONFFILE_MAX_LINES);
            goto fail;
        }
        if (llen > 0 && text[end - 1] == '\r')
            llen--;
        if (llen > TP_CONFFILE_MAX_LINE) {
            snprintf(err, errlen, "line %zu: longer than %d bytes", lineno, TP_CONFFILE_MAX_LINE);
            goto fail;
        }
        if (memchr(text + at, '\0', llen)) {
            snprintf(err, errlen, "line %zu: a NUL byte", lineno);
            goto fail;
        }
        if (parse_line(text + at, llen, lineno, lines_of, cf, err, errlen) < 0)
            goto fail;
        at = end + 1;
    }
    rc = 0;
fail:
    free(lines_of);
    return rc;
}

void tp_conffile_free(tp_conffile *cf)
{
    size_t i;

    for (i = 0; cf->env && i < cf->n; i++)
        free(cf->env[i]);
    free(cf->env);
    memset(cf, 0, sizeof(*cf));
}

/* The whole of fd (a regular file of at most TP_CONFFILE_MAX_BYTES), into
 * a new buffer at *text (caller frees). */
static int read_all(int fd, char **text, size_t *len)
{
    size_t cap = TP_CONFFILE_MAX_BYTES + 1;
    ssize_t r;

    *len = 0;
    *text = malloc(cap);
    if (!*text)
        return -1;
    do {
        r = read(fd, *text + *len, cap - *len);
        if (r > 0)
            *len += (size_t)r;
    } while ((r > 0 && *len < cap) || (r < 0 && errno == EINTR));
    return r < 0 ? -1 : 0;
}

int tp_conffile_read(const char *path, int missing_ok, tp_conffile *cf, mode_t *mode,
                     char *warn, size_t warncap, char *err, size_t errlen)
{
    struct stat st;
    char *text = NULL, perr[256];
    size_t len = 0;
    int fd, rc = -1;

    memset(cf, 0, sizeof(*cf));
    warn[0] = '\0';
    *mode = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT && missing_ok)
            return 0;
        snprintf(err, errlen, "TRACKPIXEL_CONFIG: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "TRACKPIXEL_CONFIG: %s is not a regular file", path);
        goto done;
    }
    *mode = st.st_mode & 07777;
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errlen, "TRACKPIXEL_CONFIG: %s is writable by its group or others "
                 "(mode %04o): refused (chmod go-w %s)", path, (unsigned)*mode, path);
        goto done;
    }
    if (st.st_size > TP_CONFFILE_MAX_BYTES) {
        snprintf(err, errlen, "TRACKPIXEL_CONFIG: %s: larger than %d bytes", path,
                 TP_CONFFILE_MAX_BYTES);
        goto done;
    }
    if (read_all(fd, &text, &len) < 0) {
        snprintf(err, errlen, "TRACKPIXEL_CONFIG: cannot read %s: %s", path,
                 text ? strerror(errno) : "out of memory");
        goto done;
    }
    if (tp_conffile_parse(text, len, cf, perr, sizeof(perr)) < 0) {
        snprintf(err, errlen, "TRACKPIXEL_CONFIG: %s: %s", path, perr);
        goto done;
    }
    if (cf->has_secret && (st.st_mode & S_IROTH))
        snprintf(warn, warncap, "TRACKPIXEL_CONFIG: %s holds secrets and is readable by "
                 "everyone (mode %04o): chmod o-r %s", path, (unsigned)*mode, path);
    rc = 0;
done:
    free(text);
    close(fd);
    return rc;
}

char **tp_conffile_merge(char *const *envp, const tp_conffile *cf)
{
    size_t n = 0, k = 0, i;
    char **out;

    while (envp && envp[n])
        n++;
    out = malloc((n + cf->n + 1) * sizeof(*out));
    if (!out)
        return NULL;
    for (i = 0; i < n; i++)
        out[k++] = envp[i];
    for (i = 0; i < cf->n; i++) {
        const char *eq = strchr(cf->env[i], '=');
        if (find_entry(envp, n, cf->env[i], (size_t)(eq - cf->env[i])) == n)
            out[k++] = cf->env[i];
    }
    out[k] = NULL;
    return out;
}
