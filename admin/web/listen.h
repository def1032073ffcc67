/* listen.h -- where the console may listen and whom it answers: HOST:PORT, loopback addresses,
 * Host headers. Apart from the server so the rules are tested alone (tests/admin/web). */
#ifndef PIXFLOW_LISTEN_H
#define PIXFLOW_LISTEN_H

#include <stddef.h>

#define LISTEN_HOST_MAX 256

/* Splits "HOST:PORT" (PORT 0..65535; "[::1]:8090" gives "::1"); -1 with err. */
int listen_split(const char *addr, char host[LISTEN_HOST_MAX], int *port, char *err, size_t errlen);

/* 1 when every address `host` resolves to is a loopback one (127.0.0.0/8, ::1); 0 otherwise,
 * and when it does not resolve (the bind then fails with its own message). */
int listen_loopback(const char *host);

/* 1 when a Host header names a loopback host (localhost, 127.x.y.z, [::1], with or without a
 * port), or is absent (HTTP/1.0 tools; browsers always send it). */
int listen_host_ok(const char *header);

#endif
