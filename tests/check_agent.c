/* tp_agent: real user agents and request headers -> the exact class and
 * name; the list's format, its errors, and the order of its lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tp_agent.h"
#include "tp_check.h"

/* The pattern lines of data/agents.txt. */
#define BUILTIN_PATTERNS 1500

#define CHROME_WIN "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
#define FIREFOX "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
#define LONG_UA_LEN 4096

typedef struct row {
    const char *name;
    const char *ua;                  /* NULL: no User-Agent header */
    const char *sec_purpose, *purpose, *x_moz;
    const char *cls, *agent;
} row;

static const row rows[] = {
    { "Chrome on Windows", CHROME_WIN, NULL, NULL, NULL, "browser", "" },
    { "Chrome on Android",
      "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
      NULL, NULL, NULL, "browser", "" },
    { "Firefox on Linux", FIREFOX, NULL, NULL, NULL, "browser", "" },
    { "Firefox on Windows",
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
      NULL, NULL, NULL, "browser", "" },
    { "Safari on iOS",
      "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
      NULL, NULL, NULL, "browser", "" },
    { "Safari on macOS",
      "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
      NULL, NULL, NULL, "browser", "" },
    { "Edge", CHROME_WIN " Edg/131.0.0.0", NULL, NULL, NULL, "browser", "" },
    { "Internet Explorer 11",
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Trident/7.0; rv:11.0) like Gecko",
      NULL, NULL, NULL, "browser", "" },
    /* ^Silk/ is a robot's user agent; Amazon's Silk browser has Silk/ inside. */
    { "Amazon Silk (not the robot ^Silk/)",
      "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/130.2.1 like Chrome/130.0.6723.102 Safari/537.36",
      NULL, NULL, NULL, "browser", "" },
    { "a Cubot phone (not a robot)",
      "Mozilla/5.0 (Linux; Android 12; CUBOT X30 Build/SP1A) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
      NULL, NULL, NULL, "browser", "" },
    { "Facebook's in-app browser",
      "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/480.0.0.40.106;FBBV/650000000]",
      NULL, NULL, NULL, "browser", "" },
    { "Googlebot",
      "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
      NULL, NULL, NULL, "bot", "Googlebot" },
    { "Googlebot smartphone",
      "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
      NULL, NULL, NULL, "bot", "Googlebot" },
    { "Googlebot-Image", "Googlebot-Image/1.0", NULL, NULL, NULL, "bot", "Googlebot-Image" },
    { "Googlebot in capitals", "GOOGLEBOT/2.1", NULL, NULL, NULL, "bot", "Googlebot" },
    { "bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
      NULL, NULL, NULL, "bot", "bingbot" },
    { "GPTBot",
      "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
      NULL, NULL, NULL, "bot", "GPTBot" },
    { "curl", "curl/8.5.0", NULL, NULL, NULL, "bot", "curl" },
    { "python-requests", "python-requests/2.31.0", NULL, NULL, NULL, "bot", "python-requests" },
    { "an unnamed robot with a contact URL",
      "Mozilla/5.0 (compatible; NewThing/1.0; +https://example.com/about)",
      NULL, NULL, NULL, "bot", "" },
    { "Gmail's image proxy",
      "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
      NULL, NULL, NULL, "email-proxy", "GoogleImageProxy" },
    { "Yahoo Mail's image proxy",
      "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
      NULL, NULL, NULL, "email-proxy", "YahooMailProxy" },
    { "Chrome's prefetch proxy", "Chrome Privacy Preserving Prefetch Proxy",
      NULL, NULL, NULL, "prefetch", "Chrome Privacy Preserving Prefetch Proxy" },
    { "no User-Agent", NULL, NULL, NULL, NULL, "unknown", "" },
    { "empty User-Agent", "", NULL, NULL, NULL, "unknown", "" },
    { "Mozilla/ without an engine", "Mozilla/5.0 (X11)", NULL, NULL, NULL, "unknown", "" },
    { "an engine without Mozilla/", "AppleWebKit/537.36", NULL, NULL, NULL, "unknown", "" },
    { "invalid UTF-8", "\xFF\xFE\xC0\xAF", NULL, NULL, NULL, "unknown", "" },
    { "invalid UTF-8 in a browser's",
      "Mozilla/5.0 (\xFF\xC3; X11) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0",
      NULL, NULL, NULL, "browser", "" },
    { "invalid UTF-8 next to a robot's name", "\xC0\xAF" "bingbot\xFF", NULL, NULL, NULL,
      "bot", "bingbot" },
    { "Sec-Purpose: prefetch", CHROME_WIN, "prefetch", NULL, NULL, "prefetch", "" },
    { "Sec-Purpose: prefetch;prerender", CHROME_WIN, "prefetch;prerender", NULL, NULL,
      "prefetch", "" },
    { "Sec-Purpose: prefetch;anonymous-client-ip", CHROME_WIN,
      "prefetch;anonymous-client-ip", NULL, NULL, "prefetch", "" },
    { "Sec-Purpose: a list with prefetch", CHROME_WIN, "x, Prefetch ", NULL, NULL,
      "prefetch", "" },
    { "Purpose: prefetch", CHROME_WIN, NULL, "prefetch", NULL, "prefetch", "" },
    { "X-Moz: prefetch", FIREFOX, NULL, NULL, "prefetch", "prefetch", "" },
    { "X-Moz: PREFETCH", FIREFOX, NULL, NULL, "PREFETCH", "prefetch", "" },
    { "prefetch without a User-Agent", NULL, "prefetch", NULL, NULL, "prefetch", "" },
    { "Sec-Purpose: prerender is no prefetch", CHROME_WIN, "prerender", NULL, NULL,
      "browser", "" },
    { "Purpose: noprefetch is no prefetch", CHROME_WIN, NULL, "noprefetch", NULL,
      "browser", "" },
    { "X-Moz: prefetched is no prefetch", FIREFOX, NULL, NULL, "prefetched", "browser", "" },
    { "empty Sec-Purpose", CHROME_WIN, "", NULL, NULL, "browser", "" },
    { "a robot's prefetch is a robot's", "curl/8.5.0", "prefetch", NULL, NULL, "bot", "curl" },
};

static tp_agents *builtin;

static void setup(void)
{
    char err[256];

    builtin = tp_agents_load(NULL, err, sizeof(err));
    ck_assert_msg(builtin != NULL, "the carried list: %s", err);
}

static void teardown(void)
{
    tp_agents_free(builtin);
}

START_TEST(agent_table)
{
    const row *r = &rows[_i];
    tp_agent got;

    tp_agent_classify(builtin, r->ua, r->sec_purpose, r->purpose, r->x_moz, &got);
    ck_assert_msg(strcmp(tp_agent_class_name(got.cls), r->cls) == 0 &&
                  strcmp(got.name, r->agent) == 0, "%s: got %s \"%s\", want %s \"%s\"",
                  r->name, tp_agent_class_name(got.cls), got.name, r->cls, r->agent);
}
END_TEST

START_TEST(builtin_count)
{
    ck_assert_uint_eq(tp_agents_count(builtin), BUILTIN_PATTERNS);
}
END_TEST

/* Only the first TP_AGENT_SCAN_MAX bytes are looked at. */
START_TEST(long_user_agent)
{
    static char ua[2 * LONG_UA_LEN];
    const char *bot = "Googlebot/";     /* the whole token */
    tp_agent got;

    /* A 4 KiB browser's. */
    memset(ua, 0, sizeof(ua));
    memset(ua, 'x', LONG_UA_LEN);
    memcpy(ua, FIREFOX, strlen(FIREFOX));
    tp_agent_classify(builtin, ua, NULL, NULL, NULL, &got);
    ck_assert_str_eq(tp_agent_class_name(got.cls), "browser");
    /* A robot's name ending at byte 4096 counts; one byte further it does not. */
    memcpy(ua + TP_AGENT_SCAN_MAX - strlen(bot), bot, strlen(bot));
    tp_agent_classify(builtin, ua, NULL, NULL, NULL, &got);
    ck_assert_str_eq(tp_agent_class_name(got.cls), "bot");
    ck_assert_str_eq(got.name, "Googlebot");
    memset(ua, 'x', LONG_UA_LEN + 16);
    memcpy(ua, FIREFOX, strlen(FIREFOX));
    memcpy(ua + TP_AGENT_SCAN_MAX - strlen(bot) + 1, bot, strlen(bot));
    tp_agent_classify(builtin, ua, NULL, NULL, NULL, &got);
    ck_assert_str_eq(tp_agent_class_name(got.cls), "browser");
    /* 4 KiB of a byte that starts tokens, with no token in it. */
    memset(ua, 'g', sizeof(ua) - 1);
    tp_agent_classify(builtin, ua, NULL, NULL, NULL, &got);
    ck_assert_str_eq(tp_agent_class_name(got.cls), "unknown");
}
END_TEST

/* A User-Agent made of the starts of many tokens stops being matched once
 * TP_AGENT_BUDGET is spent; a few of them do not hide a robot. */
START_TEST(matching_budget)
{
    static char ua[LONG_UA_LEN];
    tp_agent got;
    size_t o = 0;

    o += (size_t)snprintf(ua + o, sizeof(ua) - o, "Mozilla/5.0 ");
    for (int i = 0; i < 20; i++)
        o += (size_t)snprintf(ua + o, sizeof(ua) - o, "goo");
    snprintf(ua + o, sizeof(ua) - o, " Googlebot/2.1");
    tp_agent_classify(builtin, ua, NULL, NULL, NULL, &got);
    ck_assert_str_eq(got.name, "Googlebot");
    for (int i = 20; i < 1300; i++)
        o += (size_t)snprintf(ua + o, sizeof(ua) - o, "goo");
    snprintf(ua + o, sizeof(ua) - o, " Googlebot/2.1");
    ck_assert_uint_lt(strlen(ua), TP_AGENT_SCAN_MAX);
    tp_agent_classify(builtin, ua, NULL, NULL, NULL, &got);
    ck_assert_str_eq(tp_agent_class_name(got.cls), "unknown");
    ck_assert_str_eq(got.name, "");
}
END_TEST

/* Without a list only the headers and the browser rule count. */
START_TEST(no_list)
{
    tp_agent got;

    tp_agent_classify(NULL, "curl/8.5.0", NULL, NULL, NULL, &got);
    ck_assert_str_eq(tp_agent_class_name(got.cls), "unknown");
    tp_agent_classify(NULL, CHROME_WIN, NULL, NULL, NULL, &got);
    ck_assert_str_eq(tp_agent_class_name(got.cls), "browser");
    tp_agent_classify(NULL, "curl/8.5.0", NULL, "prefetch", NULL, &got);
    ck_assert_str_eq(tp_agent_class_name(got.cls), "prefetch");
    ck_assert_str_eq(got.name, "");
    ck_assert_str_eq(tp_agent_class_name((tp_agent_class)99), "unknown");
}
END_TEST

/* A list of our own: the first line that matches wins, wherever its token
 * is in the User-Agent (Second's "abcd" starts before First's "bcd"); ^
 * anchors; case is ignored both ways. */
START_TEST(order_and_anchors)
{
    static const char list[] =
        "# a comment\n"
        "\n"
        "  bot | First | BCD  \r\n"
        "email-proxy|Second|abcd\n"
        "bot | Anchored | ^silk/\n"
        "prefetch | End | end\n"
        "bot | | xyz\n";
    static const struct {
        const char *ua, *cls, *name;
    } cases[] = {
        { "abcd", "bot", "First" },
        { "zzABCDzz", "bot", "First" },
        { "abc", "unknown", "" },
        { "Silk/1.0", "bot", "Anchored" },
        { "x Silk/1.0", "unknown", "" },
        { "the END", "prefetch", "End" },
        { "the en", "unknown", "" },
        { "XYZ", "bot", "" },
    };
    char err[256];
    tp_agents *a = tp_agents_parse(list, strlen(list), err, sizeof(err));
    tp_agent got;

    ck_assert_msg(a != NULL, "%s", err);
    ck_assert_uint_eq(tp_agents_count(a), 5);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tp_agent_classify(a, cases[i].ua, NULL, NULL, NULL, &got);
        ck_assert_msg(strcmp(tp_agent_class_name(got.cls), cases[i].cls) == 0 &&
                      strcmp(got.name, cases[i].name) == 0, "%s: got %s \"%s\"",
                      cases[i].ua, tp_agent_class_name(got.cls), got.name);
    }
    tp_agents_free(a);
    a = tp_agents_parse("", 0, err, sizeof(err));
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(tp_agents_count(a), 0);
    tp_agent_classify(a, CHROME_WIN, NULL, NULL, NULL, &got);
    ck_assert_str_eq(tp_agent_class_name(got.cls), "browser");
    tp_agents_free(a);
}
END_TEST

static const struct {
    const char *name, *text;
    size_t len;                 /* 0: strlen(text) */
    const char *err;
} bad_lists[] = {
    { "unknown class", "robot | x | yyy\n", 0,
      "line 1: the class is not bot, email-proxy or prefetch" },
    { "browser is a rule, not a class", "browser | x | yyy\n", 0,
      "line 1: the class is not bot, email-proxy or prefetch" },
    { "two fields", "# c\nbot | x\n", 0, "line 2: not three fields \"class | name | token\"" },
    { "four fields", "bot | a | bbb | ccc\n", 0,
      "line 1: the token is not 3 to 128 bytes of printable ASCII without '|'" },
    { "two-byte token", "\n\nbot | x | yz", 0,
      "line 3: the token is not 3 to 128 bytes of printable ASCII without '|'" },
    { "two-byte anchored token", "bot | x | ^yz\n", 0,
      "line 1: the token is not 3 to 128 bytes of printable ASCII without '|'" },
    { "control byte in a token", "bot | x | a\x01z\n", 0,
      "line 1: the token is not 3 to 128 bytes of printable ASCII without '|'" },
    { "UTF-8 in a name", "bot | caf\xC3\xA9 | cafe\n", 0,
      "line 1: the name is longer than 64 bytes or not printable ASCII" },
    { "a NUL byte", "bot | x | ab\0cd\n", 15, "line 1: a NUL byte" },
};

START_TEST(bad_list)
{
    char err[256];
    size_t len = bad_lists[_i].len ? bad_lists[_i].len : strlen(bad_lists[_i].text);
    tp_agents *a = tp_agents_parse(bad_lists[_i].text, len, err, sizeof(err));

    ck_assert_msg(a == NULL, "%s: accepted", bad_lists[_i].name);
    ck_assert_str_eq(err, bad_lists[_i].err);
}
END_TEST

/* The limits: a 64-byte name and a 128-byte token are fine, one more is not;
 * 8192 patterns are fine, 8193 are not. */
START_TEST(limits)
{
    static char text[8193 * 16];
    char line[512], err[256];
    tp_agents *a;
    size_t o = 0;

    memset(text, 'n', 64);
    snprintf(line, sizeof(line), "bot | %.64s | ", text);
    memset(text, 't', 128);
    snprintf(line + strlen(line), sizeof(line) - strlen(line), "%.128s\n", text);
    a = tp_agents_parse(line, strlen(line), err, sizeof(err));
    ck_assert_msg(a != NULL, "%s", err);
    tp_agents_free(a);
    memset(text, 'n', 65);
    snprintf(line, sizeof(line), "bot | %.65s | ttt\n", text);
    ck_assert_ptr_null(tp_agents_parse(line, strlen(line), err, sizeof(err)));
    ck_assert_str_eq(err, "line 1: the name is longer than 64 bytes or not printable ASCII");
    memset(text, 't', 129);
    snprintf(line, sizeof(line), "bot | n | %.129s\n", text);
    ck_assert_ptr_null(tp_agents_parse(line, strlen(line), err, sizeof(err)));
    ck_assert_str_eq(err, "line 1: the token is not 3 to 128 bytes of printable ASCII without '|'");

    for (int i = 0; i < 8192; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o, "bot|n|t%04d\n", i);
    a = tp_agents_parse(text, o, err, sizeof(err));
    ck_assert_msg(a != NULL, "%s", err);
    ck_assert_uint_eq(tp_agents_count(a), 8192);
    tp_agents_free(a);
    o += (size_t)snprintf(text + o, sizeof(text) - o, "# a comment is fine\nbot|n|t8192\n");
    ck_assert_ptr_null(tp_agents_parse(text, o, err, sizeof(err)));
    ck_assert_str_eq(err, "line 8194: more than 8192 patterns");
}
END_TEST

/* A file: read once; its errors name it. */
START_TEST(load_file)
{
    char path[] = "/tmp/check_agent.XXXXXX", err[512], want[512];
    int fd = mkstemp(path);
    FILE *f;
    tp_agents *a;
    tp_agent got;

    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    fputs("bot | Ours | pixelcheck\n", f);
    fclose(f);
    a = tp_agents_load(path, err, sizeof(err));
    ck_assert_msg(a != NULL, "%s", err);
    ck_assert_uint_eq(tp_agents_count(a), 1);
    tp_agent_classify(a, "PixelCheck/1.0", NULL, NULL, NULL, &got);
    ck_assert_str_eq(got.name, "Ours");
    /* It replaces the carried list. */
    tp_agent_classify(a, "curl/8.5.0", NULL, NULL, NULL, &got);
    ck_assert_str_eq(tp_agent_class_name(got.cls), "unknown");
    tp_agents_free(a);

    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("bot | Ours | pixelcheck\nbots | x | yyy\n", f);
    fclose(f);
    ck_assert_ptr_null(tp_agents_load(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: line 2: the class is not bot, email-proxy or prefetch", path);
    ck_assert_str_eq(err, want);
    unlink(path);
    ck_assert_ptr_null(tp_agents_load(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: No such file or directory", path);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(tp_agents_load("/", err, sizeof(err)));
    ck_assert_str_eq(err, "/: Is a directory");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("agent");
    TCase *tc = tcase_create("agent");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, agent_table, 0, (int)(sizeof(rows) / sizeof(rows[0])));
    tcase_add_test(tc, builtin_count);
    tcase_add_test(tc, long_user_agent);
    tcase_add_test(tc, matching_budget);
    tcase_add_test(tc, no_list);
    tcase_add_test(tc, order_and_anchors);
    tcase_add_loop_test(tc, bad_list, 0, (int)(sizeof(bad_lists) / sizeof(bad_lists[0])));
    tcase_add_test(tc, limits);
    tcase_add_test(tc, load_file);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
