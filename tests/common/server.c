/* server.c -- real servers as children of unit tests (server.h). */
#include "server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double tserver_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int tserver_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

int tserver_port_open(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

int tserver_start(struct tserver *s, char *const argv[], double timeout_s)
{
    pid_t parent = getpid();
    pid_t pid = fork();

    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* the server dies with the test, whatever kills it */
        if (getppid() != parent)
            _exit(127);
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    s->pid = pid;
    for (double end = tserver_now() + timeout_s; tserver_now() < end;) {
        if (tserver_port_open(s->port))
            return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            s->pid = -1;
            fprintf(stderr, "%s exited at start; see %s\n", argv[0], s->log);
            return -1;
        }
        usleep(20 * 1000);
    }
    fprintf(stderr, "%s did not listen on %d; see %s\n", argv[0], s->port, s->log);
    tserver_kill(s);
    return -1;
}

static int tserver_reaped(struct tserver *s, double within_s)
{
    for (double end = tserver_now() + within_s; tserver_now() < end;) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = -1;
            return 1;
        }
        usleep(20 * 1000);
    }
    return 0;
}

void tserver_stop(struct tserver *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    if (!tserver_reaped(s, 5))
        tserver_kill(s);
}

void tserver_kill(struct tserver *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = -1;
}
