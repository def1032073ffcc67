/* test_args.c -- admin/args.c: flags and operands in any order come out flags first, values
 * never taken for operands, "--" and "-" honoured, short aliases expanded. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "args.h"

static long limit;
static int json;
static const char *output;

static const struct cfg_option opts[] = {
    {"output", NULL, cfg_string, &output, "", .meta = "FILE", .help = "x"},
    {"json", NULL, cfg_switch, &json, "", .flags = CFG_NOARG, .help = "x"},
    {"limit", NULL, cfg_long, &limit, "0", .help = "x"},
    {NULL},
};

static const struct args_short shorts[] = {{"-o", "--output"}, {NULL, NULL}};

/* Permutes a NULL-terminated argv and compares with the expected words. */
static void check(const char *const *in, const char *const *want)
{
    char *argv[32], *out[33];
    int argc = 0, nwant = 0;
    while (in[argc]) {
        argv[argc] = (char *)in[argc];
        argc++;
    }
    while (want[nwant])
        nwant++;
    int n = args_permute(opts, shorts, argc, argv, out);
    assert_true(n <= argc + 1);
    for (int i = 0; i < n && i < nwant; i++)
        if (strcmp(out[i], want[i]) != 0)
            fail_msg("word %d: got '%s', want '%s'", i, out[i], want[i]);
    assert_int_equal(n, nwant);
}

static void test_order(void **state)
{
    check((const char *[]){"get", "ID", "-o", "f.png", "--json", NULL},
          (const char *[]){"get", "--output", "f.png", "--json", "--", "ID", NULL});
    check((const char *[]){"get", "--limit", "5", "ID", NULL},
          (const char *[]){"get", "--limit", "5", "--", "ID", NULL});
    check((const char *[]){"get", "--limit=5", "ID", "--json", NULL},
          (const char *[]){"get", "--limit=5", "--json", "--", "ID", NULL});
    check((const char *[]){"stats", NULL}, (const char *[]){"stats", "--", NULL});
}

static void test_values_stay(void **state)
{
    /* A value that looks like an operand, or like a flag, stays with its flag. */
    check((const char *[]){"get", "--output", "ID", "X", NULL},
          (const char *[]){"get", "--output", "ID", "--", "X", NULL});
    check((const char *[]){"get", "-o", "--json", "X", NULL},
          (const char *[]){"get", "--output", "--json", "--", "X", NULL});
    /* A switch takes no value: what follows is an operand. */
    check((const char *[]){"get", "--json", "X", NULL},
          (const char *[]){"get", "--json", "--", "X", NULL});
    /* A flag missing its value ends the words, for cfg_parse to report; "--" is not its value. */
    check((const char *[]){"get", "X", "--output", NULL},
          (const char *[]){"get", "--output", NULL});
    check((const char *[]){"get", "--json", "-o", NULL},
          (const char *[]){"get", "--json", "--output", NULL});
}

static void test_operands(void **state)
{
    check((const char *[]){"get", "-", "--json", NULL},
          (const char *[]){"get", "--json", "--", "-", NULL});
    check((const char *[]){"get", "a", "--", "--json", "-o", NULL},
          (const char *[]){"get", "--", "a", "--json", "-o", NULL});
    /* Unknown flags are kept as flags, for cfg_parse to name. */
    check((const char *[]){"get", "a", "--bogus", "-x", NULL},
          (const char *[]){"get", "--bogus", "-x", "--", "a", NULL});
}

/* An alias whose long flag this command lacks stays as typed, for the error to name it. */
static void test_alias_needs_its_flag(void **state)
{
    static const struct cfg_option no_output[] = {
        {"json", NULL, cfg_switch, &json, "", .flags = CFG_NOARG, .help = "x"},
        {NULL},
    };
    char *argv[] = {"stats", "-o", "x"}, *out[4];
    int n = args_permute(no_output, shorts, 3, argv, out);
    assert_int_equal(n, 4);
    assert_string_equal(out[1], "-o");
    assert_string_equal(out[2], "--");
    assert_string_equal(out[3], "x");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_values_stay),
        cmocka_unit_test(test_operands),
        cmocka_unit_test(test_alias_needs_its_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
