#include "config.h"
#include "tp_creds.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tp_sigv4.h"
#include "tp_time.h"

#define FILE_MAX (1024 * 1024)          /* a shared credentials/config file  */
#define LINE_MAX_LEN 8192               /* one line of it                    */
#define ANSWER_MAX (64 * 1024)          /* an endpoint's or a process's answer */
#define WEB_TOKEN_MAX (16 * 1024)       /* a web identity token              */
#define URL_MAX 2048
#define PROCESS_TIMEOUT_MS 10000        /* a credential_process              */
#define PROCESS_ARGS 64
#define IMDS_CONNECT_MS 1000
#define IMDS_TIMEOUT_MS 2000
#define CONTAINER_TIMEOUT_MS 2000
#define STS_TIMEOUT_MS 5000
#define IMDS_DEFAULT "http://169.254.169.254"
#define CONTAINER_HOST "http://169.254.170.2"
#define STS_VERSION "2011-06-15"

extern char **environ;

/* The variables the chain reads, copied from envp. */
enum {
    E_AK, E_SK, E_TOKEN, E_EXPIRATION, E_PROFILE, E_CREDFILE, E_CONFFILE, E_HOME,
    E_WIT_FILE, E_ROLE_ARN, E_ROLE_SESSION, E_STS_URL, E_CREL, E_CFULL, E_CTOKFILE, E_CTOK,
    E_IMDS_OFF, E_IMDS_V1_OFF, E_IMDS_URL, E_REGION, E_DEFREGION, E_SERVICE, E_COUNT
};
static const char *const env_names[E_COUNT] = {
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE", "HOME", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME", "AWS_ENDPOINT_URL_STS", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_V1_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_REGION",
    "AWS_DEFAULT_REGION", "TRACKPIXEL_AWS_SERVICE",
};

typedef int (*provider_fn)(tp_creds_chain *ch, const char *region, tp_creds *out,
                           char *err, size_t errlen);

struct tp_creds_chain {
    char *env[E_COUNT];
    int chosen;                 /* index in providers[], -1: none yet */
    const atomic_int *abort;    /* borrowed, may be NULL */
};

/* Set while a thread's chain works: its abort flag (borrowed).  A thread
 * variable, so that the helpers below need no extra parameter. */
static __thread const atomic_int *abort_flag;

static int aborted(void)
{
    return abort_flag && atomic_load(abort_flag);
}

static int on_progress(void *userp, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)userp; (void)dt; (void)dn; (void)ut; (void)un;
    return aborted();
}

/* ---------------------------------------------------------- small helpers */

void tp_creds_wipe(tp_creds *c)
{
    /* A volatile pointer keeps the compiler from dropping the stores. */
    volatile unsigned char *p = (volatile unsigned char *)c;
    for (size_t i = 0; i < sizeof(*c); i++)
        p[i] = 0;
}

static const char *envv(const char *const *env, int i)
{
    return env[i] && env[i][0] ? env[i] : NULL;
}

static const char *env_lookup(char *const *envp, const char *name)
{
    size_t len = strlen(name);
    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, len) == 0 && (*envp)[len] == '=')
            return *envp + len + 1;
    return NULL;
}

static int is_true(const char *v)
{
    return v && strcasecmp(v, "true") == 0;
}

/* Trim spaces and tabs at both ends, in place. */
static char *trim(char *s)
{
    size_t n;
    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* Printable ASCII without spaces: what may go into a header or a scope. */
static int header_safe(const char *s, int spaces)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || (!spaces && *s == ' '))
            return 0;
    return 1;
}

/* Credentials into out, checked.  exp 0: none. */
static int fill(tp_creds *out, const char *ak, const char *sk, const char *token, time_t exp,
                const char *provider, char *err, size_t errlen)
{
    size_t akl = ak ? strlen(ak) : 0, skl = sk ? strlen(sk) : 0, tl = token ? strlen(token) : 0;

    if (!akl || !skl) {
        snprintf(err, errlen, "%s: the access key id or the secret key is missing", provider);
        return -1;
    }
    if (akl >= TP_CREDS_KEY_MAX || skl >= TP_CREDS_SECRET_MAX || tl >= TP_CREDS_TOKEN_MAX) {
        snprintf(err, errlen, "%s: a key or the session token is too long (at most %d, %d and "
                 "%d bytes)", provider, TP_CREDS_KEY_MAX - 1, TP_CREDS_SECRET_MAX - 1,
                 TP_CREDS_TOKEN_MAX - 1);
        return -1;
    }
    if (!header_safe(ak, 0) || !header_safe(sk, 0) || (token && !header_safe(token, 0))) {
        snprintf(err, errlen, "%s: a key or the session token holds spaces or control "
                 "characters", provider);
        return -1;
    }
    tp_creds_wipe(out);
    memcpy(out->access_key_id, ak, akl);
    memcpy(out->secret_access_key, sk, skl);
    if (tl)
        memcpy(out->session_token, token, tl);
    out->expiration = exp;
    snprintf(out->provider, sizeof(out->provider), "%s", provider);
    return 0;
}

/* ------------------------------------------------------------------ time */

int tp_creds_parse_time(const char *s, time_t *out)
{
    struct tm tm;
    int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0;
    const char *p;
    time_t t;

    memset(&tm, 0, sizeof(tm));
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
        n != 19)
        return -1;
    p = s + n;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'Z' && p[1] == '\0') {
        /* UTC */
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && isdigit((unsigned char)p[1]) &&
               isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
               isdigit((unsigned char)p[5])) {
        oh = (p[1] - '0') * 10 + (p[2] - '0');
        om = (p[4] - '0') * 10 + (p[5] - '0');
        if (*p == '-') {
            oh = -oh;
            om = -om;
        }
    } else {
        return -1;
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = t - oh * 3600 - om * 60;
    return 0;
}

int tp_creds_parse_http_date(const char *s, time_t *out)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char wd[4], mon[4];
    int d, y, h, mi, sec;
    const char *m;
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (!s || sscanf(s, "%3s, %2d %3s %4d %2d:%2d:%2d GMT", wd, &d, mon, &y, &h, &mi, &sec) != 7)
        return -1;
    m = strstr(months, mon);
    if (!m || strlen(mon) != 3 || (m - months) % 3 || d < 1 || d > 31 || y < 1970 || h > 23 ||
        mi > 59 || sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = (int)((m - months) / 3);
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *out = timegm(&tm);
    return *out == (time_t)-1 ? -1 : 0;
}

int tp_creds_answer_kind(const char *body)
{
    static const char *const skew[] = { "Signature expired", "Signature not yet current",
                                        "RequestTimeTooSkewed" };
    static const char *const creds[] = {
        "The security token included in the request is expired",
        "The security token included in the request is invalid", "SignatureDoesNotMatch",
        "InvalidSignatureException", "ExpiredToken", "UnrecognizedClientException",
        "The request signature we calculated does not match",
    };
    size_t i;

    if (!body)
        return 0;
    for (i = 0; i < sizeof(skew) / sizeof(skew[0]); i++)
        if (strstr(body, skew[i]))
            return 2;
    for (i = 0; i < sizeof(creds) / sizeof(creds[0]); i++)
        if (strstr(body, creds[i]))
            return 1;
    return 0;
}

/* --------------------------------------------------------- text formats */

int tp_creds_split_command(const char *cmd, char *buf, size_t buflen, char **argv, size_t max)
{
    size_t n = 0, o = 0;
    const char *p = cmd;

    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        if (n + 1 >= max)
            return -1;
        argv[n++] = buf + o;
        while (*p && !(*p == ' ' || *p == '\t' || *p == '\n')) {
            char c = *p++;
            if (c == '\'') {
                while (*p && *p != '\'') {
                    if (o + 1 >= buflen)
                        return -1;
                    buf[o++] = *p++;
                }
                if (*p != '\'')
                    return -1;           /* unterminated quote */
                p++;
                continue;
            }
            if (c == '"') {
                while (*p && *p != '"') {
                    if (*p == '\\' && p[1] && strchr("\"\\$`\n", p[1]))
                        p++;
                    if (o + 1 >= buflen)
                        return -1;
                    buf[o++] = *p++;
                }
                if (*p != '"')
                    return -1;
                p++;
                continue;
            }
            if (c == '\\') {
                if (!*p)
                    return -1;
                c = *p++;
            }
            if (o + 1 >= buflen)
                return -1;
            buf[o++] = c;
        }
        if (o + 1 >= buflen)
            return -1;
        buf[o++] = '\0';
    }
    argv[n] = NULL;
    return n ? 0 : -1;
}

int tp_creds_xml_text(const char *xml, size_t len, const char *name, char *out, size_t outlen)
{
    char open[80], close[80];
    const char *a, *b, *p;
    size_t o = 0;

    if (snprintf(open, sizeof(open), "<%s>", name) >= (int)sizeof(open) ||
        snprintf(close, sizeof(close), "</%s>", name) >= (int)sizeof(close))
        return -1;
    a = memmem(xml, len, open, strlen(open));
    if (!a)
        return -1;
    a += strlen(open);
    b = memmem(a, len - (size_t)(a - xml), close, strlen(close));
    if (!b)
        return -1;
    for (p = a; p < b; p++) {
        char c = *p;
        if (c == '&') {
            static const struct { const char *e; char c; } ents[] = {
                { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' },
                { "&apos;", '\'' } };
            size_t k;
            for (k = 0; k < 5; k++) {
                size_t el = strlen(ents[k].e);
                if ((size_t)(b - p) >= el && memcmp(p, ents[k].e, el) == 0) {
                    c = ents[k].c;
                    p += el - 1;
                    break;
                }
            }
            if (k == 5)
                return -1;
        } else if (c == '<') {
            return -1;                   /* an element inside: not text */
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* ------------------------------------------------------ the shared files */

/* The path of a shared file: the variable, else ~/.aws/<name>. */
static void shared_path(const tp_creds_chain *ch, int var, const char *name, char *out,
                        size_t outlen)
{
    const char *v = envv((const char *const *)ch->env, var);
    const char *home = envv((const char *const *)ch->env, E_HOME);

    out[0] = '\0';
    if (v && v[0] == '~' && v[1] == '/' && home)
        snprintf(out, outlen, "%s%s", home, v + 1);
    else if (v)
        snprintf(out, outlen, "%s", v);
    else if (home)
        snprintf(out, outlen, "%s/.aws/%s", home, name);
}

/* The whole file (NUL-terminated, malloc'd) or NULL: *missing when it is
 * not there, else err says why. */
static char *read_small_file(const char *path, size_t max, int *missing, char *err,
                             size_t errlen)
{
    char *buf = NULL;
    size_t n = 0;
    ssize_t r = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *missing = 0;
    if (fd < 0) {
        *missing = errno == ENOENT || errno == ENOTDIR;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(max + 1);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    while (n < max + 1 && (r = read(fd, buf + n, max + 1 - n)) > 0)
        n += (size_t)r;
    if (n > max || r < 0) {
        if (n > max)
            snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        else
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        free(buf);
        buf = NULL;
        goto fail;
    }
    buf[n] = '\0';
fail:
    close(fd);
    return buf;
}

/* Does section (the text inside [ ]) name profile in this kind of file? */
static int section_is(const char *section, const char *profile, int config)
{
    if (!config)
        return strcmp(section, profile) == 0;
    if (strncmp(section, "profile", 7) == 0 && (section[7] == ' ' || section[7] == '\t')) {
        const char *p = section + 8;
        while (*p == ' ' || *p == '\t')
            p++;
        return strcmp(p, profile) == 0;
    }
    return strcmp(profile, "default") == 0 && strcmp(section, "default") == 0;
}

/* key in [profile] of path into out: 1 found, 0 not there (or no file),
 * -1 with err (a malformed file, a value too long). */
static int ini_get(const char *path, int config, const char *profile, const char *key,
                   char *out, size_t outlen, char *err, size_t errlen)
{
    int missing, rc = 0, in = 0, lineno = 0;
    char *text = read_small_file(path, FILE_MAX, &missing, err, errlen), *line, *next;

    if (!text)
        return missing ? 0 : -1;
    for (line = text; line && *line; line = next) {
        char *eq, *k;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        if (strlen(line) > LINE_MAX_LEN)
            goto bad;
        if (line[0] == ' ' || line[0] == '\t') {
            if (*trim(line) == '\0' || *line == '#' || *line == ';')
                continue;
            if (lineno == 1)
                goto bad;
            continue;                    /* a nested setting (s3 = ...): not ours */
        }
        line = trim(line);
        if (!*line || *line == '#' || *line == ';')
            continue;
        if (*line == '[') {
            char *end = strchr(line, ']');
            if (!end || end[1] != '\0')
                goto bad;
            *end = '\0';
            in = section_is(trim(line + 1), profile, config);
            continue;
        }
        eq = strchr(line, '=');
        if (!eq)
            goto bad;
        *eq = '\0';
        k = trim(line);
        if (!in || strcmp(k, key) != 0)
            continue;
        {
            const char *v = trim(eq + 1);
            if (strlen(v) >= outlen) {
                snprintf(err, errlen, "%s line %d: the value of %s is too long", path, lineno,
                         key);
                rc = -1;
                goto done;
            }
            snprintf(out, outlen, "%s", v);
            rc = 1;
        }
    }
    goto done;
bad:
    snprintf(err, errlen, "%s line %d: not [section], name = value or a comment", path, lineno);
    rc = -1;
done:
    free(text);
    return rc;
}

static const char *profile_name(const tp_creds_chain *ch)
{
    const char *p = envv((const char *const *)ch->env, E_PROFILE);
    return p ? p : "default";
}

/* which: 1 the credentials file only, 2 the config file only, 3 both (the
 * credentials file's value first, as botocore merges them). */
static int profile_get(const tp_creds_chain *ch, const char *profile, int which, const char *key,
                       char *out, size_t outlen, char *err, size_t errlen)
{
    char path[1024];
    int rc = 0;

    if (which & 1) {
        shared_path(ch, E_CREDFILE, "credentials", path, sizeof(path));
        if (path[0])
            rc = ini_get(path, 0, profile, key, out, outlen, err, errlen);
        if (rc)
            return rc;
    }
    if (which & 2) {
        shared_path(ch, E_CONFFILE, "config", path, sizeof(path));
        if (path[0])
            rc = ini_get(path, 1, profile, key, out, outlen, err, errlen);
    }
    return rc;
}

/* ------------------------------------------------------------------ HTTP */

typedef struct answer {
    char *body;            /* NUL-terminated, at most ANSWER_MAX bytes */
    size_t len;
    int cut;
} answer;

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    answer *a = userp;
    size_t n = size * nmemb, room = ANSWER_MAX - a->len;

    if (n > room) {
        a->cut = 1;
        n = room;
    }
    memcpy(a->body + a->len, data, n);
    a->len += n;
    a->body[a->len] = '\0';
    return size * nmemb;
}

/* One request with its own handle.  Returns 0 with *status when an answer
 * came (any status), -1 with err when none did.  Proxies are not used for
 * link-local endpoints (no_proxy). */
static int http_do(const char *method, const char *url, struct curl_slist *headers,
                   const char *body, long connect_ms, long timeout_ms, int no_proxy,
                   long *status, answer *a, char *err, size_t errlen)
{
    char cerr[CURL_ERROR_SIZE] = "";
    CURL *c = curl_easy_init();
    CURLcode cc;

    *status = 0;
    a->len = 0;
    a->cut = 0;
    a->body[0] = '\0';
    if (!c) {
        snprintf(err, errlen, "curl_easy_init failed");
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "trackpixel/" PACKAGE_VERSION);
    if (no_proxy)
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (abort_flag) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    }
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    cc = curl_easy_perform(c);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    else
        snprintf(err, errlen, "%s", cerr[0] ? cerr : curl_easy_strerror(cc));
    curl_easy_cleanup(c);
    return cc == CURLE_OK ? 0 : -1;
}

static int add_hdr(struct curl_slist **l, const char *name, const char *value)
{
    char line[TP_CREDS_TOKEN_MAX + 128];
    struct curl_slist *n;

    if (snprintf(line, sizeof(line), "%s: %s", name, value) >= (int)sizeof(line))
        return -1;
    n = curl_slist_append(*l, line);
    if (!n)
        return -1;
    *l = n;
    return 0;
}

/* The start of an answer on one line, for a message (never holds our
 * secrets: they are not in what these endpoints are sent back). */
static void shown(const answer *a, char *out, size_t outlen)
{
    size_t i;
    snprintf(out, outlen, "%.80s", a->body);
    for (i = 0; out[i]; i++)
        if ((unsigned char)out[i] < 0x20)
            out[i] = ' ';
}

/* The credentials in a JSON answer (container endpoint, IMDS, a
 * credential_process): names differ, so they are given. */
static int json_creds(const char *text, const char *tok_name, const char *provider,
                      tp_creds *out, char *err, size_t errlen)
{
    json_object *j = json_tokener_parse(text), *ak = NULL, *sk = NULL, *tk = NULL, *ex = NULL;
    time_t exp = 0;
    int rc = -1;

    if (!j || !json_object_is_type(j, json_type_object)) {
        snprintf(err, errlen, "%s: the answer is not a JSON object", provider);
        goto done;
    }
    json_object_object_get_ex(j, "AccessKeyId", &ak);
    json_object_object_get_ex(j, "SecretAccessKey", &sk);
    json_object_object_get_ex(j, tok_name, &tk);
    json_object_object_get_ex(j, "Expiration", &ex);
    if (!json_object_is_type(ak, json_type_string) || !json_object_is_type(sk, json_type_string) ||
        (tk && !json_object_is_type(tk, json_type_string)) ||
        (ex && !json_object_is_type(ex, json_type_string))) {
        snprintf(err, errlen, "%s: the answer has no AccessKeyId and SecretAccessKey strings",
                 provider);
        goto done;
    }
    if (ex && tp_creds_parse_time(json_object_get_string(ex), &exp) < 0) {
        snprintf(err, errlen, "%s: Expiration is not an ISO 8601 time", provider);
        goto done;
    }
    rc = fill(out, json_object_get_string(ak), json_object_get_string(sk),
              tk ? json_object_get_string(tk) : NULL, exp, provider, err, errlen);
done:
    json_object_put(j);
    return rc;
}

/* ------------------------------------------------------- credential_process */

/* Start argv with stdout on out, stdin and stderr on /dev/null; errno. */
static int spawn(char **argv, int out, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int rc;

    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    /* Not the worker's sockets and journal: a process that hangs on must
     * not hold a FastCGI connection open. */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    /* Its own process group, so a timeout kills what it started too; the
     * default signal mask and dispositions, not the worker's. */
    posix_spawnattr_setpgroup(&at, 0);
    {
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setsigmask(&at, &none);
        posix_spawnattr_setsigdefault(&at, &all);
    }
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                  POSIX_SPAWN_SETSIGDEF);
    rc = posix_spawnp(pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return rc;
}

/* Run cmd (no shell) and read at most ANSWER_MAX bytes of its stdout within
 * PROCESS_TIMEOUT_MS; stderr goes to /dev/null.  0 when it exited 0. */
static int run_process(const char *cmd, answer *a, char *err, size_t errlen)
{
    char words[4096], *argv[PROCESS_ARGS];
    int pfd[2] = { -1, -1 }, st = 0, rc = -1;
    pid_t pid = -1;
    struct timespec deadline = tp_ts_add_ms(tp_mono_now(), PROCESS_TIMEOUT_MS);

    a->len = 0;
    a->cut = 0;
    a->body[0] = '\0';
    if (tp_creds_split_command(cmd, words, sizeof(words), argv, PROCESS_ARGS) < 0) {
        snprintf(err, errlen, "credential_process: cannot split the command (quotes?)");
        return -1;
    }
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "credential_process: pipe: %s", strerror(errno));
        return -1;
    }
    errno = spawn(argv, pfd[1], &pid);
    close(pfd[1]);
    if (errno) {
        snprintf(err, errlen, "credential_process: cannot run %s: %s", argv[0], strerror(errno));
        goto done;
    }
    for (;;) {
        struct pollfd p = { pfd[0], POLLIN, 0 };
        long left = tp_ts_ms(tp_mono_now(), deadline);
        char chunk[4096];
        ssize_t r;

        if (aborted()) {
            kill(-pid, SIGKILL);
            snprintf(err, errlen, "credential_process: stopped");
            goto reap;
        }
        if (left <= 0) {
            kill(-pid, SIGKILL);
            snprintf(err, errlen, "credential_process: no answer within %d s (killed)",
                     PROCESS_TIMEOUT_MS / 1000);
            goto reap;
        }
        if (poll(&p, 1, left > 200 ? 200 : (int)left) == 0)
            continue;           /* a look at the abort flag every 200 ms */
        r = read(pfd[0], chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        on_body(chunk, 1, (size_t)r, a);
    }
    rc = 0;
reap:
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (rc == 0 && (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
        snprintf(err, errlen, "credential_process: %s exited with %s %d", argv[0],
                 WIFEXITED(st) ? "status" : "signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        rc = -1;
    }
done:
    close(pfd[0]);
    return rc;
}

static int process_creds(const char *cmd, const char *provider, tp_creds *out, char *err,
                         size_t errlen)
{
    char body[ANSWER_MAX + 1];
    answer a = { body, 0, 0 };
    json_object *j = NULL, *v = NULL;
    int rc = -1;

    if (run_process(cmd, &a, err, errlen) < 0)
        goto done;
    j = json_tokener_parse(a.body);
    if (a.cut || !j || !json_object_object_get_ex(j, "Version", &v) ||
        !json_object_is_type(v, json_type_int) || json_object_get_int(v) != 1) {
        snprintf(err, errlen, "%s: the output is not JSON with \"Version\": 1", provider);
        goto done;
    }
    rc = json_creds(a.body, "SessionToken", provider, out, err, errlen);
done:
    json_object_put(j);
    memset(body, 0, a.len);
    return rc;
}

/* ------------------------------------------------------------------- STS */

/* The STS endpoint: AWS_ENDPOINT_URL_STS, else the region's, else the
 * global one (whose signing region is us-east-1). */
static void sts_endpoint(const tp_creds_chain *ch, const char *region, char *url, size_t urllen,
                         const char **sign_region)
{
    const char *v = envv((const char *const *)ch->env, E_STS_URL);

    *sign_region = region && region[0] ? region : "us-east-1";
    if (v)
        snprintf(url, urllen, "%s", v);
    else if (region && region[0])
        snprintf(url, urllen, "https://sts.%s.amazonaws.com", region);
    else
        snprintf(url, urllen, "https://sts.amazonaws.com");
}

/* name=value& with value form-encoded, appended to buf. */
static int form_add(char *buf, size_t cap, const char *name, const char *value)
{
    size_t o = strlen(buf);
    const char *p;
    int w = snprintf(buf + o, cap - o, "%s%s=", o ? "&" : "", name);

    if (w < 0 || (size_t)w >= cap - o)
        return -1;
    o += (size_t)w;
    for (p = value; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (o + 4 > cap)
            return -1;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, cap - o, "%%%02X", c);
    }
    buf[o] = '\0';
    return 0;
}

/* The credentials in an STS answer, or its error. */
static int sts_answer(const char *action, long status, const answer *a, tp_creds *out,
                      char *err, size_t errlen)
{
    char ak[TP_CREDS_KEY_MAX], sk[TP_CREDS_SECRET_MAX], tok[TP_CREDS_TOKEN_MAX], exps[64];
    char code[128] = "", msg[256] = "", shownb[96];
    const char *cr;
    size_t clen;
    time_t exp;
    int rc = -1;

    if (status != 200) {
        tp_creds_xml_text(a->body, a->len, "Code", code, sizeof(code));
        tp_creds_xml_text(a->body, a->len, "Message", msg, sizeof(msg));
        shown(a, shownb, sizeof(shownb));
        snprintf(err, errlen, "STS %s: HTTP %ld: %s%s%s", action, status,
                 code[0] ? code : shownb, msg[0] ? ": " : "", msg);
        return -1;
    }
    cr = memmem(a->body, a->len, "<Credentials>", 13);
    clen = cr ? a->len - (size_t)(cr - a->body) : 0;
    if (!cr || tp_creds_xml_text(cr, clen, "AccessKeyId", ak, sizeof(ak)) < 0 ||
        tp_creds_xml_text(cr, clen, "SecretAccessKey", sk, sizeof(sk)) < 0 ||
        tp_creds_xml_text(cr, clen, "SessionToken", tok, sizeof(tok)) < 0 ||
        tp_creds_xml_text(cr, clen, "Expiration", exps, sizeof(exps)) < 0 ||
        tp_creds_parse_time(exps, &exp) < 0) {
        snprintf(err, errlen, "STS %s: HTTP 200 without Credentials (AccessKeyId, "
                 "SecretAccessKey, SessionToken, Expiration)", action);
        goto done;
    }
    rc = fill(out, ak, sk, tok, exp, strcmp(action, "AssumeRole") == 0 ? "assume-role"
                                                                         : "web-identity",
              err, errlen);
done:
    memset(sk, 0, sizeof(sk));
    memset(tok, 0, sizeof(tok));
    return rc;
}

/* The host[:port] and path of url, as curl sends them. */
static int url_host_path(const char *url, char *host, size_t hostlen, char *path,
                         size_t pathlen)
{
    CURLU *u = curl_url();
    char *h = NULL, *p = NULL, *port = NULL, *scheme = NULL;
    int rc = -1;

    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &p, 0) != CURLUE_OK)
        goto done;
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    if (port && ((strcmp(scheme, "http") == 0 && strcmp(port, "80") == 0) ||
                 (strcmp(scheme, "https") == 0 && strcmp(port, "443") == 0))) {
        curl_free(port);
        port = NULL;
    }
    snprintf(host, hostlen, "%s%s%s", h, port ? ":" : "", port ? port : "");
    snprintf(path, pathlen, "%s", p);
    rc = 0;
done:
    curl_free(h);
    curl_free(p);
    curl_free(port);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

/* Sign an STS POST with src (SigV4, service sts) into headers. */
static int sts_sign(const char *url, const char *sign_region, const char *form,
                    const tp_creds *src, struct curl_slist **headers, char *err, size_t errlen)
{
    char host[512], path[1024], serr[256];
    const char *ct = "application/x-www-form-urlencoded; charset=utf-8";
    tp_sigv4_result sig;
    int rc = -1;

    memset(&sig, 0, sizeof(sig));
    if (url_host_path(url, host, sizeof(host), path, sizeof(path)) < 0) {
        snprintf(err, errlen, "AWS_ENDPOINT_URL_STS: cannot parse the URL");
        return -1;
    }
    {
        tp_sigv4_header sh[2] = { { "Host", host }, { "Content-Type", ct } };
        tp_sigv4_request req = { "POST", path, NULL, sh, 2, (const unsigned char *)form,
                                 strlen(form) };
        tp_sigv4_creds c = { src->access_key_id, src->secret_access_key,
                             src->session_token[0] ? src->session_token : NULL };
        tp_sigv4_params params = { sign_region, "sts", time(NULL), 1, 0, 0, 0 };

        if (tp_sigv4_sign(&req, &c, &params, &sig, serr, sizeof(serr)) < 0) {
            snprintf(err, errlen, "STS AssumeRole: signing failed: %s", serr);
            goto done;
        }
    }
    if (add_hdr(headers, "Host", host) < 0 || add_hdr(headers, "X-Amz-Date", sig.amz_date) < 0 ||
        add_hdr(headers, "Authorization", sig.authorization) < 0 ||
        (src->session_token[0] &&
         add_hdr(headers, "X-Amz-Security-Token", src->session_token) < 0)) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    rc = 0;
done:
    tp_sigv4_result_free(&sig);
    return rc;
}

/* POST form to STS (signed with src unless it is NULL) and read the
 * credentials from its answer. */
static int sts_call(tp_creds_chain *ch, const char *region, const char *action,
                    const char *form, const tp_creds *src, tp_creds *out, char *err,
                    size_t errlen)
{
    char url[URL_MAX], body[ANSWER_MAX + 1], cerr[CURL_ERROR_SIZE];
    const char *sign_region;
    struct curl_slist *headers = NULL;
    answer a = { body, 0, 0 };
    long status;
    int rc = -1;

    sts_endpoint(ch, region, url, sizeof(url), &sign_region);
    if (add_hdr(&headers, "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8") < 0 ||
        add_hdr(&headers, "Expect", "") < 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (src && sts_sign(url, sign_region, form, src, &headers, err, errlen) < 0)
        goto done;
    if (http_do("POST", url, headers, form, STS_TIMEOUT_MS, STS_TIMEOUT_MS, 0, &status, &a,
                cerr, sizeof(cerr)) < 0) {
        snprintf(err, errlen, "STS %s at %s: no answer: %s", action, url, cerr);
        goto done;
    }
    rc = sts_answer(action, status, &a, out, err, errlen);
done:
    curl_slist_free_all(headers);
    memset(body, 0, a.len);
    return rc;
}

/* ------------------------------------------------------------ providers */

/* Each returns 1 with *out, 0 when it does not apply, -1 with err when it
 * applies and failed. */

static int prov_env(tp_creds_chain *ch, const char *region, tp_creds *out, char *err,
                    size_t errlen)
{
    const char *const *e = (const char *const *)ch->env;
    const char *exps = envv(e, E_EXPIRATION);
    time_t exp = 0;

    (void)region;
    if (!envv(e, E_AK) && !envv(e, E_SK))
        return 0;
    if (exps && tp_creds_parse_time(exps, &exp) < 0) {
        snprintf(err, errlen, "AWS_CREDENTIAL_EXPIRATION: not an ISO 8601 time");
        return -1;
    }
    return fill(out, envv(e, E_AK), envv(e, E_SK), envv(e, E_TOKEN), exp, "environment", err,
                errlen) < 0 ? -1 : 1;
}

/* Static keys of a profile in one file (which: 1 or 2) or both (3). */
static int profile_keys(tp_creds_chain *ch, const char *profile, int which, const char *provider,
                        tp_creds *out, char *err, size_t errlen)
{
    char ak[TP_CREDS_KEY_MAX], sk[TP_CREDS_SECRET_MAX], tok[TP_CREDS_TOKEN_MAX];
    int r1, r2, r3, rc;

    r1 = profile_get(ch, profile, which, "aws_access_key_id", ak, sizeof(ak), err, errlen);
    if (r1 < 0)
        return -1;
    r2 = profile_get(ch, profile, which, "aws_secret_access_key", sk, sizeof(sk), err, errlen);
    if (r2 < 0)
        return -1;
    if (!r1 && !r2)
        return 0;
    r3 = profile_get(ch, profile, which, "aws_session_token", tok, sizeof(tok), err, errlen);
    if (r3 < 0)
        return -1;
    if (!r1 || !r2) {
        snprintf(err, errlen, "%s: profile %s has only one of aws_access_key_id and "
                 "aws_secret_access_key", provider, profile);
        return -1;
    }
    rc = fill(out, ak, sk, r3 ? tok : NULL, 0, provider, err, errlen) < 0 ? -1 : 1;
    memset(sk, 0, sizeof(sk));
    memset(tok, 0, sizeof(tok));
    return rc;
}

static int prov_assume_role(tp_creds_chain *ch, const char *region, tp_creds *out, char *err,
                            size_t errlen)
{
    const char *profile = profile_name(ch);
    char arn[512], source[256], ext[256], dur[16], cmd[2048], session[64];
    char form[4096] = "";
    tp_creds src;
    int r, rc = -1;

    r = profile_get(ch, profile, 3, "role_arn", arn, sizeof(arn), err, errlen);
    if (r <= 0)
        return r;
    memset(&src, 0, sizeof(src));
    r = profile_get(ch, profile, 3, "source_profile", source, sizeof(source), err, errlen);
    if (r < 0)
        return -1;
    if (r == 0) {
        snprintf(err, errlen, "assume-role: profile %s has role_arn but no source_profile "
                 "(credential_source is not supported)", profile);
        return -1;
    }
    r = profile_keys(ch, source, 3, "assume-role", &src, err, errlen);
    if (r == 0 && (r = profile_get(ch, source, 3, "credential_process", cmd, sizeof(cmd), err,
                                   errlen)) > 0)
        r = process_creds(cmd, "assume-role", &src, err, errlen) < 0 ? -1 : 1;
    if (r == 0)
        snprintf(err, errlen, "assume-role: source_profile %s has no keys or "
                 "credential_process", source);
    if (r <= 0)
        goto done;
    snprintf(session, sizeof(session), "trackpixel-%lld", (long long)time(NULL));
    if (form_add(form, sizeof(form), "Action", "AssumeRole") < 0 ||
        form_add(form, sizeof(form), "RoleArn", arn) < 0 ||
        form_add(form, sizeof(form), "RoleSessionName", session) < 0 ||
        (profile_get(ch, profile, 3, "external_id", ext, sizeof(ext), err, errlen) > 0 &&
         form_add(form, sizeof(form), "ExternalId", ext) < 0) ||
        (profile_get(ch, profile, 3, "duration_seconds", dur, sizeof(dur), err, errlen) > 0 &&
         form_add(form, sizeof(form), "DurationSeconds", dur) < 0) ||
        form_add(form, sizeof(form), "Version", STS_VERSION) < 0) {
        snprintf(err, errlen, "assume-role: the request is too long");
        goto done;
    }
    rc = sts_call(ch, region, "AssumeRole", form, &src, out, err, errlen) < 0 ? -1 : 1;
done:
    tp_creds_wipe(&src);
    return rc;
}

static int prov_web_identity(tp_creds_chain *ch, const char *region, tp_creds *out, char *err,
                             size_t errlen)
{
    const char *const *e = (const char *const *)ch->env;
    const char *file = envv(e, E_WIT_FILE), *arn = envv(e, E_ROLE_ARN);
    char session[128], *token = NULL, *form = NULL;
    size_t cap = 3 * WEB_TOKEN_MAX + 2048;
    int missing, rc = -1;

    if (!file)
        return 0;
    if (!arn) {
        snprintf(err, errlen, "web-identity: AWS_WEB_IDENTITY_TOKEN_FILE is set but "
                 "AWS_ROLE_ARN is not");
        return -1;
    }
    token = read_small_file(file, WEB_TOKEN_MAX, &missing, err, errlen);
    form = calloc(1, cap);
    if (!token || !form) {
        if (token || !err[0])
            snprintf(err, errlen, "out of memory");
        else
            snprintf(err + strlen(err), errlen - strlen(err), " (AWS_WEB_IDENTITY_TOKEN_FILE)");
        goto done;
    }
    snprintf(session, sizeof(session), "%s", envv(e, E_ROLE_SESSION) ? envv(e, E_ROLE_SESSION)
                                                                     : "");
    if (!session[0])
        snprintf(session, sizeof(session), "trackpixel-%lld", (long long)time(NULL));
    if (form_add(form, cap, "Action", "AssumeRoleWithWebIdentity") < 0 ||
        form_add(form, cap, "RoleArn", arn) < 0 ||
        form_add(form, cap, "RoleSessionName", session) < 0 ||
        form_add(form, cap, "Version", STS_VERSION) < 0 ||
        form_add(form, cap, "WebIdentityToken", trim(token)) < 0) {
        snprintf(err, errlen, "web-identity: the request is too long");
        goto done;
    }
    rc = sts_call(ch, region, "AssumeRoleWithWebIdentity", form, NULL, out, err, errlen) < 0
             ? -1 : 1;
done:
    if (token)
        memset(token, 0, strlen(token));
    free(token);
    free(form);
    return rc;
}

static int prov_shared_file(tp_creds_chain *ch, const char *region, tp_creds *out, char *err,
                            size_t errlen)
{
    (void)region;
    return profile_keys(ch, profile_name(ch), 1, "shared-credentials-file", out, err, errlen);
}

static int prov_process(tp_creds_chain *ch, const char *region, tp_creds *out, char *err,
                        size_t errlen)
{
    char cmd[2048];
    int r = profile_get(ch, profile_name(ch), 3, "credential_process", cmd, sizeof(cmd), err,
                        errlen);

    (void)region;
    if (r <= 0)
        return r;
    return process_creds(cmd, "custom-process", out, err, errlen) < 0 ? -1 : 1;
}

static int prov_config_file(tp_creds_chain *ch, const char *region, tp_creds *out, char *err,
                            size_t errlen)
{
    (void)region;
    return profile_keys(ch, profile_name(ch), 2, "config-file", out, err, errlen);
}

/* http to a host the SDKs allow for the container endpoint: loopback,
 * 169.254.170.2, 169.254.170.23, fd00:ec2::23; https to any host. */
static int container_url_ok(const char *url)
{
    static const char *const allowed[] = { "169.254.170.2", "169.254.170.23", "[fd00:ec2::23]",
                                           "localhost", "[::1]" };
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int ok = 0;
    size_t i;

    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto done;
    if (strcmp(scheme, "https") == 0) {
        ok = 1;
        goto done;
    }
    if (strcmp(scheme, "http") != 0)
        goto done;
    for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (strcasecmp(host, allowed[i]) == 0)
            ok = 1;
    if (strncmp(host, "127.", 4) == 0 && strspn(host, "0123456789.") == strlen(host))
        ok = 1;
done:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

/* The container endpoint's Authorization value (the file first, read each
 * time: it rotates) into out; 0, or -1. */
static int container_token(tp_creds_chain *ch, char *out, size_t outlen, char *err,
                           size_t errlen)
{
    const char *const *e = (const char *const *)ch->env;
    const char *file = envv(e, E_CTOKFILE), *value = envv(e, E_CTOK);
    char *text = NULL;
    int missing, rc = -1;

    out[0] = '\0';
    if (file) {
        text = read_small_file(file, TP_CREDS_TOKEN_MAX - 1, &missing, err, errlen);
        if (!text) {
            snprintf(err + strlen(err), errlen - strlen(err),
                     " (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)");
            return -1;
        }
        value = trim(text);
    }
    if (value && !header_safe(value, 1)) {
        snprintf(err, errlen, "container-role: the authorization token holds control "
                 "characters");
        goto done;
    }
    if (value)
        snprintf(out, outlen, "%s", value);
    rc = 0;
done:
    if (text)
        memset(text, 0, strlen(text));
    free(text);
    return rc;
}

static int prov_container(tp_creds_chain *ch, const char *region, tp_creds *out, char *err,
                          size_t errlen)
{
    const char *const *e = (const char *const *)ch->env;
    const char *rel = envv(e, E_CREL), *full = envv(e, E_CFULL);
    char url[URL_MAX], tok[TP_CREDS_TOKEN_MAX], body[ANSWER_MAX + 1], cerr[CURL_ERROR_SIZE];
    char sh[96];
    struct curl_slist *headers = NULL;
    answer a = { body, 0, 0 };
    long status = 0;
    int rc = -1, attempt;

    (void)region;
    if (!rel && !full)
        return 0;
    if (rel)
        snprintf(url, sizeof(url), "%s%s%s", CONTAINER_HOST, rel[0] == '/' ? "" : "/", rel);
    else
        snprintf(url, sizeof(url), "%s", full);
    if (!rel && !container_url_ok(url)) {
        snprintf(err, errlen, "container-role: AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, "
                 "or http to loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23");
        return -1;
    }
    if (container_token(ch, tok, sizeof(tok), err, errlen) < 0)
        return -1;
    if (add_hdr(&headers, "Accept", "application/json") < 0 ||
        (tok[0] && add_hdr(&headers, "Authorization", tok) < 0)) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (attempt = 0; attempt < 2; attempt++) {
        if (http_do("GET", url, headers, NULL, CONTAINER_TIMEOUT_MS, CONTAINER_TIMEOUT_MS, 1,
                    &status, &a, cerr, sizeof(cerr)) == 0 && status == 200)
            break;
    }
    if (status != 200) {
        shown(&a, sh, sizeof(sh));
        if (status)
            snprintf(err, errlen, "container-role: %s: HTTP %ld %s", url, status, sh);
        else
            snprintf(err, errlen, "container-role: %s: no answer: %s", url, cerr);
        goto done;
    }
    rc = json_creds(a.body, "Token", "container-role", out, err, errlen) < 0 ? -1 : 1;
done:
    curl_slist_free_all(headers);
    memset(tok, 0, sizeof(tok));
    memset(body, 0, a.len);
    return rc;
}

/* ------------------------------------------------------ instance metadata */

static int imds_disabled(const tp_creds_chain *ch)
{
    return is_true(envv((const char *const *)ch->env, E_IMDS_OFF));
}

/* The IMDSv2 token into tok ("" when botocore would fall back to v1: the
 * PUT answered something other than 200 or 400, or not at all).  -1 with
 * err when there is no way on. */
static int imds_token(const char *base, int v1_off, char *tok, size_t toklen, int *reachable,
                      char *err, size_t errlen)
{
    char url[URL_MAX], body[ANSWER_MAX + 1], cerr[CURL_ERROR_SIZE];
    struct curl_slist *headers = NULL;
    answer a = { body, 0, 0 };
    long status = 0;
    int rc = -1, got;

    tok[0] = '\0';
    snprintf(url, sizeof(url), "%s/latest/api/token", base);
    if (add_hdr(&headers, "X-aws-ec2-metadata-token-ttl-seconds", "21600") < 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    got = http_do("PUT", url, headers, "", IMDS_CONNECT_MS, IMDS_TIMEOUT_MS, 1, &status, &a,
                  cerr, sizeof(cerr)) == 0;
    *reachable = got;
    if (got && status == 200 && a.len && !a.cut && a.len < toklen && header_safe(a.body, 0)) {
        snprintf(tok, toklen, "%s", a.body);
        rc = 0;
    } else if (got && status == 400) {
        snprintf(err, errlen, "iam-role: instance metadata refused the token request (HTTP 400)");
    } else if (v1_off && got) {
        snprintf(err, errlen, "iam-role: no IMDSv2 token (HTTP %ld) and "
                 "AWS_EC2_METADATA_V1_DISABLED=true", status);
    } else if (v1_off) {
        snprintf(err, errlen, "iam-role: no IMDSv2 token (no answer: %s) and "
                 "AWS_EC2_METADATA_V1_DISABLED=true", cerr);
    } else if (!got) {
        snprintf(err, errlen, "iam-role: instance metadata at %s: no answer: %s", base, cerr);
    } else {
        rc = 0;                          /* v1, as botocore falls back */
    }
done:
    curl_slist_free_all(headers);
    memset(body, 0, a.len);
    return rc;
}

/* GET an instance metadata path with the token ("" : v1) into a. */
static int imds_get(const char *base, const char *path, const char *tok, answer *a,
                    char *err, size_t errlen)
{
    char url[URL_MAX], cerr[CURL_ERROR_SIZE], sh[96];
    struct curl_slist *headers = NULL;
    long status = 0;
    int rc = -1;

    snprintf(url, sizeof(url), "%s%s", base, path);
    if (tok[0] && add_hdr(&headers, "X-aws-ec2-metadata-token", tok) < 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (http_do("GET", url, headers, NULL, IMDS_CONNECT_MS, IMDS_TIMEOUT_MS, 1, &status, a,
                cerr, sizeof(cerr)) < 0) {
        snprintf(err, errlen, "iam-role: %s: no answer: %s", path, cerr);
        goto done;
    }
    if (status != 200) {
        shown(a, sh, sizeof(sh));
        snprintf(err, errlen, "iam-role: %s: HTTP %ld%s%s", path, status, sh[0] ? " " : "", sh);
        goto done;
    }
    if (a->cut || !a->len) {
        /* Not a word of it: a 200 answer may hold the credentials. */
        snprintf(err, errlen, "iam-role: %s: %s answer", path, a->cut ? "a too large" : "an empty");
        goto done;
    }
    rc = 0;
done:
    curl_slist_free_all(headers);
    return rc;
}

static void imds_base(const tp_creds_chain *ch, char *out, size_t outlen)
{
    const char *v = envv((const char *const *)ch->env, E_IMDS_URL);
    size_t n;

    snprintf(out, outlen, "%s", v ? v : IMDS_DEFAULT);
    n = strlen(out);
    while (n && out[n - 1] == '/')
        out[--n] = '\0';
}

static int prov_imds(tp_creds_chain *ch, const char *region, tp_creds *out, char *err,
                     size_t errlen)
{
    char base[URL_MAX], tok[512], role[256], path[512], body[ANSWER_MAX + 1];
    answer a = { body, 0, 0 };
    int reachable = 0, rc = -1;
    json_object *j = NULL, *code = NULL;
    size_t n;

    (void)region;
    if (imds_disabled(ch))
        return 0;
    imds_base(ch, base, sizeof(base));
    if (imds_token(base, is_true(envv((const char *const *)ch->env, E_IMDS_V1_OFF)), tok,
                   sizeof(tok), &reachable, err, errlen) < 0)
        return -1;
    if (imds_get(base, "/latest/meta-data/iam/security-credentials/", tok, &a, err, errlen) < 0)
        goto done;
    n = strcspn(a.body, "\r\n");
    if (n == 0 || n >= sizeof(role) || strspn(a.body, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkl"
                                               "mnopqrstuvwxyz0123456789+=,.@_-") != n) {
        snprintf(err, errlen, "iam-role: the instance profile's role name is not one");
        goto done;
    }
    memcpy(role, a.body, n);
    role[n] = '\0';
    snprintf(path, sizeof(path), "/latest/meta-data/iam/security-credentials/%s", role);
    if (imds_get(base, path, tok, &a, err, errlen) < 0)
        goto done;
    j = json_tokener_parse(a.body);
    if (j && json_object_object_get_ex(j, "Code", &code) &&
        strcmp(json_object_get_string(code), "Success") != 0) {
        snprintf(err, errlen, "iam-role: Code is not Success");
        goto done;
    }
    rc = json_creds(a.body, "Token", "iam-role", out, err, errlen) < 0 ? -1 : 1;
done:
    json_object_put(j);
    memset(body, 0, a.len);
    memset(tok, 0, sizeof(tok));
    return rc;
}

int tp_creds_chain_imds_region(tp_creds_chain *ch, char *out, size_t outlen, char *err,
                               size_t errlen)
{
    char base[URL_MAX], tok[512], body[ANSWER_MAX + 1];
    answer a = { body, 0, 0 };
    int reachable = 0, rc;
    size_t n;

    if (imds_disabled(ch)) {
        snprintf(err, errlen, "instance metadata is off (AWS_EC2_METADATA_DISABLED)");
        return -1;
    }
    imds_base(ch, base, sizeof(base));
    abort_flag = ch->abort;
    rc = imds_token(base, is_true(envv((const char *const *)ch->env, E_IMDS_V1_OFF)), tok,
                    sizeof(tok), &reachable, err, errlen) < 0 ||
         imds_get(base, "/latest/meta-data/placement/region", tok, &a, err, errlen) < 0;
    abort_flag = NULL;
    if (rc)
        return -1;
    n = strcspn(a.body, "\r\n");
    if (n == 0 || n >= outlen || n >= TP_CREDS_REGION_MAX ||
        strspn(a.body, "abcdefghijklmnopqrstuvwxyz0123456789-") != n) {
        snprintf(err, errlen, "instance metadata: placement/region is not a region name");
        return -1;
    }
    memcpy(out, a.body, n);
    out[n] = '\0';
    return 0;
}

/* ---------------------------------------------------------------- chain */

static const struct {
    const char *name;
    provider_fn fn;
} providers[] = {
    { "environment", prov_env },
    { "assume-role", prov_assume_role },
    { "web-identity", prov_web_identity },
    { "shared-credentials-file", prov_shared_file },
    { "custom-process", prov_process },
    { "config-file", prov_config_file },
    { "container-role", prov_container },
    { "iam-role", prov_imds },
};
#define NPROVIDERS (sizeof(providers) / sizeof(providers[0]))

tp_creds_chain *tp_creds_chain_new(char *const *envp)
{
    tp_creds_chain *ch = calloc(1, sizeof(*ch));
    int i;

    if (!ch)
        return NULL;
    ch->chosen = -1;
    for (i = 0; i < E_COUNT; i++) {
        const char *v = env_lookup(envp, env_names[i]);
        if (v && !(ch->env[i] = strdup(v))) {
            tp_creds_chain_free(ch);
            return NULL;
        }
    }
    return ch;
}

void tp_creds_chain_free(tp_creds_chain *ch)
{
    if (!ch)
        return;
    for (int i = 0; i < E_COUNT; i++) {
        if (ch->env[i])
            memset(ch->env[i], 0, strlen(ch->env[i]));
        free(ch->env[i]);
    }
    free(ch);
}

static int chain_get(tp_creds_chain *ch, const char *region, tp_creds *out, char *err,
                     size_t errlen);

void tp_creds_chain_set_abort(tp_creds_chain *ch, const atomic_int *flag)
{
    ch->abort = flag;
}

int tp_creds_chain_get(tp_creds_chain *ch, const char *region, tp_creds *out, char *err,
                       size_t errlen)
{
    int rc;

    abort_flag = ch->abort;
    rc = chain_get(ch, region, out, err, errlen);
    abort_flag = NULL;
    return rc;
}

static int chain_get(tp_creds_chain *ch, const char *region, tp_creds *out, char *err,
                     size_t errlen)
{
    size_t i;
    int r;

    err[0] = '\0';
    if (ch->chosen >= 0) {
        r = providers[ch->chosen].fn(ch, region, out, err, errlen);
        if (r == 0)
            snprintf(err, errlen, "%s: no longer configured", providers[ch->chosen].name);
        return r > 0 ? 0 : -1;
    }
    for (i = 0; i < NPROVIDERS; i++) {
        r = providers[i].fn(ch, region, out, err, errlen);
        if (r > 0) {
            ch->chosen = (int)i;
            return 0;
        }
        if (r < 0)
            return -1;     /* a provider that applies and failed ends the chain */
    }
    snprintf(err, errlen, "no AWS credentials: none in the environment, the profile %s, web "
             "identity, a container endpoint%s", profile_name(ch),
             imds_disabled(ch) ? "" : " or instance metadata");
    return -1;
}

/* ---------------------------------------------------------------- cache */

struct tp_creds_cache {
    pthread_mutex_t lock;
    tp_creds cur;
    int have;
    time_t fetched;            /* when cur came (corrected time)         */
    time_t last_try;           /* the last attempt, 0: none              */
    int wanted;                /* the cluster refused cur                */
    char region[TP_CREDS_REGION_MAX];
    long skew;                 /* cluster's clock - ours                 */
    int skew_news;
    long test_offset;          /* test builds: the clock made wrong      */
};

tp_creds_cache *tp_creds_cache_new(const char *region)
{
    tp_creds_cache *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    pthread_mutex_init(&c->lock, NULL);
    snprintf(c->region, sizeof(c->region), "%s", region ? region : "");
#ifdef TP_TEST_HOOKS
    {
        const char *v = getenv("TRACKPIXEL_TEST_CLOCK_OFFSET_S");
        c->test_offset = v ? strtol(v, NULL, 10) : 0;
    }
#endif
    return c;
}

void tp_creds_cache_free(tp_creds_cache *c)
{
    if (!c)
        return;
    tp_creds_wipe(&c->cur);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

time_t tp_creds_cache_now(tp_creds_cache *c)
{
    long off;

    pthread_mutex_lock(&c->lock);
    off = c->test_offset + c->skew;
    pthread_mutex_unlock(&c->lock);
    return time(NULL) + off;
}

int tp_creds_cache_get(tp_creds_cache *c, time_t now, tp_creds *out, char *region,
                       size_t regionlen)
{
    int rc = -1;

    pthread_mutex_lock(&c->lock);
    if (c->have && c->region[0] && (!c->cur.expiration || now < c->cur.expiration)) {
        if (out)
            *out = c->cur;
        if (region)
            snprintf(region, regionlen, "%s", c->region);
        rc = 0;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* Lock held: when cur is to be refreshed (0: never). */
static time_t refresh_at(const tp_creds_cache *c)
{
    time_t exp = c->cur.expiration, life;

    if (!c->have || !exp)
        return 0;
    life = exp - c->fetched;
    if (life < 2 * TP_CREDS_REFRESH_S)
        return c->fetched + life / 2;
    return exp - TP_CREDS_REFRESH_S;
}

int tp_creds_cache_due(tp_creds_cache *c, time_t now, time_t *next)
{
    time_t at, earliest;
    int due;

    pthread_mutex_lock(&c->lock);
    earliest = c->last_try ? c->last_try + TP_CREDS_RETRY_S : 0;
    if (!c->have || c->wanted || !c->region[0])
        at = now;
    else
        at = refresh_at(c);
    if (at && at < earliest)
        at = earliest;
    due = at && now >= at;
    *next = at;
    pthread_mutex_unlock(&c->lock);
    return due;
}

void tp_creds_cache_store(tp_creds_cache *c, time_t now, const tp_creds *cr)
{
    pthread_mutex_lock(&c->lock);
    c->cur = *cr;
    c->have = 1;
    c->fetched = now;
    c->last_try = now;
    c->wanted = 0;
    pthread_mutex_unlock(&c->lock);
}

void tp_creds_cache_failed(tp_creds_cache *c, time_t now)
{
    pthread_mutex_lock(&c->lock);
    c->last_try = now;
    pthread_mutex_unlock(&c->lock);
}

void tp_creds_cache_set_region(tp_creds_cache *c, const char *region)
{
    pthread_mutex_lock(&c->lock);
    snprintf(c->region, sizeof(c->region), "%s", region);
    pthread_mutex_unlock(&c->lock);
}

int tp_creds_cache_has_region(tp_creds_cache *c)
{
    int r;
    pthread_mutex_lock(&c->lock);
    r = c->region[0] != '\0';
    pthread_mutex_unlock(&c->lock);
    return r;
}

void tp_creds_cache_reject(tp_creds_cache *c)
{
    pthread_mutex_lock(&c->lock);
    c->wanted = 1;
    pthread_mutex_unlock(&c->lock);
}

void tp_creds_cache_set_skew(tp_creds_cache *c, time_t server_time, time_t local)
{
    long skew;

    pthread_mutex_lock(&c->lock);
    /* local is already corrected by the current skew: add the rest. */
    skew = c->skew + (long)(server_time - local);
    if (skew != c->skew) {
        c->skew = skew;
        c->skew_news = 1;
    }
    pthread_mutex_unlock(&c->lock);
}

int tp_creds_cache_skew_news(tp_creds_cache *c, long *offset)
{
    int r;

    pthread_mutex_lock(&c->lock);
    r = c->skew_news;
    c->skew_news = 0;
    *offset = c->skew;
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* ----------------------------------------------------------------- plan */

int tp_creds_region_from_url(const char *url, char *out, size_t outlen)
{
    CURLU *u = curl_url();
    char *host = NULL, *p, *labels[16];
    size_t n = 0, i;
    int rc = -1;

    if (!url || !u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto done;
    for (p = strtok(host, "."); p && n < 16; p = strtok(NULL, "."))
        labels[n++] = p;
    /* ... REGION . (es|aoss) . amazonaws . com [. cn] */
    for (i = 1; i + 2 < n; i++) {
        if ((strcasecmp(labels[i], "es") == 0 || strcasecmp(labels[i], "aoss") == 0) &&
            strcasecmp(labels[i + 1], "amazonaws") == 0 && strcasecmp(labels[i + 2], "com") == 0 &&
            (i + 3 == n || (i + 4 == n && strcasecmp(labels[i + 3], "cn") == 0)) &&
            strlen(labels[i - 1]) < outlen &&
            strspn(labels[i - 1], "abcdefghijklmnopqrstuvwxyz0123456789-") ==
                strlen(labels[i - 1])) {
            snprintf(out, outlen, "%s", labels[i - 1]);
            rc = 0;
        }
    }
done:
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

void tp_creds_plan_make(char *const *envp, const char *es_url, tp_creds_plan *out)
{
    tp_creds_chain *ch = tp_creds_chain_new(envp);
    const char *const *e;
    char v[256], err[256];
    int aws_url;

    memset(out, 0, sizeof(*out));
    if (!ch || !es_url)
        goto done;
    e = (const char *const *)ch->env;
    aws_url = tp_creds_region_from_url(es_url, v, sizeof(v)) == 0;
    out->imds = !imds_disabled(ch);
    out->wanted = aws_url || envv(e, E_SERVICE) || envv(e, E_AK) || envv(e, E_PROFILE) ||
                  envv(e, E_WIT_FILE) || envv(e, E_CREL) || envv(e, E_CFULL) ||
                  profile_get(ch, profile_name(ch), 3, "aws_access_key_id", v, sizeof(v), err,
                              sizeof(err)) ||
                  profile_get(ch, profile_name(ch), 3, "role_arn", v, sizeof(v), err,
                              sizeof(err)) ||
                  profile_get(ch, profile_name(ch), 3, "credential_process", v, sizeof(v), err,
                              sizeof(err));
    if (envv(e, E_REGION)) {
        snprintf(out->region, sizeof(out->region), "%s", envv(e, E_REGION));
        out->region_from = "AWS_REGION";
    } else if (envv(e, E_DEFREGION)) {
        snprintf(out->region, sizeof(out->region), "%s", envv(e, E_DEFREGION));
        out->region_from = "AWS_DEFAULT_REGION";
    } else if (profile_get(ch, profile_name(ch), 2, "region", v, sizeof(v), err,
                           sizeof(err)) > 0 && strlen(v) < sizeof(out->region)) {
        snprintf(out->region, sizeof(out->region), "%s", v);
        out->region_from = "the profile's region";
    } else if (tp_creds_region_from_url(es_url, out->region, sizeof(out->region)) == 0) {
        out->region_from = "TRACKPIXEL_ES_URL";
    } else {
        out->region[0] = '\0';
        out->region_from = out->imds ? "instance metadata" : "nowhere";
    }
done:
    tp_creds_chain_free(ch);
}
