/* raw_s3.c -- the raw store on any S3-compatible server, with libcurl alone.
 *
 * Path-style requests (ENDPOINT/BUCKET/KEY), signed by libcurl's own SigV4 (CURLOPT_AWS_SIGV4,
 * "aws:amz:REGION:s3"). Debian 12's libcurl is 7.88, whose signer has limits this file keeps
 * clear of:
 *  - it does not add x-amz-content-sha256 by itself (later versions do for s3), and S3 wants it
 *    on every request. It is sent here, and 7.88 signs the value given (that header, when
 *    present, is its payload hash). A PUT sends the object's real SHA-256, which is its key: the
 *    server checks the bytes it received against it. Other requests send the empty body's.
 *  - it signs every header of CURLOPT_HTTPHEADER, the "Expect:" that would remove curl's
 *    "Expect: 100-continue" included, although that header is then not sent (fixed in 8.3), and
 *    the signature breaks. So a PUT is made with POST's machinery and the "PUT" method: curl
 *    asks for "100 Continue" only past 1 MiB then, as AWS's own SDKs do past 2 MB, and most
 *    writes are one round trip.
 *  - it neither canonicalizes a query string nor URI-encodes the path: no request has a query,
 *    and keys are [a-z0-9/._-] without dot segments (raw.c).
 *
 * Write once, in one request when the object is new: a PUT with "If-None-Match: *", which S3,
 * MinIO, Ceph and versitygw refuse with 412 when the key exists. A 412 is then confirmed by a HEAD:
 * 200 with the same length is "existed"; 404 or another length (an object damaged or removed
 * meanwhile) is a plain PUT, written whole. A server that ignores the condition overwrites the same
 * bytes, which only undercounts raw_existing. Transient failures (connection, timeout, 5xx, 429,
 * 408, SlowDown, RequestTimeout) are tried again S3_RETRIES times with exponential backoff and
 * jitter, then reported. The blocking path sleeps between tries; the asynchronous one puts its
 * easy handle on the worker's multi through raw_loop.add and arms an evtimer on the loop's base.
 * Both decide with s3_step.
 *
 * The endpoint is the operator's: no address check (netguard is for sources), and a proxy from
 * the environment (https_proxy, no_proxy) applies as to any curl program. */
#include "raw_backend.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#define S3_CONNECT_TIMEOUT_MS 5000
#define S3_TOTAL_TIMEOUT_MS   60000 /* a GET or PUT of up to PIXFLOW_MAX_BYTES */
#define S3_HEAD_TIMEOUT_MS    10000 /* a HEAD moves no body: a server this slow is down */
#define S3_RETRIES            3
#define S3_BACKOFF_MS         200
#define S3_ERROR_BODY_MAX     4096 /* an error body is kept for its <Code> and <Message> */
#define S3_GET_MAX            ((size_t)1 << 31)
#define S3_EMPTY_SHA256       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3 {
    char base[600]; /* ENDPOINT/BUCKET */
    char sigv4[96]; /* "aws:amz:REGION:s3", "" to send unsigned requests */
    char user_agent[48];
};

enum s3_method { S3_HEAD, S3_GET, S3_PUT, S3_PUT_NEW /* a PUT with If-None-Match: * */ };

/* One request: its easy handle and what its callbacks fill. */
struct s3_req {
    CURL *easy;
    struct curl_slist *hdrs;
    unsigned char *body; /* response body, NUL-terminated, up to body_max bytes */
    size_t body_len, body_cap, body_max;
    int body_over; /* a GET body past body_max: the transfer was stopped */
    char errbuf[CURL_ERROR_SIZE];
};

/* A write: PUT_NEW, then HEAD and PUT when it finds the key taken, with its retries. */
struct s3_op {
    struct raw_put *p;
    enum s3_method phase; /* S3_PUT_NEW, S3_HEAD or S3_PUT */
    int retries;
    uint64_t rng; /* jitter */
    struct s3_req req;
};

struct s3_put {
    struct raw_put p; /* first */
    struct s3_op op;
    struct event *timer; /* the next try */
    int in_multi;
};

/* ---- one request ------------------------------------------------------------------------ */

static size_t s3_write_cb(char *data, size_t size, size_t n, void *userdata)
{
    struct s3_req *q = userdata;
    size_t len = size * n;
    if (q->body_len + len > q->body_max) {
        if (q->body_max > S3_ERROR_BODY_MAX) {
            q->body_over = 1;
            return 0;
        }
        len = q->body_max - q->body_len; /* the head of an error body is enough */
    }
    if (q->body_len + len + 1 > q->body_cap) {
        size_t cap = q->body_cap ? q->body_cap : 16 * 1024;
        while (cap < q->body_len + len + 1)
            cap *= 2;
        unsigned char *b = realloc(q->body, cap);
        if (b == NULL)
            return 0;
        q->body = b;
        q->body_cap = cap;
    }
    memcpy(q->body + q->body_len, data, len);
    q->body_len += len;
    q->body[q->body_len] = '\0';
    return size * n;
}

static CURLcode s3_ssl_ctx_cb(CURL *easy, void *ssl_ctx, void *userdata)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ssl_ctx);
    return X509_STORE_load_file(store, userdata) == 1 ? CURLE_OK : CURLE_SSL_CACERT_BADFILE;
}

static void s3_req_free(struct s3_req *q)
{
    if (q->easy)
        curl_easy_cleanup(q->easy);
    curl_slist_free_all(q->hdrs);
    free(q->body);
    memset(q, 0, sizeof(*q));
}

/* The Content-Type sent, from the source's: printable ASCII only (a hostile source's header
 * goes no further than this value), blanks trimmed and runs of them made one (the form SigV4
 * signs, so that signer and server cannot disagree on it), cut to fit; application/octet-stream
 * when nothing is left. */
static void s3_content_type(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    int blank = 0;
    for (; *in && n + 2 < outlen; in++) {
        unsigned char ch = (unsigned char)*in;
        if (ch == ' ' || ch == '\t') {
            blank = n > 0;
            continue;
        }
        if (ch < 0x21 || ch > 0x7e)
            continue;
        if (blank)
            out[n++] = ' ';
        blank = 0;
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    if (n == 0)
        snprintf(out, outlen, "application/octet-stream");
}

/* Sets q up for one request on `key` ("" for the bucket itself). A PUT sends `bytes` with
 * their SHA-256 and Content-Type. 0, or -1 when out of memory. */
static int s3_req_prepare(struct raw_store *r, struct s3_req *q, enum s3_method m, const char *key,
                          const char *sha256, const unsigned char *bytes, size_t len,
                          const char *content_type)
{
    struct s3 *s = r->impl;
    char url[sizeof(s->base) + RAW_KEY_MAX + 2], line[RAW_TYPE_MAX + 64];
    if (q->easy)
        curl_easy_reset(q->easy);
    else
        q->easy = curl_easy_init();
    curl_slist_free_all(q->hdrs);
    q->hdrs = NULL;
    q->body_len = 0;
    q->body_over = 0;
    q->body_max = m == S3_GET ? S3_GET_MAX : S3_ERROR_BODY_MAX;
    if (q->easy == NULL)
        return -1;

    int put = m == S3_PUT || m == S3_PUT_NEW;
    struct curl_slist *l;
    snprintf(line, sizeof(line), "x-amz-content-sha256: %s", put ? sha256 : S3_EMPTY_SHA256);
    l = curl_slist_append(NULL, line);
    if (l && put) {
        char type[RAW_TYPE_MAX];
        s3_content_type(content_type, type, sizeof(type));
        snprintf(line, sizeof(line), "Content-Type: %s", type);
        q->hdrs = l;
        l = curl_slist_append(l, line);
    }
    if (l && m == S3_PUT_NEW) {
        q->hdrs = l;
        l = curl_slist_append(l, "If-None-Match: *");
    }
    if (l && r->session_token[0]) {
        /* a header of any length: the token is not bounded by `line` */
        size_t n = strlen(r->session_token) + 32;
        char *tok = malloc(n);
        if (tok)
            snprintf(tok, n, "x-amz-security-token: %s", r->session_token);
        q->hdrs = l;
        l = tok ? curl_slist_append(l, tok) : NULL;
        free(tok);
    }
    if (l == NULL)
        return -1;
    q->hdrs = l;

    snprintf(url, sizeof(url), "%s%s%s", s->base, key[0] ? "/" : "", key);
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(q->easy, opt, val);                                              \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_ERRORBUFFER, q->errbuf);
    SET(CURLOPT_USERAGENT, s->user_agent);
    SET(CURLOPT_HTTPHEADER, q->hdrs);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)S3_CONNECT_TIMEOUT_MS);
    SET(CURLOPT_TIMEOUT_MS, (long)(m == S3_HEAD ? S3_HEAD_TIMEOUT_MS : S3_TOTAL_TIMEOUT_MS));
    SET(CURLOPT_WRITEFUNCTION, s3_write_cb);
    SET(CURLOPT_WRITEDATA, q);
    if (s->sigv4[0]) {
        SET(CURLOPT_AWS_SIGV4, s->sigv4);
        SET(CURLOPT_USERNAME, r->access_key);
        SET(CURLOPT_PASSWORD, r->secret_key);
    }
    if (r->ca_file[0]) {
        SET(CURLOPT_SSL_CTX_FUNCTION, s3_ssl_ctx_cb);
        SET(CURLOPT_SSL_CTX_DATA, r->ca_file);
    }
    if (m == S3_HEAD) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (put) {
        /* The body from memory, as a "PUT" with POST's machinery (see the top): the bytes are
         * sent in place, not copied, and again by curl itself when a reused connection was
         * closed under it. */
        SET(CURLOPT_CUSTOMREQUEST, "PUT");
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        SET(CURLOPT_POSTFIELDS, bytes ? (const char *)bytes : "");
    }
#undef SET
    q->errbuf[0] = '\0';
    return rc == CURLE_OK ? 0 : -1;
}

static long s3_code(struct s3_req *q)
{
    long code = 0;
    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

/* <NAME>value</NAME> of an S3 error body, "" when absent. */
static void s3_xml(const struct s3_req *q, const char *name, char *out, size_t outlen)
{
    char open[32], close[32];
    out[0] = '\0';
    if (q->body == NULL)
        return;
    snprintf(open, sizeof(open), "<%s>", name);
    snprintf(close, sizeof(close), "</%s>", name);
    const char *a = strstr((const char *)q->body, open);
    const char *b = a ? strstr(a, close) : NULL;
    if (b)
        snprintf(out, outlen, "%.*s", (int)(b - a - strlen(open)), a + strlen(open));
}

/* A refusal of these credentials: AWS answers 403 (InvalidAccessKeyId, SignatureDoesNotMatch,
 * AccessDenied), versitygw an unknown access key with 404 XAdminUserNotFound. Both count as
 * "http_403", the class the operator must act on. */
static int s3_refused(long code, const char *s3code)
{
    return code == 403 || strcmp(s3code, "InvalidAccessKeyId") == 0 ||
           strcmp(s3code, "XAdminUserNotFound") == 0 ||
           strcmp(s3code, "SignatureDoesNotMatch") == 0 || strcmp(s3code, "AccessDenied") == 0;
}

/* What a person should check after a refusal, from the S3 error code when the reply had one (a
 * HEAD's reply has no body). */
static const char *s3_why(long code, const char *s3code)
{
    if (strcmp(s3code, "InvalidAccessKeyId") == 0 || strcmp(s3code, "XAdminUserNotFound") == 0)
        return "unknown access key: wrong credentials (check AWS_ACCESS_KEY_ID)";
    if (strcmp(s3code, "SignatureDoesNotMatch") == 0)
        return "wrong secret key: wrong credentials (check AWS_SECRET_ACCESS_KEY)";
    if (strcmp(s3code, "RequestTimeTooSkewed") == 0)
        return "this machine's clock is too far from the server's";
    if (strcmp(s3code, "NoSuchBucket") == 0 || (code == 404 && !s3code[0]))
        return "no such bucket (create it first)";
    if (code == 301 || strcmp(s3code, "AuthorizationHeaderMalformed") == 0 ||
        strcmp(s3code, "PermanentRedirect") == 0)
        return "the bucket is in another region (check PIXFLOW_S3_REGION)";
    return "access denied: wrong credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or no "
           "permission on the bucket";
}

/* The result of a request that failed: rc from curl, or the HTTP status `code`. */
static void s3_fail(struct raw_store *r, struct s3_req *q, CURLcode rc, const char *what,
                    struct raw_result *res)
{
    struct s3 *s = r->impl;
    const char *detail = q->errbuf[0] ? q->errbuf : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_OK:
        break;
    case CURLE_OPERATION_TIMEDOUT:
        raw_set(res, RAW_TRANSIENT, "timeout", "%s: timed out: %s", what, detail);
        return;
    case CURLE_COULDNT_CONNECT:
        raw_set(res, RAW_TRANSIENT, "connect", "%s: cannot reach the S3 endpoint %s: %s", what,
                s->base, detail);
        return;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        raw_set(res, RAW_TRANSIENT, "dns", "%s: cannot resolve the S3 endpoint %s: %s", what,
                s->base, detail);
        return;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        raw_set(res, RAW_TRANSIENT, "tls", "%s: TLS with %s failed: %s", what, s->base, detail);
        return;
    default:
        raw_set(res, RAW_TRANSIENT, "network", "%s: %s", what, detail);
        return;
    }
    long code = s3_code(q);
    char s3code[64], message[160];
    s3_xml(q, "Code", s3code, sizeof(s3code));
    s3_xml(q, "Message", message, sizeof(message));
    if (code == 429 || code == 408 || (code >= 500 && code != 501 && code != 505) ||
        strcmp(s3code, "SlowDown") == 0 || strcmp(s3code, "RequestTimeout") == 0) {
        char reason[RAW_REASON_MAX];
        snprintf(reason, sizeof(reason), "http_%ld", code);
        raw_set(res, RAW_TRANSIENT, reason, "%s: HTTP %ld %s %s", what, code, s3code, message);
    } else if (s3_refused(code, s3code)) {
        raw_set(res, RAW_PERMANENT, "http_403", "%s: %s (HTTP %ld%s%s)", what, s3_why(code, s3code),
                code, s3code[0] ? " " : "", s3code);
    } else if (code == 404) {
        raw_set(res, RAW_PERMANENT, "no_bucket", "%s: no such bucket '%s' at %s (HTTP 404 %s)",
                what, r->c.bucket, s->base, s3code);
    } else {
        char reason[RAW_REASON_MAX];
        snprintf(reason, sizeof(reason), "http_%ld", code);
        raw_set(res, RAW_PERMANENT, reason, "%s: HTTP %ld %s %s", what, code, s3code, message);
    }
}

/* ---- writes: the decision shared by both paths ------------------------------------------ */

enum s3_next { S3_DONE, S3_AGAIN, S3_SEND };

static int s3_op_prepare(struct s3_op *op)
{
    struct raw_put *p = op->p;
    if (op->phase == S3_HEAD)
        return s3_req_prepare(p->r, &op->req, S3_HEAD, p->key, NULL, NULL, 0, "");
    return s3_req_prepare(p->r, &op->req, op->phase, p->key, p->sha256, p->bytes, p->len,
                          p->content_type);
}

static long s3_backoff(struct s3_op *op)
{
    op->rng ^= op->rng << 13; /* xorshift64: jitter needs no better */
    op->rng ^= op->rng >> 7;
    op->rng ^= op->rng << 17;
    long delay = (long)S3_BACKOFF_MS << op->retries;
    return delay / 2 + (long)(op->rng % (uint64_t)delay); /* [delay/2, 3*delay/2) */
}

/* A request of op ended with rc: done, again after *delay_ms, or send the next phase. */
static enum s3_next s3_step(struct s3_op *op, CURLcode rc, long *delay_ms)
{
    struct raw_put *p = op->p;
    struct raw_result *res = &p->res;
    long code = rc == CURLE_OK ? s3_code(&op->req) : 0;
    if (rc == CURLE_OK && op->phase == S3_PUT_NEW && code == 412) {
        op->phase = S3_HEAD; /* the key is taken: by these bytes, unless damaged */
        return S3_SEND;
    }
    if (rc == CURLE_OK && op->phase == S3_HEAD && (code == 200 || code == 404)) {
        curl_off_t have = -1;
        curl_easy_getinfo(op->req.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &have);
        if (code == 200 && have == (curl_off_t)p->len) {
            raw_set(res, RAW_OK, "ok", "%s", "");
            res->existed = 1;
            return S3_DONE;
        }
        op->phase = S3_PUT; /* missing, or another length: (re)written whole */
        return S3_SEND;
    }
    if (rc == CURLE_OK && op->phase != S3_HEAD && code >= 200 && code < 300) {
        raw_set(res, RAW_OK, "ok", "%s", "");
        res->existed = 0;
        return S3_DONE;
    }
    char what[RAW_KEY_MAX + 16];
    snprintf(what, sizeof(what), "%s %s", op->phase == S3_HEAD ? "HEAD" : "PUT", p->key);
    s3_fail(p->r, &op->req, rc, what, res);
    if (res->status != RAW_TRANSIENT || op->retries >= S3_RETRIES)
        return S3_DONE;
    *delay_ms = s3_backoff(op);
    res->tries = ++op->retries;
    return S3_AGAIN;
}

static void s3_op_init(struct s3_op *op, struct raw_put *p)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    op->p = p;
    op->phase = S3_PUT_NEW;
    op->rng = ((uint64_t)(uintptr_t)op ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32)) | 1;
}

static void s3_put(struct raw_put *p)
{
    struct s3_op op;
    memset(&op, 0, sizeof(op));
    s3_op_init(&op, p);
    for (;;) {
        long delay = 0;
        if (s3_op_prepare(&op) < 0) {
            raw_set(&p->res, RAW_TRANSIENT, "internal", "cannot set up an S3 request");
            break;
        }
        enum s3_next next = s3_step(&op, curl_easy_perform(op.req.easy), &delay);
        if (next == S3_DONE)
            break;
        if (next == S3_AGAIN) {
            struct timespec ts = {.tv_sec = delay / 1000, .tv_nsec = (delay % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    s3_req_free(&op.req);
}

/* ---- asynchronous writes ---------------------------------------------------------------- */

static void s3_put_release(struct s3_put *sp)
{
    const struct raw_loop *loop = &sp->p.r->loop;
    if (sp->in_multi)
        loop->cancel(loop->ctx, sp->op.req.easy);
    sp->in_multi = 0;
    if (sp->timer)
        event_free(sp->timer);
    sp->timer = NULL;
    s3_req_free(&sp->op.req);
}

static void s3_put_end(struct s3_put *sp)
{
    s3_put_release(sp);
    raw_put_deliver(&sp->p);
}

static void s3_put_done_cb(CURL *easy, CURLcode rc, void *arg);

static int s3_put_send(struct s3_put *sp)
{
    const struct raw_loop *loop = &sp->p.r->loop;
    if (s3_op_prepare(&sp->op) < 0 || loop->add(loop->ctx, sp->op.req.easy, s3_put_done_cb, sp) < 0)
        return -1;
    sp->in_multi = 1;
    return 0;
}

/* After the start, every request ends here or in s3_put_timer_cb: done may be called. */
static void s3_put_next(struct s3_put *sp, enum s3_next next, long delay_ms)
{
    if (next == S3_AGAIN) {
        struct timeval tv = {.tv_sec = delay_ms / 1000, .tv_usec = (delay_ms % 1000) * 1000};
        if (evtimer_add(sp->timer, &tv) == 0)
            return;
        raw_set(&sp->p.res, RAW_TRANSIENT, "internal", "cannot arm the retry timer");
    } else if (next == S3_SEND) {
        if (s3_put_send(sp) == 0)
            return;
        raw_set(&sp->p.res, RAW_TRANSIENT, "internal", "cannot start an S3 request");
    }
    s3_put_end(sp);
}

static void s3_put_done_cb(CURL *easy, CURLcode rc, void *arg)
{
    struct s3_put *sp = arg;
    long delay = 0;
    sp->in_multi = 0;
    enum s3_next next = s3_step(&sp->op, rc, &delay);
    s3_put_next(sp, next, delay);
}

static void s3_put_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    s3_put_next(arg, S3_SEND, 0);
}

static int s3_put_start(struct raw_put *p)
{
    struct s3_put *sp = (struct s3_put *)p;
    const struct raw_loop *loop = &p->r->loop;
    if (loop->base == NULL || loop->add == NULL || loop->cancel == NULL)
        return -1;
    s3_op_init(&sp->op, p);
    sp->timer = evtimer_new(loop->base, s3_put_timer_cb, sp);
    if (sp->timer == NULL || s3_put_send(sp) < 0) {
        s3_put_release(sp);
        return -1;
    }
    return 0;
}

static void s3_put_cancel(struct raw_put *p)
{
    s3_put_release((struct s3_put *)p);
    free(p);
}

/* ---- asynchronous reads: a GET on the worker's multi, retried like a write ------------- */

struct s3_get {
    struct raw_get g; /* first */
    struct s3_op op;  /* its request, retries and jitter (op.p unused) */
    struct event *timer;
    int in_multi;
};

static void s3_get_release(struct s3_get *sg)
{
    const struct raw_loop *loop = &sg->g.r->loop;
    if (sg->in_multi)
        loop->cancel(loop->ctx, sg->op.req.easy);
    sg->in_multi = 0;
    if (sg->timer)
        event_free(sg->timer);
    sg->timer = NULL;
}

static void s3_get_done_cb(CURL *easy, CURLcode rc, void *arg);

static int s3_get_send(struct s3_get *sg)
{
    const struct raw_loop *loop = &sg->g.r->loop;
    if (s3_req_prepare(sg->g.r, &sg->op.req, S3_GET, sg->g.key, NULL, NULL, 0, "") < 0 ||
        loop->add(loop->ctx, sg->op.req.easy, s3_get_done_cb, sg) < 0)
        return -1;
    sg->in_multi = 1;
    return 0;
}

static void s3_get_end(struct s3_get *sg, unsigned char *bytes, size_t len)
{
    s3_get_release(sg);
    s3_req_free(&sg->op.req);
    raw_get_deliver(&sg->g, bytes, len);
}

static void s3_get_done_cb(CURL *easy, CURLcode rc, void *arg)
{
    struct s3_get *sg = arg;
    struct s3_req *q = &sg->op.req;
    struct raw_result *res = &sg->g.res;
    char s3code[64], what[RAW_KEY_MAX + 16];
    sg->in_multi = 0;
    long code = rc == CURLE_OK ? s3_code(q) : 0;
    s3_xml(q, "Code", s3code, sizeof(s3code));
    if (code == 200) {
        unsigned char *bytes = q->body ? q->body : calloc(1, 1); /* empty is still an object */
        size_t len = q->body_len;
        q->body = NULL;
        if (bytes == NULL)
            raw_set(res, RAW_TRANSIENT, "internal", "out of memory");
        else
            raw_set(res, RAW_OK, "ok", "%s", "");
        s3_get_end(sg, bytes, len);
        return;
    }
    if (code == 404 && (!s3code[0] || strcmp(s3code, "NoSuchKey") == 0)) {
        raw_set(res, RAW_PERMANENT, "original_missing", "GET %s: no such object", sg->g.key);
    } else if (rc == CURLE_WRITE_ERROR && q->body_over) {
        raw_set(res, RAW_PERMANENT, "too_large", "GET %s: larger than %zu bytes", sg->g.key,
                S3_GET_MAX);
    } else {
        snprintf(what, sizeof(what), "GET %s", sg->g.key);
        s3_fail(sg->g.r, q, rc, what, res);
        if (res->status == RAW_TRANSIENT && sg->op.retries < S3_RETRIES) {
            long delay = s3_backoff(&sg->op);
            struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
            res->tries = ++sg->op.retries;
            if (evtimer_add(sg->timer, &tv) == 0)
                return;
        }
    }
    s3_get_end(sg, NULL, 0);
}

static void s3_get_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct s3_get *sg = arg;
    if (s3_get_send(sg) < 0) {
        raw_set(&sg->g.res, RAW_TRANSIENT, "internal", "cannot start an S3 request");
        s3_get_end(sg, NULL, 0);
    }
}

static int s3_get_start(struct raw_get *g)
{
    struct s3_get *sg = (struct s3_get *)g;
    const struct raw_loop *loop = &g->r->loop;
    if (loop->base == NULL || loop->add == NULL || loop->cancel == NULL)
        return -1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sg->op.rng = ((uint64_t)(uintptr_t)sg ^ (uint64_t)ts.tv_nsec) | 1;
    sg->timer = evtimer_new(loop->base, s3_get_timer_cb, sg);
    if (sg->timer == NULL || s3_get_send(sg) < 0) {
        s3_get_release(sg);
        s3_req_free(&sg->op.req);
        return -1;
    }
    return 0;
}

static void s3_get_cancel(struct raw_get *g)
{
    struct s3_get *sg = (struct s3_get *)g;
    s3_get_release(sg);
    s3_req_free(&sg->op.req);
    free(g);
}

/* ---- blocking reads and the check ------------------------------------------------------- */

/* One blocking request; its status in *code (0 when curl failed: rc says why). */
static CURLcode s3_perform(struct raw_store *r, struct s3_req *q, enum s3_method m, const char *key,
                           long *code)
{
    *code = 0;
    if (s3_req_prepare(r, q, m, key, NULL, NULL, 0, "") < 0)
        return CURLE_OUT_OF_MEMORY;
    CURLcode rc = curl_easy_perform(q->easy);
    if (rc == CURLE_OK)
        *code = s3_code(q);
    return rc;
}

/* A HEAD of the bucket; when refused, a GET of a key no object has (not 64 hex digits) tells
 * why: a HEAD's reply has no body, and versitygw answers even an unknown access key with 404. */
static int s3_check(struct raw_store *r, char *err, size_t errlen)
{
    struct s3 *s = r->impl;
    struct s3_req q;
    long code;
    char s3code[64] = "", key[RAW_KEY_MAX];
    memset(&q, 0, sizeof(q));
    CURLcode rc = s3_perform(r, &q, S3_HEAD, "", &code);
    if (rc == CURLE_OK && code != 200 && code < 500) {
        snprintf(key, sizeof(key), "%s%scheck", r->c.prefix, r->c.prefix[0] ? "/" : "");
        if (s3_perform(r, &q, S3_GET, key, &code) == CURLE_OK) {
            s3_xml(&q, "Code", s3code, sizeof(s3code));
            if (code == 404 && strcmp(s3code, "NoSuchKey") == 0)
                code = 200; /* the bucket answers: the HEAD's refusal was of the bucket alone */
        }
    }
    int ok = -1;
    if (rc != CURLE_OK)
        snprintf(err, errlen, "cannot reach the S3 endpoint %s: %s", s->base,
                 q.errbuf[0] ? q.errbuf : curl_easy_strerror(rc));
    else if (code == 200)
        ok = 0;
    else if (!s->sigv4[0] && (code == 403 || code == 404))
        snprintf(err, errlen,
                 "bucket '%s' at %s refused an unsigned request (HTTP %ld %s): no credentials "
                 "given (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
                 r->c.bucket, s->base, code, s3code);
    else if (s3_refused(code, s3code) || code == 404 || code == 301 || code == 400)
        snprintf(err, errlen, "bucket '%s' at %s: %s (HTTP %ld%s%s)", r->c.bucket, s->base,
                 s3_why(code, s3code), code, s3code[0] ? " " : "", s3code);
    else
        snprintf(err, errlen, "the S3 endpoint %s answered HTTP %ld %s for bucket '%s'", s->base,
                 code, s3code, r->c.bucket);
    s3_req_free(&q);
    return ok;
}

/* A blocking read that failed: the same words as a write's failure, into err. -1. */
static int s3_read_failed(struct raw_store *r, struct s3_req *q, CURLcode rc, const char *method,
                          const char *key, char *err, size_t errlen)
{
    struct raw_result res;
    char what[RAW_KEY_MAX + 16];
    snprintf(what, sizeof(what), "%s %s", method, key);
    memset(&res, 0, sizeof(res));
    s3_fail(r, q, rc, what, &res);
    snprintf(err, errlen, "%s", res.error);
    return -1;
}

static int s3_get(struct raw_store *r, const char *key, int *found, unsigned char **bytes,
                  size_t *len, char *type, char *err, size_t errlen)
{
    struct s3_req q;
    long code;
    char s3code[64];
    memset(&q, 0, sizeof(q));
    CURLcode rc = s3_perform(r, &q, S3_GET, key, &code);
    int ok = 0;
    s3_xml(&q, "Code", s3code, sizeof(s3code));
    if (rc == CURLE_OK && code == 200) {
        const char *ct = NULL;
        curl_easy_getinfo(q.easy, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(type, RAW_TYPE_MAX, "%s", ct ? ct : "");
        if (q.body == NULL)
            q.body = calloc(1, 1); /* an empty object is still an object */
        if (q.body == NULL) {
            snprintf(err, errlen, "out of memory");
            ok = -1;
        } else {
            *found = 1;
            *bytes = q.body;
            *len = q.body_len;
            q.body = NULL;
        }
    } else if (rc == CURLE_WRITE_ERROR && q.body_over) {
        snprintf(err, errlen, "GET %s: the object is larger than %zu bytes", key, S3_GET_MAX);
        ok = -1;
    } else if (!(rc == CURLE_OK && code == 404 && (!s3code[0] || !strcmp(s3code, "NoSuchKey")))) {
        ok = s3_read_failed(r, &q, rc, "GET", key, err, errlen);
    }
    s3_req_free(&q);
    return ok;
}

static int s3_head(struct raw_store *r, const char *key, int *found, size_t *len, char *err,
                   size_t errlen)
{
    struct s3_req q;
    long code;
    memset(&q, 0, sizeof(q));
    CURLcode rc = s3_perform(r, &q, S3_HEAD, key, &code);
    int ok = 0;
    *found = 0;
    *len = 0;
    if (rc == CURLE_OK && code == 200) {
        curl_off_t have = 0;
        curl_easy_getinfo(q.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &have);
        *found = 1;
        *len = have > 0 ? (size_t)have : 0;
    } else if (rc == CURLE_OK && code == 404) {
        /* A HEAD's 404 has no body to tell a missing key from a missing bucket or an unknown
         * access key (versitygw answers one so): a GET's error says. Only missing objects pay
         * for it. */
        unsigned char *bytes = NULL;
        char type[RAW_TYPE_MAX];
        ok = s3_get(r, key, found, &bytes, len, type, err, errlen);
        free(bytes);
    } else {
        ok = s3_read_failed(r, &q, rc, "HEAD", key, err, errlen);
    }
    s3_req_free(&q);
    return ok;
}

/* ---- the backend ------------------------------------------------------------------------ */

static int s3_init(struct raw_store *r, char *err, size_t errlen)
{
    const char *ep = r->endpoint;
    if (ep[0] && strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) {
        snprintf(err, errlen, "PIXFLOW_S3_ENDPOINT '%.100s' must start with http:// or https://",
                 ep);
        return -1;
    }
    if (strpbrk(ep, "?# ") || strlen(ep) > 400) {
        snprintf(err, errlen,
                 "PIXFLOW_S3_ENDPOINT '%.100s' must be a scheme, host, port and "
                 "optional path, at most 400 characters",
                 ep);
        return -1;
    }
    for (const char *c = r->region; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-') ||
            c - r->region > 40) {
            snprintf(err, errlen, "PIXFLOW_S3_REGION '%.60s' must be [a-z0-9-]", r->region);
            return -1;
        }
    if ((r->access_key[0] == '\0') != (r->secret_key[0] == '\0')) {
        snprintf(err, errlen,
                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together: one is "
                 "empty");
        return -1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) { /* paired with s3_free's cleanup */
        snprintf(err, errlen, "curl_global_init failed");
        return -1;
    }
    struct s3 *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        curl_global_cleanup();
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (ep[0]) {
        size_t n = strlen(ep);
        while (n > 0 && ep[n - 1] == '/')
            n--;
        snprintf(s->base, sizeof(s->base), "%.*s/%s", (int)n, ep, r->c.bucket);
    } else {
        snprintf(s->base, sizeof(s->base), "https://s3.%s.amazonaws.com/%s", r->region,
                 r->c.bucket);
    }
    if (r->access_key[0])
        snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3", r->region);
    snprintf(s->user_agent, sizeof(s->user_agent), "pixflow/%s", PIXFLOW_VERSION);
    r->impl = s;
    return 0;
}

static void s3_free(struct raw_store *r)
{
    free(r->impl);
    curl_global_cleanup();
}

static void s3_root(const struct raw_store *r, char *buf, size_t len)
{
    snprintf(buf, len, "s3://%s", r->c.bucket);
}

const struct raw_backend raw_s3_backend = {
    .put_size = sizeof(struct s3_put),
    .init = s3_init,
    .free = s3_free,
    .check = s3_check,
    .put = s3_put,
    .head = s3_head,
    .get = s3_get,
    .put_start = s3_put_start,
    .put_cancel = s3_put_cancel,
    .get_size = sizeof(struct s3_get),
    .get_start = s3_get_start,
    .get_cancel = s3_get_cancel,
    .root = s3_root,
};
