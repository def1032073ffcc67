/* verify_raw.c -- pixflow verify's check of the raw zone: each kept original is where its
 * `originals` document says, whole.
 *
 * A raw object is written before its document (the worker keeps the original, then stores), so
 * a document without its object is never a write in progress: it is always reported. The check
 * is a HEAD per document (size compared with `bytes`); --raw reads every object back and hashes
 * it, which costs the whole raw zone's bytes in transfer: for a periodic audit, not every run. */
#include "verify_raw.h"

#include "digest.h"
#include "names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct verify_raw_walk {
    struct raw_store *r;
    int rehash;
    verify_raw_problem_fn *problem;
    void *arg;
    struct verify_raw *out;
};

static const char *verify_raw_str(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, NULL);
    return "";
}

static int verify_raw_one(const bson_t *doc, void *arg, char *err, size_t errlen)
{
    struct verify_raw_walk *w = arg;
    const char *id = verify_raw_str(doc, DOC_ID), *url = verify_raw_str(doc, DOC_SOURCE);
    char detail[2 * RAW_LOCATION_MAX + 64], hex[DIGEST_HEX_LEN + 1], where[RAW_LOCATION_MAX];
    bson_iter_t it;
    long long want = bson_iter_init_find(&it, doc, DOC_BYTES) && BSON_ITER_HOLDS_NUMBER(&it)
                         ? bson_iter_as_int64(&it)
                         : -1;
    w->out->checked++;
    if (strlen(id) != DIGEST_HEX_LEN || strspn(id, "0123456789abcdef") != DIGEST_HEX_LEN) {
        w->out->damaged++;
        w->problem(w->arg, id, url, 0, "the _id is not a SHA-256: no object can be named by it");
        return 0;
    }
    raw_location(w->r, id, where, sizeof(where));
    unsigned char *bytes = NULL;
    size_t len = 0;
    int found = 0, rc;
    if (w->rehash)
        rc = raw_get(w->r, id, &found, &bytes, &len, NULL, err, errlen);
    else
        rc = raw_head(w->r, id, &found, &len, err, errlen);
    if (rc < 0)
        return -1;
    if (!found) {
        w->out->missing++;
        snprintf(detail, sizeof(detail), "no object at %s (recorded at %s)", where,
                 verify_raw_str(doc, ORIG_RAW));
        w->problem(w->arg, id, url, 1, detail);
    } else if (want >= 0 && (long long)len != want) {
        w->out->damaged++;
        snprintf(detail, sizeof(detail), "%s holds %zu bytes, the document says %lld", where, len,
                 want);
        w->problem(w->arg, id, url, 0, detail);
    } else if (w->rehash && digest_sha256_hex(bytes, len, hex, err, errlen) == 0 &&
               strcmp(hex, id) != 0) {
        w->out->damaged++;
        snprintf(detail, sizeof(detail), "%s hashes to %s", where, hex);
        w->problem(w->arg, id, url, 0, detail);
    }
    free(bytes);
    return 0;
}

int verify_raw(struct mdb *m, struct raw_store *r, int rehash, long long since_ms,
               verify_raw_problem_fn *problem, void *arg, struct verify_raw *out, char *err,
               size_t errlen)
{
    struct verify_raw_walk w = {r, rehash, problem, arg, out};
    bson_t filter = BSON_INITIALIZER, range;
    if (since_ms >= 0) {
        BSON_APPEND_DOCUMENT_BEGIN(&filter, DOC_INSERTED_AT, &range);
        BSON_APPEND_DATE_TIME(&range, "$gte", since_ms);
        bson_append_document_end(&filter, &range);
    }
    bson_t *opts = BCON_NEW("projection", "{", DOC_BYTES, BCON_INT32(1), DOC_SOURCE, BCON_INT32(1),
                            ORIG_RAW, BCON_INT32(1), "}");
    int rc = mdb_each(m->originals, &filter, opts, verify_raw_one, &w, err, errlen);
    bson_destroy(opts);
    bson_destroy(&filter);
    return rc;
}
