/* server.c -- real servers as children of unit tests (server.h). */
#include "server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

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

int tserver_cache_bin(const char *env, const char *name, char *buf, size_t len)
{
    const char *bin = env ? getenv(env) : NULL;
    const char *src = getenv("PIXFLOW_SOURCE_DIR");
    if (bin && *bin) {
        snprintf(buf, len, "%s", bin);
    } else if (src && *src) {
        snprintf(buf, len, "%s/.cache/bin/%s", src, name);
    } else {
        /* Run by hand: the source tree is three levels above this file. */
        char here[PATH_MAX];
        snprintf(here, sizeof(here), "%s", __FILE__);
        for (int i = 0; i < 3; i++) {
            char *slash = strrchr(here, '/');
            if (slash)
                *slash = '\0';
        }
        snprintf(buf, len, "%s/.cache/bin/%s", here, name);
    }
    if (access(buf, X_OK) == 0)
        return 0;
    fprintf(stderr, "%s not found at %s%s%s%s (scripts/setup.sh builds it)\n", name, buf,
            env ? " (set " : "", env ? env : "", env ? ")" : "");
    return -1;
}

static size_t tserver_discard(char *data, size_t size, size_t n, void *userdata)
{
    return size * n;
}

int tserver_start_s3(struct tserver *s, const char *bin, const char *dir, const char *access,
                     const char *secret, const char *cert, const char *key)
{
    char listen[64], akey[128], skey[128], root[PATH_MAX], certf[PATH_MAX], keyf[PATH_MAX];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->port);
    snprintf(akey, sizeof(akey), "%s", access);
    snprintf(skey, sizeof(skey), "%s", secret);
    snprintf(root, sizeof(root), "%s", dir);
    snprintf(certf, sizeof(certf), "%s", cert ? cert : "");
    snprintf(keyf, sizeof(keyf), "%s", key ? key : "");
    char *argv[16] = {(char *)bin, "--port", listen, "--access", akey, "--secret", skey, "--quiet"};
    int n = 8;
    if (cert) {
        argv[n++] = "--cert";
        argv[n++] = certf;
        argv[n++] = "--key";
        argv[n++] = keyf;
    }
    argv[n++] = "posix";
    argv[n++] = root;
    argv[n] = NULL;
    return tserver_start(s, argv, 15);
}

long tserver_s3_request(int port, const char *access, const char *secret, const char *method,
                        const char *path)
{
    char url[512], sigv4[] = "aws:amz:us-east-1:s3";
    long code = -1;
    CURL *c = curl_easy_init();
    struct curl_slist *h =
        curl_slist_append(NULL, "x-amz-content-sha256: "
                                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    if (c == NULL || h == NULL)
        goto out;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(c, CURLOPT_USERNAME, access);
    curl_easy_setopt(c, CURLOPT_PASSWORD, secret);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tserver_discard);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
out:
    curl_slist_free_all(h);
    if (c)
        curl_easy_cleanup(c);
    return code;
}
