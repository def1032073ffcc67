/* images.h -- read-only image access over the worker's HTTP listener:
 *   GET /images/ID          the stored PNG (ETag = its SHA-256; If-None-Match gives 304)
 *   GET /images/ID.json     its metadata, every field but the base64 image
 *   GET /images?source=URL  the metadata of the image a URL maps to (source or alias)
 *   GET /images?after=ID&limit=N   metadata in _id order, N <= 100 (default 20)
 * MongoDB is read on the thread pool; the reply is sent from the loop when the read is done. */
#ifndef PIXFLOW_IMAGES_H
#define PIXFLOW_IMAGES_H

#include <event2/http.h>

#include "pool.h"
#include "store.h"
#include "url.h"

#define IMAGES_PAGE_MAX 100
#define IMAGES_THREADS  2 /* the reads' own pool, apart from decoding */

struct images;

/* NULL with err when its pool cannot start. */
struct images *images_new(struct event_base *base, struct store *store,
                          const struct url_hosts *hosts, char *err, size_t errlen);
/* Answers a request whose path starts with /images. */
void images_handle(struct images *im, struct evhttp_request *req);
/* Waits for the reads still running; their replies are dropped if the listener is gone. */
void images_free(struct images *im);

#endif
