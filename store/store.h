/* store.h -- the consumer's MongoDB store: one document per image (`images`), one image per URL
 * (`sources`, keyed by the URL), one document per kept original (`originals`).
 *
 * SPEC §5.3 and §6; the protocol and its races are described at the top of store.c.
 *
 * Every function may be called from any thread at the same time: each call borrows a client from
 * the store's pool and gives it back. None may run on the event loop thread: they block on the
 * network (bounded by the URI's timeouts, see store_new).
 *
 * Errors: functions return 0, or STORE_ERR_TRANSIENT (-1) with err set, meaning "try again later"
 * (MongoDB down or unreachable, not primary, timeout, a race that did not settle). Only store_put
 * can also return STORE_ERR_PERMANENT (-2): this document can never be stored (invalid field,
 * malformed request the server rejects as such); retrying is pointless, dead-letter it. A caller
 * that tests `< 0` treats both as failures and degrades to retrying until max-attempts. */
#ifndef PIXFLOW_STORE_H
#define PIXFLOW_STORE_H

#include <stddef.h>

#include "image.h"
#include "lineage.h"

#define STORE_ERR_TRANSIENT (-1)
#define STORE_ERR_PERMANENT (-2)

/* store_find_url's *found: how the URL is recorded. */
#define STORE_FOUND_SOURCE 1 /* its `sources` document has role source: it produced the image */
#define STORE_FOUND_ALIAS  2 /* role alias: identical bytes were stored from another URL */

/* How long after its inserted_at a document may still be part of a store_put in progress (a
 * claim whose image is being moved, an image whose claim is not written yet): it outlasts a few
 * socket timeouts. `pixflow verify` judges the layout of older documents only. */
#define STORE_CLAIM_LEASE_MS 120000

/* Size of store_find_url's owner_out: a Redis stream id ("<ms>-<seq>", at most 41 characters) and
 * its NUL. A recorded stream id that does not fit is reported as unknown (""). */
#define STORE_OWNER_MAX 48

struct store; /* a mongoc_client_pool_t and the database name; thread-safe */

/* One processed picture, as SPEC §6 describes it. Strings must be valid UTF-8; a NULL optional
 * string (format, origin strings, stream_id, consumer) is stored as null. */
struct store_doc {
    const char *sha256; /* 64 lowercase hex digits of the stored PNG bytes = _id */
    const char *image_b64;
    size_t image_b64_len;
    const unsigned char *image; /* raw PNG: needed only when the document goes to GridFS */
    size_t image_len;           /* stored as `bytes`; required */
    const char *format;         /* "png" */
    int width, height, channels;
    const char *source; /* normalized URL; required */
    struct {
        const char *final_url, *content_type, *sha256;
        size_t bytes;
        int width, height;
        int orientation;    /* EXIF orientation of the download, 1..8; 0: field left out */
        const char *format; /* of the download: "jpeg", "png" */
    } origin;
    const char *raw; /* where the download is kept (raw_location), durable before this call; NULL:
                        no raw store, and no `originals` document */
    const struct lineage_link *transforms;
    int ntransforms;
    const struct image_decoder *decoder; /* what made the pixels; NULL: `decoder` left out */
    const char *encoder; /* the format with its settings ("png:level=0"); NULL: left out */
    const char *rendition; /* the rendition it is (`images.rendition`); NULL: "default" */
    const char *stream_id, *consumer;
    int attempts;
    int first_delivery; /* the URL has just entered the dedup set with this entry and this is
                           its first store_put: inserts only, no read (see store.c); 0 for a
                           retry after a failed store_put, whose write may have happened */
    int maybe_written;  /* an earlier try of this entry may have written to MongoDB (a retry, or
                           a redelivery whose earlier delivery began its store): only then does
                           a put look for an image that try left behind. 0 for a redelivery
                           that never got that far, which then costs no read of `images` */
};

/* The outcome describes the stream entry (d->stream_id), not only this call: when the URL is
 * already recorded by the same entry (an earlier call whose reply was lost, a redelivery after a
 * crash, or the same entry in flight twice), the answer is that recording's, INSERTED or
 * ALIASED, although this call wrote nothing. So every delivery of one entry gets the same answer
 * and the caller must count each entry once. */
enum store_outcome {
    STORE_INSERTED, /* a new `images` document from this URL, by this entry (role source) */
    STORE_ALIASED,  /* identical bytes were stored from another URL: this URL recorded in
                     * `sources` with role alias by this entry */
    STORE_ALREADY   /* this URL is already recorded in `sources` by a different entry, or by one
                     * that is unknown (a NULL or empty stream id on either side): nothing
                     * written */
};

/* Once per process: store_global_init() in main() before any thread or store exists,
 * store_global_cleanup() after the last store_free(). The driver cannot be initialized again
 * after cleanup, which is why this is not hidden behind a refcount in store_new/store_free. */
void store_global_init(void);
void store_global_cleanup(void);

/* Parses the URI (database = its path, default "pixflow") and creates the pool; no network I/O.
 * Options the URI does not set get defaults that make a down server a fast transient error:
 * serverSelectionTimeoutMS=2000, connectTimeoutMS=2000, socketTimeoutMS=30000, retryWrites=true.
 * Write concern: the URI's if it names one (w, journal, wtimeoutMS); otherwise w:majority with
 * journaling when the server is a replica set (hello has setName, asked at the first call), and
 * the server's default on a standalone. */
struct store *store_new(const char *uri, char *err, size_t errlen);
void store_free(struct store *st);

/* Asks the server what it is (see store_new) and creates the indexes (`images.inserted_at`,
 * `images.{source, stream_id}`, `sources.image`, and GridFS's on images.files and images.chunks).
 * Idempotent. */
int store_prepare(struct store *st, char *err, size_t errlen);

/* 1 when the server answered buildInfo as FerretDB (known after store_prepare or a first call). */
int store_is_ferretdb(struct store *st);

/* Stores d exactly once: see store.c for the protocol and the races it resolves. The URL's
 * `sources` document records the entry as `stream_id`; a new image records it too. */
int store_put(struct store *st, const struct store_doc *d, enum store_outcome *out, char *err,
              size_t errlen);

/* Which image the URL maps to, and which stream entry recorded it there (one read by _id, of
 * `sources` only): *found = 0 (id_out and owner_out untouched) when the URL has no `sources`
 * document, or STORE_FOUND_SOURCE or STORE_FOUND_ALIAS (the document's role) with the image's _id
 * in id_out (65 bytes) and the document's stream_id in owner_out (STORE_OWNER_MAX bytes, may be
 * NULL; "" when unknown). The document is written after its image, so it names a stored image
 * (unless verify --fix removed it since: a dangling source). A redelivered entry
 * compares owner with its own id: equal means this entry's own write (its stored or aliased
 * outcome), different means another entry's (a duplicate). */
int store_find_url(struct store *st, const char *url, char *id_out, char *owner_out, int *found,
                   char *err, size_t errlen);

/* The `originals` document of sha256 `id` (SPEC §6), as the CLIs and the console read it. */
struct store_original {
    char raw[1200];        /* where the bytes are kept */
    char content_type[128];
    char format[16];
    char source[2100];     /* the URL that first brought it */
    long long bytes;
    int width, height;
    long long inserted_at; /* ms since the epoch */
};

/* One read by _id: *found 1 with *o filled, or 0. */
int store_find_original(struct store *st, const char *id, int *found, struct store_original *o,
                        char *err, size_t errlen);

/* The original (its sha256, 65 bytes) url's download was, from its `sources` document: *found 0
 * when the URL has none, or a document written before originals were recorded ("" then). */
int store_find_origin(struct store *st, const char *url, int *found, char *origin, char *err,
                      size_t errlen);

/* Image `id` (its sha256): *found 1 and, when asked, its metadata as relaxed extended JSON
 * (every field but `image`) and its PNG bytes (inline base64 or GridFS), malloc'd for the caller
 * to free; *found 0 when there is no such document. */
int store_get(struct store *st, const char *id, int *found, char **json, unsigned char **png,
              size_t *png_len, char *err, size_t errlen);

/* At most `limit` documents' metadata in _id order after `after` (NULL: from the start), as
 * {"images": [...]} in relaxed extended JSON, malloc'd. */
int store_list(struct store *st, const char *after, int limit, char **json, char *err,
               size_t errlen);

/* ---- renditions (SPEC §6): `renditions` documents, _id "<original sha256>/<name>" ---- */

#define STORE_RENDITION_ID_MAX 160 /* "<64 hex>/<name>": names are at most 64 characters */

struct store_rendition {
    int found;      /* the document exists */
    char image[65]; /* the `images` _id it names */
    int current;    /* its recorded chain is the one asked about (name, version, .so, config) */
};

/* renditions[original/name], one read by _id; `chain` (may be NULL) is compared with what the
 * document records. */
int store_find_rendition(struct store *st, const char *original, const char *name,
                         const struct lineage_link *chain, int nchain, struct store_rendition *r,
                         char *err, size_t errlen);

/* Rendition d->rendition of original d->origin.sha256, exactly once, on the same principles as
 * store_put: the image first (a duplicate key: those bytes are stored), then the document
 * `renditions[original/name]` naming it; a duplicate key there means another writer recorded the
 * rendition, and this call's image, if it made a different one, is removed. With `replace`, a
 * document whose chain differs from d->transforms is replaced (if it still names what was read:
 * two writers replacing at once end with one document). *out: STORE_INSERTED when this call
 * wrote the document, STORE_ALREADY when it found it written (by another writer, or an earlier
 * try whose reply was lost). The
 * `default` rendition of a URL's download is written by store_put itself. */
int store_put_rendition(struct store *st, const struct store_doc *d, int replace,
                        enum store_outcome *out, char *err, size_t errlen);

/* Every `renditions` document of rendition `name`: fn(original, current) with current 1 when
 * its recorded chain is `chain` (always 1 for a NULL chain). A cursor: one document at a time. */
typedef void store_rendition_fn(const char *original, int current, void *arg);
int store_renditions_each(struct store *st, const char *name, const struct lineage_link *chain,
                          int nchain, store_rendition_fn *fn, void *arg, char *err, size_t errlen);

/* One round trip to the server ({ping: 1}). */
int store_ping(struct store *st, char *err, size_t errlen);

#endif
