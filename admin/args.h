/* args.h -- command lines in any order: flags after operands, and short aliases such as -o.
 *
 * cfg_parse() stops at the first operand, as POSIX getopt does; people type
 * `pixflow get ID -o FILE` all the same. args_permute() rewrites argv so the flags come first,
 * then "--", then the operands in their order, knowing from the option table which flags take a
 * value (so a value is never mistaken for an operand). */
#ifndef PIXFLOW_ARGS_H
#define PIXFLOW_ARGS_H

#include "config.h"

/* A short alias and the long flag it stands for, e.g. {"-o", "--output"}, expanded only where the
 * option table has that flag; {NULL} ends a list. */
struct args_short {
    const char *alias, *flag;
};

/* Writes into out (room for argc + 1 pointers) argv[0], the flags with their values, "--", then
 * the operands, and returns how many pointers it wrote. Everything after a "--" of argv is an
 * operand; "-" alone is an operand. A flag whose value is missing (the last word) ends the output
 * there, so cfg_parse reports it instead of taking "--" for its value. Flags are not checked here:
 * an unknown one stays a flag for cfg_parse to report. The strings are argv's (or the static long
 * flags of `shorts`). */
int args_permute(const struct cfg_option *opts, const struct args_short *shorts, int argc,
                 char **argv, char **out);

#endif
