/* test_json.c -- admin/json.c: commas and nesting, one top-level value per line, and valid JSON
 * out of any bytes a stored URL or error may hold. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct capture {
    char *text;
    size_t len;
    FILE *f;
    struct json j;
};

static void capture_start(struct capture *c)
{
    c->text = NULL;
    c->f = open_memstream(&c->text, &c->len);
    assert_non_null(c->f);
    json_init(&c->j, c->f);
}

static void capture_check(struct capture *c, const char *want)
{
    fclose(c->f);
    assert_string_equal(c->text, want);
    free(c->text);
}

static void test_nesting(void **state)
{
    struct capture c;
    capture_start(&c);
    json_object(&c.j);
    json_kv_str(&c.j, "a", "x");
    json_kv_int(&c.j, "b", -42);
    json_key(&c.j, "list");
    json_array(&c.j);
    json_int(&c.j, 1);
    json_object(&c.j);
    json_end(&c.j);
    json_array(&c.j);
    json_end(&c.j);
    json_null(&c.j);
    json_bool(&c.j, 1);
    json_bool(&c.j, 0);
    json_end(&c.j);
    json_key(&c.j, "n");
    json_str(&c.j, NULL);
    json_key(&c.j, "raw");
    json_raw(&c.j, "{\"k\":1}");
    json_end(&c.j);
    capture_check(&c, "{\"a\":\"x\",\"b\":-42,\"list\":[1,{},[],null,true,false],\"n\":null,"
                      "\"raw\":{\"k\":1}}\n");
}

static void test_lines(void **state)
{
    struct capture c;
    capture_start(&c);
    for (int i = 0; i < 3; i++) {
        json_object(&c.j);
        json_kv_int(&c.j, "i", i);
        json_end(&c.j);
    }
    capture_check(&c, "{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n");
}

static void test_doubles(void **state)
{
    struct capture c;
    capture_start(&c);
    json_array(&c.j);
    json_double(&c.j, 1.5);
    json_double(&c.j, NAN);
    json_double(&c.j, INFINITY);
    json_double(&c.j, -0.25);
    json_end(&c.j);
    capture_check(&c, "[1.500,null,null,-0.250]\n");
}

static void test_escapes(void **state)
{
    struct capture c;
    capture_start(&c);
    json_array(&c.j);
    json_str(&c.j, "q\"b\\s/\n\t\r\x01\x7f");
    json_str(&c.j, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"); /* é € 😀 kept */
    json_strn(&c.j, "a\0b", 3);                                  /* NUL inside */
    json_end(&c.j);
    capture_check(&c, "[\"q\\\"b\\\\s/\\n\\t\\u000d\\u0001\\u007f\","
                      "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\",\"a\\u0000b\"]\n");
}

static void test_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "\xff",             /* never valid */
        "\xc3",             /* truncated */
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong, 3 bytes */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* past U+10FFFF */
        "\x80",             /* lone continuation */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        struct capture c;
        capture_start(&c);
        json_array(&c.j);
        json_str(&c.j, bad[i]);
        json_end(&c.j);
        fclose(c.f);
        /* Each invalid byte is one U+FFFD; nothing raw above 0x7f survives. */
        assert_non_null(strstr(c.text, "\\ufffd"));
        for (const char *p = c.text; *p; p++)
            assert_true((unsigned char)*p < 0x80);
        free(c.text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nesting),      cmocka_unit_test(test_lines),
        cmocka_unit_test(test_doubles),      cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
