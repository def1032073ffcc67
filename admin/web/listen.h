/* listen.h -- where the console may listen and whom it answers: loopback addresses, Host
 * headers (HOST:PORT itself is cfg_split_hostport). Apart from the server so the rules are tested alone (tests/admin/web). */
#ifndef PIXFLOW_LISTEN_H
#define PIXFLOW_LISTEN_H

#include <stddef.h>

/* 1 when every address `host` resolves to is a loopback one (127.0.0.0/8, ::1); 0 otherwise,
 * and when it does not resolve (the bind then fails with its own message). */
int listen_loopback(const char *host);

/* 1 when a Host header names a loopback host (localhost, 127.x.y.z, [::1], with or without a
 * port), or is absent (HTTP/1.0 tools; browsers always send it). */
int listen_host_ok(const char *header);

#endif
