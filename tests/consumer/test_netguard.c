/* test_netguard.c -- every refused range in its IPv4 and IPv6 spellings, public addresses let
 * through, and the connect-to exceptions matching exactly their address and port. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "netguard.h"

/* sockaddr for a numeric address (either family) and a port. */
static const struct sockaddr *addr(const char *ip, int port)
{
    static struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
    }
    return (const struct sockaddr *)&ss;
}

static const char *why(const char *ip)
{
    return netguard_blocked(addr(ip, 443), NULL);
}

#define BLOCKED(ip, reason)                                                                        \
    do {                                                                                           \
        const char *w_ = why(ip);                                                                  \
        if (w_ == NULL)                                                                            \
            fail_msg("%s was let through, expected %s", ip, reason);                               \
        if (strcmp(w_, reason) != 0)                                                               \
            fail_msg("%s: got %s, expected %s", ip, w_, reason);                                   \
    } while (0)

#define ALLOWED(ip)                                                                                \
    do {                                                                                           \
        const char *w_ = why(ip);                                                                  \
        if (w_ != NULL)                                                                            \
            fail_msg("%s refused as %s, expected allowed", ip, w_);                                \
    } while (0)

static void test_ipv4_blocked(void **state)
{
    BLOCKED("0.0.0.0", "this_network");
    BLOCKED("0.255.255.255", "this_network");
    BLOCKED("10.0.0.0", "private");
    BLOCKED("10.255.255.255", "private");
    BLOCKED("100.64.0.0", "cgnat");
    BLOCKED("100.127.255.255", "cgnat");
    BLOCKED("127.0.0.1", "loopback");
    BLOCKED("127.0.0.2", "loopback");
    BLOCKED("127.255.255.254", "loopback");
    BLOCKED("169.254.0.1", "link_local");
    BLOCKED("169.254.169.254", "link_local"); /* cloud metadata */
    BLOCKED("172.16.0.0", "private");
    BLOCKED("172.31.255.255", "private");
    BLOCKED("192.168.0.1", "private");
    BLOCKED("192.168.255.255", "private");
    BLOCKED("224.0.0.1", "multicast");
    BLOCKED("239.255.255.250", "multicast");
    BLOCKED("240.0.0.1", "reserved");
    BLOCKED("254.255.255.255", "reserved");
    BLOCKED("255.255.255.255", "broadcast");
    BLOCKED("192.0.0.8", "reserved");
    BLOCKED("192.88.99.1", "reserved");
    BLOCKED("192.0.2.1", "documentation");
    BLOCKED("198.51.100.7", "documentation");
    BLOCKED("203.0.113.9", "documentation");
    BLOCKED("198.18.0.1", "benchmark");
    BLOCKED("198.19.255.255", "benchmark");
}

static void test_ipv4_public(void **state)
{
    ALLOWED("8.8.8.8");
    ALLOWED("1.1.1.1");
    ALLOWED("151.101.1.140"); /* a CDN edge */
    /* One step outside each refused range. */
    ALLOWED("1.0.0.0");
    ALLOWED("9.255.255.255");
    ALLOWED("11.0.0.0");
    ALLOWED("100.63.255.255");
    ALLOWED("100.128.0.0");
    ALLOWED("126.255.255.255");
    ALLOWED("128.0.0.0");
    ALLOWED("169.253.255.255");
    ALLOWED("169.255.0.0");
    ALLOWED("172.15.255.255");
    ALLOWED("172.32.0.0");
    ALLOWED("192.167.255.255");
    ALLOWED("192.169.0.0");
    ALLOWED("192.0.1.255");
    ALLOWED("192.0.3.0");
    ALLOWED("198.17.255.255");
    ALLOWED("198.20.0.0");
    ALLOWED("223.255.255.255");
}

static void test_ipv6_blocked(void **state)
{
    BLOCKED("::", "unspecified");
    BLOCKED("::1", "loopback");
    BLOCKED("fc00::1", "private");
    BLOCKED("fd12:3456:789a::1", "private");
    BLOCKED("fe80::1", "link_local");
    BLOCKED("febf:ffff::1", "link_local");
    BLOCKED("fec0::1", "site_local");
    BLOCKED("ff02::1", "multicast");
    BLOCKED("ff0e::101", "multicast");
    BLOCKED("100::1", "discard");
    BLOCKED("2001:db8::1", "documentation");
    BLOCKED("3fff::1", "documentation");
    BLOCKED("2001:2::1", "benchmark");
    BLOCKED("64:ff9b:1::a", "private"); /* local-use NAT64 */
    /* Outside global unicast 2000::/3. */
    BLOCKED("4000::1", "reserved");
    BLOCKED("::2:3:4:5:6", "reserved");
    BLOCKED("1::1", "reserved");
}

static void test_ipv6_embedded_ipv4(void **state)
{
    /* IPv4-mapped, what an AF_INET6 socket uses for IPv4. */
    BLOCKED("::ffff:127.0.0.1", "loopback");
    BLOCKED("::ffff:10.1.2.3", "private");
    BLOCKED("::ffff:169.254.169.254", "link_local");
    BLOCKED("::ffff:100.64.1.1", "cgnat");
    BLOCKED("::ffff:0.0.0.0", "this_network");
    BLOCKED("::ffff:7f00:1", "loopback"); /* the same in hex */
    /* IPv4-translated (SIIT). */
    BLOCKED("::ffff:0:192.168.1.1", "private");
    /* IPv4-compatible (deprecated): refused even when public. */
    BLOCKED("::127.0.0.1", "loopback");
    BLOCKED("::10.0.0.1", "private");
    BLOCKED("::8.8.8.8", "reserved");
    /* NAT64 well-known prefix. */
    BLOCKED("64:ff9b::127.0.0.1", "loopback");
    BLOCKED("64:ff9b::a00:1", "private");
    BLOCKED("64:ff9b::e000:1", "multicast");
    /* 6to4. */
    BLOCKED("2002:7f00:1::", "loopback");
    BLOCKED("2002:c0a8:101::1", "private");
    BLOCKED("2002:a9fe:a9fe::1", "link_local");
    /* Teredo: server 10.0.0.1, or client ~0x80fffffe = 127.0.0.1. */
    BLOCKED("2001:0:a00:1::1", "private");
    BLOCKED("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback");

    ALLOWED("::ffff:8.8.8.8");
    ALLOWED("64:ff9b::808:808");
    ALLOWED("2002:808:808::1");
    ALLOWED("2001:0:4136:e378:8000:63bf:f7f7:f7f7"); /* client ~ = 8.8.8.8 */
}

static void test_ipv6_public(void **state)
{
    ALLOWED("2606:4700:4700::1111");
    ALLOWED("2001:4860:4860::8888");
    ALLOWED("2a04:4e42::485");
    ALLOWED("2000::1");
    ALLOWED("3ffe:ffff::1");
    ALLOWED("2001:db9::1"); /* just past the documentation /32 */
}

static void test_other_families(void **state)
{
    struct sockaddr_un un;
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    assert_string_equal(netguard_blocked((struct sockaddr *)&un, NULL), "family");
}

static void test_connect_to_exceptions(void **state)
{
    struct netguard_allow allow;
    memset(&allow, 0, sizeof(allow));
    assert_int_equal(netguard_allow_numeric(&allow, "127.0.0.1", 8443), 0);
    assert_int_equal(netguard_allow_numeric(&allow, "::1", 9000), 0);
    assert_int_equal(netguard_allow_numeric(&allow, "10.1.2.3", 80), 0);
    assert_int_equal(allow.count, 3);

    /* Exactly the named address and port. */
    assert_null(netguard_blocked(addr("127.0.0.1", 8443), &allow));
    assert_null(netguard_blocked(addr("::ffff:127.0.0.1", 8443), &allow));
    assert_null(netguard_blocked(addr("::1", 9000), &allow));
    assert_null(netguard_blocked(addr("10.1.2.3", 80), &allow));
    /* Nothing next to it. */
    assert_string_equal(netguard_blocked(addr("127.0.0.1", 8444), &allow), "loopback");
    assert_string_equal(netguard_blocked(addr("127.0.0.2", 8443), &allow), "loopback");
    assert_string_equal(netguard_blocked(addr("127.0.0.1", 9000), &allow), "loopback");
    assert_string_equal(netguard_blocked(addr("::1", 8443), &allow), "loopback");
    assert_string_equal(netguard_blocked(addr("::ffff:10.1.2.3", 81), &allow), "private");
    assert_string_equal(netguard_blocked(addr("10.1.2.4", 80), &allow), "private");
    /* Public addresses stay allowed whatever the list holds. */
    assert_null(netguard_blocked(addr("8.8.8.8", 53), &allow));

    /* Names are not numeric; a duplicate does not take room. */
    assert_int_equal(netguard_allow_numeric(&allow, "localhost", 80), -1);
    assert_int_equal(netguard_allow_numeric(&allow, "127.0.0.1", 70000), -1);
    assert_int_equal(netguard_allow_numeric(&allow, "127.0.0.1", 8443), 0);
    assert_int_equal(netguard_allow_numeric(&allow, "::ffff:127.0.0.1", 8443), 0);
    assert_int_equal(allow.count, 3);
}

static void test_allow_list_full(void **state)
{
    struct netguard_allow allow;
    memset(&allow, 0, sizeof(allow));
    for (int i = 0; i < NETGUARD_ALLOW_MAX; i++)
        assert_int_equal(netguard_allow_numeric(&allow, "127.0.0.1", 1000 + i), 0);
    assert_int_equal(netguard_allow_numeric(&allow, "127.0.0.1", 999), -1);
    assert_int_equal(allow.count, NETGUARD_ALLOW_MAX);
    assert_null(netguard_blocked(addr("127.0.0.1", 1000 + NETGUARD_ALLOW_MAX - 1), &allow));
    assert_non_null(netguard_blocked(addr("127.0.0.1", 999), &allow));
}

static void test_format(void **state)
{
    char buf[64];
    assert_string_equal(netguard_format(addr("10.0.0.1", 80), buf, sizeof(buf)), "10.0.0.1:80");
    assert_string_equal(netguard_format(addr("fe80::1", 443), buf, sizeof(buf)), "[fe80::1]:443");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_blocked),
        cmocka_unit_test(test_ipv4_public),
        cmocka_unit_test(test_ipv6_blocked),
        cmocka_unit_test(test_ipv6_embedded_ipv4),
        cmocka_unit_test(test_ipv6_public),
        cmocka_unit_test(test_other_families),
        cmocka_unit_test(test_connect_to_exceptions),
        cmocka_unit_test(test_allow_list_full),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
