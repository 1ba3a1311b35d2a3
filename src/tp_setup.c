#include "config.h"
#include "tp_setup.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tp_hex.h"
#include "tp_index.h"

#define DIGEST_HEX 64

/* ------------------------------------------------------------ detection */

/* "7.10.2" -> 7, 10; -1 when it does not start with two numbers. */
static int parse_version(const char *s, int *major, int *minor)
{
    char *end = NULL;
    long a, b;

    a = strtol(s, &end, 10);
    if (end == s || *end != '.' || a < 0 || a > 1000)
        return -1;
    s = end + 1;
    b = strtol(s, &end, 10);
    if (end == s || b < 0 || b > 1000)
        return -1;
    *major = (int)a;
    *minor = (int)b;
    return 0;
}

/* The string at obj.key, or "" (borrowed from obj). */
static const char *get_str(json_object *obj, const char *key)
{
    json_object *v = NULL;

    if (!obj || !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return "";
    return json_object_get_string(v);
}

static int supported(tp_setup_cluster *cl, const char *flavor, char *err, size_t errlen)
{
    static const char need[] = "--setup needs Elasticsearch 7.10 or later (its default "
        "distribution), OpenSearch 2.0 or later, or OpenSearch Serverless "
        "(TRACKPIXEL_AWS_SERVICE=aoss)";

    if (cl->opensearch ? cl->major < 2 :
        (cl->major < 7 || (cl->major == 7 && cl->minor < 10))) {
        snprintf(err, errlen, "%s %s is not supported: %s",
                 cl->opensearch ? "OpenSearch" : "Elasticsearch", cl->number, need);
        return -1;
    }
    if (!cl->opensearch && strcmp(flavor, "oss") == 0) {
        snprintf(err, errlen, "Elasticsearch %s is the OSS distribution, without the "
                 "flattened type and ILM: %s", cl->number, need);
        return -1;
    }
    return 0;
}

/*
 * What the cluster is: GET / (not for aoss, known from the service name).
 * Returns 0, or -1 with one line in err: unreachable, refused credentials,
 * not Elasticsearch >= 7.10 (default distribution) or OpenSearch >= 2.
 */
static int tp_setup_detect(tp_es *es, const tp_config *cfg, tp_setup_cluster *cl,
                           char *err, size_t errlen)
{
    json_object *j = NULL, *version = NULL;
    char why[512];
    long status = 0;
    tp_es_result r;
    int rc = -1;

    memset(cl, 0, sizeof(*cl));
    if (strcmp(cfg->aws_service, "aoss") == 0) {
        /* Serverless has no GET /; it takes flat_object anywhere. */
        cl->opensearch = cl->serverless = 1;
        cl->major = 2;
        cl->minor = 11;
        snprintf(cl->number, sizeof(cl->number), "Serverless");
        return 0;
    }
    r = tp_es_request(es, "GET", "/", NULL, NULL, NULL, 0, time(NULL), &status, why, sizeof(why));
    if (status == 0) {
        snprintf(err, errlen, "the cluster is unreachable: %s", why);
        goto done;
    }
    if (status == 401 || status == 403) {
        snprintf(err, errlen, "the cluster refused the credentials: %s", why);
        goto done;
    }
    if (r != TP_ES_OK) {
        snprintf(err, errlen, "GET / failed: %s", why);
        goto done;
    }
    j = json_tokener_parse(tp_es_answer(es, NULL));
    if (!j || !json_object_object_get_ex(j, "version", &version) ||
        parse_version(get_str(version, "number"), &cl->major, &cl->minor) < 0) {
        snprintf(err, errlen, "GET / did not answer as Elasticsearch or OpenSearch do "
                 "(no version.number)");
        goto done;
    }
    cl->opensearch = strcmp(get_str(version, "distribution"), "opensearch") == 0;
    snprintf(cl->number, sizeof(cl->number), "%s", get_str(version, "number"));
    rc = supported(cl, get_str(version, "build_flavor"), err, errlen);
done:
    json_object_put(j);
    return rc;
}

/* -------------------------------------------------------------- bodies */

/* Where flat_object is searchable below the root: OpenSearch 2.9 on. */
static int has_flat_object(const tp_setup_cluster *cl)
{
    return cl->opensearch && (cl->major > 2 || (cl->major == 2 && cl->minor >= 9));
}

static json_object *type_of(const char *type)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "type", json_object_new_string(type));
    return o;
}

/* Parameter and header names the dashboards use: mapped as keywords where
 * the open-ended sections cannot be one field each. */
static const char *const known_params[] = {
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "page", "url", NULL
};
static const char *const known_headers[] = { "Referer", "User-Agent", "Origin", NULL };

/* A client-named section: flattened, flat_object, or (OpenSearch before
 * 2.9) an object that maps only the known names (dynamic: false keeps the
 * rest in _source, unmapped), or none (enabled: false). */
static json_object *open_section(const tp_setup_cluster *cl, const char *const *known)
{
    json_object *o, *props;

    if (!cl->opensearch)
        return type_of("flattened");
    if (has_flat_object(cl))
        return type_of("flat_object");
    o = json_object_new_object();
    if (!known) {
        json_object_object_add(o, "type", json_object_new_string("object"));
        json_object_object_add(o, "enabled", json_object_new_boolean(0));
        return o;
    }
    props = json_object_new_object();
    for (; *known; known++)
        json_object_object_add(props, *known, type_of("keyword"));
    json_object_object_add(o, "dynamic", json_object_new_string("false"));
    json_object_object_add(o, "properties", props);
    return o;
}

/* {"<name>": {"path_match"/..., "mapping": {"type": "keyword"}}} */
static json_object *keyword_rule(const char *name, const char *path_match)
{
    json_object *rule = json_object_new_object(), *spec = json_object_new_object();
    json_object *mapping = type_of("keyword");

    if (path_match)
        json_object_object_add(spec, "path_match", json_object_new_string(path_match));
    json_object_object_add(spec, "match_mapping_type", json_object_new_string("string"));
    json_object_object_add(mapping, "ignore_above", json_object_new_int(1024));
    json_object_object_add(spec, "mapping", mapping);
    json_object_object_add(rule, name, spec);
    return rule;
}

static json_object *user_agent_props(void)
{
    json_object *ua = json_object_new_object(), *p = json_object_new_object();
    json_object *os = json_object_new_object(), *osp = json_object_new_object();
    json_object *dev = json_object_new_object(), *devp = json_object_new_object();

    json_object_object_add(p, "name", type_of("keyword"));
    json_object_object_add(p, "original", type_of("keyword"));
    json_object_object_add(p, "version", type_of("keyword"));
    json_object_object_add(osp, "name", type_of("keyword"));
    json_object_object_add(osp, "full", type_of("keyword"));
    json_object_object_add(os, "properties", osp);
    json_object_object_add(p, "os", os);
    json_object_object_add(devp, "name", type_of("keyword"));
    json_object_object_add(dev, "properties", devp);
    json_object_object_add(p, "device", dev);
    json_object_object_add(ua, "properties", p);
    return ua;
}

static json_object *mappings(const tp_setup_cluster *cl)
{
    json_object *m = json_object_new_object(), *rules = json_object_new_array();
    json_object *props = json_object_new_object(), *ctx = json_object_new_object();
    json_object *ctxp = json_object_new_object(), *ip = type_of("ip");
    json_object *params = json_object_new_object(), *pp = json_object_new_object();
    json_object *date = type_of("date");

    json_object_array_add(rules, keyword_rule("context_keywords", "context.*"));
    json_object_array_add(rules, keyword_rule("strings_as_keywords", NULL));
    json_object_object_add(m, "dynamic_templates", rules);
    json_object_object_add(props, "@timestamp", type_of("date"));
    json_object_object_add(date, "format", json_object_new_string("epoch_millis"));
    json_object_object_add(props, "date", date);
    json_object_object_add(ip, "ignore_malformed", json_object_new_boolean(1));
    json_object_object_add(ctxp, "source-ip", ip);
    json_object_object_add(ctx, "properties", ctxp);
    json_object_object_add(props, "context", ctx);
    json_object_object_add(pp, "querystring", open_section(cl, known_params));
    json_object_object_add(pp, "header", open_section(cl, known_headers));
    json_object_object_add(pp, "path", open_section(cl, NULL));
    json_object_object_add(params, "properties", pp);
    json_object_object_add(props, "params", params);
    json_object_object_add(props, "stage-variables", open_section(cl, NULL));
    json_object_object_add(props, "body-json", open_section(cl, NULL));
    json_object_object_add(props, "truncated", type_of("keyword"));
    json_object_object_add(props, "user_agent", user_agent_props());
    json_object_object_add(m, "properties", props);
    return m;
}

/* Lower-case hex SHA-256 of text into hex (DIGEST_HEX + 1 bytes). */
static int digest(const char *text, char *hex)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return -1;
    tp_hex_encode(md, mdlen, hex);
    return 0;
}

/* obj._meta = {"managed-by": "trackpixel", "digest": sha256(obj)}. */
static int add_digest(json_object *obj)
{
    json_object *meta = json_object_new_object();
    char hex[DIGEST_HEX + 1];

    if (!meta || digest(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN), hex) < 0) {
        json_object_put(meta);
        return -1;
    }
    json_object_object_add(meta, "managed-by", json_object_new_string("trackpixel"));
    json_object_object_add(meta, "digest", json_object_new_string(hex));
    json_object_object_add(obj, "_meta", meta);
    return 0;
}

json_object *tp_setup_template(const tp_config *cfg, const tp_setup_cluster *cl, int pipeline,
                               int ilm)
{
    json_object *t = json_object_new_object(), *patterns = json_object_new_array();
    json_object *tmpl = json_object_new_object(), *settings = json_object_new_object();
    json_object *index = json_object_new_object();
    char wild[TP_INDEX_MAX + 1], name[TP_INDEX_MAX + 32];

    if (!t || !patterns || !tmpl || !settings || !index ||
        tp_index_wildcard(cfg->es_index, wild, sizeof(wild)) < 0)
        goto fail;
    json_object_array_add(patterns, json_object_new_string(wild));
    json_object_object_add(t, "index_patterns", patterns);
    patterns = NULL;
    json_object_object_add(t, "priority", json_object_new_int(200));
    if (pipeline) {
        snprintf(name, sizeof(name), "%s" TP_SETUP_PIPELINE_SUFFIX, cfg->es_template);
        json_object_object_add(index, "default_pipeline", json_object_new_string(name));
    }
    if (ilm) {
        json_object *lifecycle = json_object_new_object();
        json_object_object_add(lifecycle, "name", json_object_new_string(cfg->es_template));
        json_object_object_add(index, "lifecycle", lifecycle);
    }
    json_object_object_add(settings, "index", index);
    index = NULL;
    json_object_object_add(tmpl, "settings", settings);
    settings = NULL;
    json_object_object_add(tmpl, "mappings", mappings(cl));
    json_object_object_add(t, "template", tmpl);
    tmpl = NULL;
    if (add_digest(t) < 0)
        goto fail;
    return t;
fail:
    json_object_put(patterns);
    json_object_put(index);
    json_object_put(settings);
    json_object_put(tmpl);
    json_object_put(t);
    return NULL;
}

/* ------------------------------------------------------------ requests */

/* One request with a JSON body (NULL: none); *answer gets the parsed
 * answer (NULL when it is not JSON; the caller puts it).  Returns the HTTP
 * status, 0 with err set when there was no answer. */
static long call(tp_es *es, const char *method, const char *path, const char *query,
                 json_object *body, json_object **answer, char *err, size_t errlen)
{
    const char *text = body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN) : NULL;
    long status = 0;

    err[0] = '\0';
    tp_es_request(es, method, path, query, text ? "application/json" : NULL, text,
                  text ? strlen(text) : 0, time(NULL), &status, err, errlen);
    *answer = status ? json_tokener_parse(tp_es_answer(es, NULL)) : NULL;
    return status;
}

/* The JSON at a path of keys from obj (borrowed), or NULL. */
static json_object *dig(json_object *obj, const char *const *keys)
{
    for (; obj && *keys; keys++)
        if (!json_object_is_type(obj, json_type_object) ||
            !json_object_object_get_ex(obj, *keys, &obj))
            return NULL;
    return obj;
}

typedef struct run {
    tp_es *es;
    const tp_config *cfg;
    tp_setup_cluster cl;
    FILE *out;
    int check_only;
    int changed;
    int failed;
} run;

/* "installed", "updated" or "no change" for what was (not) there, and the
 * PUT when it is to be done.  Returns the status of the PUT (or 200). */
static long put_if(run *r, const char *what, int exists, int same, const char *method,
                   const char *path, const char *query, json_object *body)
{
    json_object *ans = NULL;
    char err[512];
    long status;

    if (exists && same) {
        fprintf(r->out, "%s: no change\n", what);
        return 200;
    }
    status = call(r->es, method, path, query, body, &ans, err, sizeof(err));
    json_object_put(ans);
    if (status < 200 || status > 299) {
        fprintf(r->out, "%s: error: %s\n", what, err);
        r->failed = 1;
        return status;
    }
    fprintf(r->out, "%s: %s\n", what, exists ? "updated" : "installed");
    r->changed++;
    return status;
}

/* ------------------------------------------------------------- pipeline */

/* The user-agent pipeline; 1 when it is there for the template to use. */
static int setup_pipeline(run *r)
{
    const tp_config *cfg = r->cfg;
    json_object *want = NULL, *have = NULL, *procs, *proc, *ua;
    char path[TP_INDEX_MAX + 64], what[TP_INDEX_MAX + 64], err[512], hex[DIGEST_HEX + 1];
    char desc[160];
    long status;
    int ok = 0;

    if (!cfg->es_user_agent)
        return 0;
    if (r->cl.serverless) {
        fprintf(r->out, "user agent: skipped: OpenSearch Serverless has no ingest pipelines\n");
        return 0;
    }
    snprintf(path, sizeof(path), "/_ingest/pipeline/%s" TP_SETUP_PIPELINE_SUFFIX,
             cfg->es_template);
    snprintf(what, sizeof(what), "ingest pipeline %s" TP_SETUP_PIPELINE_SUFFIX,
             cfg->es_template);
    want = json_object_new_object();
    procs = json_object_new_array();
    proc = json_object_new_object();
    ua = json_object_new_object();
    json_object_object_add(ua, "field", json_object_new_string("context.user-agent"));
    json_object_object_add(ua, "target_field", json_object_new_string("user_agent"));
    json_object_object_add(ua, "ignore_missing", json_object_new_boolean(1));
    json_object_object_add(proc, "user_agent", ua);
    json_object_array_add(procs, proc);
    json_object_object_add(want, "processors", procs);
    if (digest(json_object_to_json_string_ext(want, JSON_C_TO_STRING_PLAIN), hex) < 0)
        goto done;
    snprintf(desc, sizeof(desc), "trackpixel: browser and OS from context.user-agent [%.16s]",
             hex);
    json_object_object_add(want, "description", json_object_new_string(desc));

    status = call(r->es, "GET", path, NULL, NULL, &have, err, sizeof(err));
    if (r->check_only) {
        ok = status == 200;
        goto done;
    }
    {
        const char *const key[] = { path + strlen("/_ingest/pipeline/"), "description", NULL };
        json_object *d = dig(have, key);
        int same = d && strcmp(json_object_get_string(d), desc) == 0, exists = status == 200;
        json_object *ans = NULL;

        if (status == 200 && same) {
            fprintf(r->out, "%s: no change\n", what);
            ok = 1;
            goto done;
        }
        status = call(r->es, "PUT", path, NULL, want, &ans, err, sizeof(err));
        json_object_put(ans);
        if (status >= 200 && status <= 299) {
            fprintf(r->out, "%s: %s\n", what, exists ? "updated" : "installed");
            r->changed++;
            ok = 1;
        } else if (strstr(err, "No processor type exists with name [user_agent]")) {
            fprintf(r->out, "user agent: skipped: the cluster has no user_agent ingest "
                    "processor; documents keep context.user-agent only\n");
        } else {
            fprintf(r->out, "%s: error: %s\n", what, err);
            r->failed = 1;
        }
    }
done:
    json_object_put(have);
    json_object_put(want);
    return ok;
}

/* ------------------------------------------------------------ retention */

/* ILM: {"policy":{"phases":{"delete":{"min_age":"<N>d","actions":{"delete":{}}}}}} */
static json_object *ilm_policy(long days)
{
    json_object *p = json_object_new_object(), *pol = json_object_new_object();
    json_object *phases = json_object_new_object(), *del = json_object_new_object();
    json_object *actions = json_object_new_object();
    char age[32];

    snprintf(age, sizeof(age), "%ldd", days);
    json_object_object_add(del, "min_age", json_object_new_string(age));
    json_object_object_add(actions, "delete", json_object_new_object());
    json_object_object_add(del, "actions", actions);
    json_object_object_add(phases, "delete", del);
    json_object_object_add(pol, "phases", phases);
    json_object_object_add(p, "policy", pol);
    return p;
}

/* ISM: a "hot" state moving to "delete" at min_index_age, attached to new
 * indices of the pattern by ism_template. */
static json_object *ism_policy(const tp_config *cfg, const char *desc, const char *wild)
{
    json_object *p = json_object_new_object(), *pol = json_object_new_object();
    json_object *states = json_object_new_array(), *hot = json_object_new_object();
    json_object *del = json_object_new_object(), *tr = json_object_new_array();
    json_object *t = json_object_new_object(), *cond = json_object_new_object();
    json_object *acts = json_object_new_array(), *da = json_object_new_object();
    json_object *it = json_object_new_array(), *ite = json_object_new_object();
    json_object *pats = json_object_new_array();
    char age[32];

    snprintf(age, sizeof(age), "%ldd", cfg->retention_days);
    json_object_object_add(cond, "min_index_age", json_object_new_string(age));
    json_object_object_add(t, "state_name", json_object_new_string("delete"));
    json_object_object_add(t, "conditions", cond);
    json_object_array_add(tr, t);
    json_object_object_add(hot, "name", json_object_new_string("hot"));
    json_object_object_add(hot, "actions", json_object_new_array());
    json_object_object_add(hot, "transitions", tr);
    json_object_object_add(da, "delete", json_object_new_object());
    json_object_array_add(acts, da);
    json_object_object_add(del, "name", json_object_new_string("delete"));
    json_object_object_add(del, "actions", acts);
    json_object_object_add(del, "transitions", json_object_new_array());
    json_object_array_add(states, hot);
    json_object_array_add(states, del);
    json_object_array_add(pats, json_object_new_string(wild));
    json_object_object_add(ite, "index_patterns", pats);
    json_object_object_add(ite, "priority", json_object_new_int(100));
    json_object_array_add(it, ite);
    json_object_object_add(pol, "description", json_object_new_string(desc));
    json_object_object_add(pol, "default_state", json_object_new_string("hot"));
    json_object_object_add(pol, "states", states);
    json_object_object_add(pol, "ism_template", it);
    json_object_object_add(p, "policy", pol);
    return p;
}

static void setup_ilm(run *r)
{
    json_object *want = ilm_policy(r->cfg->retention_days), *have = NULL;
    char path[TP_INDEX_MAX + 32], what[TP_INDEX_MAX + 64], err[512];
    const char *const age_key[] = { r->cfg->es_template, "policy", "phases", "delete",
                                     "min_age", NULL };
    const char *const want_key[] = { "policy", "phases", "delete", "min_age", NULL };
    json_object *age;
    long status;

    snprintf(path, sizeof(path), "/_ilm/policy/%s", r->cfg->es_template);
    snprintf(what, sizeof(what), "ILM policy %s (delete after %ld days)", r->cfg->es_template,
             r->cfg->retention_days);
    status = call(r->es, "GET", path, NULL, NULL, &have, err, sizeof(err));
    age = dig(have, age_key);
    put_if(r, what, status == 200, age && strcmp(json_object_get_string(age),
           json_object_get_string(dig(want, want_key))) == 0, "PUT", path, NULL, want);
    json_object_put(have);
    json_object_put(want);
}

static void setup_ism(run *r)
{
    const tp_config *cfg = r->cfg;
    json_object *want = NULL, *have = NULL;
    char path[TP_INDEX_MAX + 32], what[TP_INDEX_MAX + 64], err[512], hex[DIGEST_HEX + 1];
    char desc[200], wild[TP_INDEX_MAX + 1], query[96];
    const char *const desc_key[] = { "policy", "description", NULL };
    json_object *d;
    long status;

    if (tp_index_wildcard(cfg->es_index, wild, sizeof(wild)) < 0)
        return;
    want = ism_policy(cfg, "", wild);
    if (digest(json_object_to_json_string_ext(want, JSON_C_TO_STRING_PLAIN), hex) < 0)
        goto done;
    json_object_put(want);
    snprintf(desc, sizeof(desc), "trackpixel: delete indices older than %ld days [%.16s]",
             cfg->retention_days, hex);
    want = ism_policy(cfg, desc, wild);
    snprintf(path, sizeof(path), "/_plugins/_ism/policies/%s", cfg->es_template);
    snprintf(what, sizeof(what), "ISM policy %s (delete after %ld days)", cfg->es_template,
             cfg->retention_days);
    status = call(r->es, "GET", path, NULL, NULL, &have, err, sizeof(err));
    d = dig(have, desc_key);
    query[0] = '\0';
    if (status == 200) {           /* an update names the version it replaces */
        const char *const seq[] = { "_seq_no", NULL }, *const term[] = { "_primary_term", NULL };
        snprintf(query, sizeof(query), "if_seq_no=%s&if_primary_term=%s",
                 json_object_get_string(dig(have, seq)), json_object_get_string(dig(have, term)));
    }
    put_if(r, what, status == 200, d && strcmp(json_object_get_string(d), desc) == 0, "PUT",
           path, query[0] ? query : NULL, want);
done:
    json_object_put(have);
    json_object_put(want);
}

/* The retention policy; 1 when the template names an ILM policy. */
static int setup_retention(run *r)
{
    if (r->cfg->retention_days == 0) {
        fprintf(r->out, "retention: off (TRACKPIXEL_RETENTION_DAYS=0: indices are kept; "
                "a policy installed before is left as it is)\n");
        return 0;
    }
    if (r->cl.serverless) {
        fprintf(r->out, "retention: skipped: OpenSearch Serverless has no ISM; set a data "
                "lifecycle policy on the collection\n");
        return 0;
    }
    if (r->cl.opensearch) {
        setup_ism(r);
        return 0;
    }
    setup_ilm(r);
    return 1;
}

/* ------------------------------------------------------------ template */

/* The template as installed: 1 matches, 0 differs, -1 absent, -2 error. */
static int template_state(run *r, json_object *want, char *err, size_t errlen)
{
    json_object *have = NULL;
    char path[TP_INDEX_MAX + 32];
    const char *const have_key[] = { "_meta", "digest", NULL };
    const char *const want_key[] = { "_meta", "digest", NULL };
    json_object *list, *d;
    long status;
    int state = -2;

    snprintf(path, sizeof(path), "/_index_template/%s", r->cfg->es_template);
    status = call(r->es, "GET", path, NULL, NULL, &have, err, errlen);
    if (status == 404) {
        state = -1;
    } else if (status == 200 && json_object_object_get_ex(have, "index_templates", &list) &&
               json_object_is_type(list, json_type_array) &&
               json_object_array_length(list) == 1) {
        const char *const tkey[] = { "index_template", NULL };
        d = dig(dig(json_object_array_get_idx(list, 0), tkey), have_key);
        state = d && strcmp(json_object_get_string(d),
                            json_object_get_string(dig(want, want_key))) == 0;
    } else if (status) {
        snprintf(err, errlen, "GET %s answered HTTP %ld", path, status);
    }
    json_object_put(have);
    return state;
}

static void setup_template(run *r, int pipeline, int ilm)
{
    json_object *want = tp_setup_template(r->cfg, &r->cl, pipeline, ilm);
    char path[TP_INDEX_MAX + 32], what[TP_INDEX_MAX * 2 + 64], err[512];
    const char *const pat[] = { "index_patterns", NULL };
    int state;

    if (!want) {
        fprintf(r->out, "index template: error: out of memory\n");
        r->failed = 1;
        return;
    }
    snprintf(path, sizeof(path), "/_index_template/%s", r->cfg->es_template);
    snprintf(what, sizeof(what), "index template %s (%s, %s)", r->cfg->es_template,
             json_object_get_string(json_object_array_get_idx(dig(want, pat), 0)),
             !r->cl.opensearch ? "flattened" : has_flat_object(&r->cl) ? "flat_object" :
             "OpenSearch before 2.9: known names only");
    state = template_state(r, want, err, sizeof(err));
    if (state == -2) {
        fprintf(r->out, "%s: error: %s\n", what, err);
        r->failed = 1;
    } else if (r->check_only) {
        fprintf(r->out, "%s: %s\n", what, state == 1 ? "installed and matches" :
                state == 0 ? "differs from this version's (run trackpixel --setup)" :
                "not installed (run trackpixel --setup)");
        r->failed = state != 1;
    } else {
        put_if(r, what, state >= 0, state == 1, "PUT", path, NULL, want);
    }
    json_object_put(want);
}

/* ----------------------------------------------------------- the command */

int tp_setup_run(const tp_config *cfg, int check_only, FILE *out)
{
    run r;
    char err[640];      /* tp_setup_detect: a prefix and a 512-byte reason */
    int pipeline, ilm;

    memset(&r, 0, sizeof(r));
    r.cfg = cfg;
    r.out = out;
    r.check_only = check_only;
    if (!cfg->es_url) {
        fprintf(out, "setup: error: TRACKPIXEL_ES_URL is not set (the embedded default "
                "writes a file: nothing to set up)\n");
        return 1;
    }
    r.es = tp_es_new(cfg, err, sizeof(err));
    if (!r.es) {
        fprintf(out, "setup: error: %s\n", err);
        return 1;
    }
    if (tp_setup_detect(r.es, cfg, &r.cl, err, sizeof(err)) < 0) {
        fprintf(out, "setup: error: %s\n", err);
        r.failed = 1;
        goto done;
    }
    if (check_only) {
        /* Which pipeline and policy the template names is part of its
         * digest: read them as --setup would have found them. */
        pipeline = setup_pipeline(&r);
        ilm = cfg->retention_days > 0 && !r.cl.opensearch;
        setup_template(&r, pipeline, ilm);
        goto done;
    }
    fprintf(out, "cluster: %s %s\n", r.cl.opensearch ? "OpenSearch" : "Elasticsearch",
            r.cl.number);
    pipeline = setup_pipeline(&r);
    ilm = setup_retention(&r);
    setup_template(&r, pipeline, ilm);
    if (r.failed)
        fprintf(out, "setup: failed (see the errors above)\n");
    else if (r.changed)
        fprintf(out, "setup: done, %d change%s; new indices take the template (an index "
                "created before keeps its mapping)\n", r.changed, r.changed == 1 ? "" : "s");
    else
        fprintf(out, "setup: no change\n");
done:
    tp_es_free(r.es);
    return r.failed ? 1 : 0;
}
