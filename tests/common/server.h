/* server.h -- a real server (redis-server, FerretDB) as a child of a unit test, on a free
 * loopback port, killed with the test even when the test dies. */
#ifndef PIXFLOW_TEST_SERVER_H
#define PIXFLOW_TEST_SERVER_H

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

#endif
