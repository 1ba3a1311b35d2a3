#include "config.h"
#include "tp_cli.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tp_config.h"
#include "tp_es.h"
#include "tp_output.h"

static void usage(FILE *f)
{
    const tp_config_var *vars;
    size_t n, i;

    vars = tp_config_vars(&n);
    fprintf(f,
        "Usage: trackpixel            serve (FastCGI on the socket on stdin, or one CGI request)\n"
        "       trackpixel --check    print the configuration (secrets masked) and test the cluster\n"
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

int tp_cli_main(int argc, char **argv, char *const *envp)
{
    if (argc < 2)
        return -1;
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
    fprintf(stderr, "trackpixel: unknown option %s (see --help)\n", argv[1]);
    return 2;
}
