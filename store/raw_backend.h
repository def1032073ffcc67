/* raw_backend.h -- what raw.c shares with its backends (raw_s3.c, raw_file.c); not for callers.
 *
 * raw.c owns what every backend needs alike (the configuration copied, argument checks, key
 * naming, locations, delivering a result) and dispatches the rest through one table of functions
 * per backend, the way hiredis keeps one adapter per event loop. Keys reach a backend already
 * checked: `<prefix>/<xx>/<sha256>`, made of [a-z0-9/._-] only. */
#ifndef PIXFLOW_RAW_BACKEND_H
#define PIXFLOW_RAW_BACKEND_H

#include <stdarg.h>
#include <stddef.h>

#include "raw.h"

#define RAW_SHA_HEX 64
#define RAW_KEY_MAX (sizeof(((struct raw_config *)0)->prefix) + RAW_SHA_HEX + 8)

struct raw_backend;

struct raw_store {
    const struct raw_backend *be;
    struct raw_config c; /* its strings point at the copies below (never NULL) */
    char *endpoint, *region, *access_key, *secret_key, *session_token, *ca_file;
    struct raw_loop loop;
    int has_loop;
    char describe[RAW_LOCATION_MAX];
    void *impl; /* the backend's own state */
};

/* One asynchronous write. A backend allocates be->put_size bytes with this struct first; raw.c
 * fills it, the backend runs it and ends it with raw_put_deliver (which frees it) or, when
 * cancelled, frees it itself. */
struct raw_put {
    struct raw_store *r;
    char sha256[RAW_SHA_HEX + 1];
    char key[RAW_KEY_MAX];
    const unsigned char *bytes;
    size_t len;
    const char *content_type; /* never NULL */
    raw_done_fn *done;
    void *arg;
    double start_ms;
    struct raw_result res;
};

/* One asynchronous read (raw_get_start). With a backend's get_start, the backend allocates
 * be->get_size bytes with this struct first and ends it with raw_get_deliver; without one, raw.c
 * runs the backend's blocking get on raw_loop.offload. */
struct raw_get {
    struct raw_store *r;
    char sha256[RAW_SHA_HEX + 1];
    char key[RAW_KEY_MAX];
    raw_got_fn *done;
    void *arg;
    double start_ms;
    struct raw_result res;
    /* the offload path: cancelled while its blocking read runs, and that read's results */
    int cancelled, rc, found;
    unsigned char *bytes;
    size_t len;
    char err[256];
};

struct raw_backend {
    size_t put_size; /* bytes of the backend's put, struct raw_put first */
    size_t get_size; /* bytes of the backend's get, struct raw_get first (with get_start) */
    /* After the configuration is copied: the backend's own state in r->impl. No I/O. */
    int (*init)(struct raw_store *r, char *err, size_t errlen);
    void (*free)(struct raw_store *r);
    int (*check)(struct raw_store *r, char *err, size_t errlen);
    /* Blocking write of p (p->done unused): the result in p->res. */
    void (*put)(struct raw_put *p);
    int (*head)(struct raw_store *r, const char *key, int *found, size_t *len, char *err,
                size_t errlen);
    int (*get)(struct raw_store *r, const char *key, int *found, unsigned char **bytes, size_t *len,
               char *type, char *err, size_t errlen);
    /* Asynchronous: 0 once p is under way (it ends in raw_put_deliver, never from here), or -1
     * when it could not start (raw.c frees p). */
    int (*put_start)(struct raw_put *p);
    void (*put_cancel)(struct raw_put *p);
    /* Asynchronous read, optional (NULL: the blocking get on the offload thread): 0 once g is
     * under way (it ends in raw_get_deliver, never from here), or -1 (raw.c frees g). */
    int (*get_start)(struct raw_get *g);
    void (*get_cancel)(struct raw_get *g); /* frees g; done is not called */
    /* "s3://BUCKET" or "file:///DIR": what a location starts with. */
    void (*root)(const struct raw_store *r, char *buf, size_t len);
};

extern const struct raw_backend raw_s3_backend;
extern const struct raw_backend raw_file_backend;

double raw_now_ms(void);

/* Sets res's status, reason and error (printf-style). */
void raw_set(struct raw_result *res, enum raw_status st, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The end of an asynchronous write: fills res->ms, frees p, then calls its done. The backend has
 * released everything else of p before. */
void raw_put_deliver(struct raw_put *p);

/* The end of an asynchronous read: g->res says how it went, bytes (malloc'd, NULL unless
 * RAW_OK) go to done with len; frees g first. */
void raw_get_deliver(struct raw_get *g, unsigned char *bytes, size_t len);

#endif
