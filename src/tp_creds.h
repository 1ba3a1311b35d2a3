/*
 * tp_creds - AWS credentials from the default chain, as botocore resolves
 * them, and a small thread-safe cache of the current ones.
 *
 * The chain, in botocore's order (the first provider that yields wins):
 *   environment    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *   assume-role    the profile's role_arn + source_profile: STS AssumeRole,
 *                  signed with the source profile's keys (or its
 *                  credential_process)
 *   web-identity   AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
 *                  (+ AWS_ROLE_SESSION_NAME): STS AssumeRoleWithWebIdentity,
 *                  the token file read again at each refresh
 *   shared-credentials-file   the profile's keys in AWS_SHARED_CREDENTIALS_FILE
 *                  (default ~/.aws/credentials)
 *   custom-process the profile's credential_process (its JSON, Version 1)
 *   config-file    the profile's keys in AWS_CONFIG_FILE (default ~/.aws/config)
 *   container-role AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI, with
 *                  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE / _TOKEN
 *   iam-role       EC2 instance metadata (IMDSv2; v1 only as botocore falls
 *                  back, never with AWS_EC2_METADATA_V1_DISABLED=true; off
 *                  with AWS_EC2_METADATA_DISABLED=true)
 * The profile is AWS_PROFILE (default "default"); its settings are those of
 * the credentials file's [NAME] over the config file's [profile NAME].
 * STS is AWS_ENDPOINT_URL_STS, else https://sts.REGION.amazonaws.com.
 *
 * Leaf module: no logging, no globals; errors come back as one line in a
 * caller's buffer and never hold a secret.  Network requests use their own
 * libcurl handle each, with short timeouts.
 */
#ifndef TP_CREDS_H
#define TP_CREDS_H

#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#define TP_CREDS_KEY_MAX     128     /* access key id, bytes with the NUL       */
#define TP_CREDS_SECRET_MAX  257     /* secret access key, bytes with the NUL   */
#define TP_CREDS_TOKEN_MAX   4096    /* session token, bytes with the NUL       */
#define TP_CREDS_REGION_MAX  64
#define TP_CREDS_REFRESH_S   300     /* refresh this long before Expiration     */
#define TP_CREDS_RETRY_S     5       /* at most one attempt this often          */

/* One set of credentials, a plain value (copy it; wipe it with
 * tp_creds_wipe when done: it holds secrets). */
typedef struct tp_creds {
    char access_key_id[TP_CREDS_KEY_MAX];
    char secret_access_key[TP_CREDS_SECRET_MAX];
    char session_token[TP_CREDS_TOKEN_MAX];   /* "" when none          */
    time_t expiration;                        /* 0: does not expire    */
    char provider[32];                        /* "environment", ...    */
} tp_creds;

void tp_creds_wipe(tp_creds *c);

/* What is known without the network, for the configuration. */
typedef struct tp_creds_plan {
    int wanted;                       /* sign requests with AWS credentials */
    char region[TP_CREDS_REGION_MAX]; /* "" when only IMDS can tell         */
    const char *region_from;          /* a static string: where it came from */
    int imds;                         /* instance metadata may be asked     */
} tp_creds_plan;

/*
 * Whether requests to es_url are to be signed, and the region as far as it
 * is known without the network.  Signing is wanted when es_url is an AWS
 * endpoint (*.es.amazonaws.com, *.aoss.amazonaws.com, also .com.cn), when
 * TRACKPIXEL_AWS_SERVICE is set, or when a credential source is configured
 * (keys in the environment, AWS_PROFILE, the profile in a shared file, web
 * identity, a container endpoint).  Instance metadata alone does not turn
 * signing on: every host would otherwise sign for any cluster.
 * Region: AWS_REGION, AWS_DEFAULT_REGION, the profile's region, the URL's.
 * Unreadable or malformed files count as absent here.  envp is borrowed.
 */
void tp_creds_plan_make(char *const *envp, const char *es_url, tp_creds_plan *out);

/* The region in an AWS endpoint's host name into out; 0, or -1. */
int tp_creds_region_from_url(const char *url, char *out, size_t outlen);

/* ------------------------------------------------------------ the chain */

typedef struct tp_creds_chain tp_creds_chain;

/* A chain reading its variables from envp (copied: envp may go away).
 * NULL when out of memory.  Free with tp_creds_chain_free().  Not
 * thread-safe: one thread uses it. */
tp_creds_chain *tp_creds_chain_new(char *const *envp);
void tp_creds_chain_free(tp_creds_chain *ch);

/*
 * Credentials into *out: the first time (and until one answers) the whole
 * chain; afterwards the provider that answered, as botocore does.  region
 * is the region for STS (may be "" or NULL).  Returns 0, or -1 with err
 * (which providers were tried and why the one that applied failed).
 */
int tp_creds_chain_get(tp_creds_chain *ch, const char *region, tp_creds *out,
                       char *err, size_t errlen);

/* Give up on fetching (a request in progress, a credential_process, which
 * is killed) when *flag becomes non-zero; flag is borrowed, NULL: never. */
void tp_creds_chain_set_abort(tp_creds_chain *ch, const atomic_int *flag);

/* The region from instance metadata (placement/region) into out; 0 or -1. */
int tp_creds_chain_imds_region(tp_creds_chain *ch, char *out, size_t outlen,
                               char *err, size_t errlen);

/* -------------------------------------------------------------- the cache */

typedef struct tp_creds_cache tp_creds_cache;

/* NULL when out of memory.  Free with tp_creds_cache_free (wipes it). */
tp_creds_cache *tp_creds_cache_new(const char *region);
void tp_creds_cache_free(tp_creds_cache *c);

/* The process's clock corrected by the offset learned from the cluster
 * (and, in test builds, TRACKPIXEL_TEST_CLOCK_OFFSET_S added first). */
time_t tp_creds_cache_now(tp_creds_cache *c);

/* A copy of the current credentials and the region when both are there and
 * the credentials are valid at now (a corrected time): 0, else -1. */
int tp_creds_cache_get(tp_creds_cache *c, time_t now, tp_creds *out, char *region,
                       size_t regionlen);

/* Is a refresh due at now (a corrected time)?  1 when there are no
 * credentials, one was asked for (tp_creds_cache_reject), or the refresh
 * time has come (TP_CREDS_REFRESH_S before Expiration, or half-way through
 * a shorter lifetime); never twice within TP_CREDS_RETRY_S. *next gets when
 * to ask again (0: not before something changes). */
int tp_creds_cache_due(tp_creds_cache *c, time_t now, time_t *next);

/* An attempt's outcome: store (0 = success, *cr copied) or not. */
void tp_creds_cache_store(tp_creds_cache *c, time_t now, const tp_creds *cr);
void tp_creds_cache_failed(tp_creds_cache *c, time_t now);

/* The region, once known (when only instance metadata can tell). */
void tp_creds_cache_set_region(tp_creds_cache *c, const char *region);
int tp_creds_cache_has_region(tp_creds_cache *c);

/* The cluster refused the credentials: a refresh is wanted (still rate
 * limited). */
void tp_creds_cache_reject(tp_creds_cache *c);

/* The cluster's clock is server_time when ours says local: sign with the
 * difference from now on.  tp_creds_cache_skew_news() returns 1 once per
 * change, with the offset, so the owner can log it once. */
void tp_creds_cache_set_skew(tp_creds_cache *c, time_t server_time, time_t local);
int tp_creds_cache_skew_news(tp_creds_cache *c, long *offset);

/* ------------------------------------------------------------- helpers */

/* An ISO 8601 time (2026-12-01T20:00:00Z, fractions, or +HH:MM) as epoch
 * seconds; 0, or -1. */
int tp_creds_parse_time(const char *s, time_t *out);

/* An HTTP Date header value (RFC 7231 IMF-fixdate) as epoch seconds. */
int tp_creds_parse_http_date(const char *s, time_t *out);

/* Does a 403 answer's body name expired or invalid credentials or a
 * signature problem (1), a clock skew (2), or neither (0)? */
int tp_creds_answer_kind(const char *body);

/* Split a credential_process command line as POSIX shells do (quotes and
 * backslashes, no expansion) into argv (at most max-1 words, NULL-ended,
 * pointing into buf, which gets a copy of the words).  0, or -1. */
int tp_creds_split_command(const char *cmd, char *buf, size_t buflen, char **argv,
                           size_t max);

/* The first <name>...</name> element inside xml[0..len) (entities decoded:
 * &amp; &lt; &gt; &quot; &apos;) into out; 0, or -1 when absent or longer
 * than outlen-1. */
int tp_creds_xml_text(const char *xml, size_t len, const char *name, char *out, size_t outlen);

#endif
