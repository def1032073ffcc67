/* main.c -- pixflow: the operator's command line (stats, verify, get, dead, plugins, migrate).
 *
 * Each command lives in its own file and parses its own flags through settings_load(), so every
 * PIXFLOW_* variable works here as it does for the daemons. Results go to stdout; logs (stderr)
 * default to the error level because every command reports its findings itself. */
#include "admin.h"
#include "args.h"
#include "rconn.h"
#include "store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "pixflow"

static const struct {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"stats", stats_main, "counters, backlog, pending work, workers, dead letters (--watch)"},
    {"verify", verify_main, "re-check every stored image: base64, SHA-256, PNG, size (--fix)"},
    {"get", get_main, "write a stored PNG by id or URL, or print its metadata (--json)"},
    {"dead", dead_main, "list dead letters, or --replay them into the stream"},
    {"plugins", plugins_main, "what loads from the plugin folder, and why anything does not"},
    {"migrate", migrate_main, "convert data of the previous MongoDB layout (idempotent)"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(*commands))
#define OPTS_MAX  (SET_OPTIONS_MAX + 48)

/* The permuted argv of the running command (args_permute), freed when it returns. */
static char **admin_argv;

static void usage(FILE *out)
{
    fprintf(out, "usage: %s COMMAND [options] [operands]\n\ncommands:\n", PROG);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n'%s COMMAND --help' lists the options of a command; every PIXFLOW_* variable\n"
            "applies as it does to pixflow-ingest and pixflow-consumer. Results go to stdout;\n"
            "logs (stderr) stay at the error level unless --log-level or PIXFLOW_LOG_LEVEL\n"
            "say otherwise.\n"
            "Exit: 0 fine, 1 a problem found or a server failed, 2 bad usage.\n",
            PROG);
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

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return ADMIN_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return ADMIN_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("%s %s\n", PROG, PIXFLOW_VERSION);
        return ADMIN_OK;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(name, commands[i].name) != 0)
            continue;
        /* Quiet unless asked: the variable or --log-level still win. */
        setenv("PIXFLOW_LOG_LEVEL", "error", 0);
        store_global_init();
        int rc = commands[i].main(argc - 1, argv + 1);
        store_global_cleanup();
        free(admin_argv);
        return rc;
    }
    fprintf(stderr, "%s: %s: unknown command (try %s --help)\n", PROG, name, PROG);
    return ADMIN_USAGE;
}
