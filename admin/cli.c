/* cli.c -- what every admin command shares: its settings with the common options, its one-line
 * failures, its Redis connection. Apart from main.c so that pixflow-web, the console, parses and
 * fails exactly as the commands do. */
#include "admin.h"
#include "args.h"
#include "rconn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG     "pixflow"
#define OPTS_MAX (SET_OPTIONS_MAX + 48)

/* The permuted argv of the running command (args_permute), freed by admin_done(). */
static char **admin_argv;

void admin_done(void)
{
    free(admin_argv);
    admin_argv = NULL;
}

int admin_fail(const char *cmd, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s %s: ", PROG, cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return status;
}

static const struct args_short shorts[] = {{"-o", "--output"}, {NULL, NULL}};

/* Options every command takes; each value is bound to the command's struct admin_common. */
static const struct cfg_option common_options[] = {
    {"timeout", "PIXFLOW_ADMIN_TIMEOUT", cfg_millis, NULL, "10s", 100, 3600000, .meta = "TIME",
     .help = "give up on a Redis or MongoDB that does not answer"},
};

int admin_settings(struct settings *s, unsigned which, const struct cfg_option *own,
                   struct admin_common *common, const char *cmd, const char *synopsis, int argc,
                   char **argv, char ***operands, int *noperands, int *status)
{
    struct cfg_option opts[OPTS_MAX];
    int n = 0;
    while (own && own[n].name && n < OPTS_MAX - 2)
        n++;
    memcpy(opts, own, sizeof(*opts) * (size_t)n);
    opts[n] = common_options[0];
    opts[n++].value = &common->timeout_ms;
    memset(&opts[n], 0, sizeof(*opts));

    /* The permutation needs every flag that takes a value: the shared ones too. */
    struct settings scratch;
    struct cfg_option all[OPTS_MAX + SET_OPTIONS_MAX];
    int m = settings_options(&scratch, which, all);
    memcpy(all + m, opts, sizeof(*opts) * (size_t)(n + 1));

    free(admin_argv);
    admin_argv = calloc((size_t)argc + 2, sizeof(*admin_argv));
    if (admin_argv == NULL) {
        *status = admin_fail(cmd, ADMIN_FAIL, "out of memory");
        return -1;
    }
    int nargs = args_permute(all, shorts, argc, argv, admin_argv);

    char prog[64];
    snprintf(prog, sizeof(prog), "%s %s", PROG, cmd);
    memset(s, 0, sizeof(*s));
    int first = nargs;
    int r = settings_load(s, which, opts, prog, synopsis, nargs, admin_argv, &first);
    if (r != 0) {
        *status = r == 1 ? ADMIN_OK : ADMIN_USAGE;
        return -1;
    }
    *operands = admin_argv + first;
    *noperands = nargs - first;
    return 0;
}

redisContext *admin_redis(const struct settings *s, const struct admin_common *c, const char *cmd)
{
    char err[256];
    redisContext *r = rconn_open(&s->redis, c->timeout_ms, err, sizeof(err));
    if (r == NULL)
        admin_fail(cmd, ADMIN_FAIL, "%s", err);
    return r;
}
