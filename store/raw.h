/* raw.h -- the raw store: every downloaded original, unchanged, under its SHA-256 (SPEC §5.9).
 *
 * One small interface, two backends, chosen by PIXFLOW_RAW_URL (settings.h parses it):
 *   s3://BUCKET[/PREFIX]   any S3-compatible server: path-style requests signed with SigV4 by
 *                          libcurl itself (raw_s3.c)
 *   file:///DIR            a directory on one machine or a shared volume: temporary name, fsync,
 *                          rename, so a crash never leaves half an object under its final name
 *                          (raw_file.c)
 * An object's key is `<prefix>/<first two hex digits>/<sha256>` (no prefix: `<xx>/<sha256>`); it
 * holds exactly the downloaded bytes (S3: with the source's Content-Type). Keys are made of
 * [0-9a-f/] and the prefix of [a-z0-9/._-] (settings.c checks it), which keeps clear of libcurl
 * 7.88's SigV4 limits (no query string to canonicalize, nothing to URI-encode).
 *
 * Two ways to drive it, like hiredis's one core and its adapters:
 *  - asynchronous, for the worker: raw_put_start on the loop thread. The S3 backend adds its
 *    transfers to the worker's own curl multi through the struct raw_loop the caller gives
 *    (the fetch engine's), and times its retries on the loop's event base; the file backend
 *    hands its blocking write to raw_loop.offload (the worker's pool). The loop never blocks.
 *  - blocking, for the CLIs, start-up checks and pool threads: raw_check, raw_head, raw_get,
 *    raw_put. Each call makes its own easy handle, so several threads may call at once.
 *
 * Errors follow the downloads' classes: RAW_TRANSIENT (connection, timeout, 5xx, 429, a
 * SlowDown; S3 is retried a few times with backoff first, 3 retries from 0.2 s doubling) is "try
 * again later", and so is a full disk ("no_space": room comes back when an operator frees some,
 * and raw_check fails until the write that failed would fit: raw_file.c says why); RAW_PERMANENT
 * (403 wrong credentials, 404 no such bucket, a directory missing or that cannot be written)
 * will not heal by itself. reason is a short stable code for counters and dead letters
 * (transient: "http_503", "http_429", "timeout", "connect", "dns", "tls", "network",
 * "no_space", "io", "internal"; permanent: "http_403", "no_bucket", "http_NNN", "no_dir",
 * "not_writable"), error the human detail. */
#ifndef PIXFLOW_RAW_H
#define PIXFLOW_RAW_H

#include <stddef.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "settings.h" /* struct raw_config: PIXFLOW_RAW_URL, PIXFLOW_S3_*, AWS_* */

#define RAW_REASON_MAX   32
#define RAW_LOCATION_MAX 1200
#define RAW_TYPE_MAX     128

enum raw_status { RAW_OK, RAW_TRANSIENT, RAW_PERMANENT };

struct raw_result {
    enum raw_status status;
    int existed;    /* RAW_OK: the object was already there (HEAD found it): nothing written */
    double ms;      /* raw_put_start to done, retries included */
    int tries;      /* requests that ended in an error and were tried again */
    char reason[RAW_REASON_MAX];
    char error[256];
};

/* Called on the loop thread, never from inside raw_put_start or raw_put_cancel. */
typedef void raw_done_fn(const struct raw_result *r, void *arg);

/* How the asynchronous path reaches the worker's loop. add() puts an easy handle on the
 * worker's curl multi and calls done (on the loop thread) once curl is finished with it, the
 * handle already removed from the multi; cancel() removes one not yet done (done not called).
 * offload() runs work on another thread and then done on the loop thread. */
struct raw_loop {
    struct event_base *base;
    int (*add)(void *ctx, CURL *easy, void (*done)(CURL *easy, CURLcode rc, void *arg),
               void *arg);
    void (*cancel)(void *ctx, CURL *easy);
    void *ctx;
    int (*offload)(void *ctx, void (*work)(void *arg), void (*done)(void *arg), void *arg);
    void *offload_ctx;
};

struct raw_store; /* the configuration and, for the asynchronous path, the loop */
struct raw_put;   /* one asynchronous write, from raw_put_start until done or raw_put_cancel */

/* No network I/O. `loop` may be NULL for a store used only through the blocking calls. The
 * strings in c need not outlive the call; *loop is copied. NULL with err set on failure. */
struct raw_store *raw_new(const struct raw_config *c, const struct raw_loop *loop, char *err,
                          size_t errlen);

/* Cancels nothing: every raw_put must be done or cancelled first. */
void raw_free(struct raw_store *r);

/* Blocking, at start: the bucket exists and answers these credentials (a HEAD of the bucket),
 * or the directory exists and a file can be created, fsynced and removed in it. 0, or -1 with
 * one line in err naming what is wrong (unreachable endpoint, no such bucket, access denied,
 * not a directory, not writable). Also what the worker's ping calls while entries wait for the
 * raw store. */
int raw_check(struct raw_store *r, char *err, size_t errlen);

/* Keep `len` bytes as the original `sha256` (64 lowercase hex digits, the SHA-256 of exactly
 * those bytes: S3 sends it as x-amz-content-sha256). Looks first (HEAD or stat) and writes
 * only when the object is missing (or holds another number of bytes). `bytes` and
 * `content_type` must stay valid until done or raw_put_cancel (the file backend works on a copy:
 * its write may still run on the pool after a cancel). NULL, and done never called, when out of
 * memory, without a loop, when the loop refuses the work, or for a sha256 that is not 64
 * lowercase hex digits (a caller's bug: it computes them). */
struct raw_put *raw_put_start(struct raw_store *r, const char *sha256, const void *bytes,
                              size_t len, const char *content_type, raw_done_fn *done, void *arg);

/* Abandon a write in flight (an S3 request is removed from the multi; a file write already on
 * the pool finishes there, its result unseen). done is not called afterwards. */
void raw_put_cancel(struct raw_put *p);

/* Blocking twin of raw_put_start, same semantics, result in *res: for the CLIs and tests. */
int raw_put(struct raw_store *r, const char *sha256, const void *bytes, size_t len,
            const char *content_type, struct raw_result *res);

/* Blocking: is the object there? *found 1 with its size in *len (may be NULL), or 0. */
int raw_head(struct raw_store *r, const char *sha256, int *found, size_t *len, char *err,
             size_t errlen);

/* Blocking: the object's bytes, malloc'd for the caller, and its Content-Type when the backend
 * keeps one (S3; "" for files) into type (RAW_TYPE_MAX bytes, may be NULL). *found 0 (and
 * *bytes NULL) when there is no such object. */
int raw_get(struct raw_store *r, const char *sha256, int *found, unsigned char **bytes,
            size_t *len, char *type, char *err, size_t errlen);

/* Asynchronous twin of raw_get, for the worker (on the loop thread), in the style of
 * raw_put_start: S3 sends its GET on the worker's curl multi (raw_loop.add; transient errors
 * retried with backoff on the loop's timers), the file backend runs its blocking read on
 * raw_loop.offload. done comes on the loop thread with the bytes, malloc'd, for the callee to
 * free (NULL unless RAW_OK). A missing object is RAW_PERMANENT "original_missing"; other
 * failures follow the classes above. NULL, and done never called, without a loop, out of
 * memory, or for a bad sha256. */
struct raw_get;
typedef void raw_got_fn(const struct raw_result *r, unsigned char *bytes, size_t len, void *arg);
struct raw_get *raw_get_start(struct raw_store *r, const char *sha256, raw_got_fn *done, void *arg);
/* done is not called afterwards; a read under way finishes on its thread and is dropped. */
void raw_get_cancel(struct raw_get *g);

/* Where the object lives, as `originals.raw` records it: "s3://BUCKET/PREFIX/ab/<sha256>" or
 * "file:///DIR/PREFIX/ab/<sha256>" (RAW_LOCATION_MAX bytes; "" for a sha256 that is not 64
 * lowercase hex digits). */
const char *raw_location(const struct raw_store *r, const char *sha256, char *buf, size_t len);

/* "s3://BUCKET/PREFIX" or "file:///DIR", for logs and the console. */
const char *raw_describe(const struct raw_store *r);

#endif
