/* store.c -- the consumer's MongoDB store: one document per image, one image per URL, one per
 * kept original.
 *
 * Two collections (SPEC §6): `images`, one document per picture, _id = sha256 of its PNG, and
 * `sources`, one small document per accepted URL, _id = the URL, naming its image. Every decision
 * is an insert against a unique _id or a read by _id (one exception, step 0 below, on a
 * redelivery only), so a redelivery or an alias costs what a first delivery costs, whatever the
 * size of the collections. No document holds a list that grows with the number of URLs, and
 * there is no lock: neither server gives multi-document atomicity (FerretDB has no transactions),
 * but both make a unique _id insert an atomic test-and-set.
 *
 * Order: the image first, then the URL's claim. A first delivery (the common case, and on a real
 * catalog mostly an alias: picsum serves about a thousand photographs) is then two inserts and no
 * read: the image insert's outcome decides the role (success: this URL produced the picture;
 * duplicate key: identical bytes were stored already), and the claim is written with it. That
 * matters beyond MongoDB: FerretDB v1 on SQLite answers even a read by _id with a scan of the
 * collection (its plan is "SCAN"; only the unique-_id insert uses an index), about 0.1 s per read
 * at 50,000 documents, so reads stay off the common path.
 *
 * store_put(d), d->source = URL u, d->sha256 = X, this entry = d->stream_id:
 *
 *  -1. With a raw store, the original is already durable there (the worker keeps it first):
 *      insert originals[sha256 of the download] {raw, bytes, content_type, ...}. Duplicate key:
 *      those bytes were kept before (an alias, a redelivery): nothing to do. Written first, so a
 *      claim never names an original without its document; a crash after it leaves an original
 *      no URL names yet, which is still a kept download and costs nothing to keep.
 *   0. Unless this is a first delivery's first try: read sources[u]. Present -> resolve it. Absent,
 *      an earlier try of this entry may have written (d->maybe_written), and images has
 *      {source: u, stream_id: this entry} (index source_1_stream_id_1): this entry was cut
 *      between its image and its claim; claim that image -> INSERTED.
 *   1. insert images[X] (the upload to GridFS first when large). Success: created. Duplicate
 *      key: identical bytes are stored; when an earlier try may have written, the image is read
 *      to tell this entry's own earlier insert (source u, its stream_id: created too) from
 *      another's.
 *
 * The worker knows which redeliveries may have written: it records in Redis that an entry's
 * store begins before its first write (consumer/stream.c, stream_mark), and a redelivery reads
 * that back. Most redeliveries after a crash were still downloading or decoding, and for them
 * the put reads sources[u] only: on FerretDB a read of `images` scans every picture, base64
 * included, seconds per read on a full collection, which would stall every redelivery.
 *   2. insert sources {_id: u, image: X, role: created ? source : alias, stream_id, consumer,
 *      inserted_at} -> INSERTED or ALIASED. Duplicate key: another delivery recorded u; read it,
 *      remove our image if this delivery created it for nothing (store_unstore), and resolve.
 *
 * resolve(claim of u, this entry):
 *   - recorded by another entry (or an unknown one: null or empty stream ids) -> ALREADY.
 *   - by this entry: read its image. Present -> this entry's recorded outcome, from the image's
 *     own fields: INSERTED when its source is u and its stream_id this entry's, else ALIASED
 *     (the role is corrected if it says otherwise). Missing (verify --fix moved it away): the
 *     claim is removed and the put starts over.
 *
 * The races:
 * - Two URLs, identical new bytes, at once: one image insert wins (INSERTED), the other gets a
 *   duplicate key and claims its URL as an alias (ALIASED). N writers: one image, N-1 aliases.
 * - One URL delivered twice at once, different bytes: both images may be inserted, one claim
 *   wins. Two entries: the loser answers ALREADY; one entry twice: the loser answers the
 *   winner's outcome. Either way the loser removes the image it created, so `stored` (one count
 *   per entry) stays the number of `images` documents.
 * - Crash between image and claim: the redelivery finds the image by step 0's query and claims
 *   it, whatever bytes it downloaded itself; `pixflow verify` reports such an image meanwhile.
 * - Lost reply, retried: a retry is not a first try, so it reads and ends in resolve or step 0
 *   with the first call's outcome.
 * - An image removed while an alias of it is written (`pixflow verify --fix` moves corrupt images
 *   away, then frees the URLs that name it): an alias whose claim lands after verify's listing
 *   names a missing image; the next `pixflow verify` reports it as a dangling source and its
 *   --fix re-queues the URL, and a redelivery of that entry re-stores it (resolve).
 *
 * Renditions (SPEC §6): step 3 of a put that recorded its URL, with its original kept (d->raw),
 * inserts renditions[origin/default]
 * naming the URL's image (a duplicate key: that download's default is recorded already). Any
 * other rendition goes through store_put_rendition: the image first (a duplicate key is
 * identical bytes, stored by anyone), then renditions[origin/name]. Two writers of one rendition
 * at once: one insert wins, the loser reads the winner's document and removes its own image if
 * it made a different one (a chain that is not deterministic). A crash between the image and the
 * document: the redelivery inserts the image again (a duplicate for a deterministic chain) and
 * writes the document. A stale document (another chain) is replaced only with a filter on the
 * image it was read with, so two writers replacing it at once leave one. `stored` counts only
 * the default rendition's images (`images.rendition`), which a URL's put alone inserts.
 *
 * Large images: a document whose BSON size (computed from the metadata and the base64 length)
 * exceeds 16 MiB keeps its metadata in `images` while the PNG goes to the GridFS bucket `images`
 * under a fresh ObjectId: `image` absent, `storage: "gridfs"`, `gridfs_id`. The upload comes
 * just before the image insert, so a document never points at a missing file; the upload of an
 * insert refused by a duplicate key is deleted (identical large bytes are uploaded, then
 * dropped: the price of not reading first).
 *
 * Duplicate keys: FerretDB reports code 11000 without keyPattern or keyValue, and each insert
 * here has only the _id unique, so a duplicate key always means that _id.
 *
 * Errors: a failure is transient unless the request itself is invalid (client-side BSON errors or
 * the server codes in store_error_permanent): an unknown error is retried and reaches the dead
 * letters through max-attempts instead of losing the entry at once. */
#include "store.h"
#include "stored.h"

#include "log.h"
#include "names.h"

#include <mongoc/mongoc.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STORE_DEFAULT_DB   "pixflow"
#define STORE_BSON_MAX     (16 * 1024 * 1024)
#define STORE_PUT_ROUNDS   4
#define STORE_SELECTION_MS 2000
#define STORE_CONNECT_MS   2000
#define STORE_SOCKET_MS    30000
#define STORE_GRIDFS_CHUNK (255 * 1024)
#define RENDITION_FIELD_MAX 72 /* a rendition name read back (64 at most) */

struct store {
    mongoc_client_pool_t *pool;
    char *db;
    int uri_sets_w; /* the URI names a write concern: never override it */
    /* What the server said at the first connection (store_probe), under lock. */
    pthread_mutex_t lock;
    int probed;
    int ferretdb;               /* buildInfo has ferretdbVersion */
    mongoc_write_concern_t *wc; /* majority on a replica set, unless the URI says; else NULL */
};

/* The handles of one call: a client borrowed from the pool and the two collections. */
struct store_conn {
    mongoc_client_t *client;
    mongoc_collection_t *images;
    mongoc_collection_t *sources;
    mongoc_collection_t *originals;
    mongoc_collection_t *renditions;
    int ferretdb; /* the server's kind, for store_guard_filter */
};

/* A `sources` document as read back. */
struct store_claim {
    char image[65];
    char owner[STORE_OWNER_MAX]; /* its stream_id, "" when null or too long */
    int role;                    /* STORE_FOUND_SOURCE or STORE_FOUND_ALIAS */
    int64_t inserted_at;         /* ms since the epoch; 0 when absent */
    char origin[65];             /* the original's _id, "" when not recorded */
};

/* What steps 1 and 3 and resolve need of an image document. */
struct store_image {
    int found;
    int from_url; /* its source is the URL asked about and its stream_id the claim's */
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

static void store_append_str(bson_t *b, const char *key, const char *val)
{
    if (val)
        BSON_APPEND_UTF8(b, key, val);
    else
        BSON_APPEND_NULL(b, key);
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
    pthread_mutex_init(&st->lock, NULL);
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
    st->uri_sets_w = mongoc_uri_has_option(u, MONGOC_URI_W) ||
                     mongoc_uri_has_option(u, MONGOC_URI_JOURNAL) ||
                     mongoc_uri_has_option(u, MONGOC_URI_WTIMEOUTMS);

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
    if (st->wc)
        mongoc_write_concern_destroy(st->wc);
    pthread_mutex_destroy(&st->lock);
    free(st->db);
    free(st);
}

/* Ask the server what it is, once: a replica set (hello has setName) gets w:majority with
 * journaling unless the URI chose a write concern, and FerretDB (buildInfo has ferretdbVersion)
 * gets its workarounds (store_create_indexes). Runs without the lock, so a down server delays
 * only the calls that asked; the first answer wins. */
static int store_probe(struct store *st, mongoc_client_t *client, bson_error_t *e)
{
    bson_t hello = BSON_INITIALIZER, build = BSON_INITIALIZER, reply, reply2;
    bson_iter_t it;
    BSON_APPEND_INT32(&hello, "hello", 1);
    BSON_APPEND_INT32(&build, "buildInfo", 1);
    bool ok = mongoc_client_command_simple(client, "admin", &hello, NULL, &reply, e);
    bson_destroy(&hello);
    if (!ok) {
        bson_destroy(&reply);
        bson_destroy(&build);
        return -1;
    }
    int replset = bson_iter_init_find(&it, &reply, "setName") && BSON_ITER_HOLDS_UTF8(&it);
    bson_destroy(&reply);
    ok = mongoc_client_command_simple(client, "admin", &build, NULL, &reply2, e);
    bson_destroy(&build);
    if (!ok) {
        bson_destroy(&reply2);
        return -1;
    }
    int ferretdb = bson_iter_init_find(&it, &reply2, "ferretdbVersion");
    bson_destroy(&reply2);

    pthread_mutex_lock(&st->lock);
    if (!st->probed) {
        st->ferretdb = ferretdb;
        if (replset && !st->uri_sets_w) {
            st->wc = mongoc_write_concern_new();
            mongoc_write_concern_set_wmajority(st->wc, 0);
            mongoc_write_concern_set_journal(st->wc, true);
        }
        st->probed = 1;
        log_info("event=store_server replica_set=%d ferretdb=%d write_concern=%s", replset,
                 ferretdb,
                 st->wc           ? "majority"
                 : st->uri_sets_w ? "uri"
                                  : "server_default");
    }
    pthread_mutex_unlock(&st->lock);
    return 0;
}

static void store_conn_open(struct store *st, struct store_conn *c)
{
    bson_error_t e;
    c->client = mongoc_client_pool_pop(st->pool);
    pthread_mutex_lock(&st->lock);
    int probed = st->probed;
    pthread_mutex_unlock(&st->lock);
    if (!probed && store_probe(st, c->client, &e) < 0)
        log_debug("event=store_probe_failed error=\"%s\"", e.message); /* the call itself fails */
    c->images = mongoc_client_get_collection(c->client, st->db, COLL_IMAGES);
    c->sources = mongoc_client_get_collection(c->client, st->db, COLL_SOURCES);
    c->originals = mongoc_client_get_collection(c->client, st->db, COLL_ORIGINALS);
    c->renditions = mongoc_client_get_collection(c->client, st->db, COLL_RENDITIONS);
    pthread_mutex_lock(&st->lock);
    if (st->wc) {
        mongoc_collection_set_write_concern(c->images, st->wc);
        mongoc_collection_set_write_concern(c->sources, st->wc);
        mongoc_collection_set_write_concern(c->originals, st->wc);
        mongoc_collection_set_write_concern(c->renditions, st->wc);
    }
    c->ferretdb = st->ferretdb;
    pthread_mutex_unlock(&st->lock);
}

static void store_conn_close(struct store *st, struct store_conn *c)
{
    mongoc_collection_destroy(c->images);
    mongoc_collection_destroy(c->sources);
    mongoc_collection_destroy(c->originals);
    mongoc_collection_destroy(c->renditions);
    mongoc_client_pool_push(st->pool, c->client);
}

struct store_index {
    const char *coll, *name, *k1, *k2;
    bool unique;
};

static void store_index_spec(bson_t *arr, const char *key, const struct store_index *ix)
{
    bson_t spec, k;
    BSON_APPEND_DOCUMENT_BEGIN(arr, key, &spec);
    BSON_APPEND_DOCUMENT_BEGIN(&spec, "key", &k);
    BSON_APPEND_INT32(&k, ix->k1, 1);
    if (ix->k2)
        BSON_APPEND_INT32(&k, ix->k2, 1);
    bson_append_document_end(&spec, &k);
    BSON_APPEND_UTF8(&spec, "name", ix->name);
    if (ix->unique)
        BSON_APPEND_BOOL(&spec, "unique", true);
    bson_append_document_end(arr, &spec);
}

/* createIndexes for ix[0..n), all on one collection. FerretDB v1 drops the connection (a panic,
 * "slice bounds out of range") when one command lists several indexes that all exist already,
 * so on FerretDB each index is its own command. This is the only FerretDB-only path; it can go
 * when FerretDB v1 is no longer supported (v2, on DocumentDB, accepts the plain command). */
static int store_create_indexes(struct store *st, mongoc_database_t *db,
                                const struct store_index *ix, size_t n, char *err, size_t errlen)
{
    size_t per_command = st->ferretdb ? 1 : n;
    for (size_t i = 0; i < n; i += per_command) {
        bson_error_t e;
        bson_t cmd = BSON_INITIALIZER, arr;
        BSON_APPEND_UTF8(&cmd, "createIndexes", ix[i].coll);
        BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
        for (size_t j = 0; j < per_command && i + j < n; j++) {
            char key[24];
            snprintf(key, sizeof(key), "%zu", j);
            store_index_spec(&arr, key, &ix[i + j]);
        }
        bson_append_array_end(&cmd, &arr);
        bool ok = mongoc_database_write_command_with_opts(db, &cmd, NULL, NULL, &e);
        bson_destroy(&cmd);
        if (!ok) {
            store_fail(err, errlen, &e, "createIndexes %s.%s", ix[i].coll, ix[i].name);
            return -1;
        }
    }
    return 0;
}

int store_prepare(struct store *st, char *err, size_t errlen)
{
    /* The GridFS indexes are the ones the bucket would create on its first upload, made here so
     * that first upload does not race other workers doing the same. One group per collection. */
    static const struct store_index images[] = {
        {COLL_IMAGES, "inserted_at_1", DOC_INSERTED_AT, NULL, false},
        {COLL_IMAGES, "source_1_stream_id_1", DOC_SOURCE, DOC_STREAM_ID, false},
    };
    static const struct store_index sources[] = {
        {COLL_SOURCES, "image_1", SRC_IMAGE, NULL, false},
    };
    static const struct store_index files[] = {
        {GRIDFS_BUCKET ".files", "filename_1_uploadDate_1", "filename", "uploadDate", false},
    };
    static const struct store_index chunks[] = {
        {GRIDFS_BUCKET ".chunks", "files_id_1_n_1", "files_id", "n", true},
    };
    static const struct {
        const struct store_index *ix;
        size_t n;
    } groups[] = {{images, 2}, {sources, 1}, {files, 1}, {chunks, 1}};
    bson_error_t e;
    mongoc_client_t *client = mongoc_client_pool_pop(st->pool);
    int rc = 0;
    pthread_mutex_lock(&st->lock);
    int probed = st->probed;
    pthread_mutex_unlock(&st->lock);
    if (!probed && store_probe(st, client, &e) < 0)
        rc = store_fail(err, errlen, &e, "hello");
    mongoc_database_t *db = mongoc_client_get_database(client, st->db);
    for (size_t i = 0; rc == 0 && i < sizeof(groups) / sizeof(groups[0]); i++)
        rc = store_create_indexes(st, db, groups[i].ix, groups[i].n, err, errlen);
    mongoc_database_destroy(db);
    mongoc_client_pool_push(st->pool, client);
    return rc < 0 ? -1 : 0;
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

int store_is_ferretdb(struct store *st)
{
    pthread_mutex_lock(&st->lock);
    int f = st->ferretdb;
    pthread_mutex_unlock(&st->lock);
    return f;
}

static int64_t store_now_ms(void)
{
    /* bson_append_now_utc() has whole seconds only: latency figures want milliseconds. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Copy a string field of doc (key may be a dotted path) into buf (size len); "" when absent, not
 * a string or too long. */
static void store_copy_str(const bson_t *doc, const char *key, char *buf, size_t len)
{
    bson_iter_t root, it;
    uint32_t n;
    buf[0] = '\0';
    if (!bson_iter_init(&root, doc) || !bson_iter_find_descendant(&root, key, &it) ||
        !BSON_ITER_HOLDS_UTF8(&it))
        return;
    const char *s = bson_iter_utf8(&it, &n);
    if (n < len) {
        memcpy(buf, s, n);
        buf[n] = '\0';
    }
}

/* sources[url] into *cl; *found 0 when there is none. */
static int store_claim_read(struct store_conn *c, const char *url, struct store_claim *cl,
                            int *found, bson_error_t *e)
{
    bson_t *doc;
    bson_iter_t it;
    if (stored_find_id(c->sources, url, NULL, &doc, e) < 0)
        return -1;
    *found = doc != NULL;
    if (doc == NULL)
        return 0;
    char role[16];
    store_copy_str(doc, SRC_IMAGE, cl->image, sizeof(cl->image));
    store_copy_str(doc, DOC_STREAM_ID, cl->owner, sizeof(cl->owner));
    store_copy_str(doc, SRC_ROLE, role, sizeof(role));
    store_copy_str(doc, SRC_ORIGIN, cl->origin, sizeof(cl->origin));
    cl->role = strcmp(role, ROLE_SOURCE) == 0 ? STORE_FOUND_SOURCE : STORE_FOUND_ALIAS;
    cl->inserted_at =
        bson_iter_init_find(&it, doc, DOC_INSERTED_AT) && BSON_ITER_HOLDS_DATE_TIME(&it)
            ? bson_iter_date_time(&it)
            : 0;
    bson_destroy(doc);
    return 0;
}

/* images[id] without its bytes: whether it exists, and whether url with stream entry owner
 * created it (its source and stream_id). */
static int store_image_read(struct store_conn *c, const char *id, const char *url,
                            const char *owner, struct store_image *im, bson_error_t *e)
{
    bson_t *doc;
    bson_t *opts =
        BCON_NEW("projection", "{", DOC_SOURCE, BCON_INT32(1), DOC_STREAM_ID, BCON_INT32(1), "}");
    int rc = stored_find_id(c->images, id, opts, &doc, e);
    bson_destroy(opts);
    if (rc < 0)
        return -1;
    im->found = doc != NULL;
    im->from_url = 0;
    if (doc) {
        char src[2048], sid[STORE_OWNER_MAX];
        store_copy_str(doc, DOC_SOURCE, src, sizeof(src));
        store_copy_str(doc, DOC_STREAM_ID, sid, sizeof(sid));
        /* Both stream ids unknown also agree: data migrated from a layout that had none. */
        im->from_url = strcmp(src, url) == 0 && strcmp(sid, owner) == 0;
        bson_destroy(doc);
    }
    return 0;
}

/* Step -1: the original's document; a duplicate key means those bytes were kept before. */
static int store_original_insert(struct store_conn *c, const struct store_doc *d, bson_error_t *e)
{
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, DOC_ID, d->origin.sha256);
    BSON_APPEND_UTF8(&doc, ORIG_RAW, d->raw);
    BSON_APPEND_INT64(&doc, DOC_BYTES, (int64_t)d->origin.bytes);
    store_append_str(&doc, ORIGIN_CONTENT_TYPE, d->origin.content_type);
    store_append_str(&doc, DOC_FORMAT, d->origin.format);
    BSON_APPEND_INT32(&doc, DOC_WIDTH, d->origin.width);
    BSON_APPEND_INT32(&doc, DOC_HEIGHT, d->origin.height);
    BSON_APPEND_UTF8(&doc, DOC_SOURCE, d->source);
    bson_append_date_time(&doc, DOC_INSERTED_AT, -1, store_now_ms());
    bool ok = mongoc_collection_insert_one(c->originals, &doc, NULL, NULL, e);
    bson_destroy(&doc);
    return ok || store_is_dup(e) ? 0 : -1;
}

/* The claim of d->source for image d->sha256 with the given role (see the top comment). */
static int store_claim_insert(struct store_conn *c, const struct store_doc *d, int role, int *dup,
                              bson_error_t *e)
{
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, DOC_ID, d->source);
    BSON_APPEND_UTF8(&doc, SRC_IMAGE, d->sha256);
    BSON_APPEND_UTF8(&doc, SRC_ROLE, role == STORE_FOUND_SOURCE ? ROLE_SOURCE : ROLE_ALIAS);
    store_append_str(&doc, SRC_ORIGIN, d->origin.sha256);
    store_append_str(&doc, DOC_STREAM_ID, d->stream_id);
    store_append_str(&doc, DOC_CONSUMER, d->consumer);
    bson_append_date_time(&doc, DOC_INSERTED_AT, -1, store_now_ms());
    bool ok = mongoc_collection_insert_one(c->sources, &doc, NULL, NULL, e);
    bson_destroy(&doc);
    *dup = !ok && store_is_dup(e);
    return ok ? 0 : -1;
}

/* The filter of an update or delete of document id, which the caller has just read (or written)
 * with fields k1 = v1 (and k2 = v2). On MongoDB the filter repeats those fields, so a document
 * replaced meanwhile is left alone. FerretDB v1 pushes down a filter that is _id equality alone and
 * scans the whole collection for any other (a second per call at 50,000 documents), so there the
 * filter is the _id alone and the read just before is the check, with a window of one round trip in
 * which another writer could replace the document (only on the rare paths: role fixes, a claim
 * whose image is gone, a losing image). This is the protocol's only FerretDB-only path; it can go
 * when FerretDB v1 is no longer supported. */
static bson_t *store_guard_filter(const struct store_conn *c, const char *id, const char *k1,
                                  const char *v1, const char *k2, const char *v2)
{
    if (c->ferretdb)
        return BCON_NEW(DOC_ID, BCON_UTF8(id));
    bson_t *f = BCON_NEW(DOC_ID, BCON_UTF8(id), k1, BCON_UTF8(v1));
    if (k2)
        BSON_APPEND_UTF8(f, k2, v2);
    return f;
}

/* Set the role of url's claim of image id (by this entry, owner). Rare: only when a race or a
 * crash left it behind the image's own fields, which readers follow anyway. */
static int store_claim_role(struct store_conn *c, const char *url, const char *id,
                            const char *owner, int role, bson_error_t *e)
{
    const char *r = role == STORE_FOUND_SOURCE ? ROLE_SOURCE : ROLE_ALIAS;
    bson_t *sel = store_guard_filter(c, url, SRC_IMAGE, id, DOC_STREAM_ID, owner);
    bson_t *upd = BCON_NEW("$set", "{", SRC_ROLE, BCON_UTF8(r), "}");
    bool ok = mongoc_collection_update_one(c->sources, sel, upd, NULL, NULL, e);
    bson_destroy(sel);
    bson_destroy(upd);
    return ok ? 0 : -1;
}

/* Remove a stale claim of this entry (see resolve in the top comment). */
static int store_claim_delete(struct store_conn *c, const char *url, const struct store_claim *cl,
                              bson_error_t *e)
{
    bson_t *sel = store_guard_filter(c, url, SRC_IMAGE, cl->image, DOC_STREAM_ID, cl->owner);
    bool ok = mongoc_collection_delete_one(c->sources, sel, NULL, NULL, e);
    bson_destroy(sel);
    if (ok)
        log_info("event=store_stale_claim url=%s image=%s entry=%s", url, cl->image, cl->owner);
    return ok ? 0 : -1;
}

static int store_same_entry(const char *a, const char *b)
{
    return a != NULL && b != NULL && a[0] != '\0' && strcmp(a, b) == 0;
}

/* Every field but _id and image, in SPEC §6 order. */
static void store_meta_build(const struct store_doc *d, bson_t *meta)
{
    bson_t sub, arr, item;
    bson_init(meta);
    BSON_APPEND_UTF8(meta, DOC_SHA256, d->sha256);
    store_append_str(meta, DOC_FORMAT, d->format);
    if (d->encoder)
        BSON_APPEND_UTF8(meta, DOC_ENCODER, d->encoder);
    BSON_APPEND_INT32(meta, DOC_WIDTH, d->width);
    BSON_APPEND_INT32(meta, DOC_HEIGHT, d->height);
    BSON_APPEND_INT32(meta, DOC_CHANNELS, d->channels);
    BSON_APPEND_INT64(meta, DOC_BYTES, (int64_t)d->image_len);
    BSON_APPEND_UTF8(meta, DOC_SOURCE, d->source);
    BSON_APPEND_UTF8(meta, DOC_RENDITION, d->rendition ? d->rendition : REND_DEFAULT);

    BSON_APPEND_DOCUMENT_BEGIN(meta, DOC_ORIGIN, &sub);
    store_append_str(&sub, ORIGIN_FINAL_URL, d->origin.final_url);
    store_append_str(&sub, ORIGIN_CONTENT_TYPE, d->origin.content_type);
    BSON_APPEND_INT64(&sub, DOC_BYTES, (int64_t)d->origin.bytes);
    store_append_str(&sub, DOC_SHA256, d->origin.sha256);
    BSON_APPEND_INT32(&sub, DOC_WIDTH, d->origin.width);
    BSON_APPEND_INT32(&sub, DOC_HEIGHT, d->origin.height);
    if (d->origin.orientation > 0)
        BSON_APPEND_INT32(&sub, ORIGIN_ORIENTATION, d->origin.orientation);
    bson_append_document_end(meta, &sub);

    if (d->decoder) {
        BSON_APPEND_DOCUMENT_BEGIN(meta, DOC_DECODER, &sub);
        store_append_str(&sub, DECODER_LIBRARY, d->decoder->library);
        store_append_str(&sub, LINK_VERSION, d->decoder->version);
        store_append_str(&sub, DECODER_PATH, d->decoder->path);
        BSON_APPEND_INT32(&sub, DECODER_SCALE, d->decoder->scale);
        bson_append_document_end(meta, &sub);
    }

    BSON_APPEND_ARRAY_BEGIN(meta, DOC_TRANSFORMS, &arr);
    for (int i = 0; i < d->ntransforms; i++) {
        char key[16];
        const char *k;
        size_t klen = bson_uint32_to_string((uint32_t)i, &k, key, sizeof(key));
        bson_append_document_begin(&arr, k, (int)klen, &item);
        store_append_str(&item, LINK_NAME, d->transforms[i].name);
        store_append_str(&item, LINK_VERSION, d->transforms[i].version);
        if (d->transforms[i].so_sha256)
            BSON_APPEND_UTF8(&item, DOC_SHA256, d->transforms[i].so_sha256);
        bson_append_document_end(&arr, &item);
    }
    bson_append_array_end(meta, &arr);

    bson_append_date_time(meta, DOC_INSERTED_AT, -1, store_now_ms());
    store_append_str(meta, DOC_STREAM_ID, d->stream_id);
    store_append_str(meta, DOC_CONSUMER, d->consumer);
    BSON_APPEND_INT32(meta, DOC_ATTEMPTS, d->attempts);
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
    if (store_check_str(DOC_SOURCE, d->source, 1, err, errlen) < 0 ||
        store_check_str(DOC_FORMAT, d->format, 0, err, errlen) < 0 ||
        store_check_str(DOC_ORIGIN "." ORIGIN_FINAL_URL, d->origin.final_url, 0, err, errlen) < 0 ||
        store_check_str(DOC_ORIGIN "." ORIGIN_CONTENT_TYPE, d->origin.content_type, 0, err,
                        errlen) < 0 ||
        store_check_str(DOC_ORIGIN "." DOC_SHA256, d->origin.sha256, 0, err, errlen) < 0 ||
        store_check_str(DOC_STREAM_ID, d->stream_id, 0, err, errlen) < 0 ||
        store_check_str(DOC_CONSUMER, d->consumer, 0, err, errlen) < 0 ||
        store_check_str(ORIG_RAW, d->raw, 0, err, errlen) < 0 ||
        store_check_str(DOC_RENDITION, d->rendition, 0, err, errlen) < 0 ||
        store_check_str(DOC_ENCODER, d->encoder, 0, err, errlen) < 0 ||
        (d->decoder &&
         (store_check_str(DOC_DECODER "." DECODER_LIBRARY, d->decoder->library, 0, err, errlen) <
              0 ||
          store_check_str(DOC_DECODER "." LINK_VERSION, d->decoder->version, 0, err, errlen) < 0 ||
          store_check_str(DOC_DECODER "." DECODER_PATH, d->decoder->path, 0, err, errlen) < 0)) ||
        store_check_str(DOC_ORIGIN "." DOC_FORMAT, d->origin.format, 0, err, errlen) < 0)
        return -1;
    if (d->raw && (d->origin.sha256 == NULL || strlen(d->origin.sha256) != 64 ||
                   strspn(d->origin.sha256, "0123456789abcdef") != 64)) {
        snprintf(err, errlen, "store: a kept original needs origin.sha256 (64 hex digits)");
        return -1;
    }
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
    bson_t *opts = BCON_NEW("bucketName", BCON_UTF8(GRIDFS_BUCKET), "chunkSizeBytes",
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
    bson_t *opts = BCON_NEW("metadata", "{", DOC_SHA256, BCON_UTF8(d->sha256), DOC_SOURCE,
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
    BSON_APPEND_UTF8(&doc, DOC_ID, d->sha256);
    if (gridfs) {
        bucket = store_bucket_new(st, c->client, e);
        if (bucket == NULL)
            goto done;
        bson_oid_init(&fid, NULL);
        if (store_gridfs_upload(bucket, d, &fid, e) < 0)
            goto done;
    } else {
        bson_append_utf8(&doc, DOC_IMAGE, -1, d->image_b64, (int)d->image_b64_len);
    }
    bson_concat(&doc, meta);
    if (gridfs) {
        BSON_APPEND_UTF8(&doc, DOC_STORAGE, STORAGE_GRIDFS);
        BSON_APPEND_OID(&doc, DOC_GRIDFS_ID, &fid);
    }
    if (mongoc_collection_insert_one(c->images, &doc, NULL, NULL, e)) {
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

/* What resolve decided about an existing claim. */
enum store_resolved {
    RESOLVED,     /* *out is the entry's outcome */
    RESOLVE_AGAIN /* a claim whose image is gone was removed: start over */
};

/* resolve in the top comment. */
static int store_resolve(struct store_conn *c, const struct store_doc *d,
                         const struct store_claim *cl, enum store_outcome *out, bson_error_t *e)
{
    struct store_image im;
    if (!store_same_entry(cl->owner, d->stream_id)) {
        *out = STORE_ALREADY;
        return RESOLVED;
    }
    if (store_image_read(c, cl->image, d->source, cl->owner, &im, e) < 0)
        return -1;
    if (!im.found)
        return store_claim_delete(c, d->source, cl, e) < 0 ? -1 : RESOLVE_AGAIN;
    int role = im.from_url ? STORE_FOUND_SOURCE : STORE_FOUND_ALIAS;
    bson_error_t e2;
    if (cl->role != role && store_claim_role(c, d->source, cl->image, cl->owner, role, &e2) < 0)
        log_warn("event=store_role_fix_failed url=%s error=\"%s\"", d->source, e2.message);
    *out = role == STORE_FOUND_SOURCE ? STORE_INSERTED : STORE_ALIASED;
    return RESOLVED;
}

/* A redelivery found no claim: was it cut between its image and its claim? The image it wrote
 * then has source u and this entry's stream_id (index source_1_stream_id_1). Into id, "" when
 * not. The one query here that is not by _id: it runs only for a redelivered entry whose URL
 * has no claim, never on a first delivery. */
static int store_orphan_find(struct store_conn *c, const struct store_doc *d, char *id,
                             char *origin, bson_error_t *e)
{
    id[0] = origin[0] = '\0';
    if (d->stream_id == NULL || d->stream_id[0] == '\0')
        return 0;
    bson_t *filter =
        BCON_NEW(DOC_SOURCE, BCON_UTF8(d->source), DOC_STREAM_ID, BCON_UTF8(d->stream_id));
    bson_t *opts = BCON_NEW("projection", "{", DOC_ID, BCON_INT32(1), DOC_ORIGIN "." DOC_SHA256,
                            BCON_INT32(1), "}", "limit", BCON_INT64(1));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c->images, filter, opts, NULL);
    const bson_t *doc;
    int rc = 0;
    if (mongoc_cursor_next(cur, &doc)) {
        store_copy_str(doc, DOC_ID, id, 65);
        store_copy_str(doc, DOC_ORIGIN "." DOC_SHA256, origin, 65);
    } else if (mongoc_cursor_error(cur, e))
        rc = -1;
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    bson_destroy(opts);
    return rc;
}

/* This delivery inserted image X and then lost the URL to another delivery: remove X, so that
 * `stored` stays the number of documents, unless a URL names it by now (an alias of these bytes
 * written meanwhile): after the delete, the claims of X are read (index image_1) and X is
 * inserted again if there is one; a writer of such an alias inserted its claim after finding X,
 * so either this read sees it or X was still there. Rare: two deliveries of one URL at once. A
 * GridFS image is left in place (its upload is too costly to redo on a guess); verify reports
 * it as an image without its source. */
static void store_unstore(struct store *st, struct store_conn *c, const struct store_doc *d,
                          const bson_t *meta, int gridfs)
{
    bson_error_t e;
    if (gridfs) {
        log_warn("event=store_losing_image_kept image=%s url=%s", d->sha256, d->source);
        return;
    }
    bson_t *sel = store_guard_filter(c, d->sha256, DOC_SOURCE, d->source, NULL, NULL);
    bool ok = mongoc_collection_delete_one(c->images, sel, NULL, NULL, &e);
    bson_destroy(sel);
    if (!ok) {
        log_warn("event=store_losing_image_kept image=%s error=\"%s\"", d->sha256, e.message);
        return;
    }
    bson_t *filter = BCON_NEW(SRC_IMAGE, BCON_UTF8(d->sha256));
    int64_t named = mongoc_collection_count_documents(c->sources, filter, NULL, NULL, NULL, &e);
    bson_destroy(filter);
    int dup;
    if (named != 0 && store_insert(st, c, d, meta, 0, &dup, &e) < 0 && !dup)
        log_warn("event=store_image_restore_failed image=%s error=\"%s\"", d->sha256, e.message);
    log_info("event=store_losing_image image=%s url=%s %s", d->sha256, d->source,
             named != 0 ? "restored=1" : "removed=1");
}

/* The `renditions` _id of (original, name) into buf; -1 when it does not fit. */
static int store_rendition_id(const char *original, const char *name, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s", original, name);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void store_chain_append(bson_t *b, const char *key, const struct lineage_link *l, int n,
                               int with_config)
{
    bson_t arr, item;
    BSON_APPEND_ARRAY_BEGIN(b, key, &arr);
    for (int i = 0; i < n; i++) {
        char k[16];
        const char *kp;
        size_t klen = bson_uint32_to_string((uint32_t)i, &kp, k, sizeof(k));
        bson_append_document_begin(&arr, kp, (int)klen, &item);
        store_append_str(&item, LINK_NAME, l[i].name);
        store_append_str(&item, LINK_VERSION, l[i].version);
        if (l[i].so_sha256)
            BSON_APPEND_UTF8(&item, DOC_SHA256, l[i].so_sha256);
        if (with_config)
            BSON_APPEND_UTF8(&item, LINK_CONFIG, l[i].config ? l[i].config : "");
        bson_append_document_end(&arr, &item);
    }
    bson_append_array_end(b, &arr);
}

/* renditions[original/name] naming d's image. A duplicate key: recorded before (e is set). With
 * `old`, the document is replaced instead, if it still names image `old`: *e's code is then 0
 * and the call fails when it names another by now. */
static int store_rendition_insert(struct store_conn *c, const struct store_doc *d,
                                  const char *original, const char *name, const char *old,
                                  bson_error_t *e)
{
    char id[STORE_RENDITION_ID_MAX];
    if (store_rendition_id(original, name, id, sizeof(id)) < 0) {
        bson_set_error(e, MONGOC_ERROR_BSON, 0, "rendition name too long");
        return -1;
    }
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, DOC_ID, id);
    BSON_APPEND_UTF8(&doc, REND_IMAGE, d->sha256);
    BSON_APPEND_UTF8(&doc, REND_ORIGINAL, original);
    BSON_APPEND_UTF8(&doc, DOC_RENDITION, name);
    store_chain_append(&doc, REND_CHAIN, d->transforms, d->ntransforms, 1);
    store_append_str(&doc, DOC_STREAM_ID, d->stream_id);
    bson_append_date_time(&doc, DOC_INSERTED_AT, -1, store_now_ms());
    bool ok;
    if (old == NULL) {
        ok = mongoc_collection_insert_one(c->renditions, &doc, NULL, NULL, e);
    } else {
        bson_t *sel = store_guard_filter(c, id, REND_IMAGE, old, NULL, NULL);
        bson_t reply;
        ok = mongoc_collection_replace_one(c->renditions, sel, &doc, NULL, &reply, e);
        bson_iter_t it;
        if (ok && bson_iter_init_find(&it, &reply, "matchedCount") &&
            bson_iter_as_int64(&it) == 0) {
            bson_set_error(e, MONGOC_ERROR_COMMAND, 0, "rendition %s changed meanwhile", id);
            ok = false;
        }
        bson_destroy(&reply);
        bson_destroy(sel);
    }
    bson_destroy(&doc);
    return ok ? 0 : -1;
}

/* Whether a recorded `chain` array equals lineage l[0..n) (name, version, .so sha256, config). */
static int store_chain_equal(const bson_t *doc, const struct lineage_link *l, int n)
{
    bson_t want = BSON_INITIALIZER;
    store_chain_append(&want, REND_CHAIN, l, n, 1);
    bson_iter_t a, b;
    int eq = 0;
    if (bson_iter_init_find(&a, doc, REND_CHAIN) && BSON_ITER_HOLDS_ARRAY(&a) &&
        bson_iter_init_find(&b, &want, REND_CHAIN)) {
        uint32_t la, lb;
        const uint8_t *da, *db;
        bson_iter_array(&a, &la, &da);
        bson_iter_array(&b, &lb, &db);
        eq = la == lb && memcmp(da, db, la) == 0;
    }
    bson_destroy(&want);
    return eq;
}

static int store_rendition_read(struct store_conn *c, const char *original, const char *name,
                                const struct lineage_link *l, int n, struct store_rendition *r,
                                bson_error_t *e)
{
    char id[STORE_RENDITION_ID_MAX];
    bson_t *doc;
    memset(r, 0, sizeof(*r));
    if (store_rendition_id(original, name, id, sizeof(id)) < 0) {
        bson_set_error(e, MONGOC_ERROR_BSON, 0, "rendition name too long");
        return -1;
    }
    if (stored_find_id(c->renditions, id, NULL, &doc, e) < 0)
        return -1;
    if (doc == NULL)
        return 0;
    r->found = 1;
    store_copy_str(doc, REND_IMAGE, r->image, sizeof(r->image));
    r->current = l ? store_chain_equal(doc, l, n) : 0;
    bson_destroy(doc);
    return 0;
}

/* The checks every put makes whatever the server's state, and the image document's metadata
 * (*meta, to destroy) with where its bytes go (*gridfs: over the BSON limit). -1 with err. */
static int store_doc_prepare(const struct store_doc *d, bson_t *meta, int *gridfs, char *err,
                             size_t errlen)
{
    if (store_doc_check(d, err, errlen) < 0)
        return -1;
    store_meta_build(d, meta);
    *gridfs = store_inline_size(d, meta) > STORE_BSON_MAX;
    if (*gridfs ? d->image == NULL : d->image_b64 == NULL) {
        snprintf(err, errlen, "store: %s is missing", *gridfs ? "image (raw bytes)" : "image_b64");
        bson_destroy(meta);
        return -1;
    }
    return 0;
}

int store_put(struct store *st, const struct store_doc *d, enum store_outcome *out, char *err,
              size_t errlen)
{
    bson_error_t e;
    bson_t meta;
    struct store_conn c;
    int rc = STORE_ERR_TRANSIENT;

    int gridfs;
    if (store_doc_prepare(d, &meta, &gridfs, err, errlen) < 0)
        return STORE_ERR_PERMANENT;

    store_conn_open(st, &c);
    if (d->raw && store_original_insert(&c, d, &e) < 0) {
        rc = store_fail(err, errlen, &e, "insert original %s", d->origin.sha256);
        goto done;
    }
    const char *owner = d->stream_id ? d->stream_id : "";
    int wrote = 0; /* an image inserted by an earlier round of this call */
    /* The image and original the URL's claim names in the end, for step 3: this call's own, or
     * those of an earlier delivery of the entry (a cut, or two deliveries at once). */
    char rend_image[65] = "", rend_origin[65] = "";
    for (int round = 0; round < STORE_PUT_ROUNDS; round++) {
        struct store_claim cl;
        struct store_image im = {0};
        char orphan[65] = "", orphan_origin[65] = "";
        int have = 0, dup = 0, created = 0;
        int looks = d->maybe_written || wrote; /* an earlier try or round may have written */
        /* A first delivery's first try: its URL has just entered the dedup set, so only
         * inserts, and a collision says what happened. Anything else may follow an earlier
         * write of this entry (a redelivery, a retry after a lost reply): read first. */
        int fresh = d->first_delivery && round == 0;
        if (!fresh && store_claim_read(&c, d->source, &cl, &have, &e) < 0) {
            rc = store_fail(err, errlen, &e, "find url %s", d->source);
            goto done;
        }
        if (!fresh && !have && looks && store_orphan_find(&c, d, orphan, orphan_origin, &e) < 0) {
            rc = store_fail(err, errlen, &e, "find images of %s", d->source);
            goto done;
        }
        if (!have && orphan[0]) {
            /* Cut between its image and its claim: finish with the image it wrote then, and the
             * original that image came from. */
            struct store_doc o = *d;
            o.sha256 = orphan;
            o.origin.sha256 = orphan_origin[0] ? orphan_origin : NULL;
            if (store_claim_insert(&c, &o, STORE_FOUND_SOURCE, &dup, &e) == 0) {
                *out = STORE_INSERTED;
                snprintf(rend_image, sizeof(rend_image), "%s", orphan);
                snprintf(rend_origin, sizeof(rend_origin), "%s", orphan_origin);
                rc = 0;
                goto done;
            }
            if (!dup) {
                rc = store_fail(err, errlen, &e, "claim %s", d->source);
                goto done;
            }
            continue;
        }
        if (!have) {
            /* Step 1: the image. */
            if (store_insert(st, &c, d, &meta, gridfs, &dup, &e) == 0) {
                created = wrote = 1;
            } else if (!dup) {
                rc = store_fail(err, errlen, &e, "insert %s", d->sha256);
                goto done;
            } else if (!fresh && looks) {
                /* A retry: the image may be this entry's own, from the write whose reply was
                 * lost. */
                if (store_image_read(&c, d->sha256, d->source, owner, &im, &e) < 0) {
                    rc = store_fail(err, errlen, &e, "find %s", d->sha256);
                    goto done;
                }
                created = im.from_url;
            }
            /* Step 2: the claim, with the role step 1 decided. */
            int role = created ? STORE_FOUND_SOURCE : STORE_FOUND_ALIAS;
            if (store_claim_insert(&c, d, role, &dup, &e) == 0) {
                *out = created ? STORE_INSERTED : STORE_ALIASED;
                snprintf(rend_image, sizeof(rend_image), "%s", d->sha256);
                snprintf(rend_origin, sizeof(rend_origin), "%s",
                         d->origin.sha256 ? d->origin.sha256 : "");
                rc = 0;
                goto done;
            }
            if (!dup) {
                rc = store_fail(err, errlen, &e, "claim %s", d->source);
                goto done;
            }
            if (store_claim_read(&c, d->source, &cl, &have, &e) < 0) {
                rc = store_fail(err, errlen, &e, "find url %s", d->source);
                goto done;
            }
            if (!have)
                continue; /* removed meanwhile (verify --fix): again */
            /* Another delivery holds the URL; an image only this delivery needed must go. */
            if (created && strcmp(cl.image, d->sha256) != 0)
                store_unstore(st, &c, d, &meta, gridfs);
        }
        int r = store_resolve(&c, d, &cl, out, &e);
        if (r < 0) {
            rc = store_fail(err, errlen, &e, "resolve %s", d->source);
            goto done;
        }
        if (r == RESOLVED) {
            snprintf(rend_image, sizeof(rend_image), "%s", cl.image);
            snprintf(rend_origin, sizeof(rend_origin), "%s", cl.origin);
            rc = 0;
            goto done;
        }
    }
    snprintf(err, errlen, "mongo: %s: no stable outcome after %d rounds", d->source,
             STORE_PUT_ROUNDS);
done:
    /* Step 3: the kept original's `default` rendition, when this entry recorded the URL: the
     * image and original its claim names, which are not this call's when another delivery of
     * the entry won (this call's image was removed then, and its original stays unnamed). */
    if (rc == 0 && *out != STORE_ALREADY && d->raw && rend_image[0] && rend_origin[0]) {
        struct store_doc named = *d;
        named.sha256 = rend_image;
        if (store_rendition_insert(&c, &named, rend_origin, REND_DEFAULT, NULL, &e) < 0 &&
            !store_is_dup(&e))
            rc = store_fail(err, errlen, &e, "insert rendition %s/" REND_DEFAULT, rend_origin);
    }
    store_conn_close(st, &c);
    bson_destroy(&meta);
    return rc;
}

/* sources[url], with a connection of its own: what store_find_url and store_find_origin read. */
static int store_claim_get(struct store *st, const char *url, struct store_claim *cl, int *found,
                           char *err, size_t errlen)
{
    bson_error_t e;
    struct store_conn c;
    if (url == NULL || !bson_utf8_validate(url, strlen(url), false)) {
        snprintf(err, errlen, "store: url is missing or not valid UTF-8");
        return -1;
    }
    store_conn_open(st, &c);
    int rc = store_claim_read(&c, url, cl, found, &e);
    store_conn_close(st, &c);
    if (rc < 0) {
        store_fail(err, errlen, &e, "find url %s", url);
        return -1;
    }
    return 0;
}

int store_find_url(struct store *st, const char *url, char *id_out, char *owner_out, int *found,
                   char *err, size_t errlen)
{
    struct store_claim cl;
    int have = 0;
    if (store_claim_get(st, url, &cl, &have, err, errlen) < 0)
        return -1;
    /* The claim alone answers: it is written after its image, with the role the image insert
     * decided, so it names an image that was stored. Not reading the image keeps a redelivery
     * of a stored entry off `images`, which FerretDB would scan (see the top). An image removed
     * since (verify --fix) leaves a dangling source, which verify reports and --fix re-queues. */
    *found = !have ? 0 : cl.role;
    if (*found) {
        memcpy(id_out, cl.image, strlen(cl.image) + 1);
        if (owner_out)
            memcpy(owner_out, cl.owner, strlen(cl.owner) + 1);
    }
    return 0;
}

int store_find_origin(struct store *st, const char *url, int *found, char *origin, char *err,
                      size_t errlen)
{
    struct store_claim cl;
    if (store_claim_get(st, url, &cl, found, err, errlen) < 0)
        return -1;
    if (*found)
        memcpy(origin, cl.origin, sizeof(cl.origin));
    return 0;
}

int store_find_original(struct store *st, const char *id, int *found, struct store_original *o,
                        char *err, size_t errlen)
{
    bson_error_t e;
    bson_iter_t it;
    bson_t *doc;
    struct store_conn c;
    store_conn_open(st, &c);
    int rc = stored_find_id(c.originals, id, NULL, &doc, &e);
    store_conn_close(st, &c);
    if (rc < 0)
        return store_fail(err, errlen, &e, "find original %s", id);
    *found = doc != NULL;
    if (doc == NULL)
        return 0;
    memset(o, 0, sizeof(*o));
    store_copy_str(doc, ORIG_RAW, o->raw, sizeof(o->raw));
    store_copy_str(doc, ORIGIN_CONTENT_TYPE, o->content_type, sizeof(o->content_type));
    store_copy_str(doc, DOC_FORMAT, o->format, sizeof(o->format));
    store_copy_str(doc, DOC_SOURCE, o->source, sizeof(o->source));
    if (bson_iter_init_find(&it, doc, DOC_BYTES) && BSON_ITER_HOLDS_NUMBER(&it))
        o->bytes = bson_iter_as_int64(&it);
    if (bson_iter_init_find(&it, doc, DOC_WIDTH) && BSON_ITER_HOLDS_NUMBER(&it))
        o->width = (int)bson_iter_as_int64(&it);
    if (bson_iter_init_find(&it, doc, DOC_HEIGHT) && BSON_ITER_HOLDS_NUMBER(&it))
        o->height = (int)bson_iter_as_int64(&it);
    if (bson_iter_init_find(&it, doc, DOC_INSERTED_AT) && BSON_ITER_HOLDS_DATE_TIME(&it))
        o->inserted_at = bson_iter_date_time(&it);
    bson_destroy(doc);
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
    bson_t *filter = BCON_NEW(DOC_ID, BCON_UTF8(id));
    bson_t *opts = png ? bson_new() : BCON_NEW("projection", "{", DOC_IMAGE, BCON_INT32(0), "}");
    store_conn_open(st, &c);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c.images, filter, opts, NULL);
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
            bson_copy_to_excluding_noinit(doc, &meta, DOC_IMAGE, NULL);
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
        after && *after ? BCON_NEW(DOC_ID, "{", "$gt", BCON_UTF8(after), "}") : bson_new();
    bson_t *opts = BCON_NEW("projection", "{", DOC_IMAGE, BCON_INT32(0), "}", "sort", "{", DOC_ID,
                            BCON_INT32(1), "}", "limit", BCON_INT64(limit));
    store_conn_open(st, &c);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c.images, filter, opts, NULL);
    bson_t list = BSON_INITIALIZER, arr;
    BSON_APPEND_ARRAY_BEGIN(&list, COLL_IMAGES, &arr); /* {"images": [...]} */
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

int store_find_rendition(struct store *st, const char *original, const char *name,
                         const struct lineage_link *chain, int nchain, struct store_rendition *r,
                         char *err, size_t errlen)
{
    bson_error_t e;
    struct store_conn c;
    store_conn_open(st, &c);
    int rc = store_rendition_read(&c, original, name, chain, nchain, r, &e);
    store_conn_close(st, &c);
    return rc < 0 ? store_fail(err, errlen, &e, "find rendition %s/%s", original, name) : 0;
}

/* This call inserted image d->sha256 for a rendition another writer recorded with another
 * image: remove it (a picture of that rendition only; identical bytes from two originals are
 * left to chance, rarer than a hash collision of the thumbnails they would have to share). */
static void store_rendition_unstore(struct store_conn *c, const struct store_doc *d)
{
    bson_error_t e;
    bson_t *sel = store_guard_filter(c, d->sha256, DOC_RENDITION, d->rendition, NULL, NULL);
    if (mongoc_collection_delete_one(c->images, sel, NULL, NULL, &e))
        log_info("event=store_losing_rendition image=%s rendition=%s", d->sha256, d->rendition);
    else
        log_warn("event=store_losing_image_kept image=%s error=\"%s\"", d->sha256, e.message);
    bson_destroy(sel);
}

/* The picture a replaced (stale) rendition named, once no document names it: removed when that
 * rendition made it (its `rendition` field, read first: the same bytes may be another
 * rendition's, a URL's default picture above all). */
static void store_rendition_drop(struct store_conn *c, const char *image, const char *name)
{
    bson_t *doc, *opts = BCON_NEW("projection", "{", DOC_RENDITION, BCON_INT32(1), "}");
    bson_error_t e;
    char made_by[RENDITION_FIELD_MAX];
    int rc = stored_find_id(c->images, image, opts, &doc, &e);
    bson_destroy(opts);
    if (rc < 0 || doc == NULL)
        return;
    store_copy_str(doc, DOC_RENDITION, made_by, sizeof(made_by));
    bson_destroy(doc);
    if (strcmp(made_by, name) != 0)
        return;
    bson_t *sel = store_guard_filter(c, image, DOC_RENDITION, name, NULL, NULL);
    if (mongoc_collection_delete_one(c->images, sel, NULL, NULL, &e))
        log_info("event=store_stale_rendition_removed image=%s rendition=%s", image, name);
    else
        log_warn("event=store_stale_rendition_kept image=%s error=\"%s\"", image, e.message);
    bson_destroy(sel);
}

int store_put_rendition(struct store *st, const struct store_doc *d, int replace,
                        enum store_outcome *out, char *err, size_t errlen)
{
    bson_error_t e;
    bson_t meta;
    struct store_conn c;
    int rc = STORE_ERR_TRANSIENT, dup = 0, created = 0;
    const char *original = d->origin.sha256;

    if (d->rendition == NULL || original == NULL || strlen(original) != 64 ||
        strchr(d->rendition, '/') != NULL) {
        snprintf(err, errlen, "store: a rendition needs its name and its original's sha256");
        return STORE_ERR_PERMANENT;
    }
    int gridfs;
    if (store_doc_prepare(d, &meta, &gridfs, err, errlen) < 0)
        return STORE_ERR_PERMANENT;
    store_conn_open(st, &c);
    /* 1. The image: a duplicate key is identical bytes stored already, by anyone. */
    if (store_insert(st, &c, d, &meta, gridfs, &dup, &e) == 0)
        created = 1;
    else if (!dup) {
        rc = store_fail(err, errlen, &e, "insert %s", d->sha256);
        goto done;
    }
    /* 2. The rendition's document: without `replace`, inserted first (a duplicate key says
     * another writer recorded it, and only then is it read); with it, read first, and the stale
     * one replaced. */
    if (!replace && store_rendition_insert(&c, d, original, d->rendition, NULL, &e) == 0) {
        *out = STORE_INSERTED;
        rc = 0;
        goto done;
    } else if (!replace && !store_is_dup(&e)) {
        rc = store_fail(err, errlen, &e, "record rendition %s/%s", original, d->rendition);
        goto done;
    }
    for (int round = 0; round < STORE_PUT_ROUNDS; round++) {
        struct store_rendition r;
        if (store_rendition_read(&c, original, d->rendition, d->transforms, d->ntransforms, &r,
                                 &e) < 0) {
            rc = store_fail(err, errlen, &e, "find rendition %s/%s", original, d->rendition);
            goto done;
        }
        if (r.found && (r.current || !replace)) {
            /* Recorded by another writer (or an earlier try of this one) with today's chain. */
            if (created && strcmp(r.image, d->sha256) != 0)
                store_rendition_unstore(&c, d);
            *out = STORE_ALREADY;
            rc = 0;
            goto done;
        }
        if (store_rendition_insert(&c, d, original, d->rendition, r.found ? r.image : NULL, &e) ==
            0) {
            if (r.found && strcmp(r.image, d->sha256) != 0)
                store_rendition_drop(&c, r.image, d->rendition);
            *out = STORE_INSERTED;
            rc = 0;
            goto done;
        }
        if (!store_is_dup(&e) && e.code != 0) {
            rc = store_fail(err, errlen, &e, "record rendition %s/%s", original, d->rendition);
            goto done;
        }
        /* Another writer got there first: read what it recorded. */
    }
    snprintf(err, errlen, "mongo: rendition %s/%s: no stable outcome after %d rounds", original,
             d->rendition, STORE_PUT_ROUNDS);
done:
    store_conn_close(st, &c);
    bson_destroy(&meta);
    return rc;
}

int store_renditions_each(struct store *st, const char *name, const struct lineage_link *chain,
                          int nchain, store_rendition_fn *fn, void *arg, char *err, size_t errlen)
{
    bson_error_t e;
    struct store_conn c;
    bson_t *filter = BCON_NEW(DOC_RENDITION, BCON_UTF8(name));
    bson_t *opts =
        BCON_NEW("projection", "{", REND_ORIGINAL, BCON_INT32(1), REND_CHAIN, BCON_INT32(1), "}");
    store_conn_open(st, &c);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c.renditions, filter, opts, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc)) {
        char original[65];
        store_copy_str(doc, REND_ORIGINAL, original, sizeof(original));
        if (original[0])
            fn(original, chain ? store_chain_equal(doc, chain, nchain) : 1, arg);
    }
    int rc = mongoc_cursor_error(cur, &e) ? store_fail(err, errlen, &e, "list renditions") : 0;
    mongoc_cursor_destroy(cur);
    store_conn_close(st, &c);
    bson_destroy(filter);
    bson_destroy(opts);
    return rc < 0 ? -1 : 0;
}
