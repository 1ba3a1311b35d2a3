/*
 * tp_setup - trackpixel --setup: what the cluster needs before the first
 * hit, installed idempotently with the serving configuration and
 * credentials:
 *   - a composable index template (_index_template/TRACKPIXEL_ES_TEMPLATE)
 *     covering TRACKPIXEL_ES_INDEX and its dated forms, whose mappings keep
 *     what clients name (query parameters, headers, path, stage variables,
 *     the POST body) in one field each (flattened on Elasticsearch,
 *     flat_object on OpenSearch >= 2.9), so no client adds fields;
 *   - with TRACKPIXEL_RETENTION_DAYS, an ILM (Elasticsearch) or ISM
 *     (OpenSearch) policy deleting older indices;
 *   - with TRACKPIXEL_ES_USER_AGENT=1, an ingest pipeline parsing
 *     context.user-agent, the indices' default pipeline.
 * Each is read back first and written only when it differs.
 *
 * The command prints one line per step on out; the JSON builders are
 * exported for the unit tests.
 */
#ifndef TP_SETUP_H
#define TP_SETUP_H

#include <json-c/json.h>
#include <stdio.h>

#include "tp_config.h"
#include "tp_es.h"

typedef struct tp_setup_cluster {
    int opensearch;        /* OpenSearch, or OpenSearch Serverless      */
    int serverless;        /* aoss: no GET /, no ISM, no pipelines      */
    int major, minor;      /* the version (aoss: taken as 2.11)          */
    char number[32];       /* as GET / says, for messages               */
} tp_setup_cluster;

/*
 * The index template's body for cl: pipeline non-zero sets the user-agent
 * pipeline as index.default_pipeline; ilm non-zero names the retention ILM
 * policy.  _meta.digest is the SHA-256 of the rest, so a template read back
 * is compared by its digest.  NULL when out of memory; the caller owns the
 * reference (json_object_put).
 */
json_object *tp_setup_template(const tp_config *cfg, const tp_setup_cluster *cl, int pipeline,
                               int ilm);

/*
 * Install (check_only 0: --setup) or check (1: --check's template line)
 * everything for cfg, printing what was found and done on out.  Returns the
 * exit status: 0 done (or, checking, the template is there and matches),
 * 1 otherwise.
 */
int tp_setup_run(const tp_config *cfg, int check_only, FILE *out);

/* The name of the user-agent pipeline: TRACKPIXEL_ES_TEMPLATE "-user-agent". */
#define TP_SETUP_PIPELINE_SUFFIX "-user-agent"

#endif
