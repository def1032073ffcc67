/* mdb.c -- MongoDB for the admin commands: a single client (a CLI runs one thread), and the
 * stored PNG of a document whether it is inline or in GridFS. */
#include "mdb.h"
#include "b64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MDB_DEFAULT_DB "pixflow"
#define MDB_BUCKET     "images"
#define MDB_GRIDFS_MAX (1L << 30) /* no stored PNG comes near: a bigger file is not ours */
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
    m->images = mongoc_database_get_collection(m->db, MDB_IMAGES);
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
    if (m->db)
        mongoc_database_destroy(m->db);
    if (m->client)
        mongoc_client_destroy(m->client);
    free(m);
}

const char *mdb_id_text(const bson_value_t *id, char *buf, size_t len)
{
    if (id->value_type == BSON_TYPE_UTF8) {
        snprintf(buf, len, "%.*s", (int)id->value.v_utf8.len, id->value.v_utf8.str);
    } else if (id->value_type == BSON_TYPE_OID) {
        char hex[25];
        bson_oid_to_string(&id->value.v_oid, hex);
        snprintf(buf, len, "ObjectId(%s)", hex);
    } else {
        bson_t wrap = BSON_INITIALIZER;
        BSON_APPEND_VALUE(&wrap, "v", id);
        char *json = bson_as_relaxed_extended_json(&wrap, NULL);
        snprintf(buf, len, "%s", json ? json : "?");
        bson_free(json);
        bson_destroy(&wrap);
    }
    return buf;
}

static enum mdb_image mdb_inline(const bson_iter_t *it, unsigned char **out, size_t *len, char *err,
                                 size_t errlen)
{
    if (!BSON_ITER_HOLDS_UTF8(it)) {
        snprintf(err, errlen, "image is a BSON %d, not a string", (int)bson_iter_type(it));
        return MDB_IMAGE_BASE64;
    }
    uint32_t n;
    const char *text = bson_iter_utf8(it, &n);
    unsigned char *buf = malloc(b64_decoded_max(n) + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory for %u base64 characters", n);
        return MDB_IMAGE_ERROR;
    }
    char why[128];
    if (b64_decode(text, n, buf, len, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "image is not base64: %s", why);
        free(buf);
        return MDB_IMAGE_BASE64;
    }
    *out = buf;
    return MDB_IMAGE_OK;
}

static enum mdb_image mdb_gridfs(struct mdb *m, const bson_value_t *fid, unsigned char **out,
                                 size_t *len, char *err, size_t errlen)
{
    bson_error_t e;
    char idtext[96];
    mdb_id_text(fid, idtext, sizeof(idtext));
    if (m->bucket == NULL) {
        bson_t *opts = BCON_NEW("bucketName", BCON_UTF8(MDB_BUCKET));
        m->bucket = mongoc_gridfs_bucket_new(m->db, opts, NULL, &e);
        bson_destroy(opts);
        if (m->bucket == NULL) {
            snprintf(err, errlen, "mongo: GridFS bucket: %s", e.message);
            return MDB_IMAGE_ERROR;
        }
    }
    mongoc_stream_t *s = mongoc_gridfs_bucket_open_download_stream(m->bucket, fid, &e);
    if (s == NULL) {
        snprintf(err, errlen, "GridFS file %s: %s", idtext, e.message);
        return e.code == MONGOC_ERROR_GRIDFS_BUCKET_FILE_NOT_FOUND ? MDB_IMAGE_GRIDFS_MISSING
                                                                   : MDB_IMAGE_ERROR;
    }
    enum mdb_image rc = MDB_IMAGE_ERROR;
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) {
            snprintf(err, errlen, "out of memory reading GridFS file %s", idtext);
            goto done;
        }
        ssize_t got = mongoc_stream_read(s, buf + n, cap - n, 1, -1);
        if (got < 0) {
            mongoc_gridfs_bucket_stream_error(s, &e);
            snprintf(err, errlen, "GridFS file %s: %s", idtext, e.message);
            if (e.code == MONGOC_ERROR_GRIDFS_CHUNK_MISSING ||
                e.code == MONGOC_ERROR_GRIDFS_CORRUPT)
                rc = MDB_IMAGE_GRIDFS_CORRUPT;
            goto done;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n == cap) {
            if (cap >= MDB_GRIDFS_MAX) {
                snprintf(err, errlen, "GridFS file %s is larger than %ld bytes", idtext,
                         MDB_GRIDFS_MAX);
                rc = MDB_IMAGE_GRIDFS_CORRUPT;
                goto done;
            }
            unsigned char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL)
                free(buf);
            buf = bigger;
            cap *= 2;
        }
    }
    *out = buf;
    *len = n;
    buf = NULL;
    rc = MDB_IMAGE_OK;
done:
    free(buf);
    mongoc_stream_destroy(s);
    return rc;
}

enum mdb_image mdb_image(struct mdb *m, const bson_t *doc, unsigned char **out, size_t *len,
                         char *err, size_t errlen)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "image"))
        return mdb_inline(&it, out, len, err, errlen);
    if (bson_iter_init_find(&it, doc, "storage") && BSON_ITER_HOLDS_UTF8(&it) &&
        strcmp(bson_iter_utf8(&it, NULL), "gridfs") == 0 &&
        bson_iter_init_find(&it, doc, "gridfs_id"))
        return mdb_gridfs(m, bson_iter_value(&it), out, len, err, errlen);
    snprintf(err, errlen, "no image field and no GridFS reference");
    return MDB_IMAGE_ABSENT;
}
