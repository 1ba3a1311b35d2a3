#include "config.h"
#include "tp_cli.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tp_config.h"
#include "tp_es.h"
#include "tp_output.h"
#include "tp_spool.h"

static void usage(FILE *f)
{
    const tp_config_var *vars;
    size_t n, i;

    vars = tp_config_vars(&n);
    fprintf(f,
        "Usage: trackpixel            serve (FastCGI on the socket on stdin, or one CGI request)\n"
        "       trackpixel --check    print the configuration (secrets masked) and test the cluster\n"
        "       trackpixel --replay FILE  send a journal or dead-letter file to the cluster\n"
        "       trackpixel --spool-status print the backlog in TRACKPIXEL_SPOOL_DIR\n"
        "       trackpixel --help     this text\n"
        "       trackpixel --version  the version\n"
        "\n"
        "A tracking pixel: every GET, HEAD or POST gets a 1x1 BMP, and one JSON document\n"
        "per hit goes to Elasticsearch (signed with AWS SigV4 when AWS keys and a region\n"
        "are set), or, without TRACKPIXEL_ES_URL, to a local file in _bulk format.\n"
        "\n"
        "Configuration (environment, read once at start):\n");
    for (i = 0; i < n; i++)
        fprintf(f, "  %-30s %s%s%s%s\n", vars[i].name, vars[i].help,
                vars[i].def ? " (default \"" : "", vars[i].def ? vars[i].def : "",
                vars[i].def ? "\")" : "");
}

static int check(char *const *envp)
{
    tp_config cfg;
    tp_es *es = NULL;
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
    printf("signing: %s\n", cfg.signing ? "AWS SigV4" : "off (no AWS credentials and region)");

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
    {
        long status = 0;
        tp_es_result r = tp_es_request(es, "GET", "/", NULL, NULL, NULL, 0, time(NULL),
                                       &status, err, sizeof(err));
        tp_config_show(&cfg, &vars[0], shown, sizeof(shown));
        if (r == TP_ES_OK) {
            json_object *j = json_tokener_parse(tp_es_answer(es, NULL)), *v = NULL, *num = NULL, *name = NULL;
            if (j) {
                json_object_object_get_ex(j, "cluster_name", &name);
                if (json_object_object_get_ex(j, "version", &v))
                    json_object_object_get_ex(v, "number", &num);
            }
            printf("cluster: %s answered HTTP %ld (cluster_name %s, version %s)\n", shown, status,
                   name ? json_object_get_string(name) : "?", num ? json_object_get_string(num) : "?");
            json_object_put(j);
            rc = 0;
        } else if (status) {
            printf("cluster: %s answered but refused: %s\n", shown, err);
        } else {
            printf("cluster: %s is unreachable: %s\n", shown, err);
        }
    }
done:
    tp_es_free(es);
    tp_config_free(&cfg);
    return rc;
}

/* One document of a replayed file: id and its JSON text. */
static void replay_one(tp_es *es, const char *id, const char *doc, size_t len,
                       long *accepted, long *rejected, long *unsent)
{
    char err[512];
    long status = 0;
    tp_es_result r = tp_es_create(es, id, doc, len, time(NULL), &status, err, sizeof(err));

    if (r == TP_ES_OK) {
        (*accepted)++;
    } else if (r == TP_ES_REJECT) {
        (*rejected)++;
        printf("rejected %s: %s\n", id, err);
    } else {
        (*unsent)++;
        printf("not sent %s: %s\n", id, err);
    }
}

static int replay(const char *path, char *const *envp)
{
    tp_config cfg;
    tp_es *es = NULL;
    FILE *f = NULL;
    char err[512], *line = NULL, *action_id = NULL;
    size_t cap = 0;
    ssize_t n;
    long accepted = 0, rejected = 0, unsent = 0, malformed = 0;
    int rc = 1;

    if (tp_config_load(&cfg, envp, err, sizeof(err)) < 0) {
        fprintf(stderr, "trackpixel: %s\n", err);
        goto done;
    }
    if (!cfg.es_url) {
        fprintf(stderr, "trackpixel: --replay needs TRACKPIXEL_ES_URL\n");
        goto done;
    }
    es = tp_es_new(&cfg, err, sizeof(err));
    if (!es) {
        fprintf(stderr, "trackpixel: %s\n", err);
        goto done;
    }
    f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "trackpixel: cannot open %s\n", path);
        goto done;
    }
    /* Journal lines come in pairs (a _bulk action, then the document);
     * dead letters are one line each with the document inside. */
    while ((n = getline(&line, &cap, f)) > 0) {
        json_object *j, *meta = NULL, *id = NULL, *doc = NULL;

        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        if (action_id) {
            replay_one(es, action_id, line, (size_t)n, &accepted, &rejected, &unsent);
            free(action_id);
            action_id = NULL;
            continue;
        }
        j = json_tokener_parse(line);
        if (j && (json_object_object_get_ex(j, "create", &meta) ||
                  json_object_object_get_ex(j, "index", &meta)) &&
            json_object_object_get_ex(meta, "_id", &id)) {
            action_id = strdup(json_object_get_string(id));
        } else if (j && json_object_object_get_ex(j, "document", &doc) &&
                   json_object_object_get_ex(j, "_id", &id)) {
            size_t dlen = 0;
            const char *text = json_object_to_json_string_length(doc,
                JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &dlen);
            replay_one(es, json_object_get_string(id), text, dlen,
                       &accepted, &rejected, &unsent);
        } else {
            malformed++;
        }
        json_object_put(j);
    }
    if (action_id)
        malformed++;
    printf("replayed %s: %ld accepted, %ld rejected, %ld not sent, %ld malformed lines\n",
           path, accepted, rejected, unsent, malformed);
    rc = (rejected || unsent || malformed) ? 1 : 0;
done:
    if (f)
        fclose(f);
    free(line);
    free(action_id);
    tp_es_free(es);
    tp_config_free(&cfg);
    return rc;
}

static int spool_status(char *const *envp)
{
    tp_config cfg;
    tp_spool_stat st;
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
    if (tp_spool_stat_dir(cfg.spool_dir, 1, &st, err, sizeof(err)) < 0) {
        fprintf(stderr, "trackpixel: %s\n", err);
        goto done;
    }
    printf("spool: %s (%lld of %ld MiB)\n", cfg.spool_dir, st.total_bytes / (1024 * 1024),
           cfg.spool_max_mb);
    printf("journals: %ld (%ld without a live worker)\n", st.journals, st.orphans);
    if (st.oldest_ms) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        printf("pending: %ld entries, %lld bytes, oldest %lld s\n", st.entries, st.bytes,
               ((long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 - st.oldest_ms) / 1000);
    } else {
        printf("pending: %ld entries, %lld bytes\n", st.entries, st.bytes);
    }
    printf("dead letters: %ld (%s/%s)\n", st.deadletters, cfg.spool_dir, TP_SPOOL_DEADLETTER);
    rc = 0;
done:
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
    fprintf(stderr, "trackpixel: unknown option %s (see --help)\n", argv[1]);
    return 2;
}
