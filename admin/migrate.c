/* migrate.c -- pixflow migrate: data written by the previous layout into the SPEC §6 layout.
 *
 * The previous store kept the URL -> image map inside `images`: `source` (unique index), and for
 * every other URL of the same bytes an element of `aliases` and of `alias_from` ({url,
 * stream_id}), updated under lock documents in `images.locks`. Now each URL has its own
 * `sources` document and images hold no list. Per image, in this order:
 *
 *   1. its source URL gets {_id: url, image, role: source, stream_id, consumer, inserted_at};
 *   2. each alias URL gets {_id: url, image, role: alias, stream_id: its alias_from element's
 *      (null when it had none), consumer: null, inserted_at: the image's};
 *   3. the image's `aliases` and `alias_from` are removed ($unset), only after 1 and 2 held.
 *
 * Every step is an insert against a unique _id or an idempotent update, so an interrupted run
 * resumes where it stopped and a second run changes nothing. A URL claimed by two images (the
 * old layout allowed it for a while during races) keeps the previous layout's canonical rule:
 * the image where it is the source, else the smallest alias holder _id; a `sources` document
 * that disagrees is replaced (deleted by its exact image, then inserted again).
 *
 * Then `images.locks` is dropped, the indexes `source_1` and `aliases_1` of `images` go, and the
 * new indexes are made (store_prepare). Run it with the workers stopped: a new worker storing an
 * old URL before it is migrated would see it as new. */
#include "admin.h"
#include "json.h"
#include "mdb.h"
#include "names.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD          "migrate"
#define OLD_ALIASES  "aliases"
#define OLD_FROM     "alias_from"
#define OLD_LOCKS    "images.locks"
#define OLD_SRC_IX   "source_1"
#define OLD_ALIAS_IX "aliases_1"

static const char synopsis[] =
    "pixflow migrate [--json]\n\n"
    "Converts MongoDB data written by the previous layout (source, aliases and alias_from in the\n"
    "images documents, the images.locks collection) into the current one: one sources document\n"
    "per URL, no URL lists in images. Each step is idempotent: safe to interrupt and to run again\n"
    "(a second run changes nothing). Stop the workers first.\n"
    "Exit: 0 done, 1 a server failed or a URL could not be placed, 2 bad usage";

static struct {
    int json;
} opt;

static const struct cfg_option own_options[] = {
    {"json", NULL, cfg_switch, &opt.json, "", .flags = CFG_NOARG,
     .help = "print the summary as one JSON object"},
    {NULL},
};

struct migrate {
    struct mdb *m;
    long long images, sources, aliases, replaced, kept, stripped, locks, indexes;
};

/* Which of two claims of one URL the previous layout took: a source beats an alias, then the
 * smaller image _id. Returns 1 when (role_a, image_a) wins. */
static int migrate_wins(int source_a, const char *image_a, int source_b, const char *image_b)
{
    if (source_a != source_b)
        return source_a;
    return strcmp(image_a, image_b) < 0;
}

static int migrate_insert(struct migrate *g, const bson_t *doc, int *dup, char *err, size_t errlen)
{
    bson_error_t e;
    if (mongoc_collection_insert_one(g->m->sources, doc, NULL, NULL, &e)) {
        *dup = 0;
        return 0;
    }
    *dup = e.code == MONGOC_ERROR_DUPLICATE_KEY;
    if (!*dup)
        snprintf(err, errlen, "mongo: inserting into %s: %s", COLL_SOURCES, e.message);
    return *dup ? 0 : -1;
}

/* Steps 1 and 2 for one URL: its `sources` document, or the one already there if that one wins. */
static int migrate_claim(struct migrate *g, const char *url, const char *image, int source,
                         const bson_value_t *stream_id, const bson_value_t *consumer,
                         const bson_value_t *at, char *err, size_t errlen)
{
    bson_t doc = BSON_INITIALIZER;
    bson_value_t null = {.value_type = BSON_TYPE_NULL};
    BSON_APPEND_UTF8(&doc, DOC_ID, url);
    BSON_APPEND_UTF8(&doc, SRC_IMAGE, image);
    BSON_APPEND_UTF8(&doc, SRC_ROLE, source ? ROLE_SOURCE : ROLE_ALIAS);
    BSON_APPEND_VALUE(&doc, DOC_STREAM_ID, stream_id ? stream_id : &null);
    BSON_APPEND_VALUE(&doc, DOC_CONSUMER, consumer ? consumer : &null);
    if (at)
        BSON_APPEND_VALUE(&doc, DOC_INSERTED_AT, at);
    int rc = -1;
    for (int round = 0; round < 3; round++) {
        int dup;
        if (migrate_insert(g, &doc, &dup, err, errlen) < 0)
            goto done;
        if (!dup) {
            source ? g->sources++ : g->aliases++;
            rc = 0;
            goto done;
        }
        bson_error_t e;
        bson_t *filter = BCON_NEW(DOC_ID, BCON_UTF8(url));
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(g->m->sources, filter, NULL, NULL);
        const bson_t *have;
        bson_iter_t it;
        char other[65] = "";
        int other_source = 0, found = mongoc_cursor_next(cur, &have);
        if (found) {
            if (bson_iter_init_find(&it, have, SRC_IMAGE) && BSON_ITER_HOLDS_UTF8(&it))
                snprintf(other, sizeof(other), "%s", bson_iter_utf8(&it, NULL));
            other_source = bson_iter_init_find(&it, have, SRC_ROLE) && BSON_ITER_HOLDS_UTF8(&it) &&
                           strcmp(bson_iter_utf8(&it, NULL), ROLE_SOURCE) == 0;
        } else if (mongoc_cursor_error(cur, &e)) {
            snprintf(err, errlen, "mongo: reading %s of %s: %s", COLL_SOURCES, url, e.message);
            mongoc_cursor_destroy(cur);
            bson_destroy(filter);
            goto done;
        }
        mongoc_cursor_destroy(cur);
        bson_destroy(filter);
        if (!found)
            continue; /* gone meanwhile: insert again */
        if (strcmp(other, image) == 0 || !migrate_wins(source, image, other_source, other)) {
            /* Already migrated (same image), or the other claim is the canonical one. */
            g->kept += strcmp(other, image) != 0;
            rc = 0;
            goto done;
        }
        bson_t *sel = BCON_NEW(DOC_ID, BCON_UTF8(url), SRC_IMAGE, BCON_UTF8(other));
        int ok = mongoc_collection_delete_one(g->m->sources, sel, NULL, NULL, &e);
        bson_destroy(sel);
        if (!ok) {
            snprintf(err, errlen, "mongo: replacing %s of %s: %s", COLL_SOURCES, url, e.message);
            goto done;
        }
        g->replaced++;
    }
    snprintf(err, errlen, "%s: its %s document keeps changing", url, COLL_SOURCES);
done:
    bson_destroy(&doc);
    return rc;
}

/* The alias_from stream_id recorded for url in doc, or NULL. */
static const bson_value_t *migrate_alias_owner(const bson_t *doc, const char *url)
{
    bson_iter_t it, arr, f;
    if (!bson_iter_init_find(&it, doc, OLD_FROM) || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr))
        return NULL;
    while (bson_iter_next(&arr)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &f) ||
            !bson_iter_find(&f, "url") || !BSON_ITER_HOLDS_UTF8(&f) ||
            strcmp(bson_iter_utf8(&f, NULL), url) != 0)
            continue;
        bson_iter_recurse(&arr, &f);
        if (bson_iter_find(&f, DOC_STREAM_ID))
            return bson_iter_value(&f);
    }
    return NULL;
}

static const bson_value_t *migrate_value(const bson_t *doc, const char *key, bson_iter_t *it)
{
    return bson_iter_init_find(it, doc, key) ? bson_iter_value(it) : NULL;
}

/* Steps 1-3 for one image document. */
static int migrate_image(const bson_t *doc, void *arg, char *err, size_t errlen)
{
    struct migrate *g = arg;
    bson_iter_t it, sid, con, at, arr;
    if (!bson_iter_init_find(&it, doc, DOC_ID) || !BSON_ITER_HOLDS_UTF8(&it))
        return 0; /* not one of ours; verify reports it */
    char image[65];
    snprintf(image, sizeof(image), "%s", bson_iter_utf8(&it, NULL));
    const bson_value_t *v_sid = migrate_value(doc, DOC_STREAM_ID, &sid);
    const bson_value_t *v_con = migrate_value(doc, DOC_CONSUMER, &con);
    const bson_value_t *v_at = migrate_value(doc, DOC_INSERTED_AT, &at);
    g->images++;
    if (bson_iter_init_find(&it, doc, DOC_SOURCE) && BSON_ITER_HOLDS_UTF8(&it) &&
        migrate_claim(g, bson_iter_utf8(&it, NULL), image, 1, v_sid, v_con, v_at, err, errlen) < 0)
        return -1;
    if (bson_iter_init_find(&it, doc, OLD_ALIASES) && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr)) {
        while (bson_iter_next(&arr)) {
            if (!BSON_ITER_HOLDS_UTF8(&arr))
                continue;
            const char *url = bson_iter_utf8(&arr, NULL);
            if (migrate_claim(g, url, image, 0, migrate_alias_owner(doc, url), NULL, v_at, err,
                              errlen) < 0)
                return -1;
        }
    }
    if (!bson_has_field(doc, OLD_ALIASES) && !bson_has_field(doc, OLD_FROM))
        return 0;
    bson_error_t e;
    bson_t *sel = BCON_NEW(DOC_ID, BCON_UTF8(image));
    bson_t *upd = BCON_NEW("$unset", "{", OLD_ALIASES, BCON_UTF8(""), OLD_FROM, BCON_UTF8(""), "}");
    int ok = mongoc_collection_update_one(g->m->images, sel, upd, NULL, NULL, &e);
    bson_destroy(sel);
    bson_destroy(upd);
    if (!ok) {
        snprintf(err, errlen, "mongo: removing the URL lists of %s: %s", image, e.message);
        return -1;
    }
    g->stripped++;
    return 0;
}

static int migrate_images(struct migrate *g, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts =
        BCON_NEW("projection", "{", DOC_SOURCE, BCON_INT32(1), OLD_ALIASES, BCON_INT32(1), OLD_FROM,
                 BCON_INT32(1), DOC_STREAM_ID, BCON_INT32(1), DOC_CONSUMER, BCON_INT32(1),
                 DOC_INSERTED_AT, BCON_INT32(1), "}", "sort", "{", DOC_ID, BCON_INT32(1), "}");
    int rc = mdb_each(g->m->images, &filter, opts, migrate_image, g, err, errlen);
    bson_destroy(opts);
    return rc;
}

/* What the previous layout needed and this one does not: the lock collection and two indexes.
 * Absent already is fine (a second run). */
static int migrate_drop_old(struct migrate *g, char *err, size_t errlen)
{
    bson_error_t e;
    char **names = mongoc_database_get_collection_names_with_opts(g->m->db, NULL, &e);
    if (names == NULL) {
        snprintf(err, errlen, "mongo: listing collections: %s", e.message);
        return -1;
    }
    int has_locks = 0;
    for (char **n = names; *n; n++)
        has_locks |= strcmp(*n, OLD_LOCKS) == 0;
    bson_strfreev(names);
    if (has_locks) {
        mongoc_collection_t *locks = mongoc_database_get_collection(g->m->db, OLD_LOCKS);
        int ok = mongoc_collection_drop(locks, &e);
        mongoc_collection_destroy(locks);
        if (!ok) {
            snprintf(err, errlen, "mongo: dropping %s: %s", OLD_LOCKS, e.message);
            return -1;
        }
        g->locks++;
    }
    mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(g->m->images, NULL);
    const bson_t *ix;
    int has[2] = {0, 0};
    while (mongoc_cursor_next(cur, &ix)) {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, ix, "name") || !BSON_ITER_HOLDS_UTF8(&it))
            continue;
        has[0] |= strcmp(bson_iter_utf8(&it, NULL), OLD_SRC_IX) == 0;
        has[1] |= strcmp(bson_iter_utf8(&it, NULL), OLD_ALIAS_IX) == 0;
    }
    int failed = mongoc_cursor_error(cur, &e);
    mongoc_cursor_destroy(cur);
    if (failed) {
        snprintf(err, errlen, "mongo: listing the indexes of %s: %s", COLL_IMAGES, e.message);
        return -1;
    }
    const char *ixnames[2] = {OLD_SRC_IX, OLD_ALIAS_IX};
    for (int i = 0; i < 2; i++) {
        if (!has[i])
            continue;
        if (!mongoc_collection_drop_index(g->m->images, ixnames[i], &e)) {
            snprintf(err, errlen, "mongo: dropping index %s: %s", ixnames[i], e.message);
            return -1;
        }
        g->indexes++;
    }
    return 0;
}

static void migrate_summary(const struct migrate *g)
{
    if (opt.json) {
        struct json j;
        json_init(&j, stdout);
        json_object(&j);
        json_kv_int(&j, "images", g->images);
        json_kv_int(&j, "sources", g->sources);
        json_kv_int(&j, "aliases", g->aliases);
        json_kv_int(&j, "replaced", g->replaced);
        json_kv_int(&j, "kept", g->kept);
        json_kv_int(&j, "stripped", g->stripped);
        json_kv_int(&j, "locks_dropped", g->locks);
        json_kv_int(&j, "indexes_dropped", g->indexes);
        json_end(&j);
        return;
    }
    printf("migrated %lld image%s: %lld source%s and %lld alias%s written, %lld URL list%s "
           "removed\n",
           g->images, g->images == 1 ? "" : "s", g->sources, g->sources == 1 ? "" : "s", g->aliases,
           g->aliases == 1 ? "" : "es", g->stripped, g->stripped == 1 ? "" : "s");
    if (g->replaced || g->kept)
        printf("URLs claimed twice: %lld moved to their canonical image, %lld already there\n",
               g->replaced, g->kept);
    printf("dropped: %lld lock collection%s, %lld old index%s\n", g->locks,
           g->locks == 1 ? "" : "s", g->indexes, g->indexes == 1 ? "" : "es");
}

int migrate_main(int argc, char **argv)
{
    struct settings s;
    struct admin_common c;
    struct migrate g = {0};
    char **ops, err[1024];
    int nops, status;
    if (admin_settings(&s, SET_MONGO, own_options, &c, CMD, synopsis, argc, argv, &ops, &nops,
                       &status) < 0)
        return status;
    if (nops > 0)
        return admin_fail(CMD, ADMIN_USAGE, "%s: unexpected operand (try --help)", ops[0]);
    g.m = mdb_new(s.mongo_uri, c.timeout_ms, err, sizeof(err));
    if (g.m == NULL)
        return admin_fail(CMD, ADMIN_FAIL, "%s", err);
    status = ADMIN_FAIL;
    struct store *st = NULL;
    if (migrate_images(&g, err, sizeof(err)) < 0 || migrate_drop_old(&g, err, sizeof(err)) < 0) {
        admin_fail(CMD, ADMIN_FAIL, "%s (run it again to resume)", err);
        goto done;
    }
    st = store_new(s.mongo_uri, err, sizeof(err));
    if (st == NULL || store_prepare(st, err, sizeof(err)) < 0) {
        admin_fail(CMD, ADMIN_FAIL, "%s (run it again to resume)", err);
        goto done;
    }
    migrate_summary(&g);
    status = ADMIN_OK;
done:
    fflush(stdout);
    store_free(st);
    mdb_free(g.m);
    return status;
}
