/* test_digest.c -- SHA-256 and base64 against published vectors (FIPS 180-2, RFC 4648). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"

static void test_sha256_vectors(void **unused)
{
    static const struct {
        const char *in, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    char hex[DIGEST_HEX_LEN + 1], err[128];

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(digest_sha256_hex(v[i].in, strlen(v[i].in), hex, err, sizeof(err)), 0);
        assert_string_equal(hex, v[i].hex);
    }
}

static void test_sha256_million_a(void **unused)
{
    size_t n = 1000000;
    char *a = malloc(n), hex[DIGEST_HEX_LEN + 1], err[128];

    assert_non_null(a);
    memset(a, 'a', n);
    assert_int_equal(digest_sha256_hex(a, n, hex, err, sizeof(err)), 0);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

static void test_sha256_file(void **unused)
{
    char path[] = "/tmp/pixflow-digest-XXXXXX", hex[DIGEST_HEX_LEN + 1], err[256];
    int fd = mkstemp(path);
    /* more than one read chunk, so the streaming path is what is tested */
    size_t n = 200000;
    unsigned char *buf = malloc(n);
    char want[DIGEST_HEX_LEN + 1];

    assert_true(fd >= 0);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 7 + (i >> 9));
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    close(fd);
    assert_int_equal(digest_sha256_hex(buf, n, want, err, sizeof(err)), 0);
    assert_int_equal(digest_sha256_file(path, hex, err, sizeof(err)), 0);
    assert_string_equal(hex, want);
    unlink(path);
    assert_int_equal(digest_sha256_file(path, hex, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    free(buf);
}

static void test_base64_vectors(void **unused)
{
    static const struct {
        const char *in, *out;
    } v[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
        {"\xfb\xff\xfe", "+//+"},
    };
    char *out, err[128];
    size_t len;

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(digest_base64(v[i].in, strlen(v[i].in), &out, &len, err, sizeof(err)), 0);
        assert_string_equal(out, v[i].out);
        assert_int_equal(len, strlen(v[i].out));
        free(out);
    }
}

/* A long buffer: one line, no newlines, the length RFC 4648 gives. */
static void test_base64_long(void **unused)
{
    size_t n = 100001, len;
    unsigned char *in = malloc(n);
    char *out, err[128];

    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        in[i] = (unsigned char)(i * 131);
    assert_int_equal(digest_base64(in, n, &out, &len, err, sizeof(err)), 0);
    assert_int_equal(len, (n + 2) / 3 * 4);
    assert_int_equal(strlen(out), len);
    assert_null(strchr(out, '\n'));
    assert_string_equal(out + len - 1, "=");
    free(out);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors), cmocka_unit_test(test_sha256_million_a),
        cmocka_unit_test(test_sha256_file),    cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_base64_long),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
