/* stored.h -- the PNG of an `images` document, read back from wherever the store put it: the
 * `image` base64 string, or the GridFS file named by `gridfs_id` (SPEC §6). One reader for the
 * worker's /images and the admin CLI's get and verify. */
#ifndef PIXFLOW_STORED_H
#define PIXFLOW_STORED_H

#include <mongoc/mongoc.h>
#include <stddef.h>

enum stored_png {
    STORED_OK,
    STORED_ABSENT,         /* neither an `image` string nor storage "gridfs" + gridfs_id */
    STORED_BASE64,         /* `image` is not strict base64 */
    STORED_GRIDFS_MISSING, /* the document names a GridFS file that is not there */
    STORED_GRIDFS_CORRUPT, /* the file is there, its chunks are not all there or not sized */
    STORED_ERROR,          /* the server failed, or out of memory: nothing known */
};

/* The stored PNG bytes of doc (read with at least image, storage and gridfs_id) into *out,
 * malloc'd, even for a zero-length image. *bucket is the GridFS bucket of db, made on first need
 * and kept for the next call (the caller destroys it; NULL until then). Anything but STORED_OK
 * sets err. */
enum stored_png stored_png(mongoc_database_t *db, mongoc_gridfs_bucket_t **bucket,
                           const bson_t *doc, unsigned char **out, size_t *len, char *err,
                           size_t errlen);

/* One document of coll by its string _id into *out (a bson_copy for the caller to destroy), NULL
 * when there is none; -1 with *e when the server failed. */
int stored_find_id(mongoc_collection_t *coll, const char *id, const bson_t *opts, bson_t **out,
                   bson_error_t *e);

/* A document _id as text: a string as is, an ObjectId as ObjectId(hex), anything else as
 * extended JSON. Returns buf. */
const char *stored_id_text(const bson_value_t *id, char *buf, size_t len);

#endif
