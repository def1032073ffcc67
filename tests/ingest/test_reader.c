/* test_reader.c -- ingest's line reader: any bytes, any length, any buffer size. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "reader.h"
#include "url.h"

/* A file descriptor reading exactly these bytes. */
static int fd_of(const void *data, size_t len)
{
    int fd = memfd_create("reader", MFD_CLOEXEC);
    assert_true(fd >= 0);
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static struct reader *reader_on(int fd, size_t bufsize, size_t keep, int hold)
{
    char err[128];
    struct reader *r = reader_new(bufsize, keep, err, sizeof(err));
    assert_non_null(r);
    reader_attach(r, fd, hold);
    return r;
}

static void expect_line(struct reader *r, const void *data, size_t len, size_t full_len,
                        unsigned long number)
{
    struct reader_line line;
    char err[128];
    assert_int_equal(reader_next(r, &line, err, sizeof(err)), READER_LINE);
    assert_int_equal(line.len, len);
    assert_int_equal(line.full_len, full_len);
    assert_int_equal(line.number, number);
    if (len)
        assert_memory_equal(line.data, data, len);
}

static void expect_eof(struct reader *r)
{
    struct reader_line line;
    char err[128];
    assert_int_equal(reader_next(r, &line, err, sizeof(err)), READER_EOF);
}

static void test_crlf_and_blank(void **state)
{
    static const char in[] = "a\r\n\r\nbc\r\n\n";
    int fd = fd_of(in, sizeof(in) - 1);
    struct reader *r = reader_on(fd, 64, 16, 0);
    expect_line(r, "a\r", 2, 2, 1); /* the reader keeps CR: url_parse trims it */
    expect_line(r, "\r", 1, 1, 2);
    expect_line(r, "bc\r", 3, 3, 3);
    expect_line(r, "", 0, 0, 4);
    expect_eof(r);
    expect_eof(r); /* and stays there */
    assert_int_equal(reader_offset(r), sizeof(in) - 1);
    assert_int_equal(reader_number(r), 4);
    reader_free(r);
    close(fd);
}

static void test_nul_bytes(void **state)
{
    static const char in[] = "x\0y\n\0\0\nz";
    int fd = fd_of(in, sizeof(in) - 1);
    struct reader *r = reader_on(fd, 64, 16, 0);
    expect_line(r, "x\0y", 3, 3, 1);
    expect_line(r, "\0\0", 2, 2, 2);
    expect_line(r, "z", 1, 1, 3); /* no final newline: still a line */
    expect_eof(r);
    reader_free(r);
    close(fd);
}

static void test_empty_input(void **state)
{
    int fd = fd_of("", 0);
    struct reader *r = reader_on(fd, 64, 16, 0);
    expect_eof(r);
    assert_int_equal(reader_number(r), 0);
    struct reader_line line;
    assert_int_equal(reader_finish(r, &line), 0);
    reader_free(r);
    close(fd);
}

static void test_megabyte_line(void **state)
{
    size_t big = (1u << 20) + 1;
    size_t total = big + 8; /* "\nshort\n\n" */
    char *in = malloc(total);
    assert_non_null(in);
    for (size_t i = 0; i < big; i++)
        in[i] = (char)('a' + i % 26);
    memcpy(in + big, "\nshort\n\n", 8);
    int fd = fd_of(in, total);
    /* the sizes pixflow-ingest uses: a 1 MiB buffer, at most URL_MAX + 1 bytes kept */
    struct reader *r = reader_on(fd, 1u << 20, URL_MAX + 1, 0);
    expect_line(r, in, URL_MAX + 1, big, 1);
    expect_line(r, "short", 5, 5, 2);
    expect_line(r, "", 0, 0, 3);
    expect_eof(r);
    reader_free(r);

    /* the same line without its newline, through a smaller buffer */
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(ftruncate(fd, (off_t)big), 0);
    r = reader_on(fd, 4096, URL_MAX + 1, 0);
    expect_line(r, in, URL_MAX + 1, big, 1);
    expect_eof(r);
    reader_free(r);
    close(fd);
    free(in);
}

/* Reference split: every line, cut to keep bytes. */
struct ref_line {
    size_t off, len;
};

static size_t ref_split(const char *in, size_t len, struct ref_line *out)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\n') {
            out[n++] = (struct ref_line){start, i - start};
            start = i + 1;
        }
    }
    if (start < len)
        out[n++] = (struct ref_line){start, len - start};
    return n;
}

static void test_tiny_buffers(void **state)
{
    enum { LEN = 3000 };
    static char in[LEN];
    static struct ref_line ref[LEN + 1];
    unsigned seed = 12345;
    for (size_t i = 0; i < LEN;) {
        seed = seed * 1103515245 + 12345;
        size_t linelen = (seed >> 16) % 23; /* 0..22 bytes */
        for (size_t k = 0; k < linelen && i < LEN; k++) {
            seed = seed * 1103515245 + 12345;
            char c = (char)((seed >> 16) & 0xff);
            in[i++] = c == '\n' ? '\r' : c; /* any byte: NUL, CR, high bytes */
        }
        if (i < LEN)
            in[i++] = '\n';
    }
    size_t nref = ref_split(in, LEN, ref);
    int fd = fd_of(in, LEN);
    for (size_t bufsize = 2; bufsize <= 40; bufsize++) {
        for (size_t keep = 1; keep < bufsize; keep += (bufsize > 12 ? 5 : 1)) {
            assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
            struct reader *r = reader_on(fd, bufsize, keep, 0);
            for (size_t i = 0; i < nref; i++) {
                size_t want = ref[i].len < keep ? ref[i].len : keep;
                expect_line(r, in + ref[i].off, want, ref[i].len, i + 1);
            }
            expect_eof(r);
            assert_int_equal(reader_offset(r), LEN);
            reader_free(r);
        }
    }
    close(fd);
}

static void write_all(int fd, const char *s)
{
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Hold mode over a non-blocking pipe: a line without its '\n' waits for the rest. */
static void test_hold_mode(void **state)
{
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    struct reader *r = reader_on(p[0], 8, 4, 1);
    expect_eof(r);
    write_all(p[1], "ab");
    expect_eof(r);
    write_all(p[1], "c\nde");
    expect_line(r, "abc", 3, 3, 1);
    expect_eof(r); /* "de" is held back */
    write_all(p[1], "f\n");
    expect_line(r, "def", 3, 3, 2);
    /* a long line arriving in pieces: cut at keep, counted whole */
    write_all(p[1], "0123456789");
    expect_eof(r);
    write_all(p[1], "abcdefghij");
    expect_eof(r);
    write_all(p[1], "xyz\nok\n");
    expect_line(r, "0123", 4, 23, 3);
    expect_line(r, "ok", 2, 2, 4);
    /* rotation: the held partial line is handed out by reader_finish */
    write_all(p[1], "tail");
    expect_eof(r);
    struct reader_line line;
    assert_int_equal(reader_finish(r, &line), 1);
    assert_int_equal(line.len, 4);
    assert_memory_equal(line.data, "tail", 4);
    assert_int_equal(line.number, 5);
    assert_int_equal(reader_finish(r, &line), 0);
    /* a long partial line is cut the same way */
    write_all(p[1], "0123456789");
    expect_eof(r);
    assert_int_equal(reader_finish(r, &line), 1);
    assert_int_equal(line.len, 4);
    assert_int_equal(line.full_len, 10);
    /* closing the writer ends the pipe, and attach starts over */
    close(p[1]);
    expect_eof(r);
    reader_attach(r, p[0], 0);
    assert_int_equal(reader_number(r), 0);
    assert_int_equal(reader_offset(r), 0);
    reader_free(r);
    close(p[0]);
}

static void test_errors(void **state)
{
    char err[128];
    assert_null(reader_new(16, 16, err, sizeof(err)));
    assert_non_null(strstr(err, "keep"));
    assert_null(reader_new(16, 0, err, sizeof(err)));

    struct reader *r = reader_on(-1, 16, 8, 0);
    struct reader_line line;
    err[0] = '\0';
    assert_int_equal(reader_next(r, &line, err, sizeof(err)), READER_ERROR);
    assert_non_null(strstr(err, strerror(EBADF)));
    reader_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crlf_and_blank), cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_empty_input),    cmocka_unit_test(test_megabyte_line),
        cmocka_unit_test(test_tiny_buffers),   cmocka_unit_test(test_hold_mode),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
