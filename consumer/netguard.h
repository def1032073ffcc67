/* netguard.h -- which addresses a download may connect to (SPEC §5.7), decided after DNS.
 *
 * The fetch engine asks netguard_blocked() about every address curl is about to connect to, on
 * every hop, so a public host name that resolves to 127.0.0.1, a redirect to a private address
 * or an IPv6 spelling of one (::ffff:10.0.0.1, 64:ff9b::a00:1, 2002:a00:1::) never gets a TCP
 * connection. The only exceptions are the exact address:port pairs the operator named as
 * PIXFLOW_CONNECT_TO targets. Pure functions: no DNS, no I/O. */
#ifndef PIXFLOW_NETGUARD_H
#define PIXFLOW_NETGUARD_H

#include <stddef.h>
#include <sys/socket.h>

#define NETGUARD_ALLOW_MAX 64

/* Address:port pairs that are reachable whatever their range (the CONNECT-HOST:CONNECT-PORT of
 * each PIXFLOW_CONNECT_TO entry). IPv4 pairs also match their ::ffff:a.b.c.d form. */
struct netguard_allow {
    int count;
    struct sockaddr_storage addr[NETGUARD_ALLOW_MAX]; /* AF_INET or AF_INET6, port set */
};

/* Add one address (with its port). 0, or -1 when the list is full or the family is unknown. */
int netguard_allow_add(struct netguard_allow *a, const struct sockaddr *sa);

/* Add a numeric IPv4 or IPv6 address (no brackets) with a port. 0, or -1 when `host` is not
 * numeric or the list is full; names are the caller's business (resolving is not pure). */
int netguard_allow_numeric(struct netguard_allow *a, const char *host, int port);

/* NULL when a connection to `sa` may proceed; otherwise why not, as a short stable word:
 * "loopback", "private", "link_local", "cgnat", "multicast", "this_network", "broadcast",
 * "reserved", "documentation", "benchmark", "unspecified", "site_local", "discard", "family".
 * Embedded IPv4 forms (mapped, compatible, translated, NAT64, 6to4, Teredo) answer for the
 * IPv4 address they carry. `allow` may be NULL. */
const char *netguard_blocked(const struct sockaddr *sa, const struct netguard_allow *allow);

/* "1.2.3.4:80" or "[::1]:443" into buf, for error messages. Returns buf. */
const char *netguard_format(const struct sockaddr *sa, char *buf, size_t len);

#endif
