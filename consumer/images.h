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

struct images;

struct images *images_new(struct pool *pool, struct store *store, const struct url_hosts *hosts);
/* Answers a request whose path starts with /images. */
void images_handle(struct images *im, struct evhttp_request *req);
/* Requests still reading are answered 503 when their read ends (the pool must outlive them). */
void images_free(struct images *im);

#endif
