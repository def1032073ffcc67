/* verify_renditions.c -- `renditions` documents against `images` and `originals`. */
#include "verify_renditions.h"
#include "names.h"
#include "stored.h"

#include <stdio.h>
#include <string.h>

struct vr {
    struct mdb *m;
    mongoc_collection_t *renditions;
    verify_renditions_fn *problem;
    void *arg;
    struct verify_renditions *out;
};

static const char *vr_string(const bson_t *doc, const char *name)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, name) && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : NULL;
}

/* 1 when coll has a document with that _id, 0 when not, -1 with err. */
static int vr_exists(mongoc_collection_t *coll, const char *id, char *err, size_t errlen)
{
    bson_t *doc, *opts = BCON_NEW("projection", "{", DOC_ID, BCON_INT32(1), "}");
    bson_error_t e;
    int rc = stored_find_id(coll, id, opts, &doc, &e);
    bson_destroy(opts);
    if (rc < 0) {
        snprintf(err, errlen, "mongo: reading %s: %s", mongoc_collection_get_name(coll), e.message);
        return -1;
    }
    if (doc)
        bson_destroy(doc);
    return doc != NULL;
}

static int vr_each(const bson_t *doc, void *arg, char *err, size_t errlen)
{
    struct vr *v = arg;
    const char *id = vr_string(doc, DOC_ID), *image = vr_string(doc, REND_IMAGE);
    const char *original = vr_string(doc, REND_ORIGINAL), *name = vr_string(doc, DOC_RENDITION);
    char want[256], detail[300];
    if (id == NULL)
        return 0;
    v->out->checked++;
    snprintf(want, sizeof(want), "%s/%s", original ? original : "?", name ? name : "?");
    if (original == NULL || name == NULL || image == NULL || strcmp(id, want) != 0) {
        v->out->bad_id++;
        snprintf(detail, sizeof(detail), "its _id is not original/rendition (%.200s)", want);
        v->problem(v->arg, id, VR_BAD_ID, detail);
        return 0;
    }
    int has = vr_exists(v->m->images, image, err, errlen);
    if (has < 0)
        return -1;
    if (!has) {
        v->out->dangling++;
        snprintf(detail, sizeof(detail), "names image %.64s, which is not stored", image);
        v->problem(v->arg, id, VR_DANGLING, detail);
    }
    has = vr_exists(v->m->originals, original, err, errlen);
    if (has < 0)
        return -1;
    if (!has) {
        v->out->no_original++;
        snprintf(detail, sizeof(detail), "its original %.64s has no `%s` document", original,
                 COLL_ORIGINALS);
        v->problem(v->arg, id, VR_NO_ORIGINAL, detail);
    }
    return 0;
}

int verify_renditions(struct mdb *m, long long since_ms, verify_renditions_fn *problem, void *arg,
                      struct verify_renditions *out, char *err, size_t errlen)
{
    struct vr v = {m, mongoc_database_get_collection(m->db, COLL_RENDITIONS), problem, arg, out};
    bson_t *filter = since_ms >= 0
                         ? BCON_NEW(DOC_INSERTED_AT, "{", "$gte", BCON_DATE_TIME(since_ms), "}")
                         : bson_new();
    memset(out, 0, sizeof(*out));
    int rc = mdb_each(v.renditions, filter, NULL, vr_each, &v, err, errlen);
    bson_destroy(filter);
    mongoc_collection_destroy(v.renditions);
    return rc < 0 ? -1 : 0;
}

int verify_renditions_forget(struct mdb *m, const bson_value_t *image, char *err, size_t errlen)
{
    bson_error_t e;
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_VALUE(&filter, REND_IMAGE, image);
    mongoc_collection_t *coll = mongoc_database_get_collection(m->db, COLL_RENDITIONS);
    bool ok = mongoc_collection_delete_many(coll, &filter, NULL, NULL, &e);
    mongoc_collection_destroy(coll);
    bson_destroy(&filter);
    if (!ok)
        snprintf(err, errlen, "mongo: removing the renditions documents of a moved image: %s",
                 e.message);
    return ok ? 0 : -1;
}
