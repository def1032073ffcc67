/* stored.c -- read back the PNG the store wrote: strict base64 inline, or a GridFS file. */
#include "stored.h"

#include "names.h"
#include "b64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORED_GRIDFS_MAX (1L << 30) /* no stored PNG comes near: a bigger file is not ours */

const char *stored_id_text(const bson_value_t *id, char *buf, size_t len)
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

static enum stored_png stored_inline(const bson_iter_t *it, unsigned char **out, size_t *len,
                                     char *err, size_t errlen)
{
    if (!BSON_ITER_HOLDS_UTF8(it)) {
        snprintf(err, errlen, "image is a BSON %d, not a string", (int)bson_iter_type(it));
        return STORED_BASE64;
    }
    uint32_t n;
    const char *text = bson_iter_utf8(it, &n);
    unsigned char *buf = malloc(b64_decoded_max(n) + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory for %u base64 characters", n);
        return STORED_ERROR;
    }
    char why[128];
    if (b64_decode(text, n, buf, len, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "image is not base64: %s", why);
        free(buf);
        return STORED_BASE64;
    }
    *out = buf;
    return STORED_OK;
}

static enum stored_png stored_gridfs(mongoc_database_t *db, mongoc_gridfs_bucket_t **bucket,
                                     const bson_value_t *fid, unsigned char **out, size_t *len,
                                     char *err, size_t errlen)
{
    bson_error_t e;
    char idtext[96];
    stored_id_text(fid, idtext, sizeof(idtext));
    if (*bucket == NULL) {
        bson_t *opts = BCON_NEW("bucketName", BCON_UTF8(GRIDFS_BUCKET));
        *bucket = mongoc_gridfs_bucket_new(db, opts, NULL, &e);
        bson_destroy(opts);
        if (*bucket == NULL) {
            snprintf(err, errlen, "mongo: GridFS bucket: %s", e.message);
            return STORED_ERROR;
        }
    }
    mongoc_stream_t *s = mongoc_gridfs_bucket_open_download_stream(*bucket, fid, &e);
    if (s == NULL) {
        snprintf(err, errlen, "GridFS file %s: %s", idtext, e.message);
        return e.code == MONGOC_ERROR_GRIDFS_BUCKET_FILE_NOT_FOUND ? STORED_GRIDFS_MISSING
                                                                   : STORED_ERROR;
    }
    enum stored_png rc = STORED_ERROR;
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
                rc = STORED_GRIDFS_CORRUPT;
            goto done;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n == cap) {
            if (cap >= STORED_GRIDFS_MAX) {
                snprintf(err, errlen, "GridFS file %s is larger than %ld bytes", idtext,
                         STORED_GRIDFS_MAX);
                rc = STORED_GRIDFS_CORRUPT;
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
    rc = STORED_OK;
done:
    free(buf);
    mongoc_stream_destroy(s);
    return rc;
}

enum stored_png stored_png(mongoc_database_t *db, mongoc_gridfs_bucket_t **bucket,
                           const bson_t *doc, unsigned char **out, size_t *len, char *err,
                           size_t errlen)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, DOC_IMAGE))
        return stored_inline(&it, out, len, err, errlen);
    if (bson_iter_init_find(&it, doc, DOC_STORAGE) && BSON_ITER_HOLDS_UTF8(&it) &&
        strcmp(bson_iter_utf8(&it, NULL), STORAGE_GRIDFS) == 0 &&
        bson_iter_init_find(&it, doc, DOC_GRIDFS_ID))
        return stored_gridfs(db, bucket, bson_iter_value(&it), out, len, err, errlen);
    snprintf(err, errlen, "no image field and no GridFS reference");
    return STORED_ABSENT;
}

int stored_find_id(mongoc_collection_t *coll, const char *id, const bson_t *opts, bson_t **out,
                   bson_error_t *e)
{
    bson_t *filter = BCON_NEW(DOC_ID, BCON_UTF8(id));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    int rc = 0;
    *out = NULL;
    if (mongoc_cursor_next(cur, &doc))
        *out = bson_copy(doc);
    else if (mongoc_cursor_error(cur, e))
        rc = -1;
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    return rc;
}
