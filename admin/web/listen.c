/* listen.c -- the console's rules on where it listens and whom it answers (listen.h). */
#include "listen.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int listen_loopback(const char *host)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return 0;
    int loop = res != NULL;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)a->ai_addr;
            loop &= (ntohl(in->sin_addr.s_addr) >> 24) == 127;
        } else if (a->ai_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a->ai_addr;
            loop &= IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
        } else {
            loop = 0;
        }
    }
    freeaddrinfo(res);
    return loop;
}

int listen_host_ok(const char *h)
{
    if (h == NULL)
        return 1;
    /* host, then nothing or ":" and digits; an IPv6 host in brackets. */
    const char *end = h[0] == '[' ? strchr(h, ']') : strchr(h, ':');
    size_t n = end == NULL ? strlen(h) : (size_t)(end - h) + (h[0] == '[');
    const char *port = h + n;
    if (*port == ':')
        port++;
    if ((h[n] != '\0' && (h[n] != ':' || *port == '\0')) ||
        strspn(port, "0123456789") != strlen(port))
        return 0;
    if (n == 9 && strncmp(h, "localhost", 9) == 0)
        return 1;
    if (n == 5 && strncmp(h, "[::1]", 5) == 0)
        return 1;
    return n > 4 && strncmp(h, "127.", 4) == 0 && strspn(h, "0123456789.") == n;
}
