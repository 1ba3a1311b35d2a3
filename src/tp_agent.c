#include "tp_agent.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp_hex.h"

#define NAME_MAX_LEN 64
#define TOKEN_MIN_LEN 3
#define TOKEN_MAX_LEN 128
#define FILE_MAX (4L * 1024 * 1024)

/* One pattern.  Tokens are indexed by a 16-bit hash of their first three
 * bytes folded to lower case (the key), so a position of the User-Agent
 * whose three bytes start no token costs one bit test (and about one in 60
 * of the others, a hash collision, a look at a few tokens).  Three bytes,
 * not two: a browser's User-Agent is full of pairs that start some token
 * ("go", "se", "we"), far fewer triples. */
typedef struct pat {
    uint32_t line;          /* its order in the list: the first match wins */
    uint32_t tok;           /* offset in text of the folded token */
    uint32_t name;          /* offset in text of the name */
    uint32_t three;         /* its first three folded bytes, as key_of() takes them */
    uint16_t key;           /* key_of() its first three bytes */
    uint16_t len;           /* of the token, without its '^' */
    uint8_t cls;
    uint8_t anchored;       /* only at the start of the User-Agent */
} pat;

struct tp_agents {
    char *text;             /* names and folded tokens, each NUL-ended */
    pat *p;                 /* sorted by key, then line */
    size_t n;
    uint16_t *start;        /* bucket b (the b-th key in use): p[start[b] .. start[b + 1]) */
    unsigned char fold[256];    /* ASCII lower case */
    uint64_t bits[1024];    /* bit k: some token's key is k */
    uint16_t rank[1024];    /* bits set in the words before this one */
};

/* The key of three folded bytes, given as one number a << 16 | b << 8 | c. */
static inline uint16_t key_of(uint32_t three)
{
    return (uint16_t)((three * 2654435761u) >> 16);
}

static const char *const class_names[] = {
    "unknown", "browser", "bot", "email-proxy", "prefetch",
};

const char *tp_agent_class_name(tp_agent_class cls)
{
    if ((size_t)cls >= sizeof(class_names) / sizeof(class_names[0]))
        return "unknown";
    return class_names[cls];
}

size_t tp_agents_count(const tp_agents *a)
{
    return a ? a->n : 0;
}

void tp_agents_free(tp_agents *a)
{
    if (!a)
        return;
    free(a->text);
    free(a->p);
    free(a->start);
    free(a);
}

/* ------------------------------------------------------------ parsing */

/* s[0..*n) without spaces and tabs around it. */
static const char *trim(const char *s, size_t *n)
{
    while (*n && (*s == ' ' || *s == '\t')) {
        s++;
        (*n)--;
    }
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t' || s[*n - 1] == '\r'))
        (*n)--;
    return s;
}

static int printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int class_of(const char *s, size_t n)
{
    for (int c = TP_AGENT_BOT; c <= TP_AGENT_PREFETCH; c++)
        if (strlen(class_names[c]) == n && memcmp(s, class_names[c], n) == 0)
            return c;
    return -1;
}

/* One line "class | name | token" into a->p[a->n] (names and tokens go to
 * a->text at *used).  0 for a pattern, 1 for a blank or comment line, -1
 * with the reason in why. */
static int parse_line(tp_agents *a, const char *line, size_t n, size_t *used,
                      const char **why)
{
    const char *f[3], *bar;
    size_t fl[3], k;
    pat *p = &a->p[a->n];
    int cls;

    line = trim(line, &n);
    if (n == 0 || line[0] == '#')
        return 1;
    if (a->n == TP_AGENT_MAX_PATTERNS) {
        *why = "more than 8192 patterns";
        return -1;
    }
    for (k = 0; k < 3; k++) {
        bar = k < 2 ? memchr(line, '|', n) : NULL;
        if (k < 2 && !bar) {
            *why = "not three fields \"class | name | token\"";
            return -1;
        }
        fl[k] = bar ? (size_t)(bar - line) : n;
        f[k] = trim(line, &fl[k]);
        if (bar) {
            n -= (size_t)(bar - line) + 1;
            line = bar + 1;
        }
    }
    if ((cls = class_of(f[0], fl[0])) < 0) {
        *why = "the class is not bot, email-proxy or prefetch";
        return -1;
    }
    p->anchored = fl[2] > 0 && f[2][0] == '^';
    if (p->anchored) {
        f[2]++;
        fl[2]--;
    }
    if (fl[1] > NAME_MAX_LEN || !printable(f[1], fl[1])) {
        *why = "the name is longer than 64 bytes or not printable ASCII";
        return -1;
    }
    if (fl[2] < TOKEN_MIN_LEN || fl[2] > TOKEN_MAX_LEN || !printable(f[2], fl[2]) ||
        memchr(f[2], '|', fl[2])) {
        *why = "the token is not 3 to 128 bytes of printable ASCII without '|'";
        return -1;
    }
    p->cls = (uint8_t)cls;
    p->line = (uint32_t)a->n;
    p->len = (uint16_t)fl[2];
    p->name = (uint32_t)*used;
    memcpy(a->text + *used, f[1], fl[1]);
    *used += fl[1];
    a->text[(*used)++] = '\0';
    p->tok = (uint32_t)*used;
    for (k = 0; k < fl[2]; k++)
        a->text[(*used)++] = (char)tp_lower((unsigned char)f[2][k]);
    a->text[(*used)++] = '\0';
    p->three = (uint32_t)(unsigned char)a->text[p->tok] << 16 |
               (uint32_t)(unsigned char)a->text[p->tok + 1] << 8 |
               (unsigned char)a->text[p->tok + 2];
    p->key = key_of(p->three);
    a->n++;
    return 0;
}

static int by_key_then_line(const void *x, const void *y)
{
    const pat *a = x, *b = y;

    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    return a->line < b->line ? -1 : a->line > b->line;
}

/* The index: patterns sorted by key, a bit per key in use, its bucket. */
static int build_index(tp_agents *a)
{
    size_t i, b = 0;

    qsort(a->p, a->n, sizeof(*a->p), by_key_then_line);
    a->start = calloc(a->n + 1, sizeof(*a->start));
    if (!a->start)
        return -1;
    for (i = 0; i < a->n; i++) {
        if (i == 0 || a->p[i].key != a->p[i - 1].key)
            a->start[b++] = (uint16_t)i;
        a->bits[a->p[i].key >> 6] |= (uint64_t)1 << (a->p[i].key & 63);
    }
    a->start[b] = (uint16_t)a->n;
    for (i = 0; i < 256; i++)
        a->fold[i] = tp_lower((unsigned char)i);
    for (i = 1; i < 1024; i++)
        a->rank[i] = (uint16_t)(a->rank[i - 1] + __builtin_popcountll(a->bits[i - 1]));
    return 0;
}

tp_agents *tp_agents_parse(const char *text, size_t len, char *err, size_t errlen)
{
    tp_agents *a = calloc(1, sizeof(*a));
    size_t lines = 1, used = 0, lineno = 0, i;
    const char *s = text, *end = text + len, *why = NULL;

    if (len > (size_t)FILE_MAX) {
        snprintf(err, errlen, "larger than 4 MiB");
        free(a);
        return NULL;
    }
    for (i = 0; i < len; i++)
        lines += text[i] == '\n';
    /* A line's name and token, each NUL-ended, take no more room than the
     * line itself (its two '|' pay for the NULs): len + 1 bytes hold all. */
    if (!a || !(a->text = malloc(len + 1)) ||
        !(a->p = calloc(lines < TP_AGENT_MAX_PATTERNS ? lines : TP_AGENT_MAX_PATTERNS,
                        sizeof(*a->p))))
        goto oom;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
        int r;

        lineno++;
        if (memchr(s, '\0', n)) {
            why = "a NUL byte";
            goto bad;
        }
        r = parse_line(a, s, n, &used, &why);
        if (r < 0)
            goto bad;
        s += n + (nl != NULL);
    }
    if (build_index(a) < 0)
        goto oom;
    return a;
bad:
    snprintf(err, errlen, "line %zu: %s", lineno, why);
    tp_agents_free(a);
    return NULL;
oom:
    snprintf(err, errlen, "out of memory");
    tp_agents_free(a);
    return NULL;
}

tp_agents *tp_agents_load(const char *path, char *err, size_t errlen)
{
    FILE *f = NULL;
    char *buf = NULL, why[256];
    size_t len;
    tp_agents *a = NULL;

    if (!path)
        return tp_agents_parse(tp_agents_builtin, strlen(tp_agents_builtin), err, errlen);
    buf = malloc(FILE_MAX + 1);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto done;
    }
    len = fread(buf, 1, FILE_MAX + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
        goto done;
    }
    if (len > (size_t)FILE_MAX) {
        snprintf(err, errlen, "%s: larger than 4 MiB", path);
        goto done;
    }
    a = tp_agents_parse(buf, len, why, sizeof(why));
    if (!a)
        snprintf(err, errlen, "%s: %s", path, why);
done:
    if (f)
        fclose(f);
    free(buf);
    return a;
}

/* ------------------------------------------------------------ matching */

/* How many bytes of s, from the first, equal the folded token t[0..n)
 * (ASCII case ignored): n when all do. */
static size_t same_folded(const unsigned char *fold, const unsigned char *s, const char *t,
                          size_t n)
{
    size_t i = 0;

    while (i < n && fold[s[i]] == (unsigned char)t[i])
        i++;
    return i;
}

/* The first pattern of the list (by line) whose token occurs in s[0..n).
 * A User-Agent made of the starts of many tokens ("googoogoo...") would make
 * every position look at dozens of them: the tokens looked at (1 each) and
 * the bytes compared past their first three may cost TP_AGENT_BUDGET in all,
 * then the scan stops with what it found. */
static const pat *first_match(const tp_agents *a, const unsigned char *s, size_t n)
{
    const pat *best = NULL;
    const unsigned char *fold = a->fold;
    uint32_t three;
    long budget = TP_AGENT_BUDGET;

    if (n < TOKEN_MIN_LEN)
        return NULL;
    /* The three folded bytes at i, rolled along. */
    three = (uint32_t)fold[s[0]] << 8 | fold[s[1]];
    for (size_t i = 0; i + 2 < n; i++) {
        unsigned key;
        uint64_t word, bit;
        size_t b, k, same;

        three = (three << 8 | fold[s[i + 2]]) & 0xffffff;
        key = key_of(three);
        word = a->bits[key >> 6];
        bit = (uint64_t)1 << (key & 63);
        if (!(word & bit))
            continue;
        b = a->rank[key >> 6] + (size_t)__builtin_popcountll(word & (bit - 1));
        for (k = a->start[b]; k < a->start[b + 1]; k++) {
            const pat *p = &a->p[k];
            if (best && p->line >= best->line)
                break;            /* the rest of the bucket comes later */
            if (--budget < 0)
                return best;
            if (p->three != three || p->len > n - i || (p->anchored && i > 0))
                continue;
            same = same_folded(fold, s + i + 3, a->text + p->tok + 3, p->len - 3U);
            budget -= (long)same;
            if (same == p->len - 3U) {
                best = p;
                break;
            }
        }
        if (best && best->line == 0)
            break;
    }
    return best;
}

/* The value, or one of its comma-separated items (parameters after ';'
 * aside), is "prefetch", ASCII case ignored: Sec-Purpose: prefetch;prerender,
 * Purpose: prefetch, X-Moz: prefetch. */
static int says_prefetch(const char *v)
{
    while (v && *v) {
        size_t n = strcspn(v, ",;");
        const char *item = trim(v, &n);

        size_t k = 0;

        while (k < n && k < 8 && tp_lower((unsigned char)item[k]) == "prefetch"[k])
            k++;
        if (n == 8 && k == 8)
            return 1;
        v = strchr(v, ',');
        if (v)
            v++;
    }
    return 0;
}

/* Rule 3: Mozilla/ and an engine token. */
static int looks_like_browser(const char *ua, size_t n)
{
    static const char *const engines[] = { "AppleWebKit/", "Gecko/", "Trident/", "Presto/" };

    if (n < 8 || memcmp(ua, "Mozilla/", 8) != 0)
        return 0;
    for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
        if (memmem(ua, n, engines[i], strlen(engines[i])))
            return 1;
    return 0;
}

void tp_agent_classify(const tp_agents *agents, const char *user_agent,
                       const char *sec_purpose, const char *purpose, const char *x_moz,
                       tp_agent *out)
{
    size_t n = user_agent ? strnlen(user_agent, TP_AGENT_SCAN_MAX) : 0;
    const pat *p = agents && n ? first_match(agents, (const unsigned char *)user_agent, n) : NULL;

    out->name = "";
    if (p) {
        out->cls = (tp_agent_class)p->cls;
        out->name = agents->text + p->name;
    } else if (says_prefetch(sec_purpose) || says_prefetch(purpose) || says_prefetch(x_moz)) {
        out->cls = TP_AGENT_PREFETCH;
    } else if (looks_like_browser(user_agent, n)) {
        out->cls = TP_AGENT_BROWSER;
    } else {
        out->cls = TP_AGENT_UNKNOWN;
    }
}
