/* mdb.h -- MongoDB for the admin commands: one client and the images, sources and originals
 * collections. A
 * document's PNG is read with stored_png(m->db, &m->bucket, ...) (store/stored.h). */
#ifndef PIXFLOW_MDB_H
#define PIXFLOW_MDB_H

#include <mongoc/mongoc.h>
#include <stddef.h>

#include "names.h"
#include "stored.h"

#define MDB_CORRUPT COLL_CORRUPT

struct mdb {
    mongoc_client_t *client;
    mongoc_database_t *db;
    mongoc_collection_t *images;
    mongoc_collection_t *sources;
    mongoc_collection_t *originals;
    mongoc_gridfs_bucket_t *bucket; /* opened by stored_png() on first use */
};

/* Parses the URI (database = its path, default "pixflow"); timeouts the URI leaves unset come
 * from timeout_ms. No network I/O yet. NULL with err. */
struct mdb *mdb_new(const char *uri, long timeout_ms, char *err, size_t errlen);
void mdb_free(struct mdb *m);

/* find(filter, opts) on coll, fn called on each document in turn until it returns non-zero.
 * 0, or -1 when fn failed (its err kept) or the cursor did ("mongo: reading <collection>: ..."). */
typedef int mdb_each_fn(const bson_t *doc, void *arg, char *err, size_t errlen);
int mdb_each(mongoc_collection_t *coll, const bson_t *filter, const bson_t *opts, mdb_each_fn *fn,
             void *arg, char *err, size_t errlen);

#endif
