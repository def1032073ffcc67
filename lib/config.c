/* config.c -- defaults, then environment, then flags, through one parse function each. */
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int cfg_string(const struct cfg_option *opt, const char *text, char *err, size_t errlen)
{
    *(const char **)opt->value = text;
    return 0;
}

int cfg_split_hostport(const char *addr, char host[CFG_HOST_MAX], int *port, char *err,
                       size_t errlen)
{
    const char *colon = strrchr(addr, ':');
    char *end;
    long p = colon ? strtol(colon + 1, &end, 10) : -1;
    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= CFG_HOST_MAX ||
        end == colon + 1 || *end || p < 0 || p > 65535) {
        snprintf(err, errlen, "'%s' is not HOST:PORT", addr);
        return -1;
    }
    size_t n = (size_t)(colon - addr);
    if (addr[0] == '[' && n > 2 && addr[n - 1] == ']')
        addr++, n -= 2;
    memcpy(host, addr, n);
    host[n] = '\0';
    *port = (int)p;
    return 0;
}

int cfg_hostport(const struct cfg_option *opt, const char *text, char *err, size_t errlen)
{
    char host[CFG_HOST_MAX];
    int port;
    if (*text && cfg_split_hostport(text, host, &port, err, errlen) < 0)
        return -1;
    *(const char **)opt->value = text;
    return 0;
}

static int cfg_number(const struct cfg_option *opt, const char *text, long *out,
                      const char *const *units, const long *scale, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || isspace((unsigned char)*text)) {
        snprintf(err, errlen, "'%s' is not a number", text);
        return -1;
    }
    long mul = 1;
    if (*end && units) {
        int i;
        for (i = 0; units[i]; i++)
            if (strcasecmp(end, units[i]) == 0)
                break;
        if (units[i] == NULL) {
            snprintf(err, errlen, "'%s' has an unknown unit", text);
            return -1;
        }
        mul = scale[i];
    } else if (*end) {
        snprintf(err, errlen, "'%s' is not a number", text);
        return -1;
    } else if (scale) {
        mul = scale[0];
    }
    if (errno != 0 || v < 0 || v > LONG_MAX / mul || v * mul < opt->min ||
        (opt->max && v * mul > opt->max)) {
        if (opt->max)
            snprintf(err, errlen, "'%s' is out of range (%ld..%ld)", text, opt->min, opt->max);
        else
            snprintf(err, errlen, "'%s' is out of range (at least %ld)", text, opt->min);
        return -1;
    }
    *out = v * mul;
    return 0;
}

int cfg_long(const struct cfg_option *opt, const char *text, char *err, size_t errlen)
{
    return cfg_number(opt, text, opt->value, NULL, NULL, err, errlen);
}

int cfg_millis(const struct cfg_option *opt, const char *text, char *err, size_t errlen)
{
    static const char *const units[] = {"s", "ms", "m", "h", NULL};
    static const long scale[] = {1000, 1, 60000, 3600000};
    return cfg_number(opt, text, opt->value, units, scale, err, errlen);
}

int cfg_bytes(const struct cfg_option *opt, const char *text, char *err, size_t errlen)
{
    static const char *const units[] = {"b", "k", "m", "g", "kb", "mb", "gb", NULL};
    static const long scale[] = {1, 1L << 10, 1L << 20, 1L << 30, 1L << 10, 1L << 20, 1L << 30};
    return cfg_number(opt, text, opt->value, units, scale, err, errlen);
}

int cfg_switch(const struct cfg_option *opt, const char *text, char *err, size_t errlen)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
        if (strcasecmp(text, yes[i]) == 0)
            return *(int *)opt->value = 1, 0;
    for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
        if (strcasecmp(text, no[i]) == 0)
            return *(int *)opt->value = 0, 0;
    snprintf(err, errlen, "'%s' is not a boolean (1/0, true/false, yes/no, on/off)", text);
    return -1;
}

int cfg_loglevel(const struct cfg_option *opt, const char *text, char *err, size_t errlen)
{
    if (log_level_parse(text, opt->value) == 0)
        return 0;
    snprintf(err, errlen, "'%s' is not a log level (debug, info, warn, error)", text);
    return -1;
}

static int cfg_apply(const struct cfg_option *o, const char *text, const char *from, char *err,
                     size_t errlen)
{
    char why[CFG_ERR_MAX];
    why[0] = '\0';
    if (o->parse(o, text, why, sizeof(why)) == 0)
        return 0;
    snprintf(err, errlen, "%s: %s", from, why);
    return -1;
}

static const struct cfg_option *cfg_find(const struct cfg_option *opts, const char *name,
                                         size_t len)
{
    for (const struct cfg_option *o = opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

int cfg_parse(const struct cfg_option *opts, int argc, char **argv, int *first_arg, char *err,
              size_t errlen)
{
    char from[128];
    const struct cfg_option *o;

    for (o = opts; o->name; o++) {
        snprintf(from, sizeof(from), "default of --%s", o->name);
        if (o->def && cfg_apply(o, o->def, from, err, errlen) < 0)
            return -1;
    }
    for (o = opts; o->name; o++) {
        const char *v = o->env ? getenv(o->env) : NULL;
        if (v && cfg_apply(o, v, o->env, err, errlen) < 0)
            return -1;
    }

    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || strcmp(a, "-") == 0)
            break;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return 1;
        if (a[1] != '-') {
            snprintf(err, errlen, "%s: unknown option (try --help)", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        o = cfg_find(opts, name, nlen);
        if (o == NULL) {
            snprintf(err, errlen, "--%.*s: unknown option (try --help)", (int)nlen, name);
            return -1;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (val == NULL && (o->flags & CFG_NOARG))
            val = "1";
        if (val == NULL) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--%s: needs a value", o->name);
                return -1;
            }
            val = argv[++i];
        }
        snprintf(from, sizeof(from), "--%s", o->name);
        if (cfg_apply(o, val, from, err, errlen) < 0)
            return -1;
    }
    *first_arg = i;
    return 0;
}

void cfg_usage(FILE *out, const char *synopsis, const struct cfg_option *opts)
{
    fprintf(out, "usage: %s\n\noptions (each also from its environment variable):\n", synopsis);
    for (const struct cfg_option *o = opts; o->name; o++) {
        char left[64];
        if (o->flags & CFG_NOARG)
            snprintf(left, sizeof(left), "--%s", o->name);
        else
            snprintf(left, sizeof(left), "--%s %s", o->name, o->meta ? o->meta : "VALUE");
        fprintf(out, "  %-28s %s", left, o->help);
        if (o->env)
            fprintf(out, " [%s]", o->env);
        if (o->def && *o->def)
            fprintf(out, " (default: %s)", o->def);
        fputc('\n', out);
    }
    fprintf(out, "  %-28s %s\n", "-h, --help", "show this help");
}

int cfg_next_item(const char **list, const char **item, size_t *len)
{
    const char *p = *list;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            return 0;
        const char *end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        *list = *end ? end + 1 : end;
        if (last > p) {
            *item = p;
            *len = (size_t)(last - p);
            return 1;
        }
        p = *list;
    }
}
