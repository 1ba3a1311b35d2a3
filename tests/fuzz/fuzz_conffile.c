/*
 * fuzz_conffile - tp_conffile_parse and tp_conffile_merge on any bytes.
 *
 * Properties:
 *  - a parse that succeeds yields at most TP_CONFFILE_MAX_LINES entries,
 *    each "NAME=value" with a name of [A-Za-z_][A-Za-z0-9_]*, no newline
 *    and no NUL, at most TP_CONFFILE_MAX_LINE bytes, and no name twice;
 *  - a parse that fails says why on one line (an err without a newline);
 *  - merged under an environment that sets the first entry's name, the
 *    environment's value is the one found first, and every other entry is
 *    there exactly once.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tp_conffile.h"
#include "tp_config.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static size_t name_len(const char *e)
{
    size_t i = 0;

    while ((e[i] >= 'A' && e[i] <= 'Z') || (e[i] >= 'a' && e[i] <= 'z') || e[i] == '_' ||
           (i > 0 && e[i] >= '0' && e[i] <= '9'))
        i++;
    return i;
}

static void check_merge(const tp_conffile *cf)
{
    char env0[128], name[128];
    char *envp[] = { env0, NULL };
    size_t n0 = name_len(cf->env[0]), i, k;
    char **m;

    if (n0 > 100)
        return;
    memcpy(env0, cf->env[0], n0);
    memcpy(env0 + n0, "=from-env", 10);
    memcpy(name, cf->env[0], n0);
    name[n0] = '\0';
    m = tp_conffile_merge(envp, cf);
    CHECK(m != NULL);
    CHECK(m[0] == env0 && strcmp(tp_env_get(m, name), "from-env") == 0);
    for (k = 0; m[k]; k++)
        ;
    CHECK(k == cf->n);              /* the first entry is replaced, the rest kept */
    for (i = 1; i < cf->n; i++)
        CHECK(m[i] == cf->env[i]);
    free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_conffile cf;
    char err[256];
    size_t i, j;

    if (tp_conffile_parse((const char *)data, size, &cf, err, sizeof(err)) < 0) {
        CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
        tp_conffile_free(&cf);
        return 0;
    }
    CHECK(cf.n <= TP_CONFFILE_MAX_LINES && cf.env[cf.n] == NULL);
    for (i = 0; i < cf.n; i++) {
        const char *e = cf.env[i];
        size_t nl = name_len(e), len = strlen(e);

        CHECK(nl > 0 && e[nl] == '=');
        CHECK(len <= TP_CONFFILE_MAX_LINE && strchr(e, '\n') == NULL);
        for (j = 0; j < i; j++)
            CHECK(!(strncmp(cf.env[j], e, nl + 1) == 0));
    }
    if (cf.n > 0)
        check_merge(&cf);
    tp_conffile_free(&cf);
    return 0;
}
