/* admin.h -- the `pixflow` admin CLI: one function per command, and what main.c shares with them.
 *
 * Exit statuses, the same for every command: 0 done (nothing wrong found), 1 something is wrong
 * (corrupt documents, an unknown id, a rejected plugin, a server that does not answer), 2 bad
 * usage (one line on stderr naming the flag or operand). */
#ifndef PIXFLOW_ADMIN_H
#define PIXFLOW_ADMIN_H

#include <hiredis/hiredis.h>
#include <stdio.h>

#include "settings.h"

#define ADMIN_OK    0
#define ADMIN_FAIL  1
#define ADMIN_USAGE 2

/* Each command gets argv from its own name on (argv[0] = "stats") and returns the exit status. */
int stats_main(int argc, char **argv);
int verify_main(int argc, char **argv);
int get_main(int argc, char **argv);
int dead_main(int argc, char **argv);
int plugins_main(int argc, char **argv);
int migrate_main(int argc, char **argv);
int renditions_main(int argc, char **argv);
int reprocess_main(int argc, char **argv);

/* Options every command takes besides the shared settings (main.c). */
struct admin_common {
    long timeout_ms; /* Redis and MongoDB: give up on a server that does not answer */
};

/* settings_load() for command `cmd` with the settings `which`, the command's own options and the
 * common ones, flags and operands in any order (args.h). 0 with the operands in *operands (valid
 * until the command returns); or -1 with the exit status to end with in *status: ADMIN_OK after
 * --help, ADMIN_USAGE after a bad flag (its line is printed). */
int admin_settings(struct settings *s, unsigned which, const struct cfg_option *own,
                   struct admin_common *common, const char *cmd, const char *synopsis, int argc,
                   char **argv, char ***operands, int *noperands, int *status);

/* Frees what admin_settings() kept for the command that ran. */
void admin_done(void);

/* Prints "pixflow <cmd>: <message>" on stderr; returns `status`. */
int admin_fail(const char *cmd, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Blocking Redis with the common timeout; NULL after printing why. */
redisContext *admin_redis(const struct settings *s, const struct admin_common *c, const char *cmd);

/* stats.c: one snapshot (what `pixflow stats --json` prints) as a JSON object written to out;
 * -1 with err when Redis fails. The console serves it as its overview. */
int stats_json(FILE *out, redisContext *c, const struct settings *st, char *err, size_t errlen);

#endif
