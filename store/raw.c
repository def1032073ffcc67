/* raw.c -- the raw store's common part: the configuration checked and copied, keys and
 * locations, and the dispatch to a backend (raw_s3.c, raw_file.c) through raw_backend.h.
 *
 * The configuration is checked here again although settings.c checks it too: raw_new is the
 * one door to both backends, and a prefix that reached them unchecked could leave the directory
 * (`..`), or be rewritten by curl's dot-segment removal and break the S3 signature. */
#include "raw_backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double raw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void raw_set(struct raw_result *res, enum raw_status st, const char *reason, const char *fmt, ...)
{
    va_list ap;
    res->status = st;
    snprintf(res->reason, sizeof(res->reason), "%s", reason);
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof(res->error), fmt, ap);
    va_end(ap);
}

/* ---- checks ----------------------------------------------------------------------------- */

static int raw_sha_ok(const char *sha256)
{
    if (sha256 == NULL)
        return 0;
    for (int i = 0; i < RAW_SHA_HEX; i++)
        if (!((sha256[i] >= '0' && sha256[i] <= '9') || (sha256[i] >= 'a' && sha256[i] <= 'f')))
            return 0;
    return sha256[RAW_SHA_HEX] == '\0';
}

/* [a-z0-9/._-], no leading, trailing or double '/', and no "." or ".." segment. */
static int raw_prefix_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0)
        return 1;
    if (p[0] == '/' || p[n - 1] == '/' || strstr(p, "//"))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || strchr("/._-", ch)))
            return 0;
    }
    for (const char *seg = p; seg; seg = strchr(seg, '/') ? strchr(seg, '/') + 1 : NULL) {
        size_t len = strcspn(seg, "/");
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
    }
    return 1;
}

static int raw_bucket_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '.' ||
              b[i] == '-'))
            return 0;
    return 1;
}

static int raw_config_check(const struct raw_config *c, char *err, size_t errlen)
{
    if (c->kind != RAW_S3 && c->kind != RAW_FILE)
        snprintf(err, errlen, "no raw store configured (PIXFLOW_RAW_URL is empty)");
    else if (memchr(c->prefix, '\0', sizeof(c->prefix)) == NULL || !raw_prefix_ok(c->prefix))
        snprintf(err, errlen,
                 "raw store prefix '%.64s' must be made of [a-z0-9/._-], without leading, "
                 "trailing or double '/' and without '.' or '..' segments",
                 c->prefix);
    else if (c->kind == RAW_S3 &&
             (memchr(c->bucket, '\0', sizeof(c->bucket)) == NULL || !raw_bucket_ok(c->bucket)))
        snprintf(err, errlen, "S3 bucket '%.64s' must be 3 to 63 characters of [a-z0-9.-]",
                 c->bucket);
    else if (c->kind == RAW_FILE &&
             (memchr(c->dir, '\0', sizeof(c->dir)) == NULL || c->dir[0] != '/' ||
              (c->dir[1] && strchr(c->dir, '\0')[-1] == '/')))
        snprintf(err, errlen,
                 "raw store directory '%.64s' must be absolute, without a trailing '/'", c->dir);
    else
        return 0;
    return -1;
}

/* ---- the store -------------------------------------------------------------------------- */

static char *raw_strdup(const char *s)
{
    return strdup(s ? s : "");
}

struct raw_store *raw_new(const struct raw_config *c, const struct raw_loop *loop, char *err,
                          size_t errlen)
{
    if (raw_config_check(c, err, errlen) < 0)
        return NULL;
    struct raw_store *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->be = c->kind == RAW_S3 ? &raw_s3_backend : &raw_file_backend;
    r->c = *c;
    r->endpoint = raw_strdup(c->endpoint);
    r->region = raw_strdup(c->region && *c->region ? c->region : "us-east-1");
    r->access_key = raw_strdup(c->access_key);
    r->secret_key = raw_strdup(c->secret_key);
    r->session_token = raw_strdup(c->session_token);
    r->ca_file = raw_strdup(c->ca_file);
    if (!r->endpoint || !r->region || !r->access_key || !r->secret_key || !r->session_token ||
        !r->ca_file) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    r->c.endpoint = r->endpoint;
    r->c.region = r->region;
    r->c.access_key = r->access_key;
    r->c.secret_key = r->secret_key;
    r->c.session_token = r->session_token;
    r->c.ca_file = r->ca_file;
    if (loop) {
        r->loop = *loop;
        r->has_loop = 1;
    }
    if (r->be->init(r, err, errlen) < 0) {
        r->be = NULL; /* nothing of the backend's to free */
        goto err;
    }
    char root[RAW_LOCATION_MAX];
    r->be->root(r, root, sizeof(root));
    int n = snprintf(r->describe, sizeof(r->describe), "%s%s%s", root, r->c.prefix[0] ? "/" : "",
                     r->c.prefix);
    /* every location is the description and "/xx/<sha256>": it must fit */
    if (n < 0 || (size_t)n + 4 + RAW_SHA_HEX >= sizeof(r->describe)) {
        snprintf(err, errlen, "the raw store's directory and prefix are too long (%d bytes)", n);
        goto err;
    }
    return r;
err:
    raw_free(r);
    return NULL;
}

void raw_free(struct raw_store *r)
{
    if (r == NULL)
        return;
    if (r->be)
        r->be->free(r);
    free(r->endpoint);
    free(r->region);
    free(r->access_key);
    free(r->secret_key);
    free(r->session_token);
    free(r->ca_file);
    free(r);
}

int raw_check(struct raw_store *r, char *err, size_t errlen)
{
    return r->be->check(r, err, errlen);
}

static void raw_key(const struct raw_store *r, const char *sha256, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%.2s/%s", r->c.prefix, r->c.prefix[0] ? "/" : "", sha256, sha256);
}

const char *raw_location(const struct raw_store *r, const char *sha256, char *buf, size_t len)
{
    if (raw_sha_ok(sha256))
        snprintf(buf, len, "%s/%.2s/%s", r->describe, sha256, sha256);
    else if (len > 0)
        buf[0] = '\0'; /* no object can have that name */
    return buf;
}

const char *raw_describe(const struct raw_store *r)
{
    return r->describe;
}

/* ---- writes ----------------------------------------------------------------------------- */

/* Fills p from the arguments; 0, or -1 with p->res saying why (a bad sha256). */
static int raw_put_fill(struct raw_put *p, struct raw_store *r, const char *sha256,
                        const void *bytes, size_t len, const char *content_type)
{
    p->r = r;
    p->start_ms = raw_now_ms();
    if (!raw_sha_ok(sha256) || (bytes == NULL && len > 0)) {
        raw_set(&p->res, RAW_PERMANENT, "bad_argument",
                "a raw object needs its SHA-256 as 64 lowercase hex digits, and its bytes");
        return -1;
    }
    memcpy(p->sha256, sha256, RAW_SHA_HEX + 1);
    raw_key(r, sha256, p->key, sizeof(p->key));
    p->bytes = bytes;
    p->len = len;
    p->content_type = content_type ? content_type : "";
    return 0;
}

int raw_put(struct raw_store *r, const char *sha256, const void *bytes, size_t len,
            const char *content_type, struct raw_result *res)
{
    struct raw_put p;
    memset(&p, 0, sizeof(p));
    if (raw_put_fill(&p, r, sha256, bytes, len, content_type) == 0)
        r->be->put(&p);
    p.res.ms = raw_now_ms() - p.start_ms;
    *res = p.res;
    return res->status == RAW_OK ? 0 : -1;
}

struct raw_put *raw_put_start(struct raw_store *r, const char *sha256, const void *bytes,
                              size_t len, const char *content_type, raw_done_fn *done, void *arg)
{
    if (!r->has_loop || done == NULL || !raw_sha_ok(sha256) || (bytes == NULL && len > 0))
        return NULL;
    struct raw_put *p = calloc(1, r->be->put_size);
    if (p == NULL)
        return NULL;
    p->done = done;
    p->arg = arg;
    raw_put_fill(p, r, sha256, bytes, len, content_type);
    if (r->be->put_start(p) < 0) {
        free(p);
        return NULL;
    }
    return p;
}

void raw_put_cancel(struct raw_put *p)
{
    if (p)
        p->r->be->put_cancel(p);
}

void raw_put_deliver(struct raw_put *p)
{
    struct raw_result res = p->res;
    raw_done_fn *done = p->done;
    void *arg = p->arg;
    res.ms = raw_now_ms() - p->start_ms;
    free(p);
    done(&res, arg);
}

/* ---- reads ------------------------------------------------------------------------------ */

int raw_head(struct raw_store *r, const char *sha256, int *found, size_t *len, char *err,
             size_t errlen)
{
    char key[RAW_KEY_MAX];
    size_t ignored;
    *found = 0;
    if (!raw_sha_ok(sha256)) {
        snprintf(err, errlen, "a SHA-256 is 64 lowercase hex digits");
        return -1;
    }
    raw_key(r, sha256, key, sizeof(key));
    return r->be->head(r, key, found, len ? len : &ignored, err, errlen);
}

int raw_get(struct raw_store *r, const char *sha256, int *found, unsigned char **bytes, size_t *len,
            char *type, char *err, size_t errlen)
{
    char key[RAW_KEY_MAX], ignored[RAW_TYPE_MAX];
    *found = 0;
    *bytes = NULL;
    *len = 0;
    if (type)
        type[0] = '\0';
    if (!raw_sha_ok(sha256)) {
        snprintf(err, errlen, "a SHA-256 is 64 lowercase hex digits");
        return -1;
    }
    raw_key(r, sha256, key, sizeof(key));
    return r->be->get(r, key, found, bytes, len, type ? type : ignored, err, errlen);
}

/* ---- asynchronous reads ------------------------------------------------------------------- */

/* Without a backend's own asynchronous read, its blocking read runs on the loop's offload
 * thread (the worker's pool): a cancelled read still ends there, and its done frees it unseen. */
static void raw_get_work(void *arg)
{
    struct raw_get *g = arg;
    g->rc = raw_get(g->r, g->sha256, &g->found, &g->bytes, &g->len, NULL, g->err, sizeof(g->err));
}

void raw_get_deliver(struct raw_get *g, unsigned char *bytes, size_t len)
{
    struct raw_result res = g->res;
    raw_got_fn *done = g->done;
    void *arg = g->arg;
    res.ms = raw_now_ms() - g->start_ms;
    free(g);
    done(&res, bytes, len, arg);
}

static void raw_get_done(void *arg)
{
    struct raw_get *g = arg;
    if (g->cancelled) {
        free(g->bytes);
        free(g);
        return;
    }
    if (g->rc < 0)
        raw_set(&g->res, RAW_TRANSIENT, "read_failed", "%s", g->err);
    else if (!g->found)
        raw_set(&g->res, RAW_PERMANENT, "original_missing", "no object for %s", g->sha256);
    else
        raw_set(&g->res, RAW_OK, "ok", "%s", "");
    raw_get_deliver(g, g->rc == 0 && g->found ? g->bytes : NULL, g->len);
}

struct raw_get *raw_get_start(struct raw_store *r, const char *sha256, raw_got_fn *done, void *arg)
{
    int own = r->be->get_start != NULL;
    if (!r->has_loop || (!own && r->loop.offload == NULL) || done == NULL || !raw_sha_ok(sha256))
        return NULL;
    struct raw_get *g = calloc(1, own ? r->be->get_size : sizeof(*g));
    if (g == NULL)
        return NULL;
    g->r = r;
    memcpy(g->sha256, sha256, RAW_SHA_HEX + 1);
    raw_key(r, sha256, g->key, sizeof(g->key));
    g->done = done;
    g->arg = arg;
    g->start_ms = raw_now_ms();
    if (own ? r->be->get_start(g) < 0
            : r->loop.offload(r->loop.offload_ctx, raw_get_work, raw_get_done, g) < 0) {
        free(g);
        return NULL;
    }
    return g;
}

void raw_get_cancel(struct raw_get *g)
{
    if (g && g->r->be->get_cancel)
        g->r->be->get_cancel(g);
    else if (g)
        g->cancelled = 1;
}
