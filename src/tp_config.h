/*
 * tp_config - the configuration, read once at start from the process
 * environment (FcgidInitialEnv, lighttpd's bin-environment, systemd's
 * Environment=).  Request variables are never consulted, so no request can
 * redirect documents.
 *
 * One table (tp_config_vars) names every variable with its default and help
 * text; it drives parsing, --help, --check and the man page test.  The
 * configuration file (TRACKPIXEL_CONFIG, tp_conffile) is merged under the
 * environment first, so the same table reads it: the environment wins.
 *
 * Ownership: tp_config_load() fills a caller-owned tp_config whose strings
 * are malloc'd; tp_config_free() frees them.
 */
#ifndef TP_CONFIG_H
#define TP_CONFIG_H

#include <stddef.h>

#define TP_CONFIG_MAX_STAGE_VARS 64

/* $(sysconfdir)/trackpixel/trackpixel.conf, from the build. */
#ifndef TP_CONFIG_DEFAULT_PATH
#define TP_CONFIG_DEFAULT_PATH "/etc/trackpixel/trackpixel.conf"
#endif
/* The largest secret read from a *_FILE variable, bytes. */
#define TP_CONFIG_SECRET_FILE_MAX 4096

typedef enum tp_config_kind {
    TP_CONF_STRING,
    TP_CONF_URL,
    TP_CONF_INDEX,        /* an Elasticsearch index or type name */
    TP_CONF_INDEX_DATED,  /* an index name, may hold %Y %m %d     */
    TP_CONF_DAYS,         /* days, 0 .. 36500                     */
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

/* How requests to the cluster authenticate: at most one per configuration. */
typedef enum tp_config_auth {
    TP_AUTH_NONE,
    TP_AUTH_AWS,          /* SigV4                                        */
    TP_AUTH_API_KEY,      /* Authorization: ApiKey                        */
    TP_AUTH_BASIC,        /* TRACKPIXEL_ES_USER + password                */
    TP_AUTH_URL_BASIC     /* user:password@ in TRACKPIXEL_ES_URL          */
} tp_config_auth;

/* The auth mode in words, for --check ("AWS SigV4", "API key", ...). */
const char *tp_config_auth_name(tp_config_auth auth);

typedef struct tp_stage_var {
    char *name;
    char *value;
} tp_stage_var;

typedef struct tp_config {
    /* Elasticsearch; es_url NULL means the embedded default (a file). */
    char *es_url;
    char *es_index;
    char *es_type;                 /* NULL: 7.x+ _create API */
    char *es_template;             /* --setup's template, policy, pipeline */
    long retention_days;           /* 0: --setup installs no policy    */
    long es_user_agent;            /* 1: --setup installs the pipeline */
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

    /* The configuration file actually read (NULL: none), and a warning
     * about it for the caller to log at start ("" when none). */
    char *config_path;
    char config_warning[512];
    /* The environment over the file (tp_conffile_merge): what was parsed,
     * for modules that read more variables (the AWS credential chain).
     * Owned (the array, and the file's strings); the environment's strings
     * are borrowed from the envp given to tp_config_load(). */
    char **env;
    void *file;                    /* the tp_conffile behind env        */

    /* Elasticsearch's own authentication and TLS. */
    char *es_api_key;              /* the value, from the variable or its file */
    char *es_api_key_file;
    char *es_user;
    char *es_password;             /* the value, from the variable or its file */
    char *es_password_file;
    char *es_ca_file;
    char *es_cert_file;
    char *es_key_file;
    tp_config_auth auth;
    char *es_ids;                  /* "request-id" or "auto"            */
    int ids_auto;                  /* documents created without _id     */

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
    char *agents_file;             /* NULL: the list the program carries */
    long record_bots;              /* 0: bots' hits are not recorded      */
    char *api_id;
    tp_stage_var stage_vars[TP_CONFIG_MAX_STAGE_VARS];
    size_t nstage_vars;

    /* Privacy, as set; parsed into privacy (tp_privacy.h), owned here. */
    char *trusted_proxies;
    char *ip_mode;
    char *ip_hash_key_file;
    char *drop_headers;
    char *redact_params;
    char *gpc;
    struct tp_privacy *privacy;

    /* Limits on what one request may put in its document. */
    long max_params;
    long max_headers;
    long max_value;
    long max_body;
    long max_doc;

    /* Clicks, health and metrics. */
    char *redirect_allow;          /* NULL: no redirects            */
    char *admin_allow;             /* CIDRs for _health, _metrics   */
    long health_max_lag_s;
} tp_config;

/* The table, in --help order; *n gets its length. */
const tp_config_var *tp_config_vars(size_t *n);

/*
 * Read the configuration from envp (NAME=value strings, NULL-terminated)
 * over the configuration file: TRACKPIXEL_CONFIG from envp, else
 * TP_CONFIG_DEFAULT_PATH when that file exists ("" : no file).  The
 * *_FILE variables are read here (a secret's file: its first line).
 * Returns 0, or -1 with one line in err naming the variable at fault (and
 * never its value when the variable is secret).  Call tp_config_free()
 * either way.  envp must outlive cfg (cfg->env borrows its strings).
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
