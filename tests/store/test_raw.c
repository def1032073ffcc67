/* test_raw.c -- store/raw*.c: the S3 backend against a real versitygw this test starts on a free
 * port (PIXFLOW_VERSITYGW, default the project's .cache/bin/versitygw), and the file backend in
 * temporary folders (a read-only and a full tmpfs when running as root).
 *
 * The asynchronous path runs as in the worker: S3 requests on a real fetch engine's curl multi
 * and file writes on a real pool, both on a libevent loop. versitygw is killed in the group
 * teardown, by an atexit handler if a test aborts, and by the kernel (PR_SET_PDEATHSIG) if this
 * process dies any other way. The outage tests, which stop and restart it, run last. */
#include "raw.h"

#include "common/server.h"
#include "digest.h"
#include "fetch.h"
#include "pool.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define ACCESS "pixflowtest"
#define SECRET "pixflow-test-secret-0123456789"
#define BUCKET "pixflow"

static struct tserver s3 = {.pid = -1};
static char top[700];    /* the test's temporary folder */
static char s3_dir[800]; /* versitygw's buckets */
static char s3_bin[PATH_MAX];

/* ---- versitygw ---------------------------------------------------------------------------- */

static int s3_start(void)
{
    snprintf(s3.log, sizeof(s3.log), "%s/versitygw.log", top);
    return tserver_start_s3(&s3, s3_bin, s3_dir, ACCESS, SECRET, NULL, NULL);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

static void at_exit_kill(void)
{
    if (s3.pid > 0)
        kill(s3.pid, SIGKILL);
}

static int group_setup(void **state)
{
    log_init("test_raw", LL_WARN, 0);
    if (tserver_cache_bin("PIXFLOW_VERSITYGW", "versitygw", s3_bin, sizeof(s3_bin)) < 0)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(top, sizeof(top), "%s/pixflow-raw-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(top) == NULL)
        return -1;
    snprintf(s3_dir, sizeof(s3_dir), "%s/s3", top);
    if (mkdir(s3_dir, 0755) < 0)
        return -1;
    atexit(at_exit_kill);
    s3.port = tserver_free_port();
    if (s3.port < 0 || s3_start() < 0)
        return -1;
    long code = tserver_s3_request(s3.port, ACCESS, SECRET, "PUT", "/" BUCKET);
    if (code != 200) {
        fprintf(stderr, "cannot create bucket %s: HTTP %ld\n", BUCKET, code);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    tserver_stop(&s3);
    nftw(top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ---- data and stores ---------------------------------------------------------------------- */

struct blob {
    unsigned char *bytes;
    size_t len;
    char sha[65];
};

static struct blob blob_make(uint32_t seed, size_t len)
{
    struct blob b = {.bytes = malloc(len ? len : 1), .len = len};
    char err[128];
    assert_non_null(b.bytes);
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        b.bytes[i] = (unsigned char)(seed >> 16);
    }
    assert_int_equal(digest_sha256_hex(b.bytes, len, b.sha, err, sizeof(err)), 0);
    return b;
}

static void blob_free(struct blob *b)
{
    free(b->bytes);
}

static struct raw_config s3_config(const char *bucket, const char *access, const char *secret)
{
    static char endpoint[64];
    struct raw_config c = {.kind = RAW_S3, .region = "us-east-1"};
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d/", s3.port);
    snprintf(c.bucket, sizeof(c.bucket), "%s", bucket);
    snprintf(c.prefix, sizeof(c.prefix), "raw");
    c.endpoint = endpoint;
    c.access_key = access;
    c.secret_key = secret;
    return c;
}

static struct raw_store *s3_store(const char *bucket, const char *access, const char *secret,
                                  const struct raw_loop *loop)
{
    struct raw_config c = s3_config(bucket, access, secret);
    char err[256];
    struct raw_store *r = raw_new(&c, loop, err, sizeof(err));
    if (r == NULL)
        fail_msg("raw_new: %s", err);
    return r;
}

static struct raw_store *file_store(const char *dir, const char *prefix,
                                    const struct raw_loop *loop)
{
    struct raw_config c = {.kind = RAW_FILE};
    char err[256];
    snprintf(c.dir, sizeof(c.dir), "%s", dir);
    snprintf(c.prefix, sizeof(c.prefix), "%s", prefix);
    struct raw_store *r = raw_new(&c, loop, err, sizeof(err));
    if (r == NULL)
        fail_msg("raw_new: %s", err);
    return r;
}

/* Where versitygw keeps an object of the "raw" prefix: its own file. */
static void s3_object_path(const char *bucket, const char *sha, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s/raw/%.2s/%s", s3_dir, bucket, sha, sha);
}

static void assert_file_bytes(const char *path, const struct blob *b)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        fail_msg("%s: %s", path, strerror(errno));
    unsigned char *buf = malloc(b->len + 1);
    size_t n = fread(buf, 1, b->len + 1, fp);
    fclose(fp);
    assert_int_equal(n, b->len);
    assert_memory_equal(buf, b->bytes, b->len);
    free(buf);
}

/* Entries of `dir` whose name starts with `start`. */
static int count_named(const char *dir, const char *start)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL)
        n += strncmp(de->d_name, start, strlen(start)) == 0;
    closedir(d);
    return n;
}

/* ---- the asynchronous rig: a loop, a fetch engine, a pool ---------------------------------- */

struct rig {
    struct event_base *base;
    struct fetch_engine *e;
    struct pool *pool;
    struct raw_loop loop;
};

static int rig_add(void *ctx, CURL *easy, void (*done)(CURL *, CURLcode, void *), void *arg)
{
    return fetch_engine_add(ctx, easy, done, arg);
}

static void rig_cancel(void *ctx, CURL *easy)
{
    fetch_engine_remove(ctx, easy);
}

static int rig_offload(void *ctx, void (*work)(void *), void (*done)(void *), void *arg)
{
    pool_submit(ctx, work, done, arg);
    return 0;
}

static struct settings rig_settings; /* no allowed host, no connect-to: S3 needs neither */

static void rig_up(struct rig *t)
{
    struct fetch_limits lim = {.max_bytes = 1 << 20,
                               .connect_timeout_ms = 3000,
                               .total_timeout_ms = 10000,
                               .max_redirects = 1};
    char err[256];
    memset(t, 0, sizeof(*t));
    t->base = event_base_new();
    assert_non_null(t->base);
    t->e = fetch_engine_new(t->base, &rig_settings, &lim, err, sizeof(err));
    if (t->e == NULL)
        fail_msg("fetch_engine_new: %s", err);
    t->pool = pool_new(t->base, 2, err, sizeof(err));
    if (t->pool == NULL)
        fail_msg("pool_new: %s", err);
    t->loop = (struct raw_loop){.base = t->base,
                                .add = rig_add,
                                .cancel = rig_cancel,
                                .ctx = t->e,
                                .offload = rig_offload,
                                .offload_ctx = t->pool};
}

static void rig_down(struct rig *t)
{
    pool_free(t->pool);
    fetch_engine_free(t->e);
    event_base_free(t->base);
}

struct waiter {
    int calls;
    struct raw_result res;
};

static void on_done(const struct raw_result *r, void *arg)
{
    struct waiter *w = arg;
    w->calls++;
    w->res = *r;
}

/* Runs the loop until every waiter was called or timeout_s passed. */
static void rig_run(struct rig *t, struct waiter *w, int n, double timeout_s)
{
    double end = tserver_now() + timeout_s;
    for (;;) {
        int left = 0;
        for (int i = 0; i < n; i++)
            left += w[i].calls == 0;
        if (left == 0 || tserver_now() > end)
            return;
        struct timeval tick = {0, 20 * 1000};
        event_base_loopexit(t->base, &tick);
        event_base_dispatch(t->base);
    }
}

/* ---- S3 ----------------------------------------------------------------------------------- */

static void test_s3_check_and_names(void **state)
{
    struct raw_store *r = s3_store(BUCKET, ACCESS, SECRET, NULL);
    char err[256], loc[RAW_LOCATION_MAX];
    struct blob b = blob_make(1, 10);
    assert_int_equal(raw_check(r, err, sizeof(err)), 0);
    assert_string_equal(raw_describe(r), "s3://pixflow/raw");
    char want[300];
    snprintf(want, sizeof(want), "s3://pixflow/raw/%.2s/%s", b.sha, b.sha);
    assert_string_equal(raw_location(r, b.sha, loc, sizeof(loc)), want);
    assert_string_equal(raw_location(r, "ab", loc, sizeof(loc)), "");
    blob_free(&b);
    raw_free(r);
}

static void test_s3_round_trip(void **state)
{
    struct raw_store *r = s3_store(BUCKET, ACCESS, SECRET, NULL);
    struct blob b = blob_make(2, 150 * 1000); /* > 1 KiB: "Expect: 100-continue" */
    struct raw_result res;
    char err[256], type[RAW_TYPE_MAX], path[1200];
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/jpeg", &res), 0);
    assert_int_equal(res.status, RAW_OK);
    assert_int_equal(res.existed, 0);
    assert_int_equal(res.tries, 0);

    int found = 0;
    size_t len = 0;
    assert_int_equal(raw_head(r, b.sha, &found, &len, err, sizeof(err)), 0);
    assert_int_equal(found, 1);
    assert_int_equal(len, b.len);
    unsigned char *got = NULL;
    assert_int_equal(raw_get(r, b.sha, &found, &got, &len, type, err, sizeof(err)), 0);
    assert_int_equal(found, 1);
    assert_int_equal(len, b.len);
    assert_memory_equal(got, b.bytes, b.len);
    assert_string_equal(type, "image/jpeg");
    free(got);
    s3_object_path(BUCKET, b.sha, path, sizeof(path)); /* the server really holds those bytes */
    assert_file_bytes(path, &b);

    /* An empty Content-Type is sent as application/octet-stream; a tiny object has no Expect. */
    struct blob small = blob_make(3, 5);
    assert_int_equal(raw_put(r, small.sha, small.bytes, small.len, "", &res), 0);
    assert_int_equal(raw_get(r, small.sha, &found, &got, &len, type, err, sizeof(err)), 0);
    assert_int_equal(len, small.len);
    assert_memory_equal(got, small.bytes, small.len);
    assert_string_equal(type, "application/octet-stream");
    free(got);

    /* A source's Content-Type with blanks and control characters is sent cleaned. */
    struct blob odd = blob_make(20, 3000);
    assert_int_equal(raw_put(r, odd.sha, odd.bytes, odd.len, " image/jpeg;\t  q=\x01x ", &res), 0);
    assert_int_equal(raw_get(r, odd.sha, &found, &got, &len, type, err, sizeof(err)), 0);
    assert_string_equal(type, "image/jpeg; q=x");
    free(got);
    blob_free(&odd);
    blob_free(&small);
    blob_free(&b);
    raw_free(r);
}

static void test_s3_existed_writes_nothing(void **state)
{
    struct raw_store *r = s3_store(BUCKET, ACCESS, SECRET, NULL);
    struct blob b = blob_make(4, 20000);
    struct raw_result res;
    struct stat before, after;
    char path[1200];
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/png", &res), 0);
    assert_int_equal(res.existed, 0);
    s3_object_path(BUCKET, b.sha, path, sizeof(path));
    assert_int_equal(stat(path, &before), 0);
    usleep(20 * 1000); /* a rewrite would show in the modification time */
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/png", &res), 0);
    assert_int_equal(res.status, RAW_OK);
    assert_int_equal(res.existed, 1);
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_int_equal(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
    assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);

    /* Another length under the same name (damaged by hand) is written again, whole. */
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fwrite(b.bytes, 1, 100, fp);
    fclose(fp);
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/png", &res), 0);
    assert_int_equal(res.existed, 0);
    assert_file_bytes(path, &b);
    blob_free(&b);
    raw_free(r);
}

static void test_s3_missing_object(void **state)
{
    struct raw_store *r = s3_store(BUCKET, ACCESS, SECRET, NULL);
    struct blob b = blob_make(5, 64); /* never put */
    char err[256], type[RAW_TYPE_MAX];
    int found = 1;
    size_t len = 7;
    unsigned char *got = (unsigned char *)"x";
    assert_int_equal(raw_head(r, b.sha, &found, &len, err, sizeof(err)), 0);
    assert_int_equal(found, 0);
    assert_int_equal(raw_get(r, b.sha, &found, &got, &len, type, err, sizeof(err)), 0);
    assert_int_equal(found, 0);
    assert_null(got);
    blob_free(&b);
    raw_free(r);
}

static void test_s3_wrong_credentials(void **state)
{
    struct raw_store *r = s3_store(BUCKET, ACCESS, "not-the-secret", NULL);
    struct blob b = blob_make(6, 3000);
    struct raw_result res;
    char err[256];
    assert_int_equal(raw_check(r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "wrong secret key"));
    assert_non_null(strstr(err, "AWS_SECRET_ACCESS_KEY"));
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/jpeg", &res), -1);
    assert_int_equal(res.status, RAW_PERMANENT);
    assert_string_equal(res.reason, "http_403");
    assert_int_equal(res.tries, 0);
    raw_free(r);
    r = s3_store(BUCKET, "nobody", SECRET, NULL); /* an unknown access key */
    assert_int_equal(raw_check(r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown access key"));
    assert_non_null(strstr(err, "AWS_ACCESS_KEY_ID"));
    int found = 1;
    assert_int_equal(raw_head(r, b.sha, &found, NULL, err, sizeof(err)), -1); /* not "missing" */
    assert_non_null(strstr(err, "unknown access key"));
    assert_int_equal(found, 0);
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/jpeg", &res), -1);
    assert_int_equal(res.status, RAW_PERMANENT);
    assert_string_equal(res.reason, "http_403");
    blob_free(&b);
    raw_free(r);
}

static void test_s3_no_bucket(void **state)
{
    struct raw_store *r = s3_store("nosuchbucket", ACCESS, SECRET, NULL);
    struct blob b = blob_make(7, 3000);
    struct raw_result res;
    char err[256];
    assert_int_equal(raw_check(r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "bucket 'nosuchbucket'"));
    assert_non_null(strstr(err, "no such bucket"));
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/jpeg", &res), -1);
    assert_int_equal(res.status, RAW_PERMANENT);
    assert_string_equal(res.reason, "no_bucket");
    int found = 1;
    assert_int_equal(raw_head(r, b.sha, &found, NULL, err, sizeof(err)), -1); /* not "missing" */
    assert_non_null(strstr(err, "no such bucket"));
    blob_free(&b);
    raw_free(r);
}

/* The x-amz-content-sha256 sent is the one the server checks: bytes that are not those of their
 * name are refused, and nothing is stored under it. */
static void test_s3_digest_is_checked(void **state)
{
    struct raw_store *r = s3_store(BUCKET, ACCESS, SECRET, NULL);
    struct blob b = blob_make(8, 4000), other = blob_make(9, 4000);
    struct raw_result res;
    char err[256];
    int found = 1;
    assert_int_equal(raw_put(r, other.sha, b.bytes, b.len, "image/jpeg", &res), -1);
    assert_int_equal(res.status, RAW_PERMANENT);
    assert_string_equal(res.reason, "http_400");
    assert_int_equal(raw_head(r, other.sha, &found, NULL, err, sizeof(err)), 0);
    assert_int_equal(found, 0);
    blob_free(&b);
    blob_free(&other);
    raw_free(r);
}

static void test_bad_arguments(void **state)
{
    struct raw_store *r = s3_store(BUCKET, ACCESS, SECRET, NULL);
    struct raw_result res;
    struct waiter w = {0};
    char err[256];
    int found;
    const char *upper = "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789";
    assert_int_equal(raw_put(r, upper, "x", 1, "", &res), -1);
    assert_string_equal(res.reason, "bad_argument");
    assert_int_equal(raw_put(r, "abc", "x", 1, "", &res), -1);
    assert_int_equal(raw_head(r, "../../etc/passwd", &found, NULL, err, sizeof(err)), -1);
    assert_null(raw_put_start(r, "abc", "x", 1, "", on_done, &w)); /* and without a loop */
    raw_free(r);

    struct raw_config c = s3_config(BUCKET, ACCESS, SECRET);
    snprintf(c.prefix, sizeof(c.prefix), "a/../b");
    assert_null(raw_new(&c, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "prefix"));
    c = s3_config("No_Such", ACCESS, SECRET);
    assert_null(raw_new(&c, NULL, err, sizeof(err)));
    c = s3_config(BUCKET, ACCESS, "");
    assert_null(raw_new(&c, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "AWS_SECRET_ACCESS_KEY"));
    c = s3_config(BUCKET, ACCESS, SECRET);
    c.endpoint = "ftp://127.0.0.1";
    assert_null(raw_new(&c, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "PIXFLOW_S3_ENDPOINT"));
    struct raw_config f = {.kind = RAW_FILE};
    snprintf(f.dir, sizeof(f.dir), "relative/dir");
    assert_null(raw_new(&f, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "absolute"));
}

/* Several writes at once on the worker's multi, one of them of bytes already kept, and one
 * cancelled at once (its done never comes). */
static void test_s3_async(void **state)
{
    enum { N = 8 };
    struct rig t;
    rig_up(&t);
    struct raw_store *r = s3_store(BUCKET, ACCESS, SECRET, &t.loop);
    struct blob b[N], gone = blob_make(99, 5000);
    struct waiter w[N], never = {0};
    struct raw_result res;
    char err[256], type[RAW_TYPE_MAX];
    for (int i = 0; i < N; i++)
        b[i] = blob_make(100 + (uint32_t)i, 1000 + (size_t)i * 20000);
    assert_int_equal(raw_put(r, b[0].sha, b[0].bytes, b[0].len, "image/jpeg", &res), 0);
    memset(w, 0, sizeof(w));
    for (int i = 0; i < N; i++)
        assert_non_null(
            raw_put_start(r, b[i].sha, b[i].bytes, b[i].len, "image/jpeg", on_done, &w[i]));
    struct raw_put *p = raw_put_start(r, gone.sha, gone.bytes, gone.len, "", on_done, &never);
    assert_non_null(p);
    raw_put_cancel(p);
    for (int i = 0; i < N; i++)
        assert_int_equal(w[i].calls, 0); /* never from inside raw_put_start */
    rig_run(&t, w, N, 20);
    for (int i = 0; i < N; i++) {
        assert_int_equal(w[i].calls, 1);
        if (w[i].res.status != RAW_OK)
            fail_msg("put %d: %s %s", i, w[i].res.reason, w[i].res.error);
        assert_int_equal(w[i].res.existed, i == 0);
        assert_true(w[i].res.ms > 0);
        int found;
        size_t len;
        unsigned char *got;
        assert_int_equal(raw_get(r, b[i].sha, &found, &got, &len, type, err, sizeof(err)), 0);
        assert_int_equal(found, 1);
        assert_int_equal(len, b[i].len);
        assert_memory_equal(got, b[i].bytes, len);
        free(got);
        blob_free(&b[i]);
    }
    struct waiter none = {0};
    rig_run(&t, &none, 1, 0.3); /* time for a wrongly delivered cancel to show */
    assert_int_equal(never.calls, 0);
    /* Cancelled while its request is on the multi, just before everything goes. */
    p = raw_put_start(r, gone.sha, gone.bytes, gone.len, "", on_done, &never);
    assert_non_null(p);
    raw_put_cancel(p);
    blob_free(&gone);
    raw_free(r);
    rig_down(&t);
    assert_int_equal(never.calls, 0);
}

/* fetch_engine_add on its own: done once per completion, the handle off the multi and the
 * caller's again (added anew from done), and an engine freed with one still in flight drops it
 * without a call. */
struct foreign {
    struct fetch_engine *e;
    int calls;
    CURLcode rc;
    long code;
};

static void foreign_done(CURL *easy, CURLcode rc, void *arg)
{
    struct foreign *f = arg;
    f->calls++;
    f->rc = rc;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &f->code);
    if (f->calls == 1) /* again, from inside done */
        assert_int_equal(fetch_engine_add(f->e, easy, foreign_done, f), 0);
}

static void test_engine_foreign_transfers(void **state)
{
    struct rig t;
    rig_up(&t);
    struct foreign f = {.e = t.e};
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s3.port);
    CURL *easy = curl_easy_init();
    assert_non_null(easy);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    assert_int_equal(fetch_engine_add(t.e, easy, foreign_done, &f), 0);
    assert_int_equal(fetch_active(t.e), 0); /* not the engine's own downloads */
    for (double end = tserver_now() + 10; f.calls < 2 && tserver_now() < end;)
        event_base_loop(t.base, EVLOOP_ONCE);
    assert_int_equal(f.calls, 2);
    assert_int_equal(f.rc, CURLE_OK);
    assert_true(f.code >= 200 && f.code < 500); /* an answer: unsigned, so a refusal */

    assert_int_equal(fetch_engine_add(t.e, easy, foreign_done, &f), 0);
    fetch_engine_remove(t.e, easy); /* taken off: no call */
    assert_int_equal(fetch_engine_add(t.e, easy, foreign_done, &f), 0);
    rig_down(&t); /* freed with it in flight: no call either */
    assert_int_equal(f.calls, 2);
    curl_easy_cleanup(easy);
}

/* ---- an S3 endpoint that answers from a script, for the statuses versitygw never gives ---- */

#define SCRIPT_MAX 8

static struct {
    int fd, port;
    pthread_t thread;
    const char *replies[SCRIPT_MAX]; /* "503 SlowDown", "404", "200": one per connection */
    int count, served;
    char methods[SCRIPT_MAX][8];
    int if_none_match[SCRIPT_MAX]; /* the request carried "If-None-Match: *" */
} script = {.fd = -1};

/* Reads one request (its body too, by Content-Length: bodies here are under 1 KiB, so curl sends
 * no Expect) and answers the next reply of the script, closing the connection. */
static void script_serve(int fd)
{
    char req[8192];
    size_t have = 0;
    char *end = NULL;
    while (end == NULL && have + 1 < sizeof(req)) {
        ssize_t n = read(fd, req + have, sizeof(req) - 1 - have);
        if (n <= 0)
            return;
        have += (size_t)n;
        req[have] = '\0';
        end = strstr(req, "\r\n\r\n");
    }
    const char *cl = strcasestr(req, "\r\ncontent-length:");
    size_t body = cl && cl < end ? (size_t)atol(cl + 17) : 0;
    for (size_t got = have - (size_t)(end + 4 - req); got < body;) {
        char sink[4096];
        ssize_t n = read(fd, sink, sizeof(sink));
        if (n <= 0)
            return;
        got += (size_t)n;
    }
    int i = script.served < script.count ? script.served : script.count - 1;
    snprintf(script.methods[i], sizeof(script.methods[i]), "%.*s", (int)strcspn(req, " "), req);
    const char *inm = strcasestr(req, "\r\nif-none-match: *\r\n");
    script.if_none_match[i] = inm != NULL && inm < end;
    script.served++;
    const char *reply = script.replies[i];
    char xml[256] = "", head[512];
    const char *code = strchr(reply, ' ');
    int status = atoi(reply);
    int is_head = strncmp(req, "HEAD ", 5) == 0;
    if (code && !is_head)
        snprintf(xml, sizeof(xml), "<Error><Code>%s</Code><Message>scripted</Message></Error>",
                 code + 1);
    snprintf(head, sizeof(head),
             "HTTP/1.1 %d Scripted\r\nContent-Type: application/xml\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             status, strlen(xml));
    if (write(fd, head, strlen(head)) < 0 || write(fd, xml, strlen(xml)) < 0)
        return;
}

static void *script_main(void *arg)
{
    for (;;) {
        int c = accept(script.fd, NULL, NULL);
        if (c < 0)
            return NULL; /* the listening socket was shut down */
        script_serve(c);
        close(c);
    }
}

static void script_start(const char **replies, int count)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    memset(script.methods, 0, sizeof(script.methods));
    memset(script.if_none_match, 0, sizeof(script.if_none_match));
    for (int i = 0; i < count; i++)
        script.replies[i] = replies[i];
    script.count = count;
    script.served = 0;
    script.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(script.fd >= 0);
    assert_int_equal(bind(script.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(script.fd, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(listen(script.fd, 16), 0);
    script.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&script.thread, NULL, script_main, NULL), 0);
}

static void script_stop(void)
{
    shutdown(script.fd, SHUT_RDWR);
    pthread_join(script.thread, NULL);
    close(script.fd);
    script.fd = -1;
}

static struct raw_store *script_store(const struct raw_loop *loop)
{
    struct raw_config c = s3_config(BUCKET, ACCESS, SECRET);
    char endpoint[64], err[256];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", script.port);
    c.endpoint = endpoint;
    struct raw_store *r = raw_new(&c, loop, err, sizeof(err));
    assert_non_null(r);
    return r;
}

/* SlowDown and 503 are tried again, with backoff, until the PUT goes through. */
static void test_s3_slow_down_then_ok(void **state)
{
    const char *replies[] = {"503 SlowDown", "503 ServiceUnavailable", "200"};
    struct blob b = blob_make(21, 500);
    struct raw_result res;
    script_start(replies, 3);
    struct raw_store *r = script_store(NULL);
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/png", &res), 0);
    assert_int_equal(res.existed, 0);
    assert_int_equal(res.tries, 2);
    assert_true(res.ms >= 300); /* at least 0.1 + 0.2 s of backoff */
    script_stop();
    assert_int_equal(script.served, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(script.methods[i], "PUT");
        assert_true(script.if_none_match[i]);
    }
    raw_free(r);
    blob_free(&b);
}

/* A new object is one conditional PUT. A 412 (the key is taken) is confirmed by a HEAD; when
 * the object went away meanwhile, or has another length, a plain PUT writes it whole. */
static void test_s3_conditional_put(void **state)
{
    const char *fresh[] = {"200"};
    const char *taken[] = {"412 PreconditionFailed", "404", "200"};
    struct blob b = blob_make(23, 700);
    struct raw_result res;

    script_start(fresh, 1);
    struct raw_store *r = script_store(NULL);
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/png", &res), 0);
    assert_int_equal(res.existed, 0);
    raw_free(r);
    script_stop();
    assert_int_equal(script.served, 1);
    assert_string_equal(script.methods[0], "PUT");
    assert_true(script.if_none_match[0]);

    script_start(taken, 3);
    r = script_store(NULL);
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/png", &res), 0);
    assert_int_equal(res.status, RAW_OK);
    assert_int_equal(res.existed, 0);
    assert_int_equal(res.tries, 0);
    raw_free(r);
    script_stop();
    assert_int_equal(script.served, 3);
    assert_string_equal(script.methods[0], "PUT");
    assert_string_equal(script.methods[1], "HEAD");
    assert_string_equal(script.methods[2], "PUT");
    assert_false(script.if_none_match[2]);
    blob_free(&b);
}

/* 500 forever and 429: transient after the retries, through the asynchronous path too; a 400 is
 * permanent at once. */
static void test_s3_errors_by_status(void **state)
{
    const char *err500[] = {"500 InternalError"};
    const char *err429[] = {"429"};
    const char *err400[] = {"400 InvalidRequest"};
    struct blob b = blob_make(22, 500);
    struct raw_result res;

    script_start(err500, 1);
    struct rig t;
    rig_up(&t);
    struct raw_store *r = script_store(&t.loop);
    struct waiter w = {0};
    assert_non_null(raw_put_start(r, b.sha, b.bytes, b.len, "", on_done, &w));
    rig_run(&t, &w, 1, 20);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.res.status, RAW_TRANSIENT);
    assert_string_equal(w.res.reason, "http_500");
    assert_int_equal(w.res.tries, 3);
    raw_free(r);
    rig_down(&t);
    script_stop();
    assert_int_equal(script.served, 4); /* the PUT, tried 3 times more */

    script_start(err429, 1);
    r = script_store(NULL);
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "", &res), -1);
    assert_int_equal(res.status, RAW_TRANSIENT);
    assert_string_equal(res.reason, "http_429");
    raw_free(r);
    script_stop();

    script_start(err400, 1);
    r = script_store(NULL);
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "", &res), -1);
    assert_int_equal(res.status, RAW_PERMANENT);
    assert_string_equal(res.reason, "http_400");
    assert_non_null(strstr(res.error, "InvalidRequest"));
    assert_int_equal(res.tries, 0);
    raw_free(r);
    script_stop();
    assert_int_equal(script.served, 1);
    blob_free(&b);
}

/* An HTTPS endpoint whose certificate only PIXFLOW_CA_FILE vouches for: with it the store
 * works (the file adds to the system's CAs), without it every request fails as "tls". */
static void test_s3_tls_ca_file(void **state)
{
    char tls[800], cert[900], key[900], cmd[3000], logf[900], data[900], bucket[1000], err[256];
    snprintf(tls, sizeof(tls), "%s/tls", top);
    snprintf(data, sizeof(data), "%s/data", tls);
    snprintf(bucket, sizeof(bucket), "%s/" BUCKET, data);
    snprintf(cert, sizeof(cert), "%s/cert.pem", tls);
    snprintf(key, sizeof(key), "%s/key.pem", tls);
    snprintf(logf, sizeof(logf), "%s/openssl.log", tls);
    /* versitygw serves a bucket made as a folder of its root */
    assert_int_equal(mkdir(tls, 0755), 0);
    assert_int_equal(mkdir(data, 0755), 0);
    assert_int_equal(mkdir(bucket, 0755), 0);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout '%s' -out '%s' -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 >'%s' 2>&1",
             key, cert, logf);
    if (system(cmd) != 0)
        fail_msg("openssl could not make a certificate; see %s", logf);
    struct tserver gw = {.pid = -1, .port = tserver_free_port()};
    snprintf(gw.log, sizeof(gw.log), "%s/versitygw.log", tls);
    assert_int_equal(tserver_start_s3(&gw, s3_bin, data, ACCESS, SECRET, cert, key), 0);

    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "https://127.0.0.1:%d", gw.port);
    struct raw_config c = s3_config(BUCKET, ACCESS, SECRET);
    c.endpoint = endpoint;
    c.ca_file = cert;
    struct raw_store *r = raw_new(&c, NULL, err, sizeof(err));
    assert_non_null(r);
    struct blob b = blob_make(19, 5000);
    struct raw_result res;
    if (raw_check(r, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/webp", &res), 0);
    assert_int_equal(res.existed, 0);
    raw_free(r);

    c.ca_file = NULL;
    r = raw_new(&c, NULL, err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(raw_check(r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot reach the S3 endpoint"));
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/webp", &res), -1);
    assert_int_equal(res.status, RAW_TRANSIENT);
    assert_string_equal(res.reason, "tls");
    raw_free(r);
    tserver_stop(&gw);
    blob_free(&b);
}

/* ---- files -------------------------------------------------------------------------------- */

static void make_dir(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", top, name);
    assert_int_equal(mkdir(buf, 0755), 0);
}

static void test_file_round_trip(void **state)
{
    char dir[900], path[1200], folder[1200], err[256], type[RAW_TYPE_MAX], loc[RAW_LOCATION_MAX];
    make_dir(dir, sizeof(dir), "files");
    struct raw_store *r = file_store(dir, "raw/v1", NULL);
    struct blob b = blob_make(10, 70000);
    struct raw_result res;
    assert_int_equal(raw_check(r, err, sizeof(err)), 0);
    assert_int_equal(count_named(dir, ".tmp-"), 0); /* the check's probe is gone */
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/jpeg", &res), 0);
    assert_int_equal(res.status, RAW_OK);
    assert_int_equal(res.existed, 0);
    snprintf(path, sizeof(path), "%s/raw/v1/%.2s/%s", dir, b.sha, b.sha);
    assert_file_bytes(path, &b);
    snprintf(folder, sizeof(folder), "%s/raw/v1/%.2s", dir, b.sha);
    assert_int_equal(count_named(folder, ".tmp-"), 0);
    assert_int_equal(count_named(folder, ""), 3); /* ".", ".." and the object */

    char want[1300];
    snprintf(want, sizeof(want), "file://%s", path);
    assert_string_equal(raw_location(r, b.sha, loc, sizeof(loc)), want);
    snprintf(want, sizeof(want), "file://%s/raw/v1", dir);
    assert_string_equal(raw_describe(r), want);

    int found;
    size_t len;
    unsigned char *got;
    assert_int_equal(raw_head(r, b.sha, &found, &len, err, sizeof(err)), 0);
    assert_int_equal(found, 1);
    assert_int_equal(len, b.len);
    assert_int_equal(raw_get(r, b.sha, &found, &got, &len, type, err, sizeof(err)), 0);
    assert_int_equal(found, 1);
    assert_int_equal(len, b.len);
    assert_memory_equal(got, b.bytes, len);
    assert_string_equal(type, "");
    free(got);

    /* Written once: the same bytes again leave the file alone. */
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/jpeg", &res), 0);
    assert_int_equal(res.existed, 1);
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);

    /* A file of another length under the name is replaced whole. */
    assert_int_equal(truncate(path, 10), 0);
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "image/jpeg", &res), 0);
    assert_int_equal(res.existed, 0);
    assert_file_bytes(path, &b);

    /* A missing object. */
    struct blob none = blob_make(11, 10);
    assert_int_equal(raw_head(r, none.sha, &found, &len, err, sizeof(err)), 0);
    assert_int_equal(found, 0);
    assert_int_equal(raw_get(r, none.sha, &found, &got, &len, type, err, sizeof(err)), 0);
    assert_int_equal(found, 0);
    blob_free(&none);
    blob_free(&b);
    raw_free(r);
}

/* A file where the directory should be: the check says so, a write is permanent. */
static void test_file_not_a_directory(void **state)
{
    char dir[900], err[256];
    snprintf(dir, sizeof(dir), "%s/plainfile", top);
    FILE *fp = fopen(dir, "w");
    assert_non_null(fp);
    fclose(fp);
    struct raw_store *r = file_store(dir, "", NULL);
    struct blob b = blob_make(12, 100);
    struct raw_result res;
    assert_int_equal(raw_check(r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is not a directory"));
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "", &res), -1);
    assert_int_equal(res.status, RAW_PERMANENT);
    assert_string_equal(res.reason, "no_dir");
    raw_free(r);

    snprintf(dir, sizeof(dir), "%s/missing", top);
    r = file_store(dir, "", NULL);
    assert_int_equal(raw_check(r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "", &res), -1);
    assert_string_equal(res.reason, "no_dir");
    blob_free(&b);
    raw_free(r);
}

/* A tmpfs of `size` (mount options) on a new folder of top; 0, or -1 (not root, or not allowed
 * in this sandbox) with the reason in why. */
static int tmpfs_mount(char *dir, size_t len, const char *name, const char *opts, char *why,
                       size_t whylen)
{
    snprintf(dir, len, "%s/%s", top, name);
    if (mkdir(dir, 0755) < 0) {
        snprintf(why, whylen, "mkdir %s: %s", dir, strerror(errno));
        return -1;
    }
    if (geteuid() != 0) {
        snprintf(why, whylen, "not root: cannot mount a tmpfs");
        return -1;
    }
    unsigned long flags = strstr(opts, "ro") == opts ? MS_RDONLY : 0;
    if (mount("tmpfs", dir, "tmpfs", flags, strchr(opts, ',') + 1) < 0) {
        snprintf(why, whylen, "mount tmpfs on %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static void test_file_read_only(void **state)
{
    char dir[900], why[300], err[256];
    if (tmpfs_mount(dir, sizeof(dir), "readonly", "ro,size=64k", why, sizeof(why)) < 0) {
        fprintf(stderr, "skipped: %s\n", why);
        skip();
    }
    struct raw_store *r = file_store(dir, "raw", NULL);
    struct blob b = blob_make(13, 100);
    struct raw_result res;
    assert_int_equal(raw_check(r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not writable"));
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "", &res), -1);
    assert_int_equal(res.status, RAW_PERMANENT);
    assert_string_equal(res.reason, "not_writable");
    umount(dir);
    blob_free(&b);
    raw_free(r);
}

/* A full disk: transient "no_space", nothing under the final name, no temporary file left, and
 * the check fails until the write would fit. */
static void test_file_full_disk(void **state)
{
    char dir[900], why[300], err[256], path[1200], folder[1200];
    if (tmpfs_mount(dir, sizeof(dir), "full", "rw,size=64k", why, sizeof(why)) < 0) {
        fprintf(stderr, "skipped: %s\n", why);
        skip();
    }
    struct raw_store *r = file_store(dir, "", NULL);
    struct blob small = blob_make(14, 16 * 1024), big = blob_make(15, 200 * 1024);
    struct raw_result res;
    assert_int_equal(raw_put(r, small.sha, small.bytes, small.len, "", &res), 0);
    assert_int_equal(raw_put(r, big.sha, big.bytes, big.len, "", &res), -1);
    assert_int_equal(res.status, RAW_TRANSIENT);
    assert_string_equal(res.reason, "no_space");
    snprintf(path, sizeof(path), "%s/%.2s/%s", dir, big.sha, big.sha);
    snprintf(folder, sizeof(folder), "%s/%.2s", dir, big.sha);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_named(folder, ".tmp-"), 0);
    assert_int_equal(raw_check(r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no space left"));
    /* Room again (the volume grows): the check passes and the write goes through. */
    assert_int_equal(mount("tmpfs", dir, "tmpfs", MS_REMOUNT, "size=1m"), 0);
    assert_int_equal(raw_check(r, err, sizeof(err)), 0);
    assert_int_equal(raw_put(r, big.sha, big.bytes, big.len, "", &res), 0);
    assert_file_bytes(path, &big);
    umount(dir);
    blob_free(&small);
    blob_free(&big);
    raw_free(r);
}

/* Writes on the pool, one cancelled while it may be running there. */
static void test_file_async(void **state)
{
    enum { N = 6 };
    char dir[900], path[1200];
    make_dir(dir, sizeof(dir), "async");
    struct rig t;
    rig_up(&t);
    struct raw_store *r = file_store(dir, "raw", &t.loop);
    struct blob b[N], gone = blob_make(299, 5000);
    struct waiter w[N], never = {0};
    memset(w, 0, sizeof(w));
    for (int i = 0; i < N; i++) {
        b[i] = blob_make(200 + (uint32_t)i, 3000 + (size_t)i * 10000);
        assert_non_null(
            raw_put_start(r, b[i].sha, b[i].bytes, b[i].len, "image/jpeg", on_done, &w[i]));
    }
    struct raw_put *p = raw_put_start(r, gone.sha, gone.bytes, gone.len, "", on_done, &never);
    assert_non_null(p);
    raw_put_cancel(p);
    blob_free(&gone); /* the write works on its own copy */
    rig_run(&t, w, N, 20);
    for (int i = 0; i < N; i++) {
        assert_int_equal(w[i].calls, 1);
        assert_int_equal(w[i].res.status, RAW_OK);
        snprintf(path, sizeof(path), "%s/raw/%.2s/%s", dir, b[i].sha, b[i].sha);
        assert_file_bytes(path, &b[i]);
        blob_free(&b[i]);
    }
    raw_free(r);
    rig_down(&t); /* the cancelled write's completion comes at the latest here */
    assert_int_equal(never.calls, 0);
}

/* ---- asynchronous reads (raw_get_start), both backends ------------------------------------ */

struct reader {
    struct waiter w;
    unsigned char *bytes;
    size_t len;
};

static void on_got(const struct raw_result *r, unsigned char *bytes, size_t len, void *arg)
{
    struct reader *rd = arg;
    rd->w.calls++;
    rd->w.res = *r;
    rd->bytes = bytes;
    rd->len = len;
}

/* Every object read back whole, a missing one permanent (original_missing), a cancelled read
 * never delivered, done never from inside raw_get_start. */
static void check_async_reads(struct rig *t, struct raw_store *r)
{
    enum { N = 4 };
    struct blob b[N], missing = blob_make(399, 10);
    struct reader rd[N + 1], never = {0};
    struct raw_result res;
    struct waiter *ws[N + 1];
    memset(rd, 0, sizeof(rd));
    for (int i = 0; i < N; i++) {
        b[i] = blob_make(300 + (uint32_t)i, 2000 + (size_t)i * 30000);
        assert_int_equal(raw_put(r, b[i].sha, b[i].bytes, b[i].len, "image/jpeg", &res), 0);
    }
    for (int i = 0; i <= N; i++)
        assert_non_null(raw_get_start(r, i < N ? b[i].sha : missing.sha, on_got, &rd[i]));
    raw_get_cancel(raw_get_start(r, b[0].sha, on_got, &never));
    assert_null(raw_get_start(r, "not-a-sha", on_got, &never));
    for (int i = 0; i <= N; i++) {
        assert_int_equal(rd[i].w.calls, 0);
        ws[i] = &rd[i].w;
    }
    double end = tserver_now() + 20;
    for (int i = 0; i <= N; i++)
        rig_run(t, ws[i], 1, end - tserver_now());
    for (int i = 0; i < N; i++) {
        assert_int_equal(rd[i].w.calls, 1);
        if (rd[i].w.res.status != RAW_OK)
            fail_msg("get %d: %s %s", i, rd[i].w.res.reason, rd[i].w.res.error);
        assert_int_equal(rd[i].len, b[i].len);
        assert_memory_equal(rd[i].bytes, b[i].bytes, b[i].len);
        free(rd[i].bytes);
        blob_free(&b[i]);
    }
    assert_int_equal(rd[N].w.calls, 1);
    assert_int_equal(rd[N].w.res.status, RAW_PERMANENT);
    assert_string_equal(rd[N].w.res.reason, "original_missing");
    assert_null(rd[N].bytes);
    struct waiter none = {0};
    rig_run(t, &none, 1, 0.3);
    assert_int_equal(never.w.calls, 0);
    blob_free(&missing);
}

static void test_s3_async_reads(void **state)
{
    struct rig t;
    rig_up(&t);
    struct raw_store *r = s3_store(BUCKET, ACCESS, SECRET, &t.loop);
    check_async_reads(&t, r);
    raw_free(r);
    rig_down(&t);
}

static void test_file_async_reads(void **state)
{
    char dir[900];
    make_dir(dir, sizeof(dir), "async-reads");
    struct rig t;
    rig_up(&t);
    struct raw_store *r = file_store(dir, "raw", &t.loop);
    check_async_reads(&t, r);
    raw_free(r);
    rig_down(&t); /* the cancelled read ends at the latest here, unseen */
}

/* A GET refused with 503 SlowDown is tried again on the loop's timer, then read. */
static void test_s3_async_read_retried(void **state)
{
    const char *replies[] = {"503 SlowDown", "200"};
    struct rig t;
    rig_up(&t);
    script_start(replies, 2);
    struct raw_store *r = script_store(&t.loop);
    struct blob b = blob_make(31, 10);
    struct reader rd = {0};
    assert_non_null(raw_get_start(r, b.sha, on_got, &rd));
    rig_run(&t, &rd.w, 1, 20);
    assert_int_equal(rd.w.calls, 1);
    assert_int_equal(rd.w.res.status, RAW_OK);
    assert_int_equal(rd.w.res.tries, 1);
    free(rd.bytes);
    raw_free(r);
    rig_down(&t);
    script_stop();
    assert_int_equal(script.served, 2);
    assert_string_equal(script.methods[1], "GET");
    blob_free(&b);
}

/* ---- outages (last: they stop the server) -------------------------------------------------- */

static void test_s3_server_stopped(void **state)
{
    struct blob kept = blob_make(16, 2000), b = blob_make(17, 2000);
    struct raw_store *r = s3_store(BUCKET, ACCESS, SECRET, NULL);
    struct raw_result res;
    char err[256];
    assert_int_equal(raw_put(r, kept.sha, kept.bytes, kept.len, "", &res), 0);
    tserver_stop(&s3);

    assert_int_equal(raw_check(r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot reach the S3 endpoint"));
    double t0 = tserver_now();
    assert_int_equal(raw_put(r, b.sha, b.bytes, b.len, "", &res), -1);
    assert_int_equal(res.status, RAW_TRANSIENT);
    assert_string_equal(res.reason, "connect");
    assert_int_equal(res.tries, 3);
    assert_true(tserver_now() - t0 >= 0.7); /* backoff: at least 0.1 + 0.2 + 0.4 s */
    raw_free(r);

    /* The asynchronous path: the same, after its retries, on the loop. */
    struct rig t;
    rig_up(&t);
    r = s3_store(BUCKET, ACCESS, SECRET, &t.loop);
    struct waiter w = {0};
    assert_non_null(raw_put_start(r, b.sha, b.bytes, b.len, "", on_done, &w));
    rig_run(&t, &w, 1, 20);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.res.status, RAW_TRANSIENT);
    assert_string_equal(w.res.reason, "connect");
    assert_int_equal(w.res.tries, 3);
    assert_true(w.res.ms >= 700);
    raw_free(r);
    rig_down(&t);

    /* Back, same port, same data: what was kept is there. */
    assert_int_equal(s3_start(), 0);
    r = s3_store(BUCKET, ACCESS, SECRET, NULL);
    int found;
    assert_int_equal(raw_check(r, err, sizeof(err)), 0);
    assert_int_equal(raw_head(r, kept.sha, &found, NULL, err, sizeof(err)), 0);
    assert_int_equal(found, 1);
    raw_free(r);
    blob_free(&kept);
    blob_free(&b);
}

static void restart_cb(evutil_socket_t fd, short what, void *arg)
{
    assert_int_equal(s3_start(), 0); /* blocks the loop meanwhile: the retry waits */
}

/* A write that fails while the server is down and succeeds on a retry once it is back. */
static void test_s3_async_recovers(void **state)
{
    struct rig t;
    rig_up(&t);
    struct raw_store *r = s3_store(BUCKET, ACCESS, SECRET, &t.loop);
    struct blob b = blob_make(18, 30000);
    struct waiter w = {0};
    tserver_stop(&s3);
    assert_non_null(raw_put_start(r, b.sha, b.bytes, b.len, "image/gif", on_done, &w));
    struct timeval soon = {0, 30 * 1000}; /* after the first refusal, before the first retry */
    assert_int_equal(event_base_once(t.base, -1, EV_TIMEOUT, restart_cb, NULL, &soon), 0);
    rig_run(&t, &w, 1, 20);
    assert_int_equal(w.calls, 1);
    if (w.res.status != RAW_OK)
        fail_msg("%s %s", w.res.reason, w.res.error);
    assert_true(w.res.tries >= 1);
    assert_int_equal(w.res.existed, 0);
    char path[1200];
    s3_object_path(BUCKET, b.sha, path, sizeof(path));
    assert_file_bytes(path, &b);
    blob_free(&b);
    raw_free(r);
    rig_down(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s3_check_and_names),
        cmocka_unit_test(test_s3_round_trip),
        cmocka_unit_test(test_s3_existed_writes_nothing),
        cmocka_unit_test(test_s3_conditional_put),
        cmocka_unit_test(test_s3_missing_object),
        cmocka_unit_test(test_s3_wrong_credentials),
        cmocka_unit_test(test_s3_no_bucket),
        cmocka_unit_test(test_s3_digest_is_checked),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_s3_async),
        cmocka_unit_test(test_engine_foreign_transfers),
        cmocka_unit_test(test_s3_slow_down_then_ok),
        cmocka_unit_test(test_s3_errors_by_status),
        cmocka_unit_test(test_s3_tls_ca_file),
        cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_file_not_a_directory),
        cmocka_unit_test(test_file_read_only),
        cmocka_unit_test(test_file_full_disk),
        cmocka_unit_test(test_file_async),
        cmocka_unit_test(test_s3_async_reads),
        cmocka_unit_test(test_file_async_reads),
        cmocka_unit_test(test_s3_async_read_retried),
        cmocka_unit_test(test_s3_server_stopped),
        cmocka_unit_test(test_s3_async_recovers),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
