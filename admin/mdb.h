/* mdb.h -- MongoDB for the admin commands: one client, the images collection, and the stored
 * PNG of a document wherever it lives (inline base64 or the GridFS bucket). */
#ifndef PIXFLOW_MDB_H
#define PIXFLOW_MDB_H

#include <mongoc/mongoc.h>
#include <stddef.h>

#define MDB_IMAGES  "images"
#define MDB_CORRUPT "images_corrupt"

struct mdb {
    mongoc_client_t *client;
    mongoc_database_t *db;
    mongoc_collection_t *images;
    mongoc_gridfs_bucket_t *bucket; /* opened on first use */
};

/* Parses the URI (database = its path, default "pixflow"); timeouts the URI leaves unset come
 * from timeout_ms. No network I/O yet. NULL with err. */
struct mdb *mdb_new(const char *uri, long timeout_ms, char *err, size_t errlen);
void mdb_free(struct mdb *m);

enum mdb_image {
    MDB_IMAGE_OK,
    MDB_IMAGE_ABSENT,         /* neither an `image` string nor storage "gridfs" + gridfs_id */
    MDB_IMAGE_BASE64,         /* `image` is not strict base64 */
    MDB_IMAGE_GRIDFS_MISSING, /* the document names a GridFS file that is not there */
    MDB_IMAGE_GRIDFS_CORRUPT, /* the file is there, its chunks are not all there or not sized */
    MDB_IMAGE_ERROR,          /* the server failed, or out of memory: nothing known */
};

/* The stored PNG bytes of doc (as read with at least _id, image, storage and gridfs_id): *out is
 * malloc'd (free it), even for a zero-length image. Anything but MDB_IMAGE_OK sets err. */
enum mdb_image mdb_image(struct mdb *m, const bson_t *doc, unsigned char **out, size_t *len,
                         char *err, size_t errlen);

/* The document's _id as text: a string as is, an ObjectId in hex, anything else as extended
 * JSON. Returns buf. */
const char *mdb_id_text(const bson_value_t *id, char *buf, size_t len);

#endif
