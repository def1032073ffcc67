/* server.h -- a real server (redis-server, FerretDB, versitygw) as a child of a unit test, on a
 * free loopback port, killed with the test even when the test dies. */
#ifndef PIXFLOW_TEST_SERVER_H
#define PIXFLOW_TEST_SERVER_H

#include <stddef.h>
#include <sys/types.h>

struct tserver {
    pid_t pid; /* -1 when not running */
    int port;
    char log[1024]; /* the child's stdout and stderr */
};

/* A loopback port free right now; -1 when none can be had. */
int tserver_free_port(void);
/* 1 when something accepts connections on the loopback port. */
int tserver_port_open(int port);
/* Runs argv (argv[0] a path) with its output in s->log, then waits up to timeout_s for s->port
 * to accept connections. 0, or -1 with the reason on stderr (and the child gone). */
int tserver_start(struct tserver *s, char *const argv[], double timeout_s);
/* SIGTERM, then SIGKILL after 5 s; a no-op when not running. */
void tserver_stop(struct tserver *s);
/* SIGKILL at once (a crash, for the tests of what survives one). */
void tserver_kill(struct tserver *s);
double tserver_now(void);

/* A server binary: $env when set, else .cache/bin/NAME of the source tree ($PIXFLOW_SOURCE_DIR,
 * or three levels above server.c when run by hand). 0, or -1 with the reason on stderr when it
 * is not an executable. */
int tserver_cache_bin(const char *env, const char *name, char *buf, size_t len);

/* versitygw, a real S3 server, on s->port (s->log set first), its buckets folders of `dir`,
 * with these root credentials and region us-east-1; HTTPS with cert and key (PEM files), or
 * plain HTTP when they are NULL. */
int tserver_start_s3(struct tserver *s, const char *bin, const char *dir, const char *access,
                     const char *secret, const char *cert, const char *key);
/* One request signed with SigV4 to the S3 server on `port` (e.g. "PUT", "/pixflow" to create a
 * bucket). The HTTP status, or -1 when none came. */
long tserver_s3_request(int port, const char *access, const char *secret, const char *method,
                        const char *path);

#endif
