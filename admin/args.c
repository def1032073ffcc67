/* args.c -- flags before operands, whatever order they were typed in (see args.h). */
#include "args.h"

#include <string.h>

static const struct cfg_option *args_find(const struct cfg_option *opts, const char *name,
                                          size_t len)
{
    for (const struct cfg_option *o = opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

/* The long flag a short alias stands for, when this command has that flag; else arg as is, so
 * an error names what was typed. */
static const char *args_expand(const struct cfg_option *opts, const struct args_short *shorts,
                               const char *arg)
{
    for (const struct args_short *s = shorts; s && s->alias; s++)
        if (strcmp(s->alias, arg) == 0 && args_find(opts, s->flag + 2, strlen(s->flag + 2)))
            return s->flag;
    return arg;
}

/* Whether flag `arg` ("--name" or "--name=value") is followed by its value as the next word. */
static int args_takes_next(const struct cfg_option *opts, const char *arg)
{
    if (strncmp(arg, "--", 2) != 0 || strchr(arg, '=') != NULL)
        return 0;
    const struct cfg_option *o = args_find(opts, arg + 2, strlen(arg + 2));
    return o != NULL && !(o->flags & CFG_NOARG);
}

int args_permute(const struct cfg_option *opts, const struct args_short *shorts, int argc,
                 char **argv, char **out)
{
    int n = 0, nops = 0, i;
    if (argc < 1)
        return 0;
    out[n++] = argv[0];
    /* First pass: the flags and their values, in order. */
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (a[0] != '-' || a[1] == '\0')
            continue;
        out[n++] = (char *)args_expand(opts, shorts, a);
        if (!args_takes_next(opts, out[n - 1]))
            continue;
        if (i + 1 == argc)
            return n; /* its value is missing: last, so cfg_parse says so */
        out[n++] = argv[++i];
    }
    out[n++] = "--";
    /* Second pass: the operands, skipping the values the first pass took. */
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            while (++i < argc)
                out[n + nops++] = argv[i];
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            out[n + nops++] = argv[i];
            continue;
        }
        if (args_takes_next(opts, args_expand(opts, shorts, a)) && i + 1 < argc)
            i++;
    }
    return n + nops;
}
