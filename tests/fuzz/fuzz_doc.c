/*
 * fuzz_doc - the document builder fed a whole CGI environment.
 *
 * Input: byte 0 picks the limits and whether the body was complete; then
 * NUL-separated NAME=value entries up to an empty entry (two NULs in a row);
 * what follows is the POST body.  Entries without '=' are passed on as they
 * are (the builder must ignore them).
 *
 * Properties: tp_doc_build and tp_doc_serialize always succeed (the hit is
 * always recorded); the text is at most max_doc bytes, has no NUL, is valid
 * UTF-8 (tp_utf8_valid and an independent check) and strict JSON that json-c
 * reads back to an object of the passthrough shape; no object key anywhere is
 * empty (Elasticsearch refuses an empty field name); the limits hold: at most
 * max_params parameters and max_headers headers, names and values at most
 * max_value bytes; "truncated", when present, is an array of strings.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* obj is an object of at most max string members, each name and value at
 * most max_value bytes. */
static void check_strings(json_object *obj, long max, long max_value)
{
    CHECK(json_object_is_type(obj, json_type_object));
    CHECK((long)json_object_object_length(obj) <= max);
    json_object_object_foreach(obj, k, v) {
        CHECK((long)strlen(k) <= max_value);
        CHECK(json_object_is_type(v, json_type_string));
        CHECK(json_object_get_string_len(v) <= max_value);
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
    static const struct { long params, headers, value, body, doc; } limits[] = {
        { 100, 100, 4096, 65536, 262144 },   /* the defaults */
        { 3, 3, 16, 64, 4096 },              /* tight: every limit is reachable */
        { 5, 5, 4096, 4096, 4096 },          /* values as large as the document */
        { 100, 100, 256, 65536, 4096 },
    };
    tp_config cfg;
    tp_doc_input in;
    char **envp = NULL, *copy = NULL, err[256];
    size_t nenv = 0, i, start, len = 0;
    json_object *doc = NULL, *back = NULL, *params, *tr;
    json_tokener *tok = NULL;
    const char *text;
    int pick;

    if (size < 1)
        return 0;
    pick = data[0];

    memset(&cfg, 0, sizeof(cfg));
    cfg.stage = "prod";
    cfg.api_id = "api-1";
    cfg.stage_vars[0].name = "campaign";
    cfg.stage_vars[0].value = "winter";
    cfg.nstage_vars = (pick & 0x10) ? 1 : 0;
    cfg.max_params = limits[pick & 3].params;
    cfg.max_headers = limits[pick & 3].headers;
    cfg.max_value = limits[pick & 3].value;
    cfg.max_body = limits[pick & 3].body;
    cfg.max_doc = limits[pick & 3].doc;

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

    tok = json_tokener_new();
    CHECK(tok);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    back = json_tokener_parse_ex(tok, text, (int)len);
    CHECK(back && json_tokener_get_error(tok) == json_tokener_success);
    CHECK(json_tokener_get_parse_end(tok) == len);
    CHECK(json_object_is_type(back, json_type_object));
    check_keys(back, 0);

    CHECK(json_object_is_type(member(back, "body-json"), json_type_object));
    params = member(back, "params");
    check_strings(member(params, "querystring"), cfg.max_params, cfg.max_value);
    check_strings(member(params, "header"), cfg.max_headers, cfg.max_value);
    check_strings(member(params, "path"), 1, cfg.max_value);
    check_strings(member(back, "context"), 18, cfg.max_value);
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
    json_object_put(doc);
    free(envp);
    free(copy);
    return 0;
}
