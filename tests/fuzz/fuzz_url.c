/* fuzz_url.c -- libFuzzer target for url_parse and url_check_hop.
 *
 * Besides "no crash, no sanitizer report", it checks what the rest of pixflow relies on: an
 * accepted line's normal form is no longer than the line, is accepted again as itself (the
 * dedup key is stable), and names an allowed host and a size within 1..5000. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

static struct url_hosts hosts;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[128];
    if (url_hosts_parse("picsum.photos,fastly.picsum.photos", &hosts, err, sizeof(err)) < 0)
        abort();
    return 0;
}

static void check(int ok, const char *what, const uint8_t *data, size_t size)
{
    if (ok)
        return;
    fprintf(stderr, "fuzz_url: %s for a %zu-byte input\n", what, size);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct url u, again;
    enum url_reason r = url_parse((const char *)data, size, &hosts, &u);
    check(r >= URL_OK && r < URL_REASON_COUNT, "reason out of range", data, size);
    if (r == URL_OK) {
        size_t n = strlen(u.norm);
        check(n > 0 && n <= size && n <= URL_MAX, "normal form longer than the line", data, size);
        check(url_parse(u.norm, n, &hosts, &again) == URL_OK, "normal form rejected", data, size);
        check(strcmp(u.norm, again.norm) == 0, "normal form not stable", data, size);
        check(u.width >= 1 && u.width <= 5000 && u.height >= 1 && u.height <= 5000,
              "size out of range", data, size);
        check(url_host_allowed(&hosts, u.host, strlen(u.host)), "host not allowed", data, size);
        check(strncmp(u.norm, u.https ? "https://" : "http://", u.https ? 8 : 7) == 0,
              "scheme not normalized", data, size);
        check(url_check_hop(u.norm, &hosts) == URL_OK, "normal form refused as a hop", data, size);
    }
    /* url_check_hop takes C strings: feed it the input up to its first NUL. */
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    r = url_check_hop(s, &hosts);
    check(r >= URL_OK && r < URL_REASON_COUNT, "hop reason out of range", data, size);
    free(s);
    return 0;
}
