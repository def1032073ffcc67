/* netguard.c -- classify a socket address as public (fetchable) or not, for SSRF protection.
 *
 * IPv4 follows the IANA special-purpose registry (RFC 6890 and successors). IPv6 is checked the
 * other way round: only global unicast (2000::/3) may pass, so a range nobody thought of yet is
 * refused by default; the IPv6 forms that carry an IPv4 address are judged by that address, which
 * is how ::ffff:127.0.0.1 or 2002:7f00:1:: would otherwise slip through. */
#include "netguard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct netguard_range4 {
    uint32_t net;
    int bits;
    const char *why;
};

/* Most specific first: 255.255.255.255 is named before the 240/4 it belongs to. */
static const struct netguard_range4 netguard_v4_ranges[] = {
    {0xffffffffu, 32, "broadcast"},     {0x00000000u, 8, "this_network"},
    {0x0a000000u, 8, "private"},        {0x64400000u, 10, "cgnat"},
    {0x7f000000u, 8, "loopback"},       {0xa9fe0000u, 16, "link_local"},
    {0xac100000u, 12, "private"},       {0xc0000000u, 24, "reserved"},
    {0xc0000200u, 24, "documentation"}, {0xc0586300u, 24, "reserved"},
    {0xc0a80000u, 16, "private"},       {0xc6120000u, 15, "benchmark"},
    {0xc6336400u, 24, "documentation"}, {0xcb007100u, 24, "documentation"},
    {0xe0000000u, 4, "multicast"},      {0xf0000000u, 4, "reserved"},
};

/* `ip` in host byte order. */
static const char *netguard_v4(uint32_t ip)
{
    for (size_t i = 0; i < sizeof(netguard_v4_ranges) / sizeof(*netguard_v4_ranges); i++) {
        const struct netguard_range4 *r = &netguard_v4_ranges[i];
        uint32_t mask = r->bits == 0 ? 0 : 0xffffffffu << (32 - r->bits);
        if ((ip & mask) == r->net)
            return r->why;
    }
    return NULL;
}

static uint32_t netguard_load32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int netguard_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Whether b (16 bytes) is in prefix/bits, prefix given as its first bytes. */
static int netguard_in6(const unsigned char *b, const unsigned char *prefix, int bits)
{
    int whole = bits / 8, rest = bits % 8;
    if (memcmp(b, prefix, (size_t)whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (b[whole] & mask) == (prefix[whole] & mask);
}

/* The IPv4 address an IPv6 address stands for, when it is one of the forms that embed one. */
static int netguard_embedded_v4(const unsigned char *b, uint32_t *v4)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, translated, 12) == 0 || memcmp(b, nat64, 12) == 0) {
        *v4 = netguard_load32(b + 12);
        return 1;
    }
    if (b[0] == 0x20 && b[1] == 0x02) { /* 6to4: 2002:AABB:CCDD::/48 */
        *v4 = netguard_load32(b + 2);
        return 1;
    }
    return 0;
}

static const char *netguard_v6(const unsigned char *b)
{
    static const unsigned char nat64_local[] = {0, 0x64, 0xff, 0x9b, 0, 1};
    static const unsigned char teredo[] = {0x20, 0x01, 0, 0};
    static const unsigned char doc[] = {0x20, 0x01, 0x0d, 0xb8};
    static const unsigned char doc2[] = {0x3f, 0xff, 0x00};
    static const unsigned char bench[] = {0x20, 0x01, 0x00, 0x02, 0, 0};
    static const unsigned char discard[] = {0x01, 0, 0, 0, 0, 0, 0, 0};
    uint32_t v4;
    const char *why;

    if (netguard_embedded_v4(b, &v4))
        return netguard_v4(v4);
    if (netguard_zero(b, 12)) { /* ::/96: unspecified, loopback, deprecated IPv4-compatible */
        if (netguard_zero(b, 15))
            return b[15] == 0 ? "unspecified" : b[15] == 1 ? "loopback" : "reserved";
        why = netguard_v4(netguard_load32(b + 12));
        return why ? why : "reserved";
    }
    if (netguard_in6(b, teredo, 32)) {
        /* 2001:0:SERVER:FLAGS:PORT:~CLIENT: both ends carry an IPv4 address. */
        why = netguard_v4(netguard_load32(b + 4));
        return why ? why : netguard_v4(~netguard_load32(b + 12));
    }
    if (netguard_in6(b, nat64_local, 48))
        return "private";
    if (netguard_in6(b, doc, 32) || netguard_in6(b, doc2, 20))
        return "documentation";
    if (netguard_in6(b, bench, 48))
        return "benchmark";
    if (netguard_in6(b, discard, 64))
        return "discard";
    if ((b[0] & 0xfe) == 0xfc)
        return "private";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return "link_local";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return "site_local";
    if (b[0] == 0xff)
        return "multicast";
    if ((b[0] & 0xe0) != 0x20)
        return "reserved"; /* not global unicast */
    return NULL;
}

/* IPv4 address (host order) and port of sa, seeing through ::ffff:a.b.c.d. 1 when IPv4. */
static int netguard_as_v4(const struct sockaddr *sa, uint32_t *ip, unsigned *port)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        *ip = ntohl(in->sin_addr.s_addr);
        *port = ntohs(in->sin_port);
        return 1;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (memcmp(in6->sin6_addr.s6_addr, mapped, 12) == 0) {
            *ip = netguard_load32(in6->sin6_addr.s6_addr + 12);
            *port = ntohs(in6->sin6_port);
            return 1;
        }
    }
    return 0;
}

static int netguard_same(const struct sockaddr *a, const struct sockaddr *b)
{
    uint32_t ia = 0, ib = 0;
    unsigned pa = 0, pb = 0;
    int va = netguard_as_v4(a, &ia, &pa), vb = netguard_as_v4(b, &ib, &pb);
    if (va || vb)
        return va && vb && ia == ib && pa == pb;
    if (a->sa_family != AF_INET6 || b->sa_family != AF_INET6)
        return 0;
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

int netguard_allow_add(struct netguard_allow *a, const struct sockaddr *sa)
{
    size_t len;
    if (sa->sa_family == AF_INET)
        len = sizeof(struct sockaddr_in);
    else if (sa->sa_family == AF_INET6)
        len = sizeof(struct sockaddr_in6);
    else
        return -1;
    for (int i = 0; i < a->count; i++)
        if (netguard_same((const struct sockaddr *)&a->addr[i], sa))
            return 0;
    if (a->count == NETGUARD_ALLOW_MAX)
        return -1;
    memset(&a->addr[a->count], 0, sizeof(a->addr[a->count]));
    memcpy(&a->addr[a->count], sa, len);
    a->count++;
    return 0;
}

int netguard_allow_numeric(struct netguard_allow *a, const char *host, int port)
{
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    if (port < 0 || port > 65535)
        return -1;
    memset(&in, 0, sizeof(in));
    memset(&in6, 0, sizeof(in6));
    if (inet_pton(AF_INET, host, &in.sin_addr) == 1) {
        in.sin_family = AF_INET;
        in.sin_port = htons((uint16_t)port);
        return netguard_allow_add(a, (const struct sockaddr *)&in);
    }
    if (inet_pton(AF_INET6, host, &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons((uint16_t)port);
        return netguard_allow_add(a, (const struct sockaddr *)&in6);
    }
    return -1;
}

const char *netguard_blocked(const struct sockaddr *sa, const struct netguard_allow *allow)
{
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        return "family";
    for (int i = 0; allow && i < allow->count; i++)
        if (netguard_same((const struct sockaddr *)&allow->addr[i], sa))
            return NULL;
    if (sa->sa_family == AF_INET)
        return netguard_v4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    return netguard_v6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
}

const char *netguard_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "family %d", sa->sa_family);
    }
    return buf;
}
