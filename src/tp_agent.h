/*
 * tp_agent - who is asking: a browser, a robot, an e-mail provider's image
 * proxy, a prefetch, or unknown.
 *
 * A list of patterns (data/agents.txt's format: "class | name | token" a
 * line) is compiled once into a tp_agents; classifying a request is then one
 * pass over the first TP_AGENT_SCAN_MAX bytes of its User-Agent, with no
 * regular expression: tokens are indexed by a hash of their first three bytes
 * (folded to lower case), so most positions cost a bit test.
 *
 * The rules, in this order:
 *   1. the first line of the list whose token occurs in the User-Agent (ASCII
 *      case ignored; a token written "^x" only at its start): its class and
 *      name;
 *   2. a Sec-Purpose or Purpose header whose list has the item "prefetch",
 *      or X-Moz: prefetch: class prefetch;
 *   3. a User-Agent that starts with "Mozilla/" and has an engine token
 *      (AppleWebKit/, Gecko/, Trident/ or Presto/): class browser;
 *   4. anything else (no User-Agent, curl without a list, ...): unknown.
 * Names come from the list only; rules 2 to 4 give the name "".
 *
 * A leaf: no logging, errors in the caller's buffer.
 */
#ifndef TP_AGENT_H
#define TP_AGENT_H

#include <stddef.h>

/* Only this many bytes of a User-Agent are looked at. */
#define TP_AGENT_SCAN_MAX 4096

/* The matching of one User-Agent looks at tokens (1 each) and compares
 * bytes (1 each) for at most this much; then it stops with what it found.
 * A browser's User-Agent costs less than 100. */
#define TP_AGENT_BUDGET 4096

typedef enum tp_agent_class {
    TP_AGENT_UNKNOWN = 0,
    TP_AGENT_BROWSER,
    TP_AGENT_BOT,
    TP_AGENT_EMAIL_PROXY,
    TP_AGENT_PREFETCH
} tp_agent_class;

typedef struct tp_agent {
    tp_agent_class cls;
    const char *name;       /* "" or a name owned by the tp_agents used */
} tp_agent;

/* A compiled list: opaque, read-only once built (threads may share it). */
typedef struct tp_agents tp_agents;

/* The list the program carries (data/agents.txt at build time), as text. */
extern const char tp_agents_builtin[];

/*
 * Compile the list in text[0..len).  Returns a new tp_agents (free it with
 * tp_agents_free), or NULL with "line N: what is wrong" (or "out of
 * memory") in err.  Limits: 4 MiB of text, TP_AGENT_MAX_PATTERNS patterns,
 * names of at most 64 bytes, tokens of 3 to 128 bytes.
 */
#define TP_AGENT_MAX_PATTERNS 8192
tp_agents *tp_agents_parse(const char *text, size_t len, char *err, size_t errlen);

/*
 * The list in the file at path, or the carried list when path is NULL.
 * NULL with err set ("<path>: <strerror>", "<path>: line N: ...") when the
 * file cannot be read, is larger than 4 MiB, or is malformed.
 */
tp_agents *tp_agents_load(const char *path, char *err, size_t errlen);

void tp_agents_free(tp_agents *a);

/* The number of patterns in a. */
size_t tp_agents_count(const tp_agents *a);

/*
 * Classify one request.  agents may be NULL (no list: rules 2 to 4 only);
 * any string may be NULL (the header is absent).  out->name points into
 * agents, or is "".
 */
void tp_agent_classify(const tp_agents *agents, const char *user_agent,
                       const char *sec_purpose, const char *purpose, const char *x_moz,
                       tp_agent *out);

/* "browser", "bot", "email-proxy", "prefetch", "unknown". */
const char *tp_agent_class_name(tp_agent_class cls);

#endif
