/* config.h -- settings from the environment and the command line, one table per program.
 *
 * Every setting has a flag (--redis-url) and most an environment variable (PIXFLOW_REDIS_URL).
 * The default applies first, then the environment, then the flags; every value goes through the
 * same parse function, so a bad default, variable or flag is reported the same way: one line
 * naming where it came from. */
#ifndef PIXFLOW_CONFIG_H
#define PIXFLOW_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define CFG_ERR_MAX 512

struct cfg_option;
typedef int cfg_parse_fn(const struct cfg_option *opt, const char *text, char *err, size_t errlen);

enum { CFG_NOARG = 1 }; /* a switch: "--follow" takes no value (set to "1") */

struct cfg_option {
    const char *name; /* flag without dashes; NULL ends the table */
    const char *env;  /* environment variable, or NULL */
    cfg_parse_fn *parse;
    void *value; /* where parse stores the result; its type is parse's business */
    const char *def;
    long min, max; /* bounds for the numeric parsers */
    int flags;
    const char *meta; /* value placeholder in the help, e.g. "URL" */
    const char *help;
};

/* A number macro as a default string: CFG_STR(PROCESS_DEFAULT_MAX_PIXELS) is "25000000". */
#define CFG_STR_(x) #x
#define CFG_STR(x)  CFG_STR_(x)

/* Parsers, each documenting what `value` points to. */
cfg_parse_fn cfg_string;   /* const char ** (points into argv/environ/def: no copy) */
cfg_parse_fn cfg_long;     /* long *, within [min, max] */
cfg_parse_fn cfg_switch;   /* int *: 1 when given ("1", "true", "yes", "on"), 0 for "0"... */
cfg_parse_fn cfg_millis;   /* long * milliseconds: "250ms", "30s", "5m", "1h", bare = seconds */
cfg_parse_fn cfg_bytes;    /* long * bytes: "512", "64k", "50M", "1G" */
cfg_parse_fn cfg_loglevel; /* enum log_level * */
cfg_parse_fn cfg_hostport; /* const char **: "HOST:PORT" (see cfg_split_hostport), or "" for none */

#define CFG_HOST_MAX 256
/* Splits "HOST:PORT" (PORT 0..65535; "[::1]:8090" gives "::1"); -1 with err. */
int cfg_split_hostport(const char *addr, char host[CFG_HOST_MAX], int *port, char *err,
                       size_t errlen);

/* Parse defaults, environment and argv. Returns 0 and sets *first_arg to the index of the first
 * operand; 1 when --help was asked; -1 with err set ("--max-inflight: must be 1..10000"). */
int cfg_parse(const struct cfg_option *opts, int argc, char **argv, int *first_arg, char *err,
              size_t errlen);
void cfg_usage(FILE *out, const char *synopsis, const struct cfg_option *opts);

/* Helpers for list-valued settings: the next comma-separated item of *list, trimmed. */
int cfg_next_item(const char **list, const char **item, size_t *len);

#endif
