/* test_fetch.c -- the download engine on a real event loop against a real pixflow-picsum.
 *
 * The group setup starts $PIXFLOW_BUILD_DIR/bin/pixflow-picsum on free ports and reaches it the
 * way production reaches a mirror: connect-to entries and an extra CA. Next to it run a canned
 * HTTP server (a thread answering one scripted response per connection, for what picsum cannot
 * say: no Content-Length, HTTP-date Retry-After, odd redirects) and trap listeners that must
 * never see a connection (SSRF). picsum is killed at the end, and by the kernel if this process
 * dies first. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "fetch.h"
#include "settings.h"

/* ---- pixflow-picsum ---------------------------------------------------------------------- */

static pid_t picsum_pid = -1;
static char state_dir[256];
static int http_port, https_port;
static char ca_path[512];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int read_ready(const char *path)
{
    FILE *fp = fopen(path, "r");
    char line[sizeof(ca_path) - 8];
    if (fp == NULL)
        return -1;
    while (fgets(line, sizeof(line), fp)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "http=", 5) == 0)
            http_port = atoi(line + 5);
        else if (strncmp(line, "https=", 6) == 0)
            https_port = atoi(line + 6);
        else if (strncmp(line, "ca=", 3) == 0)
            snprintf(ca_path, sizeof(ca_path), "%s", line + 3);
    }
    fclose(fp);
    return http_port > 0 && https_port > 0 && ca_path[0] ? 0 : -1;
}

static int picsum_start(void)
{
    const char *build = getenv("PIXFLOW_BUILD_DIR");
    char bin[512], ready[512], logf[512];
    if (build == NULL) {
        fprintf(stderr, "PIXFLOW_BUILD_DIR is not set\n");
        return -1;
    }
    snprintf(bin, sizeof(bin), "%s/bin/pixflow-picsum", build);
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "%s is not built\n", bin);
        return -1;
    }
    snprintf(state_dir, sizeof(state_dir), "/tmp/pixflow-fetch-XXXXXX");
    if (mkdtemp(state_dir) == NULL)
        return -1;
    snprintf(ready, sizeof(ready), "%s/ready", state_dir);
    snprintf(logf, sizeof(logf), "%s/picsum.log", state_dir);
    pid_t parent = getpid();
    picsum_pid = fork();
    if (picsum_pid < 0)
        return -1;
    if (picsum_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphan server if this test crashes */
        if (getppid() != parent)
            _exit(1);
        int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(bin, bin, "--state-dir", state_dir, "--ready-file", ready, (char *)NULL);
        _exit(127);
    }
    for (double end = now_ms() + 15000; now_ms() < end; usleep(50 * 1000)) {
        int status;
        if (waitpid(picsum_pid, &status, WNOHANG) == picsum_pid) {
            fprintf(stderr, "pixflow-picsum exited early; see %s\n", logf);
            picsum_pid = -1;
            return -1;
        }
        if (read_ready(ready) == 0)
            return 0;
    }
    fprintf(stderr, "pixflow-picsum wrote no ready file in 15 s\n");
    return -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void picsum_stop(void)
{
    if (picsum_pid > 0) {
        kill(picsum_pid, SIGTERM);
        int status;
        for (int i = 0; i < 60 && waitpid(picsum_pid, &status, WNOHANG) == 0; i++)
            usleep(50 * 1000);
        if (kill(picsum_pid, 0) == 0) {
            kill(picsum_pid, SIGKILL);
            waitpid(picsum_pid, &status, 0);
        }
        picsum_pid = -1;
    }
    if (state_dir[0])
        nftw(state_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- a canned HTTP server: one scripted response per connection ------------------------- */

static struct {
    int fd, port;
    pthread_t thread;
    atomic_int stop, connections;
    pthread_mutex_t mu;
    char head[1024];       /* status line and headers of every response but /final */
    size_t body_len;       /* bytes sent after head (0xab each), then the connection closes */
    char final_head[1024]; /* the response to GET /final... (a redirect's target) */
    char last_request[2048];
} canned = {.fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

static void canned_set(const char *head, size_t body_len, const char *final_head)
{
    pthread_mutex_lock(&canned.mu);
    snprintf(canned.head, sizeof(canned.head), "%s", head);
    canned.body_len = body_len;
    snprintf(canned.final_head, sizeof(canned.final_head), "%s", final_head ? final_head : "");
    canned.last_request[0] = '\0';
    pthread_mutex_unlock(&canned.mu);
}

static void canned_serve(int fd)
{
    char req[2048];
    size_t n = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (n < sizeof(req) - 1 && poll(&p, 1, 2000) == 1) {
        ssize_t got = recv(fd, req + n, sizeof(req) - 1 - n, 0);
        if (got <= 0)
            break;
        n += (size_t)got;
        req[n] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[n] = '\0';
    char head[1024], body[4096];
    size_t body_len;
    pthread_mutex_lock(&canned.mu);
    snprintf(canned.last_request, sizeof(canned.last_request), "%s", req);
    int final = strncmp(req, "GET /final", 10) == 0 && canned.final_head[0];
    snprintf(head, sizeof(head), "%s", final ? canned.final_head : canned.head);
    body_len = final ? 10 : canned.body_len;
    pthread_mutex_unlock(&canned.mu);
    memset(body, 0xab, sizeof(body));
    if (send(fd, head, strlen(head), MSG_NOSIGNAL) < 0)
        return;
    while (body_len > 0) {
        size_t chunk = body_len < sizeof(body) ? body_len : sizeof(body);
        if (send(fd, body, chunk, MSG_NOSIGNAL) < 0)
            return;
        body_len -= chunk;
    }
}

static void *canned_main(void *arg)
{
    struct pollfd p = {.fd = canned.fd, .events = POLLIN};
    while (!atomic_load(&canned.stop)) {
        if (poll(&p, 1, 100) != 1)
            continue;
        int c = accept(canned.fd, NULL, NULL);
        if (c < 0)
            continue;
        atomic_fetch_add(&canned.connections, 1);
        canned_serve(c);
        close(c);
    }
    return NULL;
}

/* A listening socket on ip:port (port 0: any); its port into *port. -1 when it cannot bind. */
static int listen_on(const char *ip, int *port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
    if (family == AF_INET) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)*port);
        inet_pton(AF_INET, ip, &in->sin_addr);
        len = sizeof(*in);
    } else {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)*port);
        inet_pton(AF_INET6, ip, &in6->sin6_addr);
        len = sizeof(*in6);
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(family == AF_INET ? in->sin_port : in6->sin6_port);
    return fd;
}

/* ---- traps: listeners no fetch may ever reach -------------------------------------------- */

static int trap_port;
static int trap_fd[3] = {-1, -1, -1}; /* 127.0.0.1, 127.0.0.2, ::1 (when the host has IPv6) */

/* Connections the traps accepted since the last call. */
static int trap_hits(void)
{
    int hits = 0;
    for (int i = 0; i < 3; i++) {
        int c;
        while (trap_fd[i] >= 0 && (c = accept(trap_fd[i], NULL, NULL)) >= 0) {
            hits++;
            close(c);
        }
    }
    return hits;
}

/* ---- engine plumbing --------------------------------------------------------------------- */

static struct settings settings_plain; /* picsum hosts + canned.test */
static struct settings settings_local; /* the same plus "localhost", to test the address check */

static void settings_build(struct settings *s, const char *hosts)
{
    char err[256];
    memset(s, 0, sizeof(*s));
    assert_int_equal(url_hosts_parse(hosts, &s->allowed, err, sizeof(err)), 0);
    const struct {
        const char *host;
        int port, to;
    } map[] = {
        {"picsum.photos", 443, https_port}, {"fastly.picsum.photos", 443, https_port},
        {"picsum.photos", 80, http_port},   {"fastly.picsum.photos", 80, http_port},
        {"canned.test", 80, canned.port},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(*map); i++) {
        struct connect_to *ct = &s->connect_to[s->connect_to_count++];
        snprintf(ct->host, sizeof(ct->host), "%s", map[i].host);
        ct->port = map[i].port;
        snprintf(ct->to_host, sizeof(ct->to_host), "127.0.0.1");
        ct->to_port = map[i].to;
    }
    s->ca_file = ca_path;
}

static int group_setup(void **state)
{
    log_init("test_fetch", LL_WARN, 0);
    if (picsum_start() < 0) {
        picsum_stop();
        return -1;
    }
    canned.port = 0;
    canned.fd = listen_on("127.0.0.1", &canned.port);
    if (canned.fd < 0 || pthread_create(&canned.thread, NULL, canned_main, NULL) != 0)
        return -1;
    trap_port = 0;
    trap_fd[0] = listen_on("127.0.0.1", &trap_port);
    trap_fd[1] = listen_on("127.0.0.2", &trap_port);
    trap_fd[2] = listen_on("::1", &trap_port);
    if (trap_fd[0] < 0 || trap_fd[1] < 0)
        return -1;
    settings_build(&settings_plain, "picsum.photos,fastly.picsum.photos,canned.test");
    settings_build(&settings_local, "picsum.photos,fastly.picsum.photos,canned.test,localhost");
    return 0;
}

static int group_teardown(void **state)
{
    if (canned.fd >= 0) {
        atomic_store(&canned.stop, 1);
        pthread_join(canned.thread, NULL);
        close(canned.fd);
    }
    for (int i = 0; i < 3; i++)
        if (trap_fd[i] >= 0)
            close(trap_fd[i]);
    picsum_stop();
    return 0;
}

static struct fetch_limits limits(void)
{
    return (struct fetch_limits){.max_bytes = 10L << 20,
                                 .connect_timeout_ms = 3000,
                                 .total_timeout_ms = 15000,
                                 .max_redirects = 3,
                                 .idle_connections = 64,
                                 .low_speed_bytes = 1,
                                 .low_speed_secs = 10};
}

struct rig {
    struct event_base *base;
    struct fetch_engine *e;
    int done; /* done calls so far, all slots */
};

struct slot {
    struct rig *rig;
    struct fetch_result *res;
    int calls;
    struct fetch *victim; /* cancelled from this slot's done callback, when set */
    const char *chain;    /* started from this slot's done callback, into next */
    struct slot *next;
    struct fetch *started;
    int drop; /* drop the body at once, as a caller done with it would */
};

static void on_done(struct fetch_result *r, void *arg);

static void rig_up(struct rig *t, const struct settings *s, const struct fetch_limits *lim)
{
    char err[256] = "";
    memset(t, 0, sizeof(*t));
    t->base = event_base_new();
    assert_non_null(t->base);
    t->e = fetch_engine_new(t->base, s, lim, err, sizeof(err));
    if (t->e == NULL)
        fail_msg("fetch_engine_new: %s", err);
}

static void rig_down(struct rig *t)
{
    fetch_engine_free(t->e);
    event_base_free(t->base);
}

static size_t budget_peak; /* the most the budget held, seen from done callbacks */

static void on_done(struct fetch_result *r, void *arg)
{
    struct slot *s = arg;
    struct fetch_budget_state st;
    fetch_budget_state(s->rig->e, &st);
    if (st.held > budget_peak)
        budget_peak = st.held;
    if (s->drop)
        fetch_result_drop_body(r);
    s->calls++;
    fetch_result_free(s->res);
    s->res = r;
    s->rig->done++;
    if (s->victim)
        fetch_cancel(s->victim);
    if (s->chain && s->next) {
        s->next->rig = s->rig;
        s->started = fetch_start(s->rig->e, s->chain, on_done, s->next);
    }
}

/* Run the loop until `want` done calls or `ms` elapsed. */
static void run_until(struct rig *t, int want, double ms)
{
    double end = now_ms() + ms;
    while (t->done < want && now_ms() < end) {
        struct timeval tv = {0, 20 * 1000};
        event_base_loopexit(t->base, &tv);
        event_base_dispatch(t->base);
    }
}

static struct slot one(struct rig *t, const char *url)
{
    struct slot s = {.rig = t};
    int before = t->done;
    assert_non_null(fetch_start(t->e, url, on_done, &s));
    assert_int_equal(s.calls, 0); /* never from inside fetch_start */
    run_until(t, before + 1, 20000);
    assert_int_equal(s.calls, 1);
    assert_int_equal(fetch_active(t->e), 0);
    return s;
}

static struct slot fetch_url(const struct settings *st, const struct fetch_limits *lim,
                             const char *url)
{
    struct rig t;
    rig_up(&t, st, lim);
    struct slot s = one(&t, url);
    rig_down(&t);
    s.rig = NULL;
    return s;
}

#define EXPECT(s, cls_, reason_)                                                                   \
    do {                                                                                           \
        if ((s).res->cls != (cls_) || strcmp((s).res->reason, (reason_)) != 0)                     \
            fail_msg("got cls=%d reason=%s (%s), expected cls=%d reason=%s", (s).res->cls,         \
                     (s).res->reason, (s).res->error, (int)(cls_), reason_);                       \
    } while (0)

/* ---- against picsum ---------------------------------------------------------------------- */

static void test_picture(void **state)
{
    struct fetch_limits lim = limits();
    struct slot s = fetch_url(&settings_plain, &lim, "https://picsum.photos/640/480");
    struct fetch_result *r = s.res;
    EXPECT(s, FETCH_OK, "ok");
    assert_int_equal(r->http_code, 200);
    assert_int_equal(r->redirects, 1);
    assert_true(strncmp(r->final_url, "https://fastly.picsum.photos/", 29) == 0);
    assert_string_equal(r->content_type, "image/jpeg");
    assert_true(r->len > 1000);
    assert_true(r->body[0] == 0xff && r->body[1] == 0xd8 && r->body[2] == 0xff);
    assert_true(r->body[r->len - 2] == 0xff && r->body[r->len - 1] == 0xd9);
    assert_int_equal(r->retry_after_ms, -1);
    assert_true(r->total_ms > 0 && r->total_ms >= r->ttfb_ms && r->ttfb_ms >= r->connect_ms);
    assert_int_equal(r->connections, 2); /* picsum.photos, then fastly.picsum.photos */
    fetch_result_free(r);
}

static void test_keep_alive(void **state)
{
    struct fetch_limits lim = limits();
    struct rig t;
    rig_up(&t, &settings_plain, &lim);
    struct slot a = one(&t, "http://picsum.photos/32/32");
    struct slot b = one(&t, "http://picsum.photos/33/33");
    EXPECT(a, FETCH_OK, "ok");
    EXPECT(b, FETCH_OK, "ok");
    assert_int_equal(a.res->connections, 2);
    assert_int_equal(b.res->connections, 0); /* both hops on the connections of the first */
    assert_true(a.res->connect_ms > 0);
    assert_true(b.res->connect_ms == 0);
    assert_true(strncmp(b.res->final_url, "http://fastly.picsum.photos/", 28) == 0);
    fetch_result_free(a.res);
    fetch_result_free(b.res);
    rig_down(&t);
}

static void test_http_400(void **state)
{
    struct fetch_limits lim = limits();
    struct slot s = fetch_url(&settings_plain, &lim, "https://picsum.photos/6000/10");
    EXPECT(s, FETCH_PERMANENT, "http_400");
    assert_int_equal(s.res->http_code, 400);
    assert_null(s.res->body);
    assert_int_equal(s.res->redirects, 0);
    fetch_result_free(s.res);
}

static void test_http_503(void **state)
{
    struct fetch_limits lim = limits();
    struct slot s = fetch_url(&settings_plain, &lim, "https://picsum.photos/64/64?fault=503");
    EXPECT(s, FETCH_TRANSIENT, "http_5xx");
    assert_int_equal(s.res->http_code, 503);
    fetch_result_free(s.res);
    s = fetch_url(&settings_plain, &lim, "https://picsum.photos/64/64?fault=404");
    EXPECT(s, FETCH_PERMANENT, "http_404");
    fetch_result_free(s.res);
}

static void test_http_429(void **state)
{
    struct fetch_limits lim = limits();
    struct slot s =
        fetch_url(&settings_plain, &lim, "https://picsum.photos/64/64?fault=429&retry_after=2");
    EXPECT(s, FETCH_TRANSIENT, "http_429");
    assert_int_equal(s.res->http_code, 429);
    assert_int_equal(s.res->retry_after_ms, 2000);
    fetch_result_free(s.res);
}

static void test_truncated(void **state)
{
    struct fetch_limits lim = limits();
    struct slot s =
        fetch_url(&settings_plain, &lim, "https://picsum.photos/300/200?fault=truncate");
    EXPECT(s, FETCH_TRANSIENT, "truncated");
    assert_null(s.res->body);
    assert_int_equal(s.res->len, 0);
    fetch_result_free(s.res);
}

static void test_total_timeout(void **state)
{
    struct fetch_limits lim = limits();
    lim.total_timeout_ms = 500;
    struct slot s =
        fetch_url(&settings_plain, &lim, "https://picsum.photos/64/64?fault=slow&delay_ms=3000");
    EXPECT(s, FETCH_TRANSIENT, "timeout");
    assert_true(s.res->total_ms >= 400 && s.res->total_ms < 2000);
    fetch_result_free(s.res);
}

static void test_low_speed(void **state)
{
    struct fetch_limits lim = limits();
    lim.low_speed_bytes = 1000000;
    lim.low_speed_secs = 1;
    struct slot s =
        fetch_url(&settings_plain, &lim, "https://picsum.photos/64/64?fault=slow&delay_ms=4000");
    EXPECT(s, FETCH_TRANSIENT, "timeout");
    assert_true(s.res->total_ms >= 900 && s.res->total_ms < 3500);
    fetch_result_free(s.res);
}

static void test_redirect_loop(void **state)
{
    struct fetch_limits lim = limits();
    struct slot s = fetch_url(&settings_plain, &lim, "https://picsum.photos/64/64?fault=loop");
    EXPECT(s, FETCH_PERMANENT, "too_many_redirects");
    assert_int_equal(s.res->redirects, 3);
    assert_int_equal(s.res->http_code, 302);
    fetch_result_free(s.res);
}

static void test_not_image(void **state)
{
    struct fetch_limits lim = limits();
    struct slot s = fetch_url(&settings_plain, &lim, "https://picsum.photos/64/64?fault=notimage");
    EXPECT(s, FETCH_PERMANENT, "not_image_type");
    assert_int_equal(s.res->http_code, 200);
    assert_int_equal(s.res->redirects, 1);
    assert_null(s.res->body);
    fetch_result_free(s.res);
}

static void test_too_large_by_length(void **state)
{
    struct fetch_limits lim = limits();
    lim.max_bytes = 1000;
    struct slot s = fetch_url(&settings_plain, &lim, "https://picsum.photos/640/480");
    EXPECT(s, FETCH_PERMANENT, "too_large");
    assert_non_null(strstr(s.res->error, "Content-Length"));
    assert_null(s.res->body);
    fetch_result_free(s.res);
}

static void test_many_in_flight(void **state)
{
    enum { N = 200 };
    struct fetch_limits lim = limits();
    lim.total_timeout_ms = 60000;
    struct rig t;
    static struct slot slots[N];
    char url[64];
    rig_up(&t, &settings_plain, &lim);
    for (int i = 0; i < N; i++) {
        slots[i] = (struct slot){.rig = &t};
        snprintf(url, sizeof(url), "https://picsum.photos/%d/%d", 8 + i % 20, 8 + i / 20);
        assert_non_null(fetch_start(t.e, url, on_done, &slots[i]));
    }
    assert_int_equal(fetch_active(t.e), N);
    run_until(&t, N, 90000);
    assert_int_equal(t.done, N);
    assert_int_equal(fetch_active(t.e), 0);
    int opened = 0;
    for (int i = 0; i < N; i++) {
        struct fetch_result *r = slots[i].res;
        assert_int_equal(slots[i].calls, 1);
        if (r->cls != FETCH_OK)
            fail_msg("fetch %d: %s (%s)", i, r->reason, r->error);
        assert_true(r->len > 100 && r->body[0] == 0xff && r->body[1] == 0xd8);
        opened += r->connections;
        fetch_result_free(r);
        slots[i] = (struct slot){.rig = &t};
    }
    assert_true(opened >= N && opened <= 2 * N); /* at most one per hop */
    /* A later wave runs on the connections an earlier one left open. The first wave can take
     * longer than the image server keeps an idle connection (60 s) on a loaded machine, so the
     * second wave may open some again; the third, right after it, must open none. */
    int again = 0;
    for (int wave = 0; wave < 2; wave++) {
        for (int i = 0; i < 20; i++) {
            slots[i] = (struct slot){.rig = &t};
            snprintf(url, sizeof(url), "https://picsum.photos/%d/%d", 40 + i, 40);
            assert_non_null(fetch_start(t.e, url, on_done, &slots[i]));
        }
        run_until(&t, N + 20 * (wave + 1), 30000);
        again = 0;
        for (int i = 0; i < 20; i++) {
            assert_int_equal(slots[i].calls, 1);
            EXPECT(slots[i], FETCH_OK, "ok");
            again += slots[i].res->connections;
            fetch_result_free(slots[i].res);
        }
    }
    assert_int_equal(again, 0);
    rig_down(&t);
}

/* ---- SSRF ---------------------------------------------------------------------------------- */

static void test_redirect_to_ip(void **state)
{
    struct fetch_limits lim = limits();
    char url[256];
    trap_hits();
    snprintf(url, sizeof(url),
             "https://picsum.photos/64/64?fault=redirect&to=http://127.0.0.2:%d/x", trap_port);
    struct slot s = fetch_url(&settings_plain, &lim, url);
    EXPECT(s, FETCH_PERMANENT, "redirect_host");
    assert_int_equal(s.res->http_code, 302);
    assert_int_equal(trap_hits(), 0);
    fetch_result_free(s.res);
}

static void test_blocked_after_dns(void **state)
{
    struct fetch_limits lim = limits();
    char url[256];
    trap_hits();
    /* An allowed host name that resolves to loopback: refused before the socket exists. */
    snprintf(url, sizeof(url), "http://localhost:%d/64/64", trap_port);
    struct slot s = fetch_url(&settings_local, &lim, url);
    EXPECT(s, FETCH_PERMANENT, "blocked_address");
    assert_non_null(strstr(s.res->error, "loopback"));
    assert_int_equal(s.res->http_code, 0);
    fetch_result_free(s.res);
    /* The same on a redirect hop. */
    snprintf(url, sizeof(url),
             "https://picsum.photos/64/64?fault=redirect&to=http://localhost:%d/x", trap_port);
    s = fetch_url(&settings_local, &lim, url);
    EXPECT(s, FETCH_PERMANENT, "blocked_address");
    assert_int_equal(s.res->redirects, 1);
    fetch_result_free(s.res);
    assert_int_equal(trap_hits(), 0);
}

static void test_refused_before_connecting(void **state)
{
    struct fetch_limits lim = limits();
    char url[256];
    const char *forms[] = {"http://%d.%d.%d.%d:%d/1",    "http://[::1]:%d/1",
                           "http://2130706433:%d/",      "http://0x7f000001:%d/",
                           "http://user@localhost:%d/1", "file:///etc/passwd%d",
                           "gopher://localhost:%d/"};
    struct rig t;
    trap_hits();
    rig_up(&t, &settings_local, &lim);
    for (size_t i = 0; i < sizeof(forms) / sizeof(*forms); i++) {
        if (i == 0)
            snprintf(url, sizeof(url), forms[0], 127, 0, 0, 1, trap_port);
        else
            snprintf(url, sizeof(url), forms[i], trap_port);
        struct slot s = one(&t, url);
        if (s.res->cls != FETCH_PERMANENT)
            fail_msg("%s: class %d (%s)", url, s.res->cls, s.res->reason);
        const char *expect = i == 4 ? "userinfo" : i >= 5 ? "bad_scheme" : "bad_host";
        if (strcmp(s.res->reason, expect) != 0)
            fail_msg("%s: %s, expected %s", url, s.res->reason, expect);
        assert_int_equal(s.res->http_code, 0);
        fetch_result_free(s.res);
    }
    rig_down(&t);
    assert_int_equal(trap_hits(), 0);
    struct slot s = fetch_url(&settings_plain, &lim, "http://2130706433/");
    EXPECT(s, FETCH_PERMANENT, "bad_host");
    fetch_result_free(s.res);
}

/* ---- against the canned server --------------------------------------------------------- */

#define IMAGE_HEAD "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n"

static void test_too_large_while_receiving(void **state)
{
    struct fetch_limits lim = limits();
    lim.max_bytes = 1000;
    canned_set(IMAGE_HEAD "\r\n", 50000, NULL); /* no Content-Length: only the body tells */
    struct slot s = fetch_url(&settings_plain, &lim, "http://canned.test/1");
    EXPECT(s, FETCH_PERMANENT, "too_large");
    assert_null(s.res->body);
    fetch_result_free(s.res);

    lim.max_bytes = 5000; /* exactly the cap is fine */
    canned_set(IMAGE_HEAD "\r\n", 5000, NULL);
    s = fetch_url(&settings_plain, &lim, "http://canned.test/1");
    EXPECT(s, FETCH_OK, "ok");
    assert_int_equal(s.res->len, 5000);
    assert_int_equal(s.res->body[4999], 0xab);
    fetch_result_free(s.res);
}

static void test_request_headers(void **state)
{
    struct fetch_limits lim = limits();
    canned_set(IMAGE_HEAD "Content-Length: 20\r\n\r\n", 20, NULL);
    struct slot s = fetch_url(&settings_plain, &lim, "http://canned.test/2");
    EXPECT(s, FETCH_OK, "ok");
    assert_int_equal(s.res->len, 20);
    pthread_mutex_lock(&canned.mu);
    assert_non_null(strstr(canned.last_request, "GET /2 HTTP/1.1\r\n"));
    assert_non_null(strstr(canned.last_request, "\r\nUser-Agent: pixflow/"));
    assert_non_null(strstr(canned.last_request, "\r\nAccept: image/*\r\n"));
    assert_non_null(strstr(canned.last_request, "\r\nHost: canned.test\r\n"));
    pthread_mutex_unlock(&canned.mu);
    fetch_result_free(s.res);
}

static void test_retry_after_date(void **state)
{
    struct fetch_limits lim = limits();
    char head[512], date[64];
    time_t when = time(NULL) + 30;
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(
        head, sizeof(head),
        "HTTP/1.1 503 Busy\r\nRetry-After: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        date);
    canned_set(head, 0, NULL);
    struct slot s = fetch_url(&settings_plain, &lim, "http://canned.test/3");
    EXPECT(s, FETCH_TRANSIENT, "http_5xx");
    if (s.res->retry_after_ms < 27000 || s.res->retry_after_ms > 31000)
        fail_msg("retry_after_ms %ld for %s", s.res->retry_after_ms, date);
    fetch_result_free(s.res);

    canned_set("HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 0, NULL);
    s = fetch_url(&settings_plain, &lim, "http://canned.test/3");
    EXPECT(s, FETCH_TRANSIENT, "http_5xx");
    assert_int_equal(s.res->retry_after_ms, -1);
    fetch_result_free(s.res);

    canned_set("HTTP/1.1 408 Timeout\r\nRetry-After: 99999999999999999999\r\nContent-Length: "
               "0\r\nConnection: close\r\n\r\n",
               0, NULL);
    s = fetch_url(&settings_plain, &lim, "http://canned.test/3");
    EXPECT(s, FETCH_TRANSIENT, "http_408");
    assert_int_equal(s.res->retry_after_ms, 24L * 3600 * 1000);
    fetch_result_free(s.res);
}

static void test_redirects_checked(void **state)
{
    struct fetch_limits lim = limits();
    const struct {
        const char *location, *reason;
    } cases[] = {
        {"ftp://picsum.photos/1", "redirect_scheme"},
        {"file:///etc/passwd", "redirect_scheme"},
        {"https://user:pw@picsum.photos/1", "redirect_host"},
        {"https://evil.example/1", "redirect_host"},
        {"http://169.254.169.254/latest/meta-data/", "redirect_host"},
        {"http://[::1]/", "redirect_host"},
    };
    char head[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        snprintf(head, sizeof(head),
                 "HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\nConnection: "
                 "close\r\n\r\n",
                 cases[i].location);
        canned_set(head, 0, NULL);
        struct slot s = fetch_url(&settings_plain, &lim, "http://canned.test/4");
        if (s.res->cls != FETCH_PERMANENT || strcmp(s.res->reason, cases[i].reason) != 0)
            fail_msg("Location %s: %s, expected %s", cases[i].location, s.res->reason,
                     cases[i].reason);
        assert_int_equal(s.res->redirects, 0);
        fetch_result_free(s.res);
    }
    /* A relative Location is resolved against the hop and followed. */
    canned_set("HTTP/1.1 301 Moved\r\nLocation: /final?x=1\r\nContent-Length: 0\r\n"
               "Connection: close\r\n\r\n",
               0, IMAGE_HEAD "Content-Length: 10\r\n\r\n");
    struct slot s = fetch_url(&settings_plain, &lim, "http://canned.test/5");
    EXPECT(s, FETCH_OK, "ok");
    assert_string_equal(s.res->final_url, "http://canned.test/final?x=1");
    assert_int_equal(s.res->redirects, 1);
    assert_int_equal(s.res->len, 10);
    fetch_result_free(s.res);
    /* A 3xx without Location is an answer, not a redirect; a big redirect body is dropped. */
    canned_set("HTTP/1.1 302 Found\r\nConnection: close\r\n\r\n", 100000, NULL);
    lim.max_bytes = 1000;
    s = fetch_url(&settings_plain, &lim, "http://canned.test/6");
    EXPECT(s, FETCH_PERMANENT, "http_302");
    fetch_result_free(s.res);
}

static void test_odd_answers(void **state)
{
    struct fetch_limits lim = limits();
    canned_set("HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n", 10, NULL);
    struct slot s = fetch_url(&settings_plain, &lim, "http://canned.test/7");
    EXPECT(s, FETCH_PERMANENT, "not_image_type"); /* no Content-Type at all */
    fetch_result_free(s.res);

    canned_set(IMAGE_HEAD "Content-Length: 0\r\n\r\n", 0, NULL);
    s = fetch_url(&settings_plain, &lim, "http://canned.test/7");
    EXPECT(s, FETCH_PERMANENT, "empty_body");
    fetch_result_free(s.res);

    canned_set(IMAGE_HEAD "Content-Length: 5000\r\n\r\n", 100, NULL);
    s = fetch_url(&settings_plain, &lim, "http://canned.test/7");
    EXPECT(s, FETCH_TRANSIENT, "truncated");
    fetch_result_free(s.res);

    canned_set("", 0, NULL); /* connection closed without a word */
    s = fetch_url(&settings_plain, &lim, "http://canned.test/7");
    EXPECT(s, FETCH_TRANSIENT, "network");
    fetch_result_free(s.res);

    canned_set("HTTP/1.1 503 Busy\r\nConnection: close\r\n\r\n", 200000, NULL);
    lim.max_bytes = 1000; /* an error page over the cap still reports the status */
    s = fetch_url(&settings_plain, &lim, "http://canned.test/7");
    EXPECT(s, FETCH_TRANSIENT, "http_5xx");
    fetch_result_free(s.res);
}

static void test_connect_refused(void **state)
{
    struct fetch_limits lim = limits();
    struct settings st = settings_plain;
    /* A connect-to target where nothing listens: allowed by netguard, refused by the kernel. */
    int port = 0, fd = listen_on("127.0.0.1", &port);
    assert_true(fd >= 0);
    close(fd);
    st.connect_to[4].to_port = port;
    struct slot s = fetch_url(&st, &lim, "http://canned.test/8");
    EXPECT(s, FETCH_TRANSIENT, "connect");
    fetch_result_free(s.res);
}

/* ---- lifetimes --------------------------------------------------------------------------- */

static void test_cancel(void **state)
{
    struct fetch_limits lim = limits();
    struct rig t;
    rig_up(&t, &settings_plain, &lim);
    struct slot slow = {.rig = &t}, quick = {.rig = &t}, refused = {.rig = &t}, early = {.rig = &t};
    struct fetch *fs =
        fetch_start(t.e, "https://picsum.photos/64/64?fault=slow&delay_ms=5000", on_done, &slow);
    struct fetch *fr = fetch_start(t.e, "http://127.0.0.1/1", on_done, &refused);
    struct fetch *fe = fetch_start(t.e, "https://picsum.photos/65/65", on_done, &early);
    assert_non_null(fs);
    assert_non_null(fr);
    assert_non_null(fe);
    assert_int_equal(fetch_active(t.e), 3);
    fetch_cancel(fr); /* before its refusal was delivered */
    fetch_cancel(fe); /* before any I/O */
    assert_int_equal(fetch_active(t.e), 1);
    assert_non_null(fetch_start(t.e, "https://picsum.photos/66/66", on_done, &quick));
    run_until(&t, 1, 20000);
    EXPECT(quick, FETCH_OK, "ok");
    run_until(&t, 2, 300); /* the slow body is arriving now */
    assert_int_equal(fetch_active(t.e), 1);
    fetch_cancel(fs);
    assert_int_equal(fetch_active(t.e), 0);
    run_until(&t, 2, 500);
    assert_int_equal(slow.calls + refused.calls + early.calls, 0);
    assert_int_equal(t.done, 1);
    fetch_result_free(quick.res);
    rig_down(&t);
}

static void test_callbacks_reenter(void **state)
{
    struct fetch_limits lim = limits();
    struct rig t;
    rig_up(&t, &settings_plain, &lim);
    struct slot victim = {.rig = &t}, chained = {.rig = &t};
    struct slot killer = {.rig = &t, .chain = "https://picsum.photos/67/67", .next = &chained};
    killer.victim =
        fetch_start(t.e, "https://picsum.photos/64/64?fault=slow&delay_ms=5000", on_done, &victim);
    assert_non_null(killer.victim);
    assert_non_null(fetch_start(t.e, "https://picsum.photos/68/68", on_done, &killer));
    run_until(&t, 2, 20000);
    EXPECT(killer, FETCH_OK, "ok");
    EXPECT(chained, FETCH_OK, "ok");   /* started from inside a done callback */
    assert_int_equal(victim.calls, 0); /* cancelled from inside a done callback */
    assert_non_null(killer.started);
    assert_int_equal(fetch_active(t.e), 0);
    fetch_result_free(killer.res);
    fetch_result_free(chained.res);
    rig_down(&t);
}

static void test_free_in_flight(void **state)
{
    struct fetch_limits lim = limits();
    struct rig t;
    struct slot slots[12];
    char url[128];
    rig_up(&t, &settings_plain, &lim);
    for (int i = 0; i < 10; i++) {
        slots[i] = (struct slot){.rig = &t};
        snprintf(url, sizeof(url), "https://picsum.photos/%d/64?fault=slow&delay_ms=5000", 64 + i);
        assert_non_null(fetch_start(t.e, url, on_done, &slots[i]));
    }
    slots[10] = (struct slot){.rig = &t};
    slots[11] = (struct slot){.rig = &t};
    assert_non_null(fetch_start(t.e, "http://localhost/1", on_done, &slots[10]));
    assert_non_null(fetch_start(t.e, "http://picsum.photos/100/100", on_done, &slots[11]));
    run_until(&t, 2, 4000); /* the refusal and the quick one; the slow bodies need 5 s */
    assert_int_equal(t.done, 2);
    struct slot late = {.rig = &t};
    assert_non_null(fetch_start(t.e, "http://localhost/2", on_done, &late)); /* refusal pending */
    assert_int_equal(fetch_active(t.e), 11);
    rig_down(&t); /* LSan checks the rest */
    for (int i = 0; i < 10; i++)
        assert_int_equal(slots[i].calls, 0);
    assert_int_equal(late.calls, 0);
    fetch_result_free(slots[10].res);
    fetch_result_free(slots[11].res);
}

/* ---- the byte budget --------------------------------------------------------------------- */

/* Room for two bodies: the third and later are not sent until a body is dropped. */
static void test_budget_waits(void **state)
{
    enum { N = 7 }; /* the last one starts when the budget is full */
    struct fetch_limits lim = limits();
    lim.max_bytes = 5000;
    lim.memory = 10000;
    canned_set(IMAGE_HEAD "Content-Length: 5000\r\n\r\n", 5000, NULL);
    struct rig t;
    struct slot slots[N];
    struct fetch_budget_state st;
    rig_up(&t, &settings_plain, &lim);
    for (int i = 0; i < N - 1; i++) {
        slots[i] = (struct slot){.rig = &t};
        assert_non_null(fetch_start(t.e, "http://canned.test/1", on_done, &slots[i]));
    }
    run_until(&t, N, 1500); /* two bodies fit, and they are kept */
    assert_int_equal(t.done, 2);
    fetch_budget_state(t.e, &st);
    assert_int_equal(st.held, 10000);
    assert_int_equal(st.queued, N - 3);
    assert_int_equal(st.requeued, 0);
    int connections = atomic_load(&canned.connections);
    slots[N - 1] = (struct slot){.rig = &t};
    assert_non_null(fetch_start(t.e, "http://canned.test/1", on_done, &slots[N - 1]));
    run_until(&t, N, 300);
    fetch_budget_state(t.e, &st);
    assert_int_equal(st.queued, N - 2); /* not even sent */
    assert_int_equal(atomic_load(&canned.connections), connections);
    for (int round = 1; round <= 2; round++) {
        for (int i = 0; i < N; i++) { /* drop the body of the first done one not dropped yet */
            if (slots[i].calls == 1 && slots[i].res->body) {
                EXPECT(slots[i], FETCH_OK, "ok");
                fetch_result_drop_body(slots[i].res);
                assert_int_equal(slots[i].res->len, 5000); /* the metadata stays */
                break;
            }
        }
        run_until(&t, 2 + round, 5000);
        assert_int_equal(t.done, 2 + round);
        run_until(&t, N, 300);
        assert_int_equal(t.done, 2 + round); /* nothing more fits */
    }
    for (int i = 0; i < N; i++)
        slots[i].drop = 1;
    for (int i = 0; i < N; i++)
        if (slots[i].calls == 1)
            fetch_result_drop_body(slots[i].res);
    run_until(&t, N, 10000);
    assert_int_equal(t.done, N);
    fetch_budget_state(t.e, &st);
    assert_int_equal(st.held, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.pending, 0);
    rig_down(&t);
    for (int i = 0; i < N; i++) { /* results may outlive their engine */
        EXPECT(slots[i], FETCH_OK, "ok");
        fetch_result_free(slots[i].res);
    }
}

/* A body without Content-Length holds max_bytes while it arrives, then only its length. */
static void test_budget_unknown_length(void **state)
{
    struct fetch_limits lim = limits();
    lim.max_bytes = 5000;
    lim.memory = 7000;
    canned_set(IMAGE_HEAD "\r\n", 3000, NULL);
    struct rig t;
    struct slot a = {0}, b = {0};
    struct fetch_budget_state st;
    rig_up(&t, &settings_plain, &lim);
    a.rig = b.rig = &t;
    assert_non_null(fetch_start(t.e, "http://canned.test/1", on_done, &a));
    run_until(&t, 1, 5000);
    EXPECT(a, FETCH_OK, "ok");
    fetch_budget_state(t.e, &st);
    assert_int_equal(st.held, 3000);
    assert_non_null(fetch_start(t.e, "http://canned.test/1", on_done, &b));
    run_until(&t, 2, 800); /* 3000 + 5000 > 7000 */
    assert_int_equal(t.done, 1);
    fetch_result_free(a.res);
    a.res = NULL;
    run_until(&t, 2, 5000);
    EXPECT(b, FETCH_OK, "ok");
    assert_int_equal(b.res->len, 3000);
    fetch_result_free(b.res);
    fetch_budget_state(t.e, &st);
    assert_int_equal(st.held, 0);
    rig_down(&t);
}

/* Two bodies sent for on the estimate (256 KB) whose Content-Length (600 KB) says only one
 * fits: the second stops at its first byte and is sent again, first in line, once the first is
 * dropped. */
static void test_budget_requeue(void **state)
{
    struct fetch_limits lim = limits();
    lim.max_bytes = 1L << 20;
    lim.memory = 1L << 20;
    canned_set(IMAGE_HEAD "Content-Length: 600000\r\n\r\n", 600000, NULL);
    struct rig t;
    struct slot a = {0}, b = {0}, c = {0};
    struct fetch_budget_state st;
    rig_up(&t, &settings_plain, &lim);
    a.rig = b.rig = c.rig = &t;
    assert_non_null(fetch_start(t.e, "http://canned.test/1", on_done, &a));
    assert_non_null(fetch_start(t.e, "http://canned.test/1", on_done, &b));
    run_until(&t, 1, 5000);
    run_until(&t, 2, 500);
    assert_int_equal(t.done, 1);
    struct slot *first = a.calls ? &a : &b, *second = a.calls ? &b : &a;
    EXPECT(*first, FETCH_OK, "ok");
    fetch_budget_state(t.e, &st);
    assert_int_equal(st.held, 600000);
    assert_int_equal(st.requeued, 1);
    assert_int_equal(st.queued, 1);
    /* a later fetch queues behind it, though its estimate alone would fit */
    assert_non_null(fetch_start(t.e, "http://canned.test/1", on_done, &c));
    fetch_budget_state(t.e, &st);
    assert_int_equal(st.queued, 2);
    fetch_result_drop_body(first->res);
    run_until(&t, 2, 5000);
    assert_int_equal(second->calls, 1);
    EXPECT(*second, FETCH_OK, "ok");
    assert_int_equal(second->res->len, 600000);
    assert_int_equal(c.calls, 0);
    fetch_result_drop_body(second->res);
    run_until(&t, 3, 5000);
    EXPECT(c, FETCH_OK, "ok");
    fetch_budget_state(t.e, &st);
    /* c waited on its estimate, the mean of the bodies so far (600 KB): never stopped */
    assert_int_equal(st.requeued, 1);
    fetch_result_free(a.res);
    fetch_result_free(b.res);
    fetch_result_free(c.res);
    fetch_budget_state(t.e, &st);
    assert_int_equal(st.held + st.pending, 0);
    rig_down(&t);
}

/* Over TLS, many pictures through room for three: every one arrives and the budget is never
 * overdrawn. */
static void test_budget_many(void **state)
{
    enum { N = 40 };
    struct fetch_limits lim = limits();
    lim.max_bytes = 60000;
    lim.memory = 3 * 60000;
    lim.total_timeout_ms = 60000;
    struct rig t;
    static struct slot slots[N];
    char url[64];
    rig_up(&t, &settings_plain, &lim);
    budget_peak = 0;
    for (int i = 0; i < N; i++) {
        slots[i] = (struct slot){.rig = &t, .drop = 1};
        snprintf(url, sizeof(url), "https://picsum.photos/%d/%d", 300 + i, 200);
        assert_non_null(fetch_start(t.e, url, on_done, &slots[i]));
    }
    run_until(&t, N, 90000);
    assert_int_equal(t.done, N);
    for (int i = 0; i < N; i++) {
        EXPECT(slots[i], FETCH_OK, "ok");
        assert_true(slots[i].res->len > 1000 && slots[i].res->body == NULL);
        fetch_result_free(slots[i].res);
    }
    assert_true(budget_peak > 0 && budget_peak <= (size_t)lim.memory);
    struct fetch_budget_state st;
    fetch_budget_state(t.e, &st);
    assert_int_equal(st.held, 0);
    rig_down(&t);
}

static void test_bad_setup(void **state)
{
    struct event_base *base = event_base_new();
    struct fetch_limits lim = limits();
    struct settings st = settings_plain;
    char err[256];
    lim.max_bytes = 0;
    assert_null(fetch_engine_new(base, &st, &lim, err, sizeof(err)));
    assert_non_null(strstr(err, "max_bytes"));
    lim = limits();
    lim.memory = lim.max_bytes - 1; /* not even one body would fit */
    assert_null(fetch_engine_new(base, &st, &lim, err, sizeof(err)));
    assert_non_null(strstr(err, "download memory"));
    lim = limits();
    lim.max_redirects = -1;
    assert_null(fetch_engine_new(base, &st, &lim, err, sizeof(err)));
    lim = limits();
    st.ca_file = "/etc/hostname"; /* readable, but no certificate in it */
    assert_null(fetch_engine_new(base, &st, &lim, err, sizeof(err)));
    assert_non_null(strstr(err, "no PEM certificate"));
    st = settings_plain;
    snprintf(st.connect_to[0].to_host, sizeof(st.connect_to[0].to_host), "no-such-host.invalid");
    assert_null(fetch_engine_new(base, &st, &lim, err, sizeof(err)));
    assert_non_null(strstr(err, "no-such-host.invalid"));
    event_base_free(base);
}

static void test_without_extra_ca(void **state)
{
    struct fetch_limits lim = limits();
    struct settings st = settings_plain;
    st.ca_file = NULL; /* the system store does not know picsum's throw-away CA */
    struct slot s = fetch_url(&st, &lim, "https://picsum.photos/64/64");
    EXPECT(s, FETCH_TRANSIENT, "tls");
    fetch_result_free(s.res);
}

/* ---- the politeness gate ------------------------------------------------------------------ */

/* A gate that lets every hop go 50 ms after it asks, and writes down what it is told. */
struct gate_ticket {
    struct gate_log *g;
    void (*go)(void *f, int waited);
    void *f;
    struct event *ev;
};

struct gate_log {
    struct event_base *base;
    int asks, dones, drops;
    long codes[8];
    enum fetch_hop_end ends[8];
    struct gate_ticket t[8];
};

static void gate_fire(evutil_socket_t fd, short what, void *arg)
{
    struct gate_ticket *t = arg;
    t->go(t->f, 1);
}

static void *gate_ask(void *ctx, const char *url, void (*go)(void *f, int waited), void *f)
{
    struct gate_log *g = ctx;
    assert_true(g->asks < 8);
    struct gate_ticket *t = &g->t[g->asks++];
    *t = (struct gate_ticket){g, go, f, evtimer_new(g->base, gate_fire, t)};
    struct timeval tv = {0, 50 * 1000};
    evtimer_add(t->ev, &tv);
    return t;
}

static void gate_done(void *ticket, enum fetch_hop_end end, long code, long retry_after_ms,
                      double ms)
{
    struct gate_ticket *t = ticket;
    t->g->codes[t->g->dones] = code;
    t->g->ends[t->g->dones++] = end;
}

static void gate_drop(void *ticket) /* the fetch is gone: go must not be called */
{
    struct gate_ticket *t = ticket;
    evtimer_del(t->ev);
    t->g->drops++;
}

static void gate_up(struct rig *t, struct gate_log *g)
{
    memset(g, 0, sizeof(*g));
    g->base = t->base;
    struct fetch_gate gate = {gate_ask, gate_done, gate_drop, g};
    fetch_engine_gate(t->e, &gate);
}

static void gate_down(struct gate_log *g)
{
    for (int i = 0; i < g->asks; i++)
        event_free(g->t[i].ev);
}

/* Each hop asks the gate and reports its end; a 429 waits for the gate and goes again, without
 * failing the fetch; the time spent waiting is the result's, not the fetch timeout's. */
static void test_gate_429_waits_and_goes_again(void **state)
{
    struct fetch_limits lim = limits();
    struct rig t;
    struct gate_log g;
    char url[128];
    rig_up(&t, &settings_plain, &lim);
    gate_up(&t, &g);
    snprintf(url, sizeof(url), "https://picsum.photos/71/71?fault=429&retry_after=0&times=1&u=%d",
             (int)getpid());
    struct slot s = one(&t, url);
    EXPECT(s, FETCH_OK, "ok");
    assert_int_equal(g.asks, 3); /* the first hop twice, then its redirect */
    assert_int_equal(g.dones, 3);
    assert_int_equal(g.codes[0], 429);
    assert_int_equal(g.codes[1], 302);
    assert_int_equal(g.codes[2], 200);
    for (int i = 0; i < 3; i++)
        assert_int_equal(g.ends[i], FETCH_HOP_ANSWERED);
    assert_int_equal(g.drops, 0);
    assert_int_equal(s.res->host_waits, 3);
    assert_true(s.res->host_wait_ms >= 140);
    fetch_result_free(s.res);

    /* a 503 is told to the gate (it pauses the host) but fails the fetch as the 5xx it is */
    s = one(&t, "https://picsum.photos/72/72?fault=503");
    EXPECT(s, FETCH_TRANSIENT, "http_5xx");
    assert_int_equal(g.asks, 4);
    assert_int_equal(g.codes[3], 503);
    fetch_result_free(s.res);

    /* cancelled while it waits: its ticket is dropped, and nothing else happens */
    struct slot c = {.rig = &t};
    struct fetch *f = fetch_start(t.e, "https://picsum.photos/73/73", on_done, &c);
    assert_non_null(f);
    fetch_cancel(f);
    assert_int_equal(g.drops, 1);
    run_until(&t, t.done + 1, 200);
    assert_int_equal(c.calls, 0);
    assert_int_equal(g.dones, 4);
    rig_down(&t);
    gate_down(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_picture),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_http_400),
        cmocka_unit_test(test_http_503),
        cmocka_unit_test(test_http_429),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_total_timeout),
        cmocka_unit_test(test_low_speed),
        cmocka_unit_test(test_redirect_loop),
        cmocka_unit_test(test_not_image),
        cmocka_unit_test(test_too_large_by_length),
        cmocka_unit_test(test_many_in_flight),
        cmocka_unit_test(test_redirect_to_ip),
        cmocka_unit_test(test_blocked_after_dns),
        cmocka_unit_test(test_refused_before_connecting),
        cmocka_unit_test(test_too_large_while_receiving),
        cmocka_unit_test(test_request_headers),
        cmocka_unit_test(test_retry_after_date),
        cmocka_unit_test(test_redirects_checked),
        cmocka_unit_test(test_odd_answers),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_callbacks_reenter),
        cmocka_unit_test(test_free_in_flight),
        cmocka_unit_test(test_budget_waits),
        cmocka_unit_test(test_budget_unknown_length),
        cmocka_unit_test(test_budget_requeue),
        cmocka_unit_test(test_budget_many),
        cmocka_unit_test(test_bad_setup),
        cmocka_unit_test(test_without_extra_ca),
        cmocka_unit_test(test_gate_429_waits_and_goes_again),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
