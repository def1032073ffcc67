/* test_b64.c -- codec/b64.c: strict base64 decoding round-trips digest_base64() and refuses
 * every text it would not have written. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "digest.h"

static int decode(const char *text, unsigned char *out, size_t *outlen, char *err)
{
    return b64_decode(text, strlen(text), out, outlen, err, 128);
}

/* RFC 4648 §10 test vectors. */
static void test_vectors(void **state)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                        "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        unsigned char out[16];
        size_t n = 99;
        char err[128];
        assert_int_equal(decode(coded[i], out, &n, err), 0);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(out, plain[i], n);
        assert_true(b64_decoded_max(strlen(coded[i])) >= n);
    }
}

/* Every length and byte value, through the encoder the consumer uses. */
static void test_round_trip(void **state)
{
    unsigned char data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof(data); len++) {
        char *text, err[128];
        size_t tlen, n;
        assert_int_equal(digest_base64(data, len, &text, &tlen, err, sizeof(err)), 0);
        unsigned char *out = malloc(b64_decoded_max(tlen) + 1);
        assert_non_null(out);
        assert_int_equal(b64_decode(text, tlen, out, &n, err, sizeof(err)), 0);
        assert_int_equal(n, len);
        assert_memory_equal(out, data, len);
        free(out);
        free(text);
    }
}

static void assert_refused(const char *text, const char *why)
{
    unsigned char out[64];
    size_t n;
    char err[128] = "";
    assert_int_equal(decode(text, out, &n, err), -1);
    if (strstr(err, why) == NULL)
        fail_msg("'%s': expected '%s' in '%s'", text, why, err);
}

static void test_refusals(void **state)
{
    assert_refused("Zm9", "not a multiple of 4");   /* truncated */
    assert_refused("Zm9vY", "not a multiple of 4"); /* truncated mid-group */
    assert_refused("Zm9v\nYmFy", "not a multiple of 4");
    assert_refused("Zm9 Ymdy", "invalid character 0x20 at offset 3");
    assert_refused("Zm-v", "invalid character 0x2d at offset 2"); /* base64url is not ours */
    assert_refused("Zg=a", "misplaced '=' at offset 2");
    assert_refused("=Zm9", "misplaced '=' at offset 0");
    assert_refused("Zg==Zm9v", "misplaced '=' at offset 2"); /* padding mid-text */
    assert_refused("Z===", "misplaced '=' at offset 1");
    assert_refused("Zh==", "non-zero padding bits at offset 1"); /* 'h' leaves bits set */
    assert_refused("Zm9=", "non-zero padding bits at offset 2");
}

/* A single flipped character decodes, to different bytes: the SHA-256 check catches it. */
static void test_flip_changes_bytes(void **state)
{
    unsigned char a[16], b[16];
    size_t na, nb;
    char err[128];
    assert_int_equal(decode("Zm9vYmFy", a, &na, err), 0);
    assert_int_equal(decode("Zm9vYmFz", b, &nb, err), 0);
    assert_int_equal(na, nb);
    assert_memory_not_equal(a, b, na);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_flip_changes_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
