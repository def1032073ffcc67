/* serve.h -- the image server's request handling, attached to one or more evhttp listeners. */
#ifndef PICSUM_SERVE_H
#define PICSUM_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>

#include "fault.h"
#include "files.h"

struct serve_config {
    int deterministic; /* /W/H picks its picture from a hash of the URL, not at random */
    int verbose;       /* one stderr line per request */
    uint64_t seed;     /* random picture ids, garbage bytes, global fault draws */
    size_t cache_bytes;
    struct fault_rates rates;
    const struct files *files; /* non-NULL: the picture of /W/H is file number W (files.h) */
};

struct serve;

struct serve *serve_new(struct event_base *base, const struct serve_config *cfg, char *err,
                        size_t errlen);

/* Ends replies still in flight, then frees everything. Call before evhttp_free. */
void serve_free(struct serve *s);

/* Route every request of http here; scheme ("http"/"https") goes into redirect targets. */
int serve_attach(struct serve *s, struct evhttp *http, const char *scheme);

#endif
