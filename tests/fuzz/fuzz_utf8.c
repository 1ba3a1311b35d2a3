/*
 * fuzz_utf8 - tp_utf8_valid / tp_utf8_repair / tp_utf8_repair_dup.
 *
 * Properties:
 *  - tp_utf8_valid agrees with an independent validator (code points decoded
 *    with shifts and checked against the ranges, not Table 3-7);
 *  - the repair is byte-exact with an independent reference of "substitution
 *    of maximal subparts": at each position the longest prefix that some valid
 *    sequence starts with is one U+FFFD;
 *  - the repair of valid input is the input; repairing twice changes nothing;
 *  - with a small output buffer the output is a prefix of the full repair that
 *    never splits a character, and never writes past outcap;
 *  - tp_utf8_repair_dup honours max_bytes and says when it cut.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tp_utf8.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

/* Does some valid UTF-8 sequence start with p[0..n)?  (n >= 1) */
static int valid_prefix(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t need, i;
    uint32_t lo, hi, min;

    if (c < 0x80)
        return n == 1;
    if ((c & 0xE0) == 0xC0)
        need = 2, lo = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        need = 3, lo = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        need = 4, lo = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n > need)
        return 0;
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        lo = lo << 6 | (p[i] & 0x3F);
    }
    hi = lo;
    for (; i < need; i++) {          /* the smallest and largest completions */
        lo = lo << 6;
        hi = hi << 6 | 0x3F;
    }
    /* Some code point in [lo, hi] is allowed: >= min, <= 10FFFF, not a
     * surrogate. */
    if (hi < min || lo > 0x10FFFF)
        return 0;
    if (lo >= 0xD800 && hi <= 0xDFFF)
        return 0;
    return 1;
}

/* Length of a complete valid character at p (or 0). */
static size_t ref_char(const unsigned char *p, size_t len)
{
    size_t n;

    for (n = 1; n <= 4 && n <= len; n++) {
        if (!valid_prefix(p, n))
            return 0;
        if (p[0] < 0x80 || n == (size_t)((p[0] >= 0xF0) ? 4 : (p[0] >= 0xE0) ? 3 : 2))
            return n;
    }
    return 0;
}

static int ref_valid(const unsigned char *p, size_t len)
{
    size_t i = 0, n;

    while (i < len) {
        n = ref_char(p + i, len - i);
        if (!n)
            return 0;
        i += n;
    }
    return 1;
}

/* Reference repair into out (3 * len bytes); returns its length. */
static size_t ref_repair(const unsigned char *p, size_t len, unsigned char *out)
{
    size_t i = 0, o = 0;

    while (i < len) {
        size_t n = ref_char(p + i, len - i);
        if (n) {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
            continue;
        }
        /* the maximal subpart: longest valid prefix, at least one byte */
        n = 1;
        while (n < 4 && i + n < len && valid_prefix(p + i, n + 1))
            n++;
        memcpy(out + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += n;
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t cap = 3 * size, n, ref_n, n2, consumed = 0, small, dlen = 0;
    unsigned char *ref = malloc(cap + 1);
    char *out = malloc(cap + 1), *again = malloc(cap + 1), *part, *dup;
    int valid = tp_utf8_valid(s, size), cut = -1;

    CHECK(ref && out && again);
    CHECK(valid == ref_valid(data, size));

    /* Full repair: exact, valid, idempotent. */
    n = tp_utf8_repair(s, size, out, cap, &consumed);
    CHECK(consumed == size);
    CHECK(n <= cap);
    ref_n = ref_repair(data, size, ref);
    CHECK(n == ref_n && memcmp(out, ref, n) == 0);
    CHECK(tp_utf8_valid(out, n) && ref_valid((const unsigned char *)out, n));
    if (valid)
        CHECK(n == size && memcmp(out, s, size) == 0);
    n2 = tp_utf8_repair(out, n, again, cap, NULL);
    CHECK(n2 == n && memcmp(again, out, n) == 0);

    /* A short buffer, exactly as large as claimed (ASan sees any overrun). */
    small = size ? (size_t)data[0] % (cap + 1) : 0;
    part = malloc(small ? small : 1);
    CHECK(part);
    n2 = tp_utf8_repair(s, size, part, small, &consumed);
    CHECK(n2 <= small && consumed <= size);
    CHECK(memcmp(part, out, n2) == 0);           /* a prefix of the full repair */
    CHECK(tp_utf8_valid(part, n2));              /* never a split character */
    if (consumed < size) {
        /* the next piece did not fit */
        size_t next = tp_utf8_repair(s + consumed, size - consumed, again, cap, NULL);
        size_t piece = next >= 3 && memcmp(again, "\xEF\xBF\xBD", 3) == 0 ? 3 : 0;
        if (!piece) {
            unsigned char c = (unsigned char)again[0];
            piece = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        }
        CHECK(next > 0 && n2 + piece > small);
    }
    if (n2 < small)
        CHECK(part[n2] == '\0');
    free(part);

    /* repair_dup with a byte limit */
    dup = tp_utf8_repair_dup(s, size, small, &dlen, &cut);
    CHECK(dup);
    CHECK(dup[dlen] == '\0');
    CHECK(small == 0 || dlen <= small);
    CHECK(memcmp(dup, out, dlen) == 0);
    CHECK(tp_utf8_valid(dup, dlen));
    CHECK(cut == (dlen < n));
    free(dup);

    free(ref);
    free(out);
    free(again);
    return 0;
}
