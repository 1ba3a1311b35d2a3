/*
 * tp_conffile - the configuration file (TRACKPIXEL_CONFIG): NAME=value
 * lines with the names of the environment, read once at start and merged
 * under the environment, so the one table of tp_config drives everything.
 *
 * Format: one NAME=value a line; blank lines and lines whose first
 * non-blank character is '#' are ignored ('#' elsewhere is part of the
 * value: passwords may hold one).  Blanks around NAME, '=' and the value
 * are dropped; a value wholly inside a pair of '"' or '\'' loses them.
 * Nothing else is interpreted: no escapes, no $VARIABLE, no `command`.
 * Names: the table's (tp_config_vars), TRACKPIXEL_STAGE_VAR_<name>, and
 * AWS_* (the standard AWS variables, for the credential chain).  Each name
 * at most once.
 *
 * A leaf: it never logs; errors and the warning come back as text, and
 * never contain a value.
 */
#ifndef TP_CONFFILE_H
#define TP_CONFFILE_H

#include <stddef.h>
#include <sys/types.h>

#define TP_CONFFILE_MAX_BYTES (64 * 1024)   /* the whole file            */
#define TP_CONFFILE_MAX_LINE 8192           /* one line, newline excluded */
#define TP_CONFFILE_MAX_LINES 1024

/* The parsed file: a NULL-terminated array of "NAME=value" strings.
 * Owns the array and the strings; free with tp_conffile_free(). */
typedef struct tp_conffile {
    char **env;
    size_t n;
    int has_secret;      /* a secret variable of the table, or a URL with a password */
} tp_conffile;

/*
 * Parse text[0..len) (need not be NUL-terminated) into *cf.  Returns 0, or
 * -1 with err "line N: what is wrong" (the name, never the value).  Call
 * tp_conffile_free() either way.
 */
int tp_conffile_parse(const char *text, size_t len, tp_conffile *cf, char *err, size_t errlen);

/*
 * Read and parse the file at path.  missing_ok: a file that does not exist
 * is no file (0, cf->env NULL) rather than an error.  Refused (-1) when it
 * is not a regular file, is writable by its group or others, or is larger
 * than TP_CONFFILE_MAX_BYTES; err then names path and the fix.  When the
 * file holds a secret and is readable by others, warn (warncap bytes) gets
 * one line saying so; else warn is "".  *mode gets its permission bits.
 */
int tp_conffile_read(const char *path, int missing_ok, tp_conffile *cf, mode_t *mode,
                     char *warn, size_t warncap, char *err, size_t errlen);

void tp_conffile_free(tp_conffile *cf);

/*
 * The environment over the file: a new NULL-terminated array holding every
 * entry of envp, then each entry of cf whose name envp does not set.  The
 * array is malloc'd (free() it); its strings are borrowed from envp and cf.
 * NULL when out of memory.
 */
char **tp_conffile_merge(char *const *envp, const tp_conffile *cf);

#endif
