/* main.c -- pixflow: the operator's command line (stats, verify, get, dead, plugins, migrate,
 * web).
 *
 * Each command lives in its own file and parses its own flags through settings_load(), so every
 * PIXFLOW_* variable works here as it does for the daemons. Results go to stdout; logs (stderr)
 * default to the error level because every command reports its findings itself. */
#include "admin.h"
#include "store.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "pixflow"

/* `pixflow web` is its own program, pixflow-web, installed next to this one: the console links
 * libevent, which this CLI never does. */
static int web_exec(int argc, char **argv)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 16);
    if (n <= 0)
        return admin_fail("web", ADMIN_FAIL, "/proc/self/exe: %s", strerror(errno));
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    strcpy(slash ? slash + 1 : path, "pixflow-web");
    argv[0] = path;
    execv(path, argv);
    return admin_fail("web", ADMIN_FAIL, "%s: %s", path, strerror(errno));
}

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
    {"renditions", renditions_main, "list, add or remove renditions, with their coverage"},
    {"reprocess", reprocess_main, "make a rendition for the originals kept, from the raw store"},
    {"migrate", migrate_main, "convert data of the previous MongoDB layout (idempotent)"},
    {"web", web_exec, "the console: a web page to watch, search and replay (pixflow-web)"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(*commands))

static void usage(FILE *out)
{
    fprintf(out, "usage: %s COMMAND [options] [operands]\n\ncommands:\n", PROG);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n'%s COMMAND --help' lists the options of a command; every PIXFLOW_* variable\n"
            "applies as it does to pixflow-ingest and pixflow-consumer. Results go to stdout;\n"
            "logs (stderr) stay at the error level unless --log-level or PIXFLOW_LOG_LEVEL\n"
            "say otherwise.\n"
            "Exit: 0 fine, 1 a problem found or a server failed, 2 bad usage.\n",
            PROG);
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
        if (commands[i].main == web_exec)
            return web_exec(argc - 1, argv + 1);
        /* Quiet unless asked: the variable or --log-level still win. */
        setenv("PIXFLOW_LOG_LEVEL", "error", 0);
        store_global_init();
        int rc = commands[i].main(argc - 1, argv + 1);
        store_global_cleanup();
        admin_done();
        return rc;
    }
    fprintf(stderr, "%s: %s: unknown command (try %s --help)\n", PROG, name, PROG);
    return ADMIN_USAGE;
}
