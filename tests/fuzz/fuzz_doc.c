/*
 * fuzz_doc - the document builder fed a whole CGI environment.
 *
 * Input: byte 0 picks the limits (or, with 0x20, privacy settings: every
 * address a trusted proxy, so forwarded headers are read; truncate;
 * redaction; GPC anonymize) and whether the body was complete; then
 * NUL-separated NAME=value entries up to an empty entry (two NULs in a row);
 * what follows is the POST body.  Entries without '=' are passed on as they
 * are (the builder must ignore them).
 *
 * Properties: tp_doc_build and tp_doc_serialize always succeed (the hit is
 * always recorded); the text is at most max_doc bytes, has no NUL, is valid
 * UTF-8 (tp_utf8_valid and an independent check) and strict JSON that json-c
 * reads back to an object of the passthrough shape, and prints back to the
 * very same text (tp_json writes what json-c would); no object key anywhere is
 * empty (Elasticsearch refuses an empty field name); the limits hold: at most
 * max_params parameters and max_headers headers, names and values at most
 * max_value bytes; "truncated", when present, is an array of strings;
 * "agent" is {"class": one of the five, "name": a string of at most 64
 * bytes}, from the carried agents list (byte 0's bit 3 clear) or none.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "tp_agent.h"
#include "tp_config.h"
#include "tp_doc.h"
#include "tp_utf8.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

/* Independent UTF-8 check: decode each code point with shifts. */
static int ref_valid(const unsigned char *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint32_t cp;
        size_t n, k;
        unsigned char c = p[i];

        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0)
            n = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0)
            n = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0)
            n = 4, cp = c & 0x07;
        else
            return 0;
        if (i + n > len)
            return 0;
        for (k = 1; k < n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n;
    }
    return 1;
}

/*
 * Independent strict RFC 8259 check of the output (what Elasticsearch's
 * parser accepts), as a state machine with an explicit stack: json-c reads
 * back things that are not JSON (it wrote "1." back as it read it).
 */
static int strict_json(const char *s, size_t len)
{
    char stack[256];                 /* '{' or '[' */
    size_t sp = 0, i = 0;
    enum { VALUE, AFTER_VALUE, KEY, COLON, FIRST_VALUE_OR_CLOSE, FIRST_KEY_OR_CLOSE } st = VALUE;

#define WS() while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++
    for (;;) {
        WS();
        if (i == len)
            return st == AFTER_VALUE && sp == 0;
        char c = s[i];
        switch (st) {
        case FIRST_KEY_OR_CLOSE:
            if (c == '}') { sp--; i++; st = AFTER_VALUE; continue; }
            /* fall through */
        case KEY:
            if (c != '"')
                return 0;
            /* fall through */
        case FIRST_VALUE_OR_CLOSE:
            if (st == FIRST_VALUE_OR_CLOSE && c == ']') { sp--; i++; st = AFTER_VALUE; continue; }
            /* fall through */
        case VALUE:
            if (c == '{' || c == '[') {
                if (sp == sizeof(stack))
                    return 0;
                stack[sp++] = c;
                i++;
                st = c == '{' ? FIRST_KEY_OR_CLOSE : FIRST_VALUE_OR_CLOSE;
                continue;
            }
            if (c == '"') {
                int was_key = (st == KEY || st == FIRST_KEY_OR_CLOSE);
                for (i++;; i++) {
                    if (i >= len || (unsigned char)s[i] < 0x20)
                        return 0;
                    if (s[i] == '"')
                        break;
                    if (s[i] == '\\') {
                        i++;
                        if (i >= len)
                            return 0;
                        if (s[i] == 'u') {
                            for (int k = 1; k <= 4; k++)
                                if (i + k >= len || !strchr("0123456789abcdefABCDEF", s[i + k]) ||
                                    s[i + k] == '\0')
                                    return 0;
                            i += 4;
                        } else if (!s[i] || !strchr("\"\\/bfnrt", s[i])) {
                            return 0;
                        }
                    }
                }
                i++;
                st = was_key ? COLON : AFTER_VALUE;
                continue;
            }
            if (st == KEY || st == FIRST_KEY_OR_CLOSE)
                return 0;
            if (len - i >= 4 && (!memcmp(s + i, "true", 4) || !memcmp(s + i, "null", 4))) {
                i += 4; st = AFTER_VALUE; continue;
            }
            if (len - i >= 5 && !memcmp(s + i, "false", 5)) {
                i += 5; st = AFTER_VALUE; continue;
            }
            {   /* -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)? */
                size_t d;
                if (s[i] == '-')
                    i++;
                if (i < len && s[i] == '0')
                    i++;
                else {
                    for (d = i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
                        ;
                    if (i == d)
                        return 0;
                }
                if (i < len && s[i] == '.') {
                    for (d = ++i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
                        ;
                    if (i == d)
                        return 0;
                }
                if (i < len && (s[i] == 'e' || s[i] == 'E')) {
                    i++;
                    if (i < len && (s[i] == '+' || s[i] == '-'))
                        i++;
                    for (d = i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
                        ;
                    if (i == d)
                        return 0;
                }
                st = AFTER_VALUE;
                continue;
            }
        case COLON:
            if (c != ':')
                return 0;
            i++;
            st = VALUE;
            continue;
        case AFTER_VALUE:
            if (sp == 0)
                return 0;                /* something after the root value */
            if (c == ',') {
                i++;
                st = stack[sp - 1] == '{' ? KEY : VALUE;
                continue;
            }
            if ((c == '}' && stack[sp - 1] == '{') || (c == ']' && stack[sp - 1] == '[')) {
                sp--;
                i++;
                continue;
            }
            return 0;
        }
    }
#undef WS
}

/* Every key of every object in o is non-empty. */
static void check_keys(json_object *o, int depth)
{
    CHECK(depth < 64);
    if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, k, v) {
            CHECK(k[0] != '\0');
            check_keys(v, depth + 1);
        }
    } else if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++)
            check_keys(json_object_array_get_idx(o, i), depth + 1);
    }
}

/* obj is an object of at most max string members, each value (and each
 * name, when names come from the request) at most max_value bytes. */
static void check_strings(json_object *obj, long max, long max_value, int names)
{
    CHECK(json_object_is_type(obj, json_type_object));
    CHECK((long)json_object_object_length(obj) <= max);
    json_object_object_foreach(obj, k, v) {
        CHECK(!names || (long)strlen(k) <= max_value);
        CHECK(json_object_is_type(v, json_type_string));
        CHECK(!names || json_object_get_string_len(v) <= max_value);
    }
}

static json_object *member(json_object *o, const char *key)
{
    json_object *v = NULL;
    CHECK(json_object_object_get_ex(o, key, &v));
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The limits, through the real configuration loader. */
    static char *const presets[4][7] = {
        { NULL },                                        /* the defaults */
        { "TRACKPIXEL_MAX_PARAMS=3", "TRACKPIXEL_MAX_HEADERS=3", "TRACKPIXEL_MAX_VALUE=16",
          "TRACKPIXEL_MAX_BODY=64", "TRACKPIXEL_MAX_DOC=4096", NULL },   /* tight */
        { "TRACKPIXEL_MAX_PARAMS=5", "TRACKPIXEL_MAX_HEADERS=5", "TRACKPIXEL_MAX_VALUE=4096",
          "TRACKPIXEL_MAX_BODY=4096", "TRACKPIXEL_MAX_DOC=4096", NULL }, /* values as large as the document */
        { "TRACKPIXEL_MAX_VALUE=256", "TRACKPIXEL_MAX_DOC=4096", NULL },
    };
    static const char *const from_request[] = {
        "http-method", "source-ip", "user", "user-agent", "resource-path",
    };
    static char *const with_stage_var[] = { "TRACKPIXEL_STAGE_VAR_campaign=winter",
                                            "TRACKPIXEL_API_ID=api-1", NULL };
    static char *const privacy[] = { "TRACKPIXEL_TRUSTED_PROXIES=0.0.0.0/0, ::/0",
                                     "TRACKPIXEL_IP_MODE=truncate", "TRACKPIXEL_GPC=anonymize",
                                     "TRACKPIXEL_REDACT_PARAMS=a,email",
                                     "TRACKPIXEL_DROP_HEADERS=Cookie,X-A", NULL };
    const char *ip;
    size_t iplen;
    static tp_agents *agents;       /* the carried list, kept for the process's life */
    tp_config cfg;
    tp_doc_input in;
    char **envp = NULL, *copy = NULL, err[256];
    size_t nenv = 0, i, start, len = 0;
    tp_doc *doc = NULL;
    json_object *back = NULL, *params, *tr;
    json_tokener *tok = NULL;
    const char *text;
    int pick;

    if (size < 1)
        return 0;
    pick = data[0];

    CHECK(tp_config_load(&cfg, (pick & 0x20) ? privacy :
                         (pick & 0x10) ? with_stage_var : presets[pick & 3],
                         err, sizeof(err)) == 0);

    /* NUL-terminated copy, split in place. */
    copy = malloc(size);
    envp = calloc(size + 1, sizeof(*envp));
    CHECK(copy && envp);
    memcpy(copy, data + 1, size - 1);
    copy[size - 1] = '\0';
    memset(&in, 0, sizeof(in));
    for (i = 0, start = 0; i < size - 1; i++) {
        if (copy[i] != '\0')
            continue;
        if (i == start) {                    /* empty entry: the body follows */
            in.body = copy + i + 1;
            in.body_len = size - 1 - (i + 1);
            break;
        }
        envp[nenv++] = copy + start;
        start = i + 1;
    }
    if (!in.body && start < size - 1)
        envp[nenv++] = copy + start;         /* last entry, ended by copy[size-1] */
    envp[nenv] = NULL;
    if (in.body && in.body_len == 0)
        in.body = NULL;
    in.envp = envp;
    in.body_complete = !(pick & 4) && in.body_len <= (size_t)cfg.max_body;
    in.request_id = "0f8fad5b-d9cb-469f-a165-70867728950e";
    if (!agents)
        agents = tp_agents_load(NULL, err, sizeof(err));
    CHECK(agents);
    in.agents = (pick & 8) ? NULL : agents;
    in.now.tv_sec = 1764186000;
    in.now.tv_nsec = 123456789;

    doc = tp_doc_build(&cfg, &in, err, sizeof(err));
    CHECK(doc);
    text = tp_doc_serialize(&cfg, doc, &len);
    CHECK(text);
    CHECK(len <= (size_t)cfg.max_doc);
    CHECK(strlen(text) == len);
    CHECK(tp_utf8_valid(text, len));
    CHECK(ref_valid((const unsigned char *)text, len));

    CHECK(strict_json(text, len));
    tok = json_tokener_new();
    CHECK(tok);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    back = json_tokener_parse_ex(tok, text, (int)len);
    CHECK(back && json_tokener_get_error(tok) == json_tokener_success);
    CHECK(json_tokener_get_parse_end(tok) == len);
    CHECK(json_object_is_type(back, json_type_object));
    /* The text is exactly what json-c prints for it (tp_json writes it). */
    CHECK(strcmp(json_object_to_json_string_ext(back, JSON_C_TO_STRING_PLAIN |
                                                JSON_C_TO_STRING_NOSLASHESCAPE), text) == 0);
    check_keys(back, 0);

    CHECK(json_object_is_type(member(back, "body-json"), json_type_object));
    params = member(back, "params");
    check_strings(member(params, "querystring"), cfg.max_params, cfg.max_value, 1);
    check_strings(member(params, "header"), cfg.max_headers, cfg.max_value, 1);
    check_strings(member(params, "path"), 1, cfg.max_value, 1);
    check_strings(member(back, "context"), 18, cfg.max_value, 0);
    for (i = 0; i < sizeof(from_request) / sizeof(from_request[0]); i++)
        CHECK(json_object_get_string_len(member(member(back, "context"), from_request[i])) <=
              cfg.max_value);
    /* Truncated: nothing, an IPv4 /24 (a.b.c.0) or an IPv6 /48 (...::). */
    ip = json_object_get_string(member(member(back, "context"), "source-ip"));
    iplen = strlen(ip);
    if (pick & 0x20)
        CHECK(iplen == 0 || (iplen >= 2 && (strcmp(ip + iplen - 2, ".0") == 0 ||
                                            strcmp(ip + iplen - 2, "::") == 0)));
    {
        json_object *agent = member(back, "agent");
        const char *cls = json_object_get_string(member(agent, "class"));
        CHECK(json_object_object_length(agent) == 2);
        CHECK(json_object_is_type(member(agent, "name"), json_type_string));
        CHECK(json_object_get_string_len(member(agent, "name")) <= 64);
        CHECK(cls && (!strcmp(cls, "browser") || !strcmp(cls, "bot") ||
                      !strcmp(cls, "email-proxy") || !strcmp(cls, "prefetch") ||
                      !strcmp(cls, "unknown")));
    }
    CHECK(json_object_is_type(member(back, "date"), json_type_int));
    CHECK(json_object_is_type(member(back, "@timestamp"), json_type_string));
    if (json_object_object_get_ex(back, "truncated", &tr)) {
        CHECK(json_object_is_type(tr, json_type_array));
        CHECK(json_object_array_length(tr) > 0);
        for (i = 0; i < json_object_array_length(tr); i++)
            CHECK(json_object_is_type(json_object_array_get_idx(tr, i), json_type_string));
    }

    json_tokener_free(tok);
    json_object_put(back);
    tp_doc_free(doc);
    tp_config_free(&cfg);
    free(envp);
    free(copy);
    return 0;
}
