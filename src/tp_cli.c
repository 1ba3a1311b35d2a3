#include "config.h"
#include "tp_cli.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tp_config.h"
#include "tp_creds.h"
#include "tp_es.h"
#include "tp_index.h"
#include "tp_output.h"
#include "tp_setup.h"
#include "tp_spool.h"

static void usage(FILE *f)
{
    const tp_config_var *vars;
    size_t n, i;

    vars = tp_config_vars(&n);
    fprintf(f,
        "Usage: trackpixel            serve (FastCGI on the socket on stdin, or one CGI request)\n"
        "       trackpixel --check    print the configuration (secrets masked) and test the cluster\n"
        "       trackpixel --setup    install the cluster's index template, retention, user-agent pipeline\n"
        "       trackpixel --replay FILE  send a journal, _bulk, damaged.* or dead-letter file\n"
        "       trackpixel --spool-status print the backlog in TRACKPIXEL_SPOOL_DIR\n"
        "       trackpixel --help     this text\n"
        "       trackpixel --version  the version\n"
        "\n"
        "A tracking pixel: every GET, HEAD or POST gets a 1x1 BMP, and one JSON document\n"
        "per hit goes to Elasticsearch (signed with AWS SigV4 when AWS keys and a region\n"
        "are set, or with an API key or basic auth), or, without TRACKPIXEL_ES_URL, to a\n"
        "local file in _bulk format.\n"
        "\n"
        "Configuration (read once at start from the environment, which wins, and the\n"
        "file TRACKPIXEL_CONFIG of NAME=value lines):\n");
    for (i = 0; i < n; i++)
        fprintf(f, "  %-30s %s%s%s%s\n", vars[i].name, vars[i].help,
                vars[i].def ? " (default \"" : "", vars[i].def ? vars[i].def : "",
                vars[i].def ? "\")" : "");
}

/* OpenSearch Serverless has no GET /: the index tells whether the
 * collection is reachable and the requests are accepted (a 404 saying the
 * index does not exist counts: it is created by the first document). */
static int check_aoss(const tp_config *cfg, tp_es *es, const char *shown)
{
    char err[512], path[300];
    long status = 0;
    tp_es_result r;
    int missing;

    snprintf(path, sizeof(path), "/%s", cfg->es_index);
    r = tp_es_request(es, "GET", path, NULL, NULL, NULL, 0, time(NULL), &status, err,
                      sizeof(err));
    missing = status == 404 && strstr(tp_es_answer(es, NULL), "index_not_found_exception");
    if (r == TP_ES_OK || missing) {
        printf("cluster: %s answered HTTP %ld to GET %s (OpenSearch Serverless: no cluster "
               "name or version; %s)\n", shown, status, path,
               missing ? "the index does not exist yet" : "the index exists");
        return 0;
    }
    printf("cluster: %s %s: %s\n", shown, status ? "answered but refused" : "is unreachable",
           err);
    return 1;
}

/* GET / : the cluster's name and version (aoss: check_aoss). */
static int check_cluster(const tp_config *cfg, tp_es *es, const tp_config_var *vars)
{
    char err[512], shown[512];
    long status = 0;
    tp_es_result r;
    json_object *j = NULL, *v = NULL, *num = NULL, *name = NULL;

    tp_config_show(cfg, &vars[0], shown, sizeof(shown));
    if (strcmp(cfg->aws_service, "aoss") == 0)
        return check_aoss(cfg, es, shown);
    r = tp_es_request(es, "GET", "/", NULL, NULL, NULL, 0, time(NULL), &status, err,
                      sizeof(err));
    if (r != TP_ES_OK) {
        printf("cluster: %s %s: %s\n", shown, status ? "answered but refused" : "is unreachable",
               err);
        return 1;
    }
    j = json_tokener_parse(tp_es_answer(es, NULL));
    if (j) {
        json_object_object_get_ex(j, "cluster_name", &name);
        if (json_object_object_get_ex(j, "version", &v))
            json_object_object_get_ex(v, "number", &num);
    }
    printf("cluster: %s answered HTTP %ld (cluster_name %s, version %s)\n", shown, status,
           name ? json_object_get_string(name) : "?", num ? json_object_get_string(num) : "?");
    json_object_put(j);
    return 0;
}

/*
 * With signing: fetch the credentials (and the region when only instance
 * metadata knows it) into a new *cache for es, and say in out where they
 * came from, when they expire and the region; never a secret.  0, or -1
 * with the reason in out.
 */
static int cli_creds(const tp_config *cfg, tp_es *es, tp_creds_cache **cache, char *out,
                     size_t outlen)
{
    tp_creds_chain *ch = tp_creds_chain_new(cfg->envp);
    char err[400], region[TP_CREDS_REGION_MAX], when[40] = "never";
    const char *from = cfg->region_from;
    tp_creds c;
    struct tm tm;
    int rc = -1;

    *cache = NULL;
    memset(&c, 0, sizeof(c));
    snprintf(region, sizeof(region), "%s", cfg->region ? cfg->region : "");
    if (!ch || !(*cache = tp_creds_cache_new(NULL))) {
        snprintf(out, outlen, "out of memory");
        goto done;
    }
    if (!region[0] && tp_creds_chain_imds_region(ch, region, sizeof(region), err,
                                                 sizeof(err)) < 0) {
        snprintf(out, outlen, "no region: %s", err);
        goto done;
    }
    if (tp_creds_chain_get(ch, region, &c, err, sizeof(err)) < 0) {
        snprintf(out, outlen, "%s", err);
        goto done;
    }
    tp_creds_cache_set_region(*cache, region);
    tp_creds_cache_store(*cache, tp_creds_cache_now(*cache), &c);
    tp_es_set_creds(es, *cache);
    if (c.expiration) {
        gmtime_r(&c.expiration, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    snprintf(out, outlen, "from %s, expire %s; region %s (from %s)", c.provider, when, region,
             from ? from : "instance metadata");
    rc = 0;
done:
    tp_creds_wipe(&c);
    tp_creds_chain_free(ch);
    return rc;
}

static int check(char *const *envp)
{
    tp_config cfg;
    tp_es *es = NULL;
    tp_creds_cache *cache = NULL;
    const tp_config_var *vars;
    char err[512], shown[512];
    size_t n, i;
    int rc = 1;

    if (tp_config_load(&cfg, envp, err, sizeof(err)) < 0) {
        printf("configuration: error: %s\n", err);
        goto done;
    }
    vars = tp_config_vars(&n);
    printf("configuration:\n");
    for (i = 0; i < n; i++)
        printf("  %s=%s\n", vars[i].name, tp_config_show(&cfg, &vars[i], shown, sizeof(shown)));
    printf("configuration file: %s\n", cfg.config_path ? cfg.config_path : "none");
    if (cfg.config_warning[0])
        printf("warning: %s\n", cfg.config_warning);
    printf("signing: %s\n", cfg.signing ? "AWS SigV4" : "off (no AWS credentials configured)");
    printf("auth: %s\n", tp_config_auth_name(cfg.auth));
    if (cfg.es_url && strncmp(cfg.es_url, "https:", 6) == 0)
        printf("tls: certificates and host names verified with %s%s%s\n",
               cfg.es_ca_file ? cfg.es_ca_file : "the system's CA certificates",
               cfg.es_cert_file ? "; client certificate " : "",
               cfg.es_cert_file ? cfg.es_cert_file : "");
    else if (cfg.es_url)
        printf("tls: none (http)\n");

    if (!cfg.es_url) {
        tp_output *out = tp_output_open(cfg.output, err, sizeof(err));
        if (!out) {
            printf("output: error: %s\n", err);
            goto done;
        }
        tp_output_close(out);
        printf("output: no cluster configured; documents are appended to %s\n", cfg.output);
        rc = 0;
        goto done;
    }

    es = tp_es_new(&cfg, err, sizeof(err));
    if (!es) {
        printf("cluster: error: %s\n", err);
        goto done;
    }
    if (cfg.signing) {
        int ok = cli_creds(&cfg, es, &cache, shown, sizeof(shown)) == 0;
        printf("credentials: %s%s\n", ok ? "" : "error: ", shown);
        if (!ok)
            goto done;
    }
    rc = check_cluster(&cfg, es, vars);
    if (rc == 0)
        tp_setup_run(&cfg, 1, stdout);     /* the template: reported, not required */
done:
    tp_es_free(es);
    tp_creds_cache_free(cache);
    tp_config_free(&cfg);
    return rc;
}

/* What --replay sent, and how it went. */
typedef struct replay_ctx {
    const tp_config *cfg;
    tp_es *es;
    long accepted, rejected, unsent;
} replay_ctx;

/* One document of a replayed file: its _id and JSON text. */
static void replay_one(void *ctx, const char *id, const char *doc, size_t len)
{
    replay_ctx *rc = ctx;
    char err[512], index[TP_INDEX_MAX + 1];
    long status = 0;
    tp_es_result r;

    /* A daily index: the document's own day, from its "date". */
    if (tp_index_for_doc(rc->cfg->es_index, doc, len, index, sizeof(index)) < 0) {
        rc->rejected++;
        printf("rejected %s: no \"date\" for the index %s\n", id, rc->cfg->es_index);
        return;
    }
    r = tp_es_create_in(rc->es, index, id, doc, len, time(NULL), &status, err, sizeof(err));
    if (r == TP_ES_OK) {
        rc->accepted++;
    } else if (r == TP_ES_REJECT) {
        rc->rejected++;
        printf("rejected %s: %s\n", id, err);
    } else {
        rc->unsent++;
        printf("not sent %s: %s\n", id, err);
    }
}

/* Send the documents of a journal, _bulk file (TRACKPIXEL_OUTPUT, a
 * damaged.* file) or dead-letter file, one create each. */
static int replay(const char *path, char *const *envp)
{
    tp_config cfg;
    replay_ctx ctx = { 0 };
    tp_creds_cache *cache = NULL;
    char err[512];
    long skipped = 0;
    int rc = 1;

    if (tp_config_load(&cfg, envp, err, sizeof(err)) < 0) {
        fprintf(stderr, "trackpixel: %s\n", err);
        goto done;
    }
    if (!cfg.es_url) {
        fprintf(stderr, "trackpixel: --replay needs TRACKPIXEL_ES_URL\n");
        goto done;
    }
    ctx.cfg = &cfg;
    ctx.es = tp_es_new(&cfg, err, sizeof(err));
    if (!ctx.es) {
        fprintf(stderr, "trackpixel: %s\n", err);
        goto done;
    }
    if (cfg.signing && cli_creds(&cfg, ctx.es, &cache, err, sizeof(err)) < 0) {
        fprintf(stderr, "trackpixel: AWS credentials: %s\n", err);
        goto done;
    }
    if (tp_spool_each_document(path, replay_one, &ctx, &skipped, err, sizeof(err)) < 0) {
        fprintf(stderr, "trackpixel: %s\n", err);
        goto done;
    }
    printf("replayed %s: %ld accepted, %ld rejected, %ld not sent, %ld malformed lines\n",
           path, ctx.accepted, ctx.rejected, ctx.unsent, skipped);
    rc = (ctx.rejected || ctx.unsent || skipped) ? 1 : 0;
done:
    tp_es_free(ctx.es);
    tp_creds_cache_free(cache);
    tp_config_free(&cfg);
    return rc;
}

/* The journals' destinations, pending entries and oldest pending hit. */
static void print_pending(const tp_spool_stat *st)
{
    long i;

    for (i = 0; i < st->ndests; i++)
        printf("  for %s: %ld entries\n",
               st->dest[i][0] ? st->dest[i] : "(an older journal, any destination)",
               st->dest_entries[i]);
    if (st->oldest_ms) {
        struct timespec now;
        struct tm tm;
        time_t t = (time_t)(st->oldest_ms / 1000);
        char when[32];

        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("pending: %ld entries, %lld bytes, oldest %lld s (a hit of %s)\n", st->entries,
               st->bytes,
               ((long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 - st->oldest_ms) / 1000,
               when);
    } else {
        printf("pending: %ld entries, %lld bytes\n", st->entries, st->bytes);
    }
}

static int spool_status(char *const *envp)
{
    tp_config cfg;
    tp_spool_stat *st = NULL;
    char err[512];
    int rc = 1;

    if (tp_config_load(&cfg, envp, err, sizeof(err)) < 0) {
        fprintf(stderr, "trackpixel: %s\n", err);
        goto done;
    }
    if (!cfg.spool_dir[0]) {
        printf("spool: none (TRACKPIXEL_SPOOL_DIR is empty)\n");
        rc = 0;
        goto done;
    }
    st = malloc(sizeof(*st));          /* 16 KiB of destinations: not on the stack */
    if (!st || tp_spool_stat_dir(cfg.spool_dir, 1, NULL, st, err, sizeof(err)) < 0) {
        fprintf(stderr, "trackpixel: %s\n", st ? err : "out of memory");
        goto done;
    }
    printf("spool: %s (%lld of %ld MiB)\n", cfg.spool_dir, st->total_bytes / (1024 * 1024),
           cfg.spool_max_mb);
    printf("journals: %ld (%ld without a live worker)\n", st->journals, st->orphans);
    print_pending(st);
    printf("damaged: %ld files (%s/" TP_SPOOL_DAMAGED_PREFIX "*, send with --replay)\n",
           st->damaged_files, cfg.spool_dir);
    printf("dead letters: %ld (%s/%s)\n", st->deadletters, cfg.spool_dir, TP_SPOOL_DEADLETTER);
    rc = 0;
done:
    free(st);
    tp_config_free(&cfg);
    return rc;
}

static int setup(char *const *envp)
{
    tp_config cfg;
    char err[512];
    int rc = 1;

    if (tp_config_load(&cfg, envp, err, sizeof(err)) < 0)
        fprintf(stderr, "trackpixel: %s\n", err);
    else
        rc = tp_setup_run(&cfg, 0, stdout);
    tp_config_free(&cfg);
    return rc;
}

int tp_cli_main(int argc, char **argv, char *const *envp)
{
    if (argc < 2)
        return -1;
    if (argc == 3 && strcmp(argv[1], "--replay") == 0)
        return replay(argv[2], envp);
    if (argc > 2) {
        fprintf(stderr, "trackpixel: one option at a time (see --help)\n");
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("trackpixel %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--check") == 0)
        return check(envp);
    if (strcmp(argv[1], "--spool-status") == 0)
        return spool_status(envp);
    if (strcmp(argv[1], "--setup") == 0)
        return setup(envp);
    fprintf(stderr, "trackpixel: unknown option %s (see --help)\n", argv[1]);
    return 2;
}
