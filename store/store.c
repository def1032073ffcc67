/* store.c -- the consumer's MongoDB store: one document per image, one image per URL.
 *
 * Neither server gives more than single-document writes and unique indexes (FerretDB has no
 * transactions: `startTransaction` is rejected as an unknown field), and FerretDB v1 not even
 * atomic updates (below). So the guarantees rest on inserts against unique keys, a per-image
 * update lock, and a convergence rule:
 *
 *   _id = sha256 of the stored PNG    one document per image
 *   source                            unique index: a URL is the source of at most one document
 *   aliases                           plain index: during a race a URL may sit in the aliases of
 *                                     two documents, or be a source and an alias; settle fixes it
 *   stream_id                         the stream entry that recorded the source
 *   alias_from                        [{url, stream_id}]: the entry that recorded each alias; one
 *                                     element per URL in aliases, added and removed in the same
 *                                     update as the URL (an alias written before alias_from
 *                                     existed has none: its recorder is unknown)
 *
 * A URL is "claimed" by each document whose source or aliases holds it. Its canonical document is
 * the one where it is the source, else the alias holder with the smallest _id; its recorder is
 * that document's stream_id, or the stream_id of the URL's alias_from element there.
 *
 * Outcomes are per stream entry, because the worker counts each entry once across crashes: an
 * entry whose worker died after writing and before acking is redelivered, and an insert whose
 * reply was lost is retried; either finds the URL claimed. If the recorder is this entry (same
 * non-empty stream id), the answer is that recording's, STORE_INSERTED for a source and
 * STORE_ALIASED for an alias, whatever bytes this delivery downloaded; if it is another entry or
 * unknown, STORE_ALREADY. Written "recorded" below. store_put:
 *
 *   1. settle(url): read the claims; pull the URL from the aliases of every non-canonical holder
 *      this read saw; if claimed, answer recorded. This is also what stops a redelivered URL,
 *      already mapped to image X, from becoming the source of newly downloaded bytes Y.
 *   2. insert the full document {_id: sha, source: url, aliases: [], alias_from: []}. Success:
 *      settle again (a concurrent alias of the same URL loses to our source) and answer
 *      STORE_INSERTED.
 *   3. duplicate key: settle again; claimed now -> recorded. Else the image exists: under its
 *      lock, $push the URL to its aliases and {url, stream_id} to its alias_from in one update
 *      (filter: source != url and url not in aliases, so an alias never gets a second element),
 *      settle, and answer STORE_ALIASED if the URL was added and is canonical there, else
 *      recorded.
 *   A round that finds neither the URL nor the image (a document deleted by hand), or an alias
 *   that did not hold, starts over; after STORE_PUT_ROUNDS the call fails as transient.
 *
 * The races:
 * - Two URLs, identical bytes, at once: one insert wins (INSERTED); the other gets a duplicate
 *   key on _id, finds its URL unclaimed and the image present, and aliases it (ALIASED). N such
 *   writers leave one document with N-1 aliases.
 * - One URL processed twice at once (an entry reclaimed while its first worker still runs) with
 *   different bytes: if both are new images, the unique `source` lets one insert win, the other
 *   gets a duplicate key and finds the URL claimed: STORE_INSERTED too when both deliveries are
 *   the same entry (the caller counts the entry once), STORE_ALREADY for two entries of one URL
 *   (the dedup set normally stops the second before it downloads). If a download equals an image
 *   already stored, one writer may alias the URL there while the other inserts it as a source, or
 *   both alias it onto two images. Every writer settles after writing, and settle removes only
 *   aliases it saw, never a source. So (a) a holder survives: a source is never removed, and
 *   without one the smallest alias holder ever is never non-canonical; (b) of two final holders,
 *   the one written last settled after both writes, saw both and pulled one. The URL ends mapped
 *   to exactly one image. Limit: the writer that aliased first may have answered STORE_ALIASED
 *   for an alias a later source then displaced; the stored state is right, that one answer is
 *   stale. It takes two deliveries of one URL in flight at once AND a download equal to an image
 *   already stored.
 * - A crash between writing and settling leaves the extra claim until the entry is redelivered;
 *   that store_put starts with settle, which repairs it.
 *
 * First deliveries (d->first_delivery: the worker's SADD of the URL to the dedup set returned 1)
 * skip both settles when their insert succeeds, and follow the whole protocol once it collides.
 * Settling reads by `source` and `aliases`, which FerretDB v1 answers by scanning the whole
 * collection, base64 included; skipping it turns the common case into one insert. It is safe
 * because the SADD admits one entry per URL: another writer of the same URL can only be a
 * redelivery of an entry that never reached its SADD, reclaimed while this one runs, and that
 * writer settles after writing. Limit: if it wrote and settled entirely before this insert, the
 * URL is left as our source and as its alias elsewhere; readers resolve it (a source wins), and
 * the stray alias stays until something settles that URL again.
 *
 * FerretDB v1 (SQLite) applies an update as read, modify, write back without isolation: 8
 * concurrent $addToSet on one document keep 1 or 2 of the 8 values while every writer is told
 * modifiedCount 1; $inc and findAndModify lose updates the same way. Hence store_lock: every
 * update of an existing images document runs under a lock document in images.locks, taken by an
 * insert against its unique _id, the one test-and-set both servers do atomically. MongoDB would
 * not need it, but updates are the rare path (aliases and repairs), so it stays unconditional.
 * The lock also lets a repair read the alias_from elements it removes: FerretDB v1's $pull
 * compares values only ({url: u} as a condition matches no element), so they go by exact value
 * through $pullAll, read under the same lock.
 *
 * Duplicate keys: FerretDB reports code 11000 as "E11000 duplicate key error collection: db.c",
 * with neither keyPattern, keyValue nor the index name, and MongoDB's message text varies across
 * versions. So the violated key is never parsed: step 3 re-queries, which answers what the
 * decision needs anyway (is the URL claimed? does the image exist?) even when both keys clash.
 *
 * Large images: a document whose BSON size (computed before building it from the metadata and the
 * base64 length, plus STORE_ALIAS_ROOM so that later aliases still fit) exceeds 16 MiB keeps its
 * metadata in `images` while the PNG goes to the GridFS bucket `images` (images.files and
 * images.chunks, through mongoc's bucket, which works on FerretDB v1) under a fresh ObjectId:
 * `image` absent, `storage: "gridfs"`, `gridfs_id`. The upload comes first, so a document never
 * points at a missing file; the upload of an insert refused by a duplicate key is deleted, one
 * orphaned by a crash or a lost reply is unreferenced garbage. Before uploading, the alias is
 * tried, so identical large bytes are not uploaded twice.
 *
 * Cost: FerretDB v1 uses its SQLite indexes for _id only; a lookup by source or aliases scans the
 * collection. MongoDB uses the indexes store_prepare creates. settle reads the whole alias_from
 * of each holder (FerretDB v1 has no $elemMatch projection): large only for an image that many
 * URLs produced.
 *
 * Errors: a failure is transient unless the request itself is invalid (client-side BSON errors or
 * the server codes in store_error_permanent): an unknown error is retried and reaches the dead
 * letters through max-attempts instead of losing the entry at once. */
#include "store.h"
#include "stored.h"

#include "log.h"

#include <mongoc/mongoc.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STORE_COLL          "images"
#define STORE_DEFAULT_DB    "pixflow"
#define STORE_BSON_MAX      (16 * 1024 * 1024)
#define STORE_ALIAS_ROOM    (1024 * 1024) /* ~250 long or ~4000 typical alias URLs */
#define STORE_PUT_ROUNDS    4
#define STORE_SELECTION_MS  2000
#define STORE_CONNECT_MS    2000
#define STORE_SOCKET_MS     30000
#define STORE_GRIDFS_CHUNK  (255 * 1024)
#define STORE_LOCKS         "images.locks"
#define STORE_LOCK_LEASE_MS 60000 /* > socketTimeoutMS: a live holder is never broken */
#define STORE_LOCK_WAIT_MS  3000

struct store {
    mongoc_client_pool_t *pool;
    char *db;
};

/* The handles of one call: a client borrowed from the pool and the images collection. */
struct store_conn {
    mongoc_client_t *client;
    mongoc_collection_t *coll;
    mongoc_collection_t *locks;
};

static void store_log_handler(mongoc_log_level_t level, const char *domain, const char *message,
                              void *data)
{
    switch (level) {
    case MONGOC_LOG_LEVEL_ERROR:
    case MONGOC_LOG_LEVEL_CRITICAL:
        log_error("event=mongoc domain=%s msg=%s", domain, message);
        break;
    case MONGOC_LOG_LEVEL_WARNING:
        /* FerretDB has no endSessions; mongoc warns about it each time a pool closes. */
        if (strstr(message, "\"endSessions\"") == NULL)
            log_warn("event=mongoc domain=%s msg=%s", domain, message);
        else
            log_debug("event=mongoc domain=%s msg=%s", domain, message);
        break;
    case MONGOC_LOG_LEVEL_TRACE:
        break;
    default:
        log_debug("event=mongoc domain=%s msg=%s", domain, message);
        break;
    }
}

void store_global_init(void)
{
    /* Before mongoc_init, or its first messages bypass the handler. */
    mongoc_log_set_handler(store_log_handler, NULL);
    mongoc_init();
}

void store_global_cleanup(void)
{
    mongoc_cleanup();
}

/* Server codes that say "this request can never succeed as sent". */
static int store_error_permanent(const bson_error_t *e)
{
    if (e->domain == MONGOC_ERROR_BSON)
        return 1;
    if (e->domain == MONGOC_ERROR_CLIENT)
        return e->code == MONGOC_ERROR_CLIENT_TOO_BIG;
    if (e->domain == MONGOC_ERROR_COMMAND)
        return e->code == MONGOC_ERROR_COMMAND_INVALID_ARG;
    if (e->domain != MONGOC_ERROR_SERVER && e->domain != MONGOC_ERROR_COLLECTION &&
        e->domain != MONGOC_ERROR_QUERY)
        return 0;
    switch (e->code) {
    case 2:     /* BadValue */
    case 9:     /* FailedToParse */
    case 14:    /* TypeMismatch */
    case 22:    /* InvalidBSON */
    case 121:   /* DocumentValidationFailure */
    case 10334: /* BSONObjectTooLarge */
    case 17280: /* KeyTooLong */
    case 17419: /* update result larger than 16 MB */
        return 1;
    default:
        return 0;
    }
}

static int store_is_dup(const bson_error_t *e)
{
    return e->code == MONGOC_ERROR_DUPLICATE_KEY &&
           (e->domain == MONGOC_ERROR_SERVER || e->domain == MONGOC_ERROR_COLLECTION ||
            e->domain == MONGOC_ERROR_COMMAND || e->domain == MONGOC_ERROR_QUERY);
}

/* Format "what: message" into err; returns the class of the error. */
static int store_fail(char *err, size_t errlen, const bson_error_t *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int store_fail(char *err, size_t errlen, const bson_error_t *e, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "mongo: %s: %s (domain %u code %u)", what, e->message, e->domain,
             e->code);
    return store_error_permanent(e) ? STORE_ERR_PERMANENT : STORE_ERR_TRANSIENT;
}

struct store *store_new(const char *uri, char *err, size_t errlen)
{
    bson_error_t e;
    mongoc_uri_t *u = NULL;
    struct store *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        snprintf(err, errlen, "mongo: out of memory");
        return NULL;
    }
    u = mongoc_uri_new_with_error(uri, &e);
    if (u == NULL) {
        snprintf(err, errlen, "mongo: invalid URI: %s", e.message);
        goto err;
    }
    /* mongoc's defaults wait 30 s for a server and 5 min on a socket: a down MongoDB would park
     * every pool thread instead of failing fast into the retry path. */
    if (!mongoc_uri_has_option(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, STORE_SELECTION_MS);
    if (!mongoc_uri_has_option(u, MONGOC_URI_CONNECTTIMEOUTMS))
        mongoc_uri_set_option_as_int32(u, MONGOC_URI_CONNECTTIMEOUTMS, STORE_CONNECT_MS);
    if (!mongoc_uri_has_option(u, MONGOC_URI_SOCKETTIMEOUTMS))
        mongoc_uri_set_option_as_int32(u, MONGOC_URI_SOCKETTIMEOUTMS, STORE_SOCKET_MS);
    if (!mongoc_uri_has_option(u, MONGOC_URI_RETRYWRITES))
        mongoc_uri_set_option_as_bool(u, MONGOC_URI_RETRYWRITES, true);
    if (mongoc_uri_get_appname(u) == NULL)
        mongoc_uri_set_appname(u, "pixflow-consumer");

    const char *db = mongoc_uri_get_database(u);
    st->db = strdup(db && *db ? db : STORE_DEFAULT_DB);
    if (st->db == NULL) {
        snprintf(err, errlen, "mongo: out of memory");
        goto err;
    }
    st->pool = mongoc_client_pool_new_with_error(u, &e);
    if (st->pool == NULL) {
        snprintf(err, errlen, "mongo: %s", e.message);
        goto err;
    }
    /* Version 2 reports server errors in MONGOC_ERROR_SERVER with the server's own code. */
    mongoc_client_pool_set_error_api(st->pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_uri_destroy(u);
    return st;
err:
    mongoc_uri_destroy(u);
    store_free(st);
    return NULL;
}

void store_free(struct store *st)
{
    if (st == NULL)
        return;
    if (st->pool)
        mongoc_client_pool_destroy(st->pool);
    free(st->db);
    free(st);
}

static void store_conn_open(struct store *st, struct store_conn *c)
{
    c->client = mongoc_client_pool_pop(st->pool);
    c->coll = mongoc_client_get_collection(c->client, st->db, STORE_COLL);
    c->locks = mongoc_client_get_collection(c->client, st->db, STORE_LOCKS);
}

static void store_conn_close(struct store *st, struct store_conn *c)
{
    mongoc_collection_destroy(c->coll);
    mongoc_collection_destroy(c->locks);
    mongoc_client_pool_push(st->pool, c->client);
}

/* One createIndexes per index: FerretDB v1 drops the connection (a panic, "slice bounds out of
 * range") when one command lists several indexes that all exist already. */
static int store_create_index(mongoc_database_t *db, const char *coll, const char *name,
                              const bson_t *key, bool unique, char *err, size_t errlen)
{
    bson_error_t e;
    bson_t cmd = BSON_INITIALIZER, arr, spec;
    BSON_APPEND_UTF8(&cmd, "createIndexes", coll);
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
    BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &spec);
    BSON_APPEND_DOCUMENT(&spec, "key", key);
    BSON_APPEND_UTF8(&spec, "name", name);
    if (unique)
        BSON_APPEND_BOOL(&spec, "unique", true);
    bson_append_document_end(&arr, &spec);
    bson_append_array_end(&cmd, &arr);
    bool ok = mongoc_database_write_command_with_opts(db, &cmd, NULL, NULL, &e);
    bson_destroy(&cmd);
    if (!ok) {
        store_fail(err, errlen, &e, "createIndexes %s.%s", coll, name);
        return -1;
    }
    return 0;
}

int store_prepare(struct store *st, char *err, size_t errlen)
{
    /* The GridFS indexes are the ones the bucket would create on its first upload, made here so
     * that first upload does not race other workers doing the same. */
    static const struct {
        const char *coll, *name, *k1, *k2;
        bool unique;
    } ix[] = {
        {STORE_COLL, "source_1", "source", NULL, true},
        {STORE_COLL, "aliases_1", "aliases", NULL, false},
        {STORE_COLL, "inserted_at_1", "inserted_at", NULL, false},
        {STORED_BUCKET ".files", "filename_1_uploadDate_1", "filename", "uploadDate", false},
        {STORED_BUCKET ".chunks", "files_id_1_n_1", "files_id", "n", true},
    };
    mongoc_client_t *client = mongoc_client_pool_pop(st->pool);
    mongoc_database_t *db = mongoc_client_get_database(client, st->db);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof(ix) / sizeof(ix[0]); i++) {
        bson_t key = BSON_INITIALIZER;
        BSON_APPEND_INT32(&key, ix[i].k1, 1);
        if (ix[i].k2)
            BSON_APPEND_INT32(&key, ix[i].k2, 1);
        rc = store_create_index(db, ix[i].coll, ix[i].name, &key, ix[i].unique, err, errlen);
        bson_destroy(&key);
    }
    mongoc_database_destroy(db);
    mongoc_client_pool_push(st->pool, client);
    return rc;
}

int store_ping(struct store *st, char *err, size_t errlen)
{
    bson_error_t e;
    bson_t cmd = BSON_INITIALIZER;
    BSON_APPEND_INT32(&cmd, "ping", 1);
    mongoc_client_t *client = mongoc_client_pool_pop(st->pool);
    bool ok = mongoc_client_command_simple(client, "admin", &cmd, NULL, NULL, &e);
    mongoc_client_pool_push(st->pool, client);
    bson_destroy(&cmd);
    if (!ok) {
        store_fail(err, errlen, &e, "ping");
        return -1;
    }
    return 0;
}

/* Copy a document's string _id into id (65 bytes); 0 if it is not one of ours. */
static int store_doc_id(const bson_t *doc, char *id)
{
    bson_iter_t it;
    uint32_t len;
    if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&it))
        return 0;
    const char *s = bson_iter_utf8(&it, &len);
    if (len == 0 || len > 64)
        return 0;
    memcpy(id, s, len);
    id[len] = '\0';
    return 1;
}

static int store_doc_has_source(const bson_t *doc, const char *url)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, "source") && BSON_ITER_HOLDS_UTF8(&it) &&
           strcmp(bson_iter_utf8(&it, NULL), url) == 0;
}

/* Take the update lock of image sha: a document {_id: sha, owner, expires} in images.locks (see
 * the top comment for why). The lease frees the lock of a writer that died holding it; it
 * outlasts any call still in flight (socketTimeoutMS), so a live holder is never broken. */
static int store_lock(struct store_conn *c, const char *sha, char *token, bson_error_t *e)
{
    bson_oid_t oid;
    bson_oid_init(&oid, NULL);
    bson_oid_to_string(&oid, token);
    unsigned seed = (unsigned)oid.bytes[11] | (unsigned)oid.bytes[10] << 8;
    int64_t deadline = bson_get_monotonic_time() + STORE_LOCK_WAIT_MS * 1000;
    for (;;) {
        int64_t now = (int64_t)time(NULL) * 1000;
        bson_t *lock = BCON_NEW("_id", BCON_UTF8(sha), "owner", BCON_UTF8(token), "expires",
                                BCON_DATE_TIME(now + STORE_LOCK_LEASE_MS));
        bool ok = mongoc_collection_insert_one(c->locks, lock, NULL, NULL, e);
        bson_destroy(lock);
        if (ok)
            return 0;
        if (!store_is_dup(e))
            return -1;

        bson_t *filter = BCON_NEW("_id", BCON_UTF8(sha));
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c->locks, filter, NULL, NULL);
        const bson_t *held;
        char owner[32] = "";
        int64_t expires = INT64_MAX;
        bson_iter_t it;
        int found = mongoc_cursor_next(cur, &held);
        if (found) {
            if (bson_iter_init_find(&it, held, "owner") && BSON_ITER_HOLDS_UTF8(&it))
                snprintf(owner, sizeof(owner), "%s", bson_iter_utf8(&it, NULL));
            if (bson_iter_init_find(&it, held, "expires") && BSON_ITER_HOLDS_DATE_TIME(&it))
                expires = bson_iter_date_time(&it);
        }
        ok = !mongoc_cursor_error(cur, e);
        mongoc_cursor_destroy(cur);
        bson_destroy(filter);
        if (!ok)
            return -1;
        if (!found)
            continue; /* released meanwhile */
        if (expires < now) {
            /* Only that holder's lock, so a writer that broke it first and took it keeps it.
             * Limit: FerretDB runs this filter and the delete as two steps too, so two writers
             * breaking one expired lock at the same instant could both take it; that needs a
             * writer to die inside a lock held for milliseconds. */
            bson_t *sel = BCON_NEW("_id", BCON_UTF8(sha), "owner", BCON_UTF8(owner));
            ok = mongoc_collection_delete_one(c->locks, sel, NULL, NULL, e);
            bson_destroy(sel);
            if (!ok)
                return -1;
            log_warn("event=store_lock_expired image=%s owner=%s", sha, owner);
            continue;
        }
        if (bson_get_monotonic_time() > deadline) {
            bson_set_error(e, 0, 0, "image %s stays locked by another writer", sha);
            return -1;
        }
        seed = seed * 1103515245u + 12345u;
        usleep(1000 + (seed >> 8) % 9000);
    }
}

static void store_unlock(struct store_conn *c, const char *sha, const char *token)
{
    bson_error_t e;
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(sha), "owner", BCON_UTF8(token));
    if (!mongoc_collection_delete_one(c->locks, sel, NULL, NULL, &e))
        log_warn("event=store_unlock_failed image=%s error=%s", sha, e.message);
    bson_destroy(sel);
}

/* Run one update; *matched and *modified from the reply. The caller holds the image's lock. */
static int store_update(struct store_conn *c, const bson_t *sel, const bson_t *upd, int *matched,
                        int *modified, bson_error_t *e)
{
    bson_t reply;
    bson_iter_t it;
    bool ok = mongoc_collection_update_one(c->coll, sel, upd, NULL, &reply, e);
    if (ok) {
        *matched = bson_iter_init_find(&it, &reply, "matchedCount") && bson_iter_as_int64(&it) > 0;
        *modified =
            bson_iter_init_find(&it, &reply, "modifiedCount") && bson_iter_as_int64(&it) > 0;
    }
    bson_destroy(&reply);
    return ok ? 0 : -1;
}

/* Run one update on image sha under its lock. */
static int store_update_locked(struct store_conn *c, const char *sha, const bson_t *sel,
                               const bson_t *upd, int *matched, int *modified, bson_error_t *e)
{
    char token[25];
    if (store_lock(c, sha, token, e) < 0)
        return -1;
    int rc = store_update(c, sel, upd, matched, modified, e);
    store_unlock(c, sha, token);
    return rc;
}

/* Advance elems (inside an alias_from array) to the next element recording url; *el views it. */
static int store_alias_from_next(bson_iter_t *elems, const char *url, bson_t *el)
{
    while (bson_iter_next(elems)) {
        bson_iter_t f;
        uint32_t len;
        const uint8_t *data;
        if (!BSON_ITER_HOLDS_DOCUMENT(elems))
            continue;
        bson_iter_document(elems, &len, &data);
        if (!bson_init_static(el, data, len))
            continue;
        if (bson_iter_init_find(&f, el, "url") && BSON_ITER_HOLDS_UTF8(&f) &&
            strcmp(bson_iter_utf8(&f, NULL), url) == 0)
            return 1;
    }
    return 0;
}

static int store_alias_from_iter(const bson_t *doc, bson_iter_t *elems)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, "alias_from") && BSON_ITER_HOLDS_ARRAY(&it) &&
           bson_iter_recurse(&it, elems);
}

/* Copy doc's string field key into owner (STORE_OWNER_MAX bytes); "" if absent, not a string or
 * too long: a truncated id could equal another entry's. */
static void store_owner_copy(const bson_t *doc, const char *key, char *owner)
{
    bson_iter_t it;
    uint32_t len;
    owner[0] = '\0';
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_UTF8(&it))
        return;
    const char *s = bson_iter_utf8(&it, &len);
    if (len < STORE_OWNER_MAX)
        memcpy(owner, s, len + 1);
}

/* The stream id of the entry that aliased url on doc ("" when unknown). */
static void store_alias_owner(const bson_t *doc, const char *url, char *owner)
{
    bson_iter_t elems;
    bson_t el;
    owner[0] = '\0';
    if (store_alias_from_iter(doc, &elems) && store_alias_from_next(&elems, url, &el))
        store_owner_copy(&el, "stream_id", owner);
}

/* Pull url from the aliases of image id, and its elements from alias_from, unless url is that
 * image's source. FerretDB v1's $pull takes values, not conditions ({url: u} matches no element),
 * so the elements are read and removed by exact value with $pullAll, both under the lock: every
 * update of the document holds it, so what was read is what the update removes. */
static int store_unalias(struct store_conn *c, const char *id, const char *url, int *modified,
                         bson_error_t *e)
{
    char token[25];
    int matched = 0, rc = -1;
    uint32_t n = 0;
    const bson_t *doc;
    mongoc_cursor_t *cur;
    bson_t elems = BSON_INITIALIZER, upd = BSON_INITIALIZER, sub;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    bson_t *opts = BCON_NEW("projection", "{", "alias_from", BCON_INT32(1), "}");
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(id), "source", "{", "$ne", BCON_UTF8(url), "}");

    if (store_lock(c, id, token, e) < 0)
        goto done;
    cur = mongoc_collection_find_with_opts(c->coll, filter, opts, NULL);
    if (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        bson_t el;
        if (store_alias_from_iter(doc, &it)) {
            while (store_alias_from_next(&it, url, &el)) {
                char key[16];
                const char *k;
                size_t klen = bson_uint32_to_string(n++, &k, key, sizeof(key));
                bson_append_document(&elems, k, (int)klen, &el);
            }
        }
    }
    bool ok = !mongoc_cursor_error(cur, e);
    mongoc_cursor_destroy(cur);
    if (ok) {
        BSON_APPEND_DOCUMENT_BEGIN(&upd, "$pull", &sub);
        BSON_APPEND_UTF8(&sub, "aliases", url);
        bson_append_document_end(&upd, &sub);
        if (n > 0) {
            BSON_APPEND_DOCUMENT_BEGIN(&upd, "$pullAll", &sub);
            BSON_APPEND_ARRAY(&sub, "alias_from", &elems);
            bson_append_document_end(&upd, &sub);
        }
        rc = store_update(c, sel, &upd, &matched, modified, e);
    }
    store_unlock(c, id, token);
done:
    bson_destroy(&elems);
    bson_destroy(&upd);
    bson_destroy(filter);
    bson_destroy(opts);
    bson_destroy(sel);
    return rc;
}

/* Pull url from the aliases of each listed holder but keep. */
static int store_pull(struct store_conn *c, const char *url, const bson_t *holders,
                      const char *keep, bson_error_t *e)
{
    bson_iter_t it;
    bson_iter_init(&it, holders);
    while (bson_iter_next(&it)) {
        const char *id = bson_iter_utf8(&it, NULL);
        if (strcmp(id, keep) == 0)
            continue;
        int modified = 0;
        if (store_unalias(c, id, url, &modified, e) < 0)
            return -1;
        if (modified)
            log_info("event=store_repair url=%s canonical=%s pulled_from=%s", url, keep, id);
    }
    return 0;
}

/* Find the URL's canonical document (*role = 0 when unclaimed) and the stream id that recorded
 * the URL there (owner, STORE_OWNER_MAX bytes). With repair set, also pull the URL from the
 * aliases of every other holder seen: only those, never a holder this read did not see, which is
 * what makes concurrent repairs converge (see the top comment). */
static int store_settle(struct store_conn *c, const char *url, int repair, char *canon, char *owner,
                        int *role, bson_error_t *e)
{
    bson_t *filter = BCON_NEW("$or", "[", "{", "source", BCON_UTF8(url), "}", "{", "aliases",
                              BCON_UTF8(url), "}", "]");
    /* All of alias_from: FerretDB v1 rejects an $elemMatch projection. */
    bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "source", BCON_INT32(1),
                            "stream_id", BCON_INT32(1), "alias_from", BCON_INT32(1), "}");
    bson_t holders = BSON_INITIALIZER;
    uint32_t nholders = 0;
    char source[65] = "", alias[65] = "";
    char source_owner[STORE_OWNER_MAX] = "", alias_owner[STORE_OWNER_MAX] = "";
    const bson_t *doc;
    int rc = -1;

    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c->coll, filter, opts, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        char id[65];
        if (!store_doc_id(doc, id))
            continue;
        if (store_doc_has_source(doc, url)) {
            memcpy(source, id, sizeof(id));
            store_owner_copy(doc, "stream_id", source_owner);
            continue;
        }
        char key[16];
        const char *k;
        size_t klen = bson_uint32_to_string(nholders++, &k, key, sizeof(key));
        bson_append_utf8(&holders, k, (int)klen, id, -1);
        if (alias[0] == '\0' || strcmp(id, alias) < 0) {
            memcpy(alias, id, sizeof(id));
            store_alias_owner(doc, url, alias_owner);
        }
    }
    if (mongoc_cursor_error(cur, e))
        goto done;

    const char *best = source[0] ? source : alias;
    *role = source[0] ? STORE_FOUND_SOURCE : alias[0] ? STORE_FOUND_ALIAS : 0;
    if (*role) {
        memcpy(canon, best, strlen(best) + 1);
        memcpy(owner, source[0] ? source_owner : alias_owner, STORE_OWNER_MAX);
    }
    if (repair && nholders > (source[0] ? 0u : 1u) && store_pull(c, url, &holders, best, e) < 0)
        goto done;
    rc = 0;
done:
    mongoc_cursor_destroy(cur);
    bson_destroy(&holders);
    bson_destroy(filter);
    bson_destroy(opts);
    return rc;
}

static void store_append_str(bson_t *b, const char *key, const char *val)
{
    if (val)
        BSON_APPEND_UTF8(b, key, val);
    else
        BSON_APPEND_NULL(b, key);
}

/* Add url to the aliases of image sha, and {url, stream_id} to its alias_from, in one update,
 * unless url is that image's source or already one of its aliases: so each alias has exactly one
 * alias_from element, the first recorder's. *matched = 0 when nothing was added. */
static int store_alias(struct store_conn *c, const char *sha, const char *url,
                       const char *stream_id, int *matched, int *modified, bson_error_t *e)
{
    bson_t upd = BSON_INITIALIZER, push, from;
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(sha), "source", "{", "$ne", BCON_UTF8(url), "}",
                           "aliases", "{", "$ne", BCON_UTF8(url), "}");
    BSON_APPEND_DOCUMENT_BEGIN(&upd, "$push", &push);
    BSON_APPEND_UTF8(&push, "aliases", url);
    BSON_APPEND_DOCUMENT_BEGIN(&push, "alias_from", &from);
    BSON_APPEND_UTF8(&from, "url", url);
    store_append_str(&from, "stream_id", stream_id);
    bson_append_document_end(&push, &from);
    bson_append_document_end(&upd, &push);
    int rc = store_update_locked(c, sha, sel, &upd, matched, modified, e);
    bson_destroy(sel);
    bson_destroy(&upd);
    return rc;
}

/* Every field but _id and image, in SPEC §6 order; alias_from follows aliases. */
static void store_meta_build(const struct store_doc *d, bson_t *meta)
{
    bson_t sub, arr, item;
    bson_init(meta);
    BSON_APPEND_UTF8(meta, "sha256", d->sha256);
    store_append_str(meta, "format", d->format);
    BSON_APPEND_INT32(meta, "width", d->width);
    BSON_APPEND_INT32(meta, "height", d->height);
    BSON_APPEND_INT32(meta, "channels", d->channels);
    BSON_APPEND_INT64(meta, "bytes", (int64_t)d->image_len);
    BSON_APPEND_UTF8(meta, "source", d->source);
    BSON_APPEND_ARRAY_BEGIN(meta, "aliases", &arr);
    bson_append_array_end(meta, &arr);
    BSON_APPEND_ARRAY_BEGIN(meta, "alias_from", &arr);
    bson_append_array_end(meta, &arr);

    BSON_APPEND_DOCUMENT_BEGIN(meta, "origin", &sub);
    store_append_str(&sub, "final_url", d->origin.final_url);
    store_append_str(&sub, "content_type", d->origin.content_type);
    BSON_APPEND_INT64(&sub, "bytes", (int64_t)d->origin.bytes);
    store_append_str(&sub, "sha256", d->origin.sha256);
    BSON_APPEND_INT32(&sub, "width", d->origin.width);
    BSON_APPEND_INT32(&sub, "height", d->origin.height);
    bson_append_document_end(meta, &sub);

    BSON_APPEND_ARRAY_BEGIN(meta, "transforms", &arr);
    for (int i = 0; i < d->ntransforms; i++) {
        char key[16];
        const char *k;
        size_t klen = bson_uint32_to_string((uint32_t)i, &k, key, sizeof(key));
        bson_append_document_begin(&arr, k, (int)klen, &item);
        store_append_str(&item, "name", d->transforms[i].name);
        store_append_str(&item, "version", d->transforms[i].version);
        if (d->transforms[i].so_sha256)
            BSON_APPEND_UTF8(&item, "sha256", d->transforms[i].so_sha256);
        bson_append_document_end(&arr, &item);
    }
    bson_append_array_end(meta, &arr);

    /* bson_append_now_utc() has whole seconds only: latency figures want milliseconds. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    bson_append_date_time(meta, "inserted_at", -1,
                          (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    store_append_str(meta, "stream_id", d->stream_id);
    store_append_str(meta, "consumer", d->consumer);
    BSON_APPEND_INT32(meta, "attempts", d->attempts);
}

/* The inline document's exact BSON size: header and terminator, the _id element (type, "_id\0",
 * length, the string and its NUL), the image element likewise, and meta's elements. */
static size_t store_inline_size(const struct store_doc *d, const bson_t *meta)
{
    size_t id = 1 + 4 + 4 + strlen(d->sha256) + 1;
    size_t image = 1 + 6 + 4 + d->image_b64_len + 1;
    return 4 + id + image + (meta->len - 5) + 1;
}

static int store_check_str(const char *field, const char *s, int required, char *err, size_t errlen)
{
    if (s == NULL) {
        if (!required)
            return 0;
        snprintf(err, errlen, "store: %s is missing", field);
        return -1;
    }
    if (!bson_utf8_validate(s, strlen(s), false)) {
        snprintf(err, errlen, "store: %s is not valid UTF-8", field);
        return -1;
    }
    return 0;
}

/* Everything that would make the document unstorable whatever the server's state. */
static int store_doc_check(const struct store_doc *d, char *err, size_t errlen)
{
    if (d->sha256 == NULL || strlen(d->sha256) != 64 ||
        strspn(d->sha256, "0123456789abcdef") != 64) {
        snprintf(err, errlen, "store: sha256 must be 64 lowercase hex digits");
        return -1;
    }
    if (d->image_len == 0) {
        snprintf(err, errlen, "store: image_len is 0");
        return -1;
    }
    if (d->ntransforms < 0 || (d->ntransforms > 0 && d->transforms == NULL)) {
        snprintf(err, errlen, "store: bad transforms array");
        return -1;
    }
    if (store_check_str("source", d->source, 1, err, errlen) < 0 ||
        store_check_str("format", d->format, 0, err, errlen) < 0 ||
        store_check_str("origin.final_url", d->origin.final_url, 0, err, errlen) < 0 ||
        store_check_str("origin.content_type", d->origin.content_type, 0, err, errlen) < 0 ||
        store_check_str("origin.sha256", d->origin.sha256, 0, err, errlen) < 0 ||
        store_check_str("stream_id", d->stream_id, 0, err, errlen) < 0 ||
        store_check_str("consumer", d->consumer, 0, err, errlen) < 0)
        return -1;
    for (int i = 0; i < d->ntransforms; i++) {
        if (store_check_str("transforms.name", d->transforms[i].name, 0, err, errlen) < 0 ||
            store_check_str("transforms.version", d->transforms[i].version, 0, err, errlen) < 0 ||
            store_check_str("transforms.sha256", d->transforms[i].so_sha256, 0, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static mongoc_gridfs_bucket_t *store_bucket_new(struct store *st, mongoc_client_t *client,
                                                bson_error_t *e)
{
    mongoc_database_t *db = mongoc_client_get_database(client, st->db);
    bson_t *opts = BCON_NEW("bucketName", BCON_UTF8(STORED_BUCKET), "chunkSizeBytes",
                            BCON_INT32(STORE_GRIDFS_CHUNK));
    mongoc_gridfs_bucket_t *b = mongoc_gridfs_bucket_new(db, opts, NULL, e);
    bson_destroy(opts);
    mongoc_database_destroy(db); /* the bucket keeps its own collection handles */
    return b;
}

/* Upload the raw PNG as file `id`; on failure the chunks written so far are removed. */
static int store_gridfs_upload(mongoc_gridfs_bucket_t *b, const struct store_doc *d,
                               const bson_oid_t *id, bson_error_t *e)
{
    char name[80];
    bson_value_t v = {.value_type = BSON_TYPE_OID};
    bson_oid_copy(id, &v.value.v_oid);
    snprintf(name, sizeof(name), "%s.png", d->sha256);
    bson_t *opts = BCON_NEW("metadata", "{", "sha256", BCON_UTF8(d->sha256), "source",
                            BCON_UTF8(d->source), "}");
    mongoc_stream_t *s = mongoc_gridfs_bucket_open_upload_stream_with_id(b, &v, name, opts, e);
    bson_destroy(opts);
    if (s == NULL)
        return -1;
    ssize_t n = mongoc_stream_write(s, (void *)d->image, d->image_len, 0);
    if (n != (ssize_t)d->image_len || mongoc_stream_close(s) != 0) {
        mongoc_gridfs_bucket_stream_error(s, e);
        mongoc_gridfs_bucket_abort_upload(s);
        mongoc_stream_destroy(s);
        return -1;
    }
    mongoc_stream_destroy(s);
    return 0;
}

static void store_gridfs_delete(mongoc_gridfs_bucket_t *b, const bson_oid_t *id)
{
    bson_error_t e;
    bson_value_t v = {.value_type = BSON_TYPE_OID};
    bson_oid_copy(id, &v.value.v_oid);
    char oid[25];
    bson_oid_to_string(id, oid);
    if (mongoc_gridfs_bucket_delete_by_id(b, &v, &e))
        log_info("event=store_gridfs_discard file=%s", oid);
    else
        log_warn("event=store_gridfs_orphan file=%s error=%s", oid, e.message);
}

/* Insert the document (uploading the image first when it goes to GridFS). *dup tells a
 * duplicate key apart from other failures. */
static int store_insert(struct store *st, struct store_conn *c, const struct store_doc *d,
                        const bson_t *meta, int gridfs, int *dup, bson_error_t *e)
{
    mongoc_gridfs_bucket_t *bucket = NULL;
    bson_oid_t fid;
    bson_t doc = BSON_INITIALIZER;
    int rc = -1;

    *dup = 0;
    BSON_APPEND_UTF8(&doc, "_id", d->sha256);
    if (gridfs) {
        bucket = store_bucket_new(st, c->client, e);
        if (bucket == NULL)
            goto done;
        bson_oid_init(&fid, NULL);
        if (store_gridfs_upload(bucket, d, &fid, e) < 0)
            goto done;
    } else {
        bson_append_utf8(&doc, "image", 5, d->image_b64, (int)d->image_b64_len);
    }
    bson_concat(&doc, meta);
    if (gridfs) {
        BSON_APPEND_UTF8(&doc, "storage", "gridfs");
        BSON_APPEND_OID(&doc, "gridfs_id", &fid);
    }
    if (mongoc_collection_insert_one(c->coll, &doc, NULL, NULL, e)) {
        rc = 0;
    } else {
        *dup = store_is_dup(e);
        /* Only a refused insert frees the upload: after a lost reply the document may exist. */
        if (gridfs && *dup)
            store_gridfs_delete(bucket, &fid);
    }
done:
    if (bucket)
        mongoc_gridfs_bucket_destroy(bucket);
    bson_destroy(&doc);
    return rc;
}

/* The answer for a URL that is recorded already: the recording entry's own outcome when it is
 * this entry (an earlier write whose reply was lost, or a redelivery), else STORE_ALREADY. */
static enum store_outcome store_recorded(const struct store_doc *d, int role, const char *owner)
{
    if (d->stream_id == NULL || d->stream_id[0] == '\0' || owner[0] == '\0' ||
        strcmp(owner, d->stream_id) != 0)
        return STORE_ALREADY;
    return role == STORE_FOUND_SOURCE ? STORE_INSERTED : STORE_ALIASED;
}

int store_put(struct store *st, const struct store_doc *d, enum store_outcome *out, char *err,
              size_t errlen)
{
    bson_error_t e;
    bson_t meta;
    struct store_conn c;
    char canon[65], owner[STORE_OWNER_MAX];
    int role, rc = STORE_ERR_TRANSIENT;

    if (store_doc_check(d, err, errlen) < 0)
        return STORE_ERR_PERMANENT;
    store_meta_build(d, &meta);
    int gridfs = store_inline_size(d, &meta) + STORE_ALIAS_ROOM > STORE_BSON_MAX;
    if (gridfs ? d->image == NULL : d->image_b64 == NULL) {
        snprintf(err, errlen, "store: %s is missing", gridfs ? "image (raw bytes)" : "image_b64");
        bson_destroy(&meta);
        return STORE_ERR_PERMANENT;
    }

    store_conn_open(st, &c);
    /* GridFS documents try the alias first: an upload is costly, and wasted if the image is
     * already stored. */
    int insert = !gridfs;
    for (int round = 0; round < STORE_PUT_ROUNDS; round++) {
        /* A first delivery's URL has just entered the dedup set: insert at once, and settle
         * only if the insert collides (see "First deliveries" above). */
        int fast = d->first_delivery && insert && round == 0;
        if (!fast && store_settle(&c, d->source, 1, canon, owner, &role, &e) < 0) {
            rc = store_fail(err, errlen, &e, "find url %s", d->source);
            goto done;
        }
        if (!fast && role) {
            *out = store_recorded(d, role, owner);
            rc = 0;
            goto done;
        }
        if (insert) {
            int dup;
            if (store_insert(st, &c, d, &meta, gridfs, &dup, &e) == 0) {
                /* Ours is the source now; settle only removes aliases another writer of this
                 * URL may have added meanwhile. If it fails the insert still stands: readers
                 * apply the same canonical rule (a source wins), and the next settle of this
                 * URL removes the stray alias. */
                if (!fast && store_settle(&c, d->source, 1, canon, owner, &role, &e) < 0)
                    log_warn("event=store_settle_failed url=%s error=%s", d->source, e.message);
                *out = STORE_INSERTED;
                rc = 0;
                goto done;
            }
            if (!dup) {
                rc = store_fail(err, errlen, &e, "insert %s", d->sha256);
                goto done;
            }
            insert = 0;
            continue;
        }
        int matched = 0, modified = 0;
        if (store_alias(&c, d->sha256, d->source, d->stream_id, &matched, &modified, &e) < 0) {
            rc = store_fail(err, errlen, &e, "alias %s on %s", d->source, d->sha256);
            goto done;
        }
        if (!matched) {
            /* The image is not stored, or the URL became its source or one of its aliases
             * meanwhile: the next round's settle tells. */
            insert = 1;
            continue;
        }
        if (store_settle(&c, d->source, 1, canon, owner, &role, &e) < 0) {
            rc = store_fail(err, errlen, &e, "find url %s", d->source);
            goto done;
        }
        if (!role)
            continue; /* the alias did not hold: never answer ALREADY for an unclaimed URL */
        *out = modified && role == STORE_FOUND_ALIAS && strcmp(canon, d->sha256) == 0
                   ? STORE_ALIASED
                   : store_recorded(d, role, owner);
        rc = 0;
        goto done;
    }
    snprintf(err, errlen, "mongo: %s: no stable outcome after %d rounds", d->source,
             STORE_PUT_ROUNDS);
done:
    store_conn_close(st, &c);
    bson_destroy(&meta);
    return rc;
}

int store_find_url(struct store *st, const char *url, char *id_out, char *owner_out, int *found,
                   char *err, size_t errlen)
{
    bson_error_t e;
    struct store_conn c;
    char canon[65], owner[STORE_OWNER_MAX];
    int role;
    if (url == NULL || !bson_utf8_validate(url, strlen(url), false)) {
        snprintf(err, errlen, "store: url is missing or not valid UTF-8");
        return -1;
    }
    store_conn_open(st, &c);
    int rc = store_settle(&c, url, 0, canon, owner, &role, &e);
    store_conn_close(st, &c);
    if (rc < 0) {
        store_fail(err, errlen, &e, "find url %s", url);
        return -1;
    }
    *found = role;
    if (role) {
        memcpy(id_out, canon, strlen(canon) + 1);
        if (owner_out)
            memcpy(owner_out, owner, strlen(owner) + 1);
    }
    return 0;
}

static char *store_json(const bson_t *doc)
{
    size_t n;
    char *j = bson_as_relaxed_extended_json(doc, &n);
    char *out = j ? strdup(j) : NULL; /* plain malloc for the caller's free() */
    bson_free(j);
    return out;
}

int store_get(struct store *st, const char *id, int *found, char **json, unsigned char **png,
              size_t *png_len, char *err, size_t errlen)
{
    bson_error_t e;
    struct store_conn c;
    int rc = 0;
    *found = 0;
    if (json)
        *json = NULL;
    if (png)
        *png = NULL;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    bson_t *opts = png ? bson_new() : BCON_NEW("projection", "{", "image", BCON_INT32(0), "}");
    store_conn_open(st, &c);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c.coll, filter, opts, NULL);
    const bson_t *doc;
    if (mongoc_cursor_next(cur, &doc)) {
        *found = 1;
        if (png) {
            mongoc_database_t *db = mongoc_client_get_database(c.client, st->db);
            mongoc_gridfs_bucket_t *bucket = NULL;
            if (stored_png(db, &bucket, doc, png, png_len, err, errlen) != STORED_OK)
                rc = -1;
            if (bucket)
                mongoc_gridfs_bucket_destroy(bucket);
            mongoc_database_destroy(db);
        }
        if (rc == 0 && json) {
            bson_t meta = BSON_INITIALIZER;
            bson_copy_to_excluding_noinit(doc, &meta, "image", NULL);
            *json = store_json(&meta);
            bson_destroy(&meta);
            if (*json == NULL)
                rc = -1, snprintf(err, errlen, "store: out of memory");
        }
    } else if (mongoc_cursor_error(cur, &e)) {
        rc = store_fail(err, errlen, &e, "find %s", id);
    }
    mongoc_cursor_destroy(cur);
    store_conn_close(st, &c);
    bson_destroy(filter);
    bson_destroy(opts);
    if (rc < 0 && png) {
        free(*png);
        *png = NULL;
    }
    return rc;
}

int store_list(struct store *st, const char *after, int limit, char **json, char *err,
               size_t errlen)
{
    bson_error_t e;
    struct store_conn c;
    *json = NULL;
    bson_t *filter =
        after && *after ? BCON_NEW("_id", "{", "$gt", BCON_UTF8(after), "}") : bson_new();
    bson_t *opts = BCON_NEW("projection", "{", "image", BCON_INT32(0), "}", "sort", "{", "_id",
                            BCON_INT32(1), "}", "limit", BCON_INT64(limit));
    store_conn_open(st, &c);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c.coll, filter, opts, NULL);
    bson_t list = BSON_INITIALIZER, arr;
    BSON_APPEND_ARRAY_BEGIN(&list, "images", &arr);
    const bson_t *doc;
    char key[16];
    int n = 0;
    while (mongoc_cursor_next(cur, &doc)) {
        snprintf(key, sizeof(key), "%d", n++);
        BSON_APPEND_DOCUMENT(&arr, key, doc);
    }
    bson_append_array_end(&list, &arr);
    int rc = 0;
    if (mongoc_cursor_error(cur, &e))
        rc = store_fail(err, errlen, &e, "list images");
    else if ((*json = store_json(&list)) == NULL)
        rc = -1, snprintf(err, errlen, "store: out of memory");
    mongoc_cursor_destroy(cur);
    store_conn_close(st, &c);
    bson_destroy(&list);
    bson_destroy(filter);
    bson_destroy(opts);
    return rc;
}
