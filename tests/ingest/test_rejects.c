/* test_rejects.c -- the --rejects file stays one printable record per line, whatever the input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rejects.h"

static char path[64];

static int make_path(void **state)
{
    snprintf(path, sizeof(path), "/tmp/test_rejects_%ld", (long)getpid());
    return 0;
}

static char *slurp(size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[8192];
    *len = fread(buf, 1, sizeof(buf) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    unlink(path);
    return buf;
}

static void test_escaping(void **state)
{
    char err[256];
    struct rejects *r = rejects_new(path, 0, err, sizeof(err));
    assert_non_null(r);
    const char line[] = "a\tb\\c\rd\0e\x01\x7f\xc3\xa9 f";
    rejects_write(r, "x.txt", 7, "bad_char", line, sizeof(line) - 1, sizeof(line) - 1);
    rejects_write(r, "x.txt", 8, "too_long", "https://", 8, 1048576);
    assert_int_equal(rejects_close(r, err, sizeof(err)), 0);
    size_t len;
    const char *got = slurp(&len);
    assert_string_equal(got, "7\tbad_char\ta\\tb\\\\c\\rd\\0e\\x01\\x7f\\xc3\\xa9 f\n"
                             "8\ttoo_long\thttps://...(1048576 bytes)\n");
}

static void test_with_source(void **state)
{
    char err[256];
    struct rejects *r = rejects_new(path, 1, err, sizeof(err));
    assert_non_null(r);
    rejects_write(r, "dir/a b.txt", 3, "bad_host", "https://x/1/1", 13, 13);
    assert_int_equal(rejects_close(r, err, sizeof(err)), 0);
    size_t len;
    assert_string_equal(slurp(&len), "dir/a b.txt:3\tbad_host\thttps://x/1/1\n");
}

static void test_unwritable(void **state)
{
    char err[256];
    assert_null(rejects_new("/nonexistent/dir/rejects.txt", 0, err, sizeof(err)));
    assert_non_null(strstr(err, "--rejects"));
    assert_non_null(strstr(err, "/nonexistent/dir/rejects.txt"));
    /* a full disk shows at close */
    struct rejects *r = rejects_new("/dev/full", 0, err, sizeof(err));
    if (r == NULL)
        skip();
    for (int i = 0; i < 10000; i++)
        rejects_write(r, "s", (unsigned long)i, "bad_path", "https://picsum.photos/x", 23, 23);
    assert_int_equal(rejects_close(r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/dev/full"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_with_source),
        cmocka_unit_test(test_unwritable),
    };
    return cmocka_run_group_tests(tests, make_path, NULL);
}
