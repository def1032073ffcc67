/* mdb.c -- MongoDB for the admin commands: a single client (a CLI runs one thread); the stored
 * PNG of a document is read by store/stored.c. */
#include "mdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MDB_DEFAULT_DB "pixflow"
#define MDB_SOCKET_MIN 30000

struct mdb *mdb_new(const char *uri, long timeout_ms, char *err, size_t errlen)
{
    bson_error_t e;
    struct mdb *m = calloc(1, sizeof(*m));
    mongoc_uri_t *u = mongoc_uri_new_with_error(uri, &e);
    if (m == NULL || u == NULL) {
        snprintf(err, errlen, "mongo: %s", u == NULL ? e.message : "out of memory");
        goto err;
    }
    /* mongoc waits 30 s for a server by default: an operator's command should say sooner. */
    int32_t t = (int32_t)timeout_ms;
    if (!mongoc_uri_has_option(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, t);
    if (!mongoc_uri_has_option(u, MONGOC_URI_CONNECTTIMEOUTMS))
        mongoc_uri_set_option_as_int32(u, MONGOC_URI_CONNECTTIMEOUTMS, t);
    if (!mongoc_uri_has_option(u, MONGOC_URI_SOCKETTIMEOUTMS))
        mongoc_uri_set_option_as_int32(u, MONGOC_URI_SOCKETTIMEOUTMS,
                                       t > MDB_SOCKET_MIN ? t : MDB_SOCKET_MIN);
    if (mongoc_uri_get_appname(u) == NULL)
        mongoc_uri_set_appname(u, "pixflow-admin");
    m->client = mongoc_client_new_from_uri_with_error(u, &e);
    if (m->client == NULL) {
        snprintf(err, errlen, "mongo: %s", e.message);
        goto err;
    }
    mongoc_client_set_error_api(m->client, MONGOC_ERROR_API_VERSION_2);
    const char *db = mongoc_uri_get_database(u);
    m->db = mongoc_client_get_database(m->client, db && *db ? db : MDB_DEFAULT_DB);
    m->images = mongoc_database_get_collection(m->db, COLL_IMAGES);
    m->sources = mongoc_database_get_collection(m->db, COLL_SOURCES);
    m->originals = mongoc_database_get_collection(m->db, COLL_ORIGINALS);
    mongoc_uri_destroy(u);
    return m;
err:
    mongoc_uri_destroy(u);
    mdb_free(m);
    return NULL;
}

void mdb_free(struct mdb *m)
{
    if (m == NULL)
        return;
    if (m->bucket)
        mongoc_gridfs_bucket_destroy(m->bucket);
    if (m->images)
        mongoc_collection_destroy(m->images);
    if (m->sources)
        mongoc_collection_destroy(m->sources);
    if (m->originals)
        mongoc_collection_destroy(m->originals);
    if (m->db)
        mongoc_database_destroy(m->db);
    if (m->client)
        mongoc_client_destroy(m->client);
    free(m);
}

int mdb_each(mongoc_collection_t *coll, const bson_t *filter, const bson_t *opts, mdb_each_fn *fn,
             void *arg, char *err, size_t errlen)
{
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    bson_error_t e;
    int rc = 0;
    while (rc == 0 && mongoc_cursor_next(cur, &doc))
        rc = fn(doc, arg, err, errlen);
    if (rc == 0 && mongoc_cursor_error(cur, &e)) {
        snprintf(err, errlen, "mongo: reading %s: %s", mongoc_collection_get_name(coll), e.message);
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    return rc < 0 ? -1 : 0;
}
