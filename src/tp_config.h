/*
 * tp_config - the configuration, read once at start from the process
 * environment (FcgidInitialEnv, lighttpd's bin-environment, systemd's
 * Environment=).  Request variables are never consulted, so no request can
 * redirect documents.
 *
 * One table (tp_config_vars) names every variable with its default and help
 * text; it drives parsing, --help, --check and the man page test.
 *
 * Ownership: tp_config_load() fills a caller-owned tp_config whose strings
 * are malloc'd; tp_config_free() frees them.
 */
#ifndef TP_CONFIG_H
#define TP_CONFIG_H

#include <stddef.h>

#define TP_CONFIG_MAX_STAGE_VARS 64

typedef enum tp_config_kind {
    TP_CONF_STRING,
    TP_CONF_URL,
    TP_CONF_INDEX,        /* an Elasticsearch index or type name */
    TP_CONF_MS,           /* milliseconds, 1 .. 3600000          */
    TP_CONF_COUNT,        /* a count or byte size, 1 .. 1<<30     */
    TP_CONF_PREFIX,       /* TRACKPIXEL_STAGE_VAR_<name>          */
    TP_CONF_BOOL          /* 0 or 1                               */
} tp_config_kind;

typedef struct tp_config_var {
    const char *name;       /* environment variable                   */
    tp_config_kind kind;
    const char *def;        /* default as text, NULL = unset          */
    int secret;             /* never printed                          */
    const char *help;       /* one line for --help and the man page   */
} tp_config_var;

typedef struct tp_stage_var {
    char *name;
    char *value;
} tp_stage_var;

typedef struct tp_config {
    /* Elasticsearch; es_url NULL means the embedded default (a file). */
    char *es_url;
    char *es_index;
    char *es_type;                 /* NULL: 7.x+ _create API */
    char *aws_service;
    char *region;                  /* AWS_REGION, else AWS_DEFAULT_REGION */
    char *access_key_id;
    char *secret_access_key;
    char *session_token;
    char *aws_profile;             /* AWS_PROFILE, for --check        */
    int signing;                   /* AWS credentials are to be used  */
    const char *region_from;       /* where region came from (static) */
    char *const *envp;             /* what the configuration was read
                                      from (borrowed): for tp_creds   */
    long connect_timeout_ms;
    long timeout_ms;
    char *output;                  /* the embedded default's file */

    /* Durability (with a cluster): "" spool_dir means no journal. */
    char *spool_dir;
    long spool_max_mb;
    long spool_fsync;
    long shutdown_ms;              /* delivery attempts at stop        */
    long slow_ms;                  /* slower answers: batch, not inline */
    long bulk_max_kb;              /* largest _bulk request body       */
    long body_timeout_ms;          /* read deadline for a POST body    */

    /* The document. */
    char *stage;
    char *api_id;
    tp_stage_var stage_vars[TP_CONFIG_MAX_STAGE_VARS];
    size_t nstage_vars;

    /* Limits on what one request may put in its document. */
    long max_params;
    long max_headers;
    long max_value;
    long max_body;
    long max_doc;
} tp_config;

/* The table, in --help order; *n gets its length. */
const tp_config_var *tp_config_vars(size_t *n);

/*
 * Read the configuration from envp (NAME=value strings, NULL-terminated).
 * Returns 0, or -1 with one line in err naming the variable at fault (and
 * never its value when the variable is secret).  Call tp_config_free()
 * either way.
 */
int tp_config_load(tp_config *cfg, char *const *envp, char *err, size_t errlen);

void tp_config_free(tp_config *cfg);

/* The value of name in envp (NAME=value strings, NULL-terminated), or NULL.
 * The result points into envp. */
const char *tp_env_get(char *const *envp, const char *name);

/*
 * The effective value of a table variable as text for --check, with secrets
 * masked ("****" plus the last 4 characters of an access key id; "(set)"
 * for secret keys and tokens; a URL's password replaced by "****").
 * Writes into out and returns it.
 */
const char *tp_config_show(const tp_config *cfg, const tp_config_var *var,
                           char *out, size_t outcap);

#endif
