/* verify.c -- pixflow verify: re-check every stored image against its own metadata.
 *
 * One cursor over `images` with a projection (the image and the fields it is checked against:
 * never the alias lists, which can be long), so memory holds one server batch and one image at
 * a time. Per document: _id == sha256, the image decodes as strict base64 (or reads whole from
 * GridFS), its SHA-256 is the recorded one, `bytes` is its length, it decodes as a PNG, and the
 * PNG's width, height and channels are the recorded ones. Each problem is one line; the summary
 * counts documents, and problems by kind.
 *
 * Then the layout (SPEC §6), by _id reads only: every image has its source-role `sources`
 * document, and a second cursor over `sources` checks that each names an existing image with the
 * role the image's own source and stream_id give it. A document is judged there once the stream
 * entry that wrote it is acked (no longer pending in the group: the ack follows the entry's
 * durable outcome, so its writes are finished), or once it is older than STORE_CLAIM_LEASE_MS
 * (a write cut by a crash, which a redelivery will finish, is reported meanwhile). A recent one
 * whose entry is still pending may be a write in progress (store.c) and is left alone; so is a
 * recent one whose entry cannot be asked about (no stream_id, or Redis does not answer). The
 * entry is asked about after the document is read and before the reads that judge it: acked
 * then, everything it wrote is there to be read.
 *
 * --fix never deletes an image: a corrupt document is copied whole to `images_corrupt` (with
 * verify_problems, verify_moved_at, verify_requeued), then removed from `images`; then the URLs
 * that name it are read from `sources` (its `image` index), kept in the copy as verify_urls, their
 * `sources` documents deleted, and the URLs leave <prefix>seen and go back into the stream in one
 * Lua script, so workers download them again and store a sound image. The URLs are read after
 * the image is gone; an alias of it being written at that instant (its image insert saw the
 * image, its `sources` insert comes after the listing) is caught by a second listing
 * VERIFY_SETTLE_MS later, and one later still by the next verify as a dangling source: never
 * lost. A copy marked verify_requeued: false (Redis failed after the move) is
 * re-queued by the next --fix. A `sources` document whose image is missing is deleted and its URL
 * re-queued the same way; a wrong role is corrected. An image without its source is reported
 * only. The ids to fix are kept in memory until the scan ends: a collection is not modified
 * under its own cursor.
 *
 * With a raw store (PIXFLOW_RAW_URL), last, every kept original is looked for there, and with
 * --raw re-hashed (verify_raw.c); --fix never deletes an original. */
#include "admin.h"
#include "digest.h"
#include "human.h"
#include "image.h"
#include "json.h"
#include "mdb.h"
#include "names.h"
#include "rconn.h"
#include "rdb.h"
#include "store.h"
#include "verify_raw.h"
#include "verify_renditions.h"
#include "webpw.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define CMD "verify"
#define VERIFY_SETTLE_MS                                                                           \
    2000 /* a store_put in flight writes its claim within this, in practice                        \
          */

enum verify_kind {
    K_FIELDS,
    K_ID,
    K_NO_IMAGE,
    K_BASE64,
    K_GRIDFS_MISSING,
    K_GRIDFS_CORRUPT,
    K_SHA256,
    K_BYTES,
    K_PNG,
    K_SIZE,
    K_NO_SOURCE, /* the layout, from here on: not corruption, never moved */
    K_DANGLING,
    K_ROLE,
    K_RAW_MISSING, /* the raw zone: reported, never fixed */
    K_RAW_DAMAGED,
    K_REND_ID, /* `renditions` (verify_renditions.c): reported; --fix drops a moved picture's */
    K_REND_DANGLING,
    K_REND_NO_ORIGINAL,
    K_COUNT
};

#define LAYOUT_KINDS ((1u << K_NO_SOURCE) | (1u << K_DANGLING) | (1u << K_ROLE))

static const char *const kind_names[K_COUNT] = {
    "missing_field",      "id_mismatch",           "no_image",         "bad_base64",
    "gridfs_missing",     "gridfs_corrupt",        "sha256_mismatch",  "bytes_mismatch",
    "png_invalid",        "size_mismatch",         "no_source",        "dangling_source",
    "role_mismatch",      "original_missing",      "original_damaged", "rendition_id",
    "rendition_dangling", "rendition_no_original",
};

/* KEYS: seen, stream, stats. ARGV: moved (1 first time, 0 when resuming), document id, URLs. */
static const char REQUEUE_LUA[] =
    "for i = 3, #ARGV do\n"
    "  redis.call('SREM', KEYS[1], ARGV[i])\n"
    "  redis.call('XADD', KEYS[2], '*', '" FIELD_URL "', ARGV[i], '" FIELD_SOURCE
    "', 'pixflow verify',"
    " '" FIELD_CORRUPT "', ARGV[2])\n"
    "end\n"
    "redis.call('HINCRBY', KEYS[3], '" C_VERIFY_MOVED "', tonumber(ARGV[1]))\n"
    "redis.call('HINCRBY', KEYS[3], '" C_VERIFY_REQUEUED "', #ARGV - 2)\n"
    "return #ARGV - 2\n";

static const char synopsis[] =
    "pixflow verify [--since DATE] [--fix] [--raw] [--json]\n\n"
    "Reads every document of the images collection and checks it: _id == sha256, the image is\n"
    "strict base64 (or a whole GridFS file), its SHA-256 is the recorded one, bytes is its\n"
    "length, it decodes as a PNG of the recorded width, height and channels. Prints one line per\n"
    "problem (ID KIND: detail), then a summary. Kinds: missing_field, id_mismatch, no_image,\n"
    "bad_base64, gridfs_missing, gridfs_corrupt, sha256_mismatch, bytes_mismatch, png_invalid,\n"
    "size_mismatch. Then the sources collection: no_source (an image without its source-role\n"
    "sources document), dangling_source (a URL naming a missing image), role_mismatch.\n"
    "Then the renditions collection: rendition_id (an _id that is not <original>/<name>),\n"
    "rendition_dangling (names a missing image), rendition_no_original (its original has no\n"
    "originals document); --fix removes those naming a picture it moves.\n"
    "A document whose stream entry is still pending in the group (not acked) may be a write in\n"
    "progress: its layout is judged once the entry is acked, or once it is two minutes old.\n\n"
    "--fix moves each corrupt document to the images_corrupt collection (nothing is deleted: the\n"
    "copy keeps every field, plus verify_problems and verify_moved_at), and puts its source URL\n"
    "and aliases (every sources document naming it) back into the stream (removed from\n"
    "<prefix>seen first) so workers store them again; a dangling source's URL likewise; a wrong\n"
    "role is corrected. Counters: verify_moved, verify_requeued.\n\n"
    "With a raw store (PIXFLOW_RAW_URL), every originals document's object must be there with\n"
    "its recorded size (original_missing, original_damaged, with the URL that brought it);\n"
    "--raw also reads each one back and re-hashes it. --fix never deletes an original.\n\n"
    "--json: one JSON object per problem ({id, kind, detail}) and per fixed document ({id, fixed,\n"
    "requeued_urls}), then the summary object.\n"
    "Exit: 0 all sound, 1 corrupt documents found (fixed or not) or a server failed, 2 bad usage";

static struct {
    const char *since;
    int fix, json, raw;
} opt;

/* Why a document's layout is not judged yet (see the top comment). */
enum verify_wait { W_PENDING, W_NO_ENTRY, W_UNKNOWN, W_COUNT };

static const struct cfg_option own_options[] = {
    {"since", NULL, cfg_string, &opt.since, "", .meta = "DATE",
     .help = "only documents inserted since DATE (2024-05-01[T12:30[:15]][Z], UTC) or for the "
             "last 30m, 24h, 7d..."},
    {"fix", NULL, cfg_switch, &opt.fix, "", .flags = CFG_NOARG,
     .help = "move corrupt documents to images_corrupt and re-queue their URLs"},
    {"json", NULL, cfg_switch, &opt.json, "", .flags = CFG_NOARG,
     .help = "JSON lines: one per problem, then the summary"},
    {"raw", NULL, cfg_switch, &opt.raw, "", .flags = CFG_NOARG,
     .help = "read every kept original back from the raw store and re-hash it"},
    {NULL},
};

struct verify_bad {
    bson_value_t id;
    unsigned kinds; /* 1 << enum verify_kind */
};

/* A `sources` document to repair once the cursor over `sources` is closed. */
struct verify_src {
    char *url;
    char image[DIGEST_HEX_LEN + 1];
    int dangling;     /* delete it and re-queue the URL; else set its role */
    const char *role; /* ROLE_SOURCE or ROLE_ALIAS */
};

struct verify {
    struct settings s;
    struct admin_common c;
    struct mdb *m;
    redisContext *r;
    struct json j;
    long long checked, ok, corrupt, layout, moved, requeued, by_kind[K_COUNT];
    long long now_ms;
    long long since_ms; /* --since, or -1 */
    struct verify_bad *bad;
    size_t nbad, capbad;
    struct verify_src *src;
    size_t nsrc, capsrc;
    long long sources_checked;
    long long waiting[W_COUNT][2]; /* layouts not judged yet, by why; [0] images, [1] sources */
    int redis_down;                /* the pending list cannot be read: redis_why says why */
    char redis_why[256];
    struct verify_raw raw;         /* the raw zone, when one is configured */
    struct verify_renditions rend;
    char k_seen[SET_KEY_MAX], k_stream[SET_KEY_MAX], k_stats[SET_KEY_MAX];
};

static void verify_problem(struct verify *v, const char *id, enum verify_kind kind, unsigned *kinds,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void verify_problem(struct verify *v, const char *id, enum verify_kind kind, unsigned *kinds,
                           const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    *kinds |= 1u << kind;
    v->by_kind[kind]++;
    if (opt.json) {
        json_object(&v->j);
        json_kv_str(&v->j, "id", id);
        json_kv_str(&v->j, "kind", kind_names[kind]);
        json_kv_str(&v->j, "detail", detail);
        json_end(&v->j);
        return;
    }
    human_print(stdout, id, strlen(id), 0);
    printf(" %s: ", kind_names[kind]);
    human_print(stdout, detail, strlen(detail), 0);
    putchar('\n');
}

/* A whole number stored as int32, int64 or an integral double (a hand edit from a shell). */
static int verify_number(const bson_t *doc, const char *name, long long *out)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, name))
        return -1;
    switch (bson_iter_type(&it)) {
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
        *out = bson_iter_as_int64(&it);
        return 0;
    case BSON_TYPE_DOUBLE: {
        double d = bson_iter_double(&it);
        if (d != (double)(long long)d)
            return -1;
        *out = (long long)d;
        return 0;
    }
    default:
        return -1;
    }
}

static const char *verify_string(const bson_t *doc, const char *name)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, name) && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, NULL);
    return NULL;
}

static int verify_hex64(const char *s)
{
    return s && strlen(s) == DIGEST_HEX_LEN && strspn(s, "0123456789abcdef") == DIGEST_HEX_LEN;
}

/* A stored WebP (a chain may end in `webp`): it decodes, at the recorded size. WebP has no gray
 * mode, so its channels are not compared. */
static void verify_webp(struct verify *v, const char *id, const unsigned char *data, size_t len,
                        const long long *dims, const int *have, unsigned *kinds)
{
    char err[256];
    int w = 0, h = 0;
    if (webpw_check(data, len, &w, &h, err, sizeof(err)) != WEBPW_OK)
        verify_problem(v, id, K_PNG, kinds, "the image is not the WebP its format says: %s", err);
    else if ((have[0] && dims[0] != w) || (have[1] && dims[1] != h))
        verify_problem(v, id, K_SIZE, kinds, "recorded %lldx%lld; the WebP is %dx%d", dims[0],
                       dims[1], w, h);
}

/* The picture checks once the bytes are known, in the document's format (PNG when it names
 * none); -1 only when out of memory. */
static int verify_png(struct verify *v, const char *id, const unsigned char *png, size_t len,
                      const char *format, const long long *dims, const int *have, unsigned *kinds)
{
    char err[256];
    struct image_info info;
    if (format && strcmp(format, "webp") == 0) {
        verify_webp(v, id, png, len, dims, have, kinds);
        return 0;
    }
    int jpeg = format && strcmp(format, "jpeg") == 0;
    enum image_status st = image_probe(png, len, &info, err, sizeof(err));
    if (st == IMAGE_OK && info.format != (jpeg ? IMAGE_FORMAT_JPEG : IMAGE_FORMAT_PNG)) {
        verify_problem(v, id, K_PNG, kinds, "the image is a %s, not the %s its format says",
                       info.name, jpeg ? "JPEG" : "PNG");
        return 0;
    }
    if (st == IMAGE_OK) {
        struct pixflow_image out = {0};
        int ch = info.channels == 1 ? 1 : info.channels == 3 ? 3 : 4;
        st = image_decode(png, len, &info, ch, &out, err, sizeof(err));
        free(out.pixels);
    }
    if (st == IMAGE_NOMEM)
        return -1;
    if (st != IMAGE_OK) {
        verify_problem(v, id, K_PNG, kinds, "the PNG does not decode: %s", err);
        return 0;
    }
    long long png_dims[3] = {info.width, info.height, info.channels};
    for (int i = 0; i < 3; i++) {
        if (have[i] && dims[i] != png_dims[i]) {
            verify_problem(v, id, K_SIZE, kinds,
                           "recorded %lldx%lld, %lld channels; the PNG is %dx%d, %d channels",
                           dims[0], dims[1], dims[2], info.width, info.height, info.channels);
            break;
        }
    }
    return 0;
}

/* Checks one document; -1 when the check itself failed (server, memory): stop the scan. */
static int verify_doc(struct verify *v, const bson_t *doc, unsigned *kinds, char *err,
                      size_t errlen)
{
    static const char *const dim_names[3] = {DOC_WIDTH, DOC_HEIGHT, DOC_CHANNELS};
    bson_iter_t it;
    char id[160] = "(no _id)";
    const char *id_str = NULL;
    if (bson_iter_init_find(&it, doc, DOC_ID)) {
        stored_id_text(bson_iter_value(&it), id, sizeof(id));
        if (BSON_ITER_HOLDS_UTF8(&it))
            id_str = bson_iter_utf8(&it, NULL);
    }

    const char *sha = verify_string(doc, DOC_SHA256);
    long long dims[3] = {0}, bytes = 0;
    int have[3], have_bytes = verify_number(doc, DOC_BYTES, &bytes) == 0;
    char missing[128] = "";
    for (int i = 0; i < 3; i++) {
        have[i] = verify_number(doc, dim_names[i], &dims[i]) == 0;
        if (!have[i])
            snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%s%s",
                     missing[0] ? ", " : "", dim_names[i]);
    }
    if (!have_bytes)
        snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%sbytes",
                 missing[0] ? ", " : "");
    if (!verify_hex64(sha))
        snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%ssha256",
                 missing[0] ? ", " : "");
    if (missing[0])
        verify_problem(v, id, K_FIELDS, kinds, "missing or malformed: %s", missing);
    if (sha && (id_str == NULL || strcmp(id_str, sha) != 0))
        verify_problem(v, id, K_ID, kinds, "_id is not the sha256 field (%.64s)", sha);

    unsigned char *png = NULL;
    size_t len = 0;
    char why[512];
    switch (stored_png(v->m->db, &v->m->bucket, doc, &png, &len, why, sizeof(why))) {
    case STORED_OK:
        break;
    case STORED_ABSENT:
        verify_problem(v, id, K_NO_IMAGE, kinds, "%s", why);
        return 0;
    case STORED_BASE64:
        verify_problem(v, id, K_BASE64, kinds, "%s", why);
        return 0;
    case STORED_GRIDFS_MISSING:
        verify_problem(v, id, K_GRIDFS_MISSING, kinds, "%s", why);
        return 0;
    case STORED_GRIDFS_CORRUPT:
        verify_problem(v, id, K_GRIDFS_CORRUPT, kinds, "%s", why);
        return 0;
    case STORED_ERROR:
        snprintf(err, errlen, "%s: %s", id, why);
        return -1;
    }

    char hex[DIGEST_HEX_LEN + 1];
    int rc = -1;
    if (digest_sha256_hex(png, len, hex, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", id, why);
        goto done;
    }
    const char *want = verify_hex64(sha) ? sha : id_str;
    if (want == NULL || strcmp(hex, want) != 0)
        verify_problem(v, id, K_SHA256, kinds, "the image hashes to %s", hex);
    if (have_bytes && (bytes < 0 || (unsigned long long)bytes != len))
        verify_problem(v, id, K_BYTES, kinds, "bytes is %lld, the image has %zu", bytes, len);
    if (verify_png(v, id, png, len, verify_string(doc, DOC_FORMAT), dims, have, kinds) < 0) {
        snprintf(err, errlen, "%s: out of memory decoding the PNG", id);
        goto done;
    }
    rc = 0;
done:
    free(png);
    return rc;
}

static long long verify_date(const bson_t *doc, const char *name)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, name) && BSON_ITER_HOLDS_DATE_TIME(&it)
               ? (long long)bson_iter_date_time(&it)
               : 0;
}

/* Whether stream entry `id` is still pending in the group: 1 pending, 0 acked, -1 unknown
 * (redis_why says why). One XPENDING round trip per document of the last two minutes (older ones
 * never ask): a snapshot of the pending list taken once would miss entries delivered after it.
 * The connection is opened on first use, so a verify of old documents needs no Redis. */
static int verify_pending(struct verify *v, const char *id)
{
    char err[256];
    if (v->redis_down)
        return -1;
    if (v->r == NULL && (v->r = rconn_open(&v->s.redis, v->c.timeout_ms, err, sizeof(err))) == NULL)
        goto down;
    const char *argv[] = {"XPENDING", v->k_stream, v->s.group, id, id, "1"};
    redisReply *r = rconn_command(v->r, 6, argv, NULL, err, sizeof(err));
    if (r == NULL)
        goto down;
    int rc = r->type != REDIS_REPLY_ARRAY ? -1 : r->elements > 0;
    freeReplyObject(r);
    if (rc >= 0)
        return rc;
    snprintf(err, sizeof(err), "XPENDING answered something else than a list");
down: /* the same failure would repeat for every document: ask no more */
    v->redis_down = 1;
    snprintf(v->redis_why, sizeof(v->redis_why), "%s", err);
    return -1;
}

/* Whether a document's layout can be judged now (see the top comment); when not, it is counted
 * under its reason. which: 0 an image, 1 a `sources` document. */
static int verify_settled(struct verify *v, const bson_t *doc, int which)
{
    long long ms;
    if (verify_date(doc, DOC_INSERTED_AT) <= v->now_ms - STORE_CLAIM_LEASE_MS)
        return 1;
    const char *id = verify_string(doc, DOC_STREAM_ID);
    enum verify_wait why = W_NO_ENTRY;
    if (id != NULL && rdb_id_ms(id, &ms) == 0) {
        int pending = verify_pending(v, id);
        if (pending == 0)
            return 1;
        why = pending > 0 ? W_PENDING : W_UNKNOWN;
    }
    v->waiting[why][which]++;
    return 0;
}

/* The image has its source-role `sources` document (one read by _id). */
static int verify_has_source(struct verify *v, const bson_t *doc, const char *id, unsigned *kinds,
                             char *err, size_t errlen)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, DOC_ID) || !BSON_ITER_HOLDS_UTF8(&it) ||
        !verify_settled(v, doc, 0))
        return 0;
    const char *rendition = verify_string(doc, DOC_RENDITION);
    if (rendition && strcmp(rendition, REND_DEFAULT) != 0)
        return 0; /* a rendition's picture: its `renditions` document names it, not a URL */
    const char *src = verify_string(doc, DOC_SOURCE);
    if (src == NULL) {
        verify_problem(v, id, K_NO_SOURCE, kinds, "the image has no source field");
        return 0;
    }
    bson_t *cl;
    bson_error_t e;
    if (stored_find_id(v->m->sources, src, NULL, &cl, &e) < 0) {
        snprintf(err, errlen, "mongo: reading %s: %s", COLL_SOURCES, e.message);
        return -1;
    }
    const char *image = cl ? verify_string(cl, SRC_IMAGE) : NULL;
    if (cl == NULL)
        verify_problem(v, id, K_NO_SOURCE, kinds, "its source %s has no %s document", src,
                       COLL_SOURCES);
    else if (image == NULL || strcmp(image, bson_iter_utf8(&it, NULL)) != 0)
        verify_problem(v, id, K_NO_SOURCE, kinds, "its source %s maps to image %s", src,
                       image ? image : "(none)");
    if (cl)
        bson_destroy(cl);
    return 0;
}

static int verify_remember(struct verify *v, const bson_t *doc, unsigned kinds)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, DOC_ID))
        return 0; /* cannot be found again; reported, left alone */
    if (v->nbad == v->capbad) {
        size_t cap = v->capbad ? v->capbad * 2 : 16;
        struct verify_bad *b = realloc(v->bad, cap * sizeof(*b));
        if (b == NULL)
            return -1;
        v->bad = b;
        v->capbad = cap;
    }
    bson_value_copy(bson_iter_value(&it), &v->bad[v->nbad].id);
    v->bad[v->nbad++].kinds = kinds;
    return 0;
}

/* --since: only documents inserted from then on. */
static void verify_since(const struct verify *v, bson_t *filter)
{
    bson_t range;
    if (v->since_ms < 0)
        return;
    BSON_APPEND_DOCUMENT_BEGIN(filter, DOC_INSERTED_AT, &range);
    BSON_APPEND_DATE_TIME(&range, "$gte", v->since_ms);
    bson_append_document_end(filter, &range);
}

static int verify_scan(struct verify *v, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    verify_since(v, &filter);
    /* batchSize bounds what one reply holds besides the server's own 16 MiB cap. */
    bson_t *opts =
        BCON_NEW("projection", "{", DOC_IMAGE, BCON_INT32(1), DOC_SHA256, BCON_INT32(1), DOC_WIDTH,
                 BCON_INT32(1), DOC_HEIGHT, BCON_INT32(1), DOC_CHANNELS, BCON_INT32(1), DOC_BYTES,
                 BCON_INT32(1), DOC_STORAGE, BCON_INT32(1), DOC_GRIDFS_ID, BCON_INT32(1),
                 DOC_SOURCE, BCON_INT32(1), DOC_INSERTED_AT, BCON_INT32(1), DOC_STREAM_ID,
                 BCON_INT32(1), DOC_FORMAT, BCON_INT32(1), DOC_RENDITION, BCON_INT32(1), "}",
                 "batchSize", BCON_INT32(16));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(v->m->images, &filter, opts, NULL);
    const bson_t *doc;
    bson_error_t e;
    int rc = 0;
    while (rc == 0 && mongoc_cursor_next(cur, &doc)) {
        unsigned kinds = 0;
        char id[160] = "(no _id)";
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, DOC_ID))
            stored_id_text(bson_iter_value(&it), id, sizeof(id));
        v->checked++;
        if (verify_doc(v, doc, &kinds, err, errlen) < 0 ||
            verify_has_source(v, doc, id, &kinds, err, errlen) < 0) {
            rc = -1;
        } else if (kinds == 0) {
            v->ok++;
        } else if ((kinds & ~LAYOUT_KINDS) == 0) {
            v->layout++;
        } else {
            v->corrupt++;
            if (opt.fix && verify_remember(v, doc, kinds) < 0) {
                snprintf(err, errlen, "out of memory");
                rc = -1;
            }
        }
    }
    if (rc == 0 && mongoc_cursor_error(cur, &e)) {
        snprintf(err, errlen, "mongo: reading images: %s", e.message);
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(&filter);
    return rc;
}

static int verify_remember_src(struct verify *v, const char *url, const char *image, int dangling,
                               const char *role)
{
    if (v->nsrc == v->capsrc) {
        size_t cap = v->capsrc ? v->capsrc * 2 : 16;
        struct verify_src *b = realloc(v->src, cap * sizeof(*b));
        if (b == NULL)
            return -1;
        v->src = b;
        v->capsrc = cap;
    }
    struct verify_src *x = &v->src[v->nsrc];
    x->url = strdup(url);
    if (x->url == NULL)
        return -1;
    snprintf(x->image, sizeof(x->image), "%s", image);
    x->dangling = dangling;
    x->role = role;
    v->nsrc++;
    return 0;
}

/* One `sources` document: its image exists (a read by _id) and its role is the image's word. */
static int verify_source(const bson_t *doc, void *arg, char *err, size_t errlen)
{
    struct verify *v = arg;
    const char *url = verify_string(doc, DOC_ID), *image = verify_string(doc, SRC_IMAGE);
    const char *role = verify_string(doc, SRC_ROLE), *owner = verify_string(doc, DOC_STREAM_ID);
    unsigned kinds = 0;
    if (url == NULL)
        return 0;
    if (!verify_settled(v, doc, 1))
        return 0;
    v->sources_checked++;
    if (!verify_hex64(image)) {
        verify_problem(v, url, K_DANGLING, &kinds, "its image field is not an image id");
        v->layout++;
        return 0;
    }
    bson_t *img;
    bson_error_t e;
    bson_t *opts =
        BCON_NEW("projection", "{", DOC_SOURCE, BCON_INT32(1), DOC_STREAM_ID, BCON_INT32(1), "}");
    int rc = stored_find_id(v->m->images, image, opts, &img, &e);
    bson_destroy(opts);
    if (rc < 0) {
        snprintf(err, errlen, "mongo: reading %s: %s", COLL_IMAGES, e.message);
        return -1;
    }
    const char *want = NULL;
    if (img == NULL) {
        verify_problem(v, url, K_DANGLING, &kinds, "names image %s, which is not stored", image);
    } else {
        const char *src = verify_string(img, DOC_SOURCE), *sid = verify_string(img, DOC_STREAM_ID);
        /* store.c's rule: the image's own source and stream_id (both unknown agree too). */
        int is_source =
            src && strcmp(src, url) == 0 && strcmp(sid ? sid : "", owner ? owner : "") == 0;
        want = is_source ? ROLE_SOURCE : ROLE_ALIAS;
        if (role == NULL || strcmp(role, want) != 0)
            verify_problem(v, url, K_ROLE, &kinds, "recorded as %s of %s, which says %s",
                           role ? role : "(none)", image, want);
        else
            want = NULL;
        bson_destroy(img);
    }
    if (kinds)
        v->layout++;
    if (kinds && opt.fix && verify_remember_src(v, url, image, img == NULL, want) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int verify_sources(struct verify *v, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    verify_since(v, &filter);
    int rc = mdb_each(v->m->sources, &filter, NULL, verify_source, v, err, errlen);
    bson_destroy(&filter);
    return rc;
}

/* Append a string to a BSON array at index *n. */
static void verify_array_add(bson_t *arr, uint32_t *n, const char *s, uint32_t len)
{
    char key[16];
    const char *kp;
    size_t klen = bson_uint32_to_string((*n)++, &kp, key, sizeof(key));
    bson_append_utf8(arr, kp, (int)klen, s, (int)len);
}

/* verify_urls for one field: a string, or an array of them (other elements skipped), appended
 * after the n found so far; returns the new count. */
static size_t verify_urls_add(bson_iter_t *it, const char **urls, size_t *lens, size_t max,
                              size_t n)
{
    bson_iter_t arr, *one = it;
    uint32_t l;
    int array = BSON_ITER_HOLDS_ARRAY(it);
    if (array && !bson_iter_recurse(it, &arr))
        return n;
    if (array)
        one = &arr;
    while (!array || bson_iter_next(&arr)) {
        if (BSON_ITER_HOLDS_UTF8(one)) {
            if (n < max) {
                urls[n] = bson_iter_utf8(one, &l);
                lens[n] = l;
            }
            n++;
        }
        if (!array)
            break;
    }
    return n;
}

/* The URLs that map to a moved document into urls/lens (room for `max`): its verify_urls (read
 * from `sources` when it was moved), or for a copy made by the previous layout its source then
 * its aliases; returns how many there are, even beyond max (call with max 0 to count). */
static size_t verify_urls(const bson_t *doc, const char **urls, size_t *lens, size_t max)
{
    bson_iter_t it;
    size_t n = 0;
    if (bson_iter_init_find(&it, doc, "verify_urls"))
        return verify_urls_add(&it, urls, lens, max, n);
    if (bson_iter_init_find(&it, doc, DOC_SOURCE))
        n = verify_urls_add(&it, urls, lens, max, n);
    if (bson_iter_init_find(&it, doc, "aliases"))
        n = verify_urls_add(&it, urls, lens, max, n);
    return n;
}

/* Every URL of the document (verify_urls) back into the stream, in one script: all or none. */
static int verify_requeue_urls(struct verify *v, const bson_t *doc, const char *id, int moved,
                               size_t *count, char *err, size_t errlen)
{
    enum { HEAD = 8 }; /* EVAL script numkeys 3 keys, moved, id */
    size_t nurls = verify_urls(doc, NULL, NULL, 0);
    const char **argv = calloc(HEAD + nurls, sizeof(*argv));
    size_t *lens = calloc(HEAD + nurls, sizeof(*lens));
    int rc = -1;
    if (argv == NULL || lens == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    const char *head[HEAD] = {"EVAL",     REQUEUE_LUA,       "3", v->k_seen, v->k_stream,
                              v->k_stats, moved ? "1" : "0", id};
    for (int i = 0; i < HEAD; i++) {
        argv[i] = head[i];
        lens[i] = strlen(head[i]);
    }
    verify_urls(doc, argv + HEAD, lens + HEAD, nurls);
    redisReply *r = rconn_command(v->r, (int)(HEAD + nurls), argv, lens, err, errlen);
    if (r == NULL)
        goto done;
    freeReplyObject(r);
    v->requeued += (long long)nurls;
    *count = nurls;
    rc = 0;
done:
    free(argv);
    free(lens);
    return rc;
}

/* The URLs whose `sources` documents name image id (read after the image left `images`, see the
 * top comment) into the copy's verify_urls, in memory and in images_corrupt; then those
 * documents are deleted, so the re-queued URLs are new to the workers. No URL found (a copy
 * from the previous layout, an orphan image): the copy keeps its source and aliases instead. */
static int verify_collect(struct verify *v, mongoc_collection_t *corrupt, bson_t *copy,
                          const char *id, char *err, size_t errlen)
{
    bson_error_t e;
    bson_t urls = BSON_INITIALIZER;
    uint32_t n = 0;
    bson_t *filter = BCON_NEW(SRC_IMAGE, BCON_UTF8(id));
    bson_t *opts = BCON_NEW("projection", "{", DOC_ID, BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(v->m->sources, filter, opts, NULL);
    const bson_t *doc;
    int rc = -1;
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        uint32_t len;
        if (bson_iter_init_find(&it, doc, DOC_ID) && BSON_ITER_HOLDS_UTF8(&it)) {
            const char *url = bson_iter_utf8(&it, &len);
            verify_array_add(&urls, &n, url, len);
        }
    }
    if (mongoc_cursor_error(cur, &e)) {
        snprintf(err, errlen, "mongo: reading %s of %s: %s", COLL_SOURCES, id, e.message);
        goto done;
    }
    if (n == 0) {
        rc = 0;
        goto done;
    }
    bson_t sel = BSON_INITIALIZER, *upd;
    bson_iter_t it;
    if (bson_iter_init_find(&it, copy, DOC_ID))
        BSON_APPEND_VALUE(&sel, DOC_ID, bson_iter_value(&it));
    upd = BCON_NEW("$set", "{", "verify_urls", BCON_ARRAY(&urls), "}");
    int ok = mongoc_collection_update_one(corrupt, &sel, upd, NULL, NULL, &e);
    bson_destroy(upd);
    bson_destroy(&sel);
    if (!ok) {
        snprintf(err, errlen, "mongo: recording the URLs of %s: %s", id, e.message);
        goto done;
    }
    bson_t tmp;
    bson_init(&tmp);
    bson_copy_to_excluding_noinit(copy, &tmp, "verify_urls", NULL);
    BSON_APPEND_ARRAY(&tmp, "verify_urls", &urls);
    bson_destroy(copy);
    bson_steal(copy, &tmp);
    bson_iter_t arr;
    if (bson_iter_init(&arr, &urls)) {
        while (bson_iter_next(&arr)) {
            bson_t *del =
                BCON_NEW(DOC_ID, BCON_UTF8(bson_iter_utf8(&arr, NULL)), SRC_IMAGE, BCON_UTF8(id));
            ok = mongoc_collection_delete_one(v->m->sources, del, NULL, NULL, &e);
            bson_destroy(del);
            if (!ok) {
                snprintf(err, errlen, "mongo: freeing the URLs of %s: %s", id, e.message);
                goto done;
            }
        }
    }
    rc = 0;
done:
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    bson_destroy(opts);
    bson_destroy(&urls);
    return rc;
}

/* Puts every URL of the document back into the stream, then marks the images_corrupt copy as
 * re-queued. */
static int verify_requeue(struct verify *v, mongoc_collection_t *corrupt, bson_t *doc,
                          const char *id, int moved, char *err, size_t errlen)
{
    size_t nurls = 0;
    int rc = -1;
    if (!bson_has_field(doc, "verify_urls") && verify_collect(v, corrupt, doc, id, err, errlen) < 0)
        return -1;
    if (verify_requeue_urls(v, doc, id, moved, &nurls, err, errlen) < 0)
        return -1;

    bson_error_t e;
    bson_iter_t it;
    bson_t filter = BSON_INITIALIZER;
    if (bson_iter_init_find(&it, doc, DOC_ID))
        BSON_APPEND_VALUE(&filter, DOC_ID, bson_iter_value(&it));
    bson_t *upd = BCON_NEW("$set", "{", DOC_VERIFY_REQUEUED, BCON_BOOL(true), "}");
    int ok = mongoc_collection_update_one(corrupt, &filter, upd, NULL, NULL, &e);
    bson_destroy(upd);
    bson_destroy(&filter);
    if (!ok) {
        snprintf(err, errlen, "mongo: marking %s re-queued: %s", id, e.message);
        goto done;
    }
    if (opt.json) {
        json_object(&v->j);
        json_kv_str(&v->j, "id", id);
        json_kv_str(&v->j, "fixed", moved ? "moved" : "requeued");
        json_kv_int(&v->j, "requeued_urls", (long long)nurls);
        json_end(&v->j);
    } else {
        human_print(stdout, id, strlen(id), 0);
        printf(" %s, %zu URL%s re-queued\n", moved ? "moved to " MDB_CORRUPT : "(moved earlier)",
               nurls, nurls == 1 ? "" : "s");
    }
    rc = 0;
done:
    return rc;
}

/* Copy to images_corrupt (replacing an older copy of the same id), delete from images, then
 * re-queue. Gone already (another --fix): nothing to do. */
static int verify_move(struct verify *v, mongoc_collection_t *corrupt, const struct verify_bad *b,
                       char *err, size_t errlen)
{
    bson_error_t e;
    bson_t filter = BSON_INITIALIZER, copy, problems;
    const bson_t *doc;
    char id[160];
    int rc = -1, have_copy = 0;
    stored_id_text(&b->id, id, sizeof(id));
    BSON_APPEND_VALUE(&filter, DOC_ID, &b->id);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(v->m->images, &filter, NULL, NULL);
    if (!mongoc_cursor_next(cur, &doc)) {
        if (mongoc_cursor_error(cur, &e))
            snprintf(err, errlen, "mongo: reading %s: %s", id, e.message);
        else
            rc = 0;
        goto done;
    }
    bson_init(&copy);
    have_copy = 1;
    bson_copy_to_excluding_noinit(doc, &copy, DOC_VERIFY_PROBLEMS, DOC_VERIFY_MOVED_AT,
                                  DOC_VERIFY_REQUEUED, NULL);
    BSON_APPEND_ARRAY_BEGIN(&copy, DOC_VERIFY_PROBLEMS, &problems);
    for (int k = 0, i = 0; k < K_COUNT; k++) {
        if (!(b->kinds & (1u << k)))
            continue;
        char key[16];
        const char *kp;
        size_t klen = bson_uint32_to_string((uint32_t)i++, &kp, key, sizeof(key));
        bson_append_utf8(&problems, kp, (int)klen, kind_names[k], -1);
    }
    bson_append_array_end(&copy, &problems);
    bson_append_now_utc(&copy, DOC_VERIFY_MOVED_AT, -1);
    BSON_APPEND_BOOL(&copy, DOC_VERIFY_REQUEUED, false);

    bson_t *upsert = BCON_NEW("upsert", BCON_BOOL(true));
    int ok = mongoc_collection_replace_one(corrupt, &filter, &copy, upsert, NULL, &e);
    bson_destroy(upsert);
    if (!ok) {
        snprintf(err, errlen, "mongo: copying %s to %s: %s", id, MDB_CORRUPT, e.message);
        goto done;
    }
    if (!mongoc_collection_delete_one(v->m->images, &filter, NULL, NULL, &e)) {
        snprintf(err, errlen, "mongo: removing %s from images (its copy is in %s): %s", id,
                 MDB_CORRUPT, e.message);
        goto done;
    }
    v->moved++;
    if (verify_renditions_forget(v->m, &b->id, err, errlen) < 0)
        goto done;
    rc = verify_requeue(v, corrupt, &copy, id, 1, err, errlen);
done:
    if (have_copy)
        bson_destroy(&copy);
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    return rc;
}

/* Copies whose re-queue did not happen (Redis failed after the move): do it now. */
static int verify_resume(struct verify *v, mongoc_collection_t *corrupt, char *err, size_t errlen)
{
    bson_error_t e;
    bson_t *filter = BCON_NEW(DOC_VERIFY_REQUEUED, BCON_BOOL(false));
    bson_t *opts = BCON_NEW("projection", "{", DOC_SOURCE, BCON_INT32(1), "aliases", BCON_INT32(1),
                            "verify_urls", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(corrupt, filter, opts, NULL);
    const bson_t *doc;
    int rc = 0;
    while (rc == 0 && mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        char id[160] = "?";
        if (bson_iter_init_find(&it, doc, DOC_ID))
            stored_id_text(bson_iter_value(&it), id, sizeof(id));
        bson_t copy;
        bson_copy_to(doc, &copy);
        rc = verify_requeue(v, corrupt, &copy, id, 0, err, errlen);
        bson_destroy(&copy);
    }
    if (rc == 0 && mongoc_cursor_error(cur, &e)) {
        snprintf(err, errlen, "mongo: reading %s: %s", MDB_CORRUPT, e.message);
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    return rc;
}

/* A dangling source: deleted (only if it still names that image), then its URL re-queued; a
 * wrong role: set. */
static int verify_fix_source(struct verify *v, const struct verify_src *x, char *err, size_t errlen)
{
    bson_error_t e;
    bson_t reply;
    bson_t *sel = BCON_NEW(DOC_ID, BCON_UTF8(x->url), SRC_IMAGE, BCON_UTF8(x->image));
    int ok;
    if (x->dangling) {
        ok = mongoc_collection_delete_one(v->m->sources, sel, NULL, &reply, &e);
    } else {
        bson_t *upd = BCON_NEW("$set", "{", SRC_ROLE, BCON_UTF8(x->role), "}");
        ok = mongoc_collection_update_one(v->m->sources, sel, upd, NULL, &reply, &e);
        bson_destroy(upd);
    }
    bson_destroy(sel);
    if (!ok) {
        bson_destroy(&reply);
        snprintf(err, errlen, "mongo: fixing %s of %s: %s", COLL_SOURCES, x->url, e.message);
        return -1;
    }
    bson_iter_t it;
    int n = bson_iter_init_find(&it, &reply, x->dangling ? "deletedCount" : "matchedCount")
                ? (int)bson_iter_as_int64(&it)
                : 0;
    bson_destroy(&reply);
    if (n == 0 || !x->dangling)
        return 0;
    size_t count = 0;
    bson_t doc = BSON_INITIALIZER, arr;
    uint32_t i = 0;
    BSON_APPEND_ARRAY_BEGIN(&doc, "verify_urls", &arr);
    verify_array_add(&arr, &i, x->url, (uint32_t)strlen(x->url));
    bson_append_array_end(&doc, &arr);
    int rc = verify_requeue_urls(v, &doc, x->image, 0, &count, err, errlen);
    bson_destroy(&doc);
    if (rc == 0 && !opt.json) {
        human_print(stdout, x->url, strlen(x->url), 0);
        printf(" dangling source removed, re-queued\n");
    }
    return rc;
}

/* The second listing of a moved image's URLs (see the top comment): each one found now is freed
 * and re-queued like a dangling source. */
static int verify_sweep(struct verify *v, const struct verify_bad *b, char *err, size_t errlen)
{
    if (b->id.value_type != BSON_TYPE_UTF8)
        return 0;
    const char *id = b->id.value.v_utf8.str;
    bson_error_t e;
    bson_t *filter = BCON_NEW(SRC_IMAGE, BCON_UTF8(id));
    bson_t *opts = BCON_NEW("projection", "{", DOC_ID, BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(v->m->sources, filter, opts, NULL);
    const bson_t *doc;
    char **urls = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    while (rc == 0 && mongoc_cursor_next(cur, &doc)) {
        const char *url = verify_string(doc, DOC_ID);
        if (url == NULL)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            char **u = realloc(urls, cap * sizeof(*u));
            if (u == NULL) {
                rc = -1;
                break;
            }
            urls = u;
        }
        if ((urls[n] = strdup(url)) == NULL)
            rc = -1;
        else
            n++;
    }
    if (rc < 0)
        snprintf(err, errlen, "out of memory");
    else if (mongoc_cursor_error(cur, &e))
        rc = -1, snprintf(err, errlen, "mongo: reading %s of %s: %s", COLL_SOURCES, id, e.message);
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    bson_destroy(opts);
    for (size_t i = 0; i < n; i++) {
        struct verify_src x = {.url = urls[i], .dangling = 1};
        snprintf(x.image, sizeof(x.image), "%s", id);
        if (rc == 0)
            rc = verify_fix_source(v, &x, err, errlen);
        free(urls[i]);
    }
    free(urls);
    return rc;
}

static int verify_fix(struct verify *v, char *err, size_t errlen)
{
    mongoc_collection_t *corrupt = mongoc_database_get_collection(v->m->db, MDB_CORRUPT);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < v->nbad; i++)
        rc = verify_move(v, corrupt, &v->bad[i], err, errlen);
    for (size_t i = 0; rc == 0 && i < v->nsrc; i++)
        rc = verify_fix_source(v, &v->src[i], err, errlen);
    if (rc == 0 && v->moved > 0) {
        usleep(VERIFY_SETTLE_MS * 1000);
        for (size_t i = 0; rc == 0 && i < v->nbad; i++)
            rc = verify_sweep(v, &v->bad[i], err, errlen);
    }
    if (rc == 0)
        rc = verify_resume(v, corrupt, err, errlen);
    mongoc_collection_destroy(corrupt);
    return rc;
}

static void verify_raw_problem(void *arg, const char *sha256, const char *url, int missing,
                               const char *detail)
{
    unsigned kinds = 0;
    verify_problem(arg, sha256, missing ? K_RAW_MISSING : K_RAW_DAMAGED, &kinds, "%s (URL %s)",
                   detail, url[0] ? url : "unknown");
}

static void verify_rendition_problem(void *arg, const char *id, enum verify_rendition_problem what,
                                     const char *detail)
{
    unsigned kinds = 0;
    enum verify_kind k = what == VR_BAD_ID     ? K_REND_ID
                         : what == VR_DANGLING ? K_REND_DANGLING
                                               : K_REND_NO_ORIGINAL;
    verify_problem(arg, id, k, &kinds, "%s", detail);
}

/* The raw zone, last: its problems are reported with the originals' URLs and never fixed. */
static int verify_originals(struct verify *v, char *err, size_t errlen)
{
    if (v->s.raw.kind == RAW_NONE) {
        if (opt.raw) {
            snprintf(err, errlen, "--raw: PIXFLOW_RAW_URL is not set: where are originals kept?");
            return -1;
        }
        return 0;
    }
    struct raw_store *r = raw_new(&v->s.raw, NULL, err, errlen);
    if (r == NULL)
        return -1;
    int rc = verify_raw(v->m, r, opt.raw, v->since_ms, verify_raw_problem, v, &v->raw, err,
                        errlen);
    raw_free(r);
    return rc;
}

static long long verify_waiting(const struct verify *v, int which)
{
    long long n = 0;
    for (int w = 0; w < W_COUNT; w++)
        n += v->waiting[w][which];
    return n;
}

/* One line per reason some layouts wait: how many, of what, why, and when they will be judged. */
static void verify_waiting_lines(const struct verify *v)
{
    for (int w = 0; w < W_COUNT; w++) {
        long long ni = v->waiting[w][0], ns = v->waiting[w][1];
        if (ni + ns == 0)
            continue;
        printf("not judged yet: the links of ");
        if (ni)
            printf("%lld image%s%s", ni, ni == 1 ? "" : "s", ns ? " and " : "");
        if (ns)
            printf("%lld source%s", ns, ns == 1 ? "" : "s");
        if (w == W_PENDING)
            printf(", written by stream entries still pending in group %s (a worker may be "
                   "writing them now); judged once acked\n",
                   v->s.group);
        else if (w == W_NO_ENTRY)
            printf(", written in the last %d s with no stream entry recorded to ask about; judged "
                   "once %d s old\n",
                   STORE_CLAIM_LEASE_MS / 1000, STORE_CLAIM_LEASE_MS / 1000);
        else
            printf(", written in the last %d s: Redis could not say whether their stream entries "
                   "are acked (%s); judged once %d s old\n",
                   STORE_CLAIM_LEASE_MS / 1000, v->redis_why, STORE_CLAIM_LEASE_MS / 1000);
    }
}

static void verify_summary(struct verify *v)
{
    static const char *const wait_names[W_COUNT] = {"pending", "no_stream_id", "redis_unknown"};
    if (opt.json) {
        json_object(&v->j);
        json_kv_int(&v->j, "checked", v->checked);
        json_kv_int(&v->j, "ok", v->ok);
        json_kv_int(&v->j, "corrupt", v->corrupt);
        json_kv_int(&v->j, "sources_checked", v->sources_checked);
        json_kv_int(&v->j, "layout", v->layout);
        if (v->s.raw.kind != RAW_NONE) {
            json_kv_int(&v->j, "originals_checked", v->raw.checked);
            json_kv_int(&v->j, "originals_missing", v->raw.missing);
            json_kv_int(&v->j, "originals_damaged", v->raw.damaged);
        }
        json_kv_int(&v->j, "renditions_checked", v->rend.checked);
        json_key(&v->j, "kinds");
        json_object(&v->j);
        for (int k = 0; k < K_COUNT; k++)
            if (v->by_kind[k])
                json_kv_int(&v->j, kind_names[k], v->by_kind[k]);
        json_end(&v->j);
        json_key(&v->j, "not_judged");
        json_object(&v->j);
        json_kv_int(&v->j, "images", verify_waiting(v, 0));
        json_kv_int(&v->j, "sources", verify_waiting(v, 1));
        for (int w = 0; w < W_COUNT; w++)
            if (v->waiting[w][0] + v->waiting[w][1])
                json_kv_int(&v->j, wait_names[w], v->waiting[w][0] + v->waiting[w][1]);
        if (v->waiting[W_UNKNOWN][0] + v->waiting[W_UNKNOWN][1])
            json_kv_str(&v->j, "redis_error", v->redis_why);
        json_end(&v->j);
        if (opt.fix) {
            json_kv_int(&v->j, "moved", v->moved);
            json_kv_int(&v->j, "requeued", v->requeued);
        }
        json_end(&v->j);
        return;
    }
    printf(
        "checked %lld image%s (%lld ok, %lld corrupt) and %lld source%s; %lld layout problem%s\n",
        v->checked, v->checked == 1 ? "" : "s", v->ok, v->corrupt, v->sources_checked,
        v->sources_checked == 1 ? "" : "s", v->layout, v->layout == 1 ? "" : "s");
    if (v->rend.checked)
        printf("renditions: %lld checked\n", v->rend.checked);
    if (v->s.raw.kind != RAW_NONE)
        printf("originals: %lld %s, %lld missing, %lld damaged\n", v->raw.checked,
               opt.raw ? "re-hashed" : "looked for", v->raw.missing, v->raw.damaged);
    verify_waiting_lines(v);
    for (int k = 0; k < K_COUNT; k++)
        if (v->by_kind[k])
            printf("  %-16s %lld\n", kind_names[k], v->by_kind[k]);
    if (opt.fix)
        printf("fixed: %lld moved to %s, %lld URL%s re-queued\n", v->moved, MDB_CORRUPT,
               v->requeued, v->requeued == 1 ? "" : "s");
}

int verify_main(int argc, char **argv)
{
    struct verify v = {0};
    char **ops, err[1024];
    int nops, status;
    if (admin_settings(&v.s, SET_REDIS | SET_MONGO | SET_GROUP | SET_RAW, own_options, &v.c, CMD,
                       synopsis, argc, argv, &ops, &nops, &status) < 0)
        return status;
    if (nops > 0)
        return admin_fail(CMD, ADMIN_USAGE, "%s: unexpected operand (try --help)", ops[0]);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    v.since_ms = -1;
    v.now_ms = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    if (opt.since[0] && human_since(opt.since, (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000,
                                    &v.since_ms, err, sizeof(err)) < 0)
        return admin_fail(CMD, ADMIN_USAGE, "--since: %s", err);
    json_init(&v.j, stdout);
    settings_key(&v.s, KEY_SEEN, v.k_seen, sizeof(v.k_seen));
    settings_key(&v.s, KEY_STREAM, v.k_stream, sizeof(v.k_stream));
    settings_key(&v.s, KEY_STATS, v.k_stats, sizeof(v.k_stats));

    int rc = ADMIN_FAIL;
    v.m = mdb_new(v.s.mongo_uri, v.c.timeout_ms, err, sizeof(err));
    if (v.m == NULL) {
        admin_fail(CMD, ADMIN_FAIL, "%s", err);
        goto done;
    }
    /* --fix needs Redis for the re-queue: fail before moving anything if it is not there. */
    if (opt.fix) {
        v.r = admin_redis(&v.s, &v.c, CMD);
        if (v.r == NULL)
            goto done;
    }
    if (verify_scan(&v, err, sizeof(err)) < 0 || verify_sources(&v, err, sizeof(err)) < 0 ||
        verify_renditions(v.m, v.since_ms, verify_rendition_problem, &v, &v.rend, err,
                          sizeof(err)) < 0 ||
        verify_originals(&v, err, sizeof(err)) < 0) {
        verify_summary(&v);
        admin_fail(CMD, ADMIN_FAIL, "%s (stopped after %lld documents)", err, v.checked);
        goto done;
    }
    if (opt.fix && verify_fix(&v, err, sizeof(err)) < 0) {
        verify_summary(&v);
        admin_fail(CMD, ADMIN_FAIL, "--fix: %s", err);
        goto done;
    }
    verify_summary(&v);
    long long rend_bad = v.rend.bad_id + v.rend.dangling + v.rend.no_original;
    rc =
        v.corrupt || v.layout || v.raw.missing || v.raw.damaged || rend_bad ? ADMIN_FAIL : ADMIN_OK;
done:
    fflush(stdout);
    for (size_t i = 0; i < v.nbad; i++)
        bson_value_destroy(&v.bad[i].id);
    free(v.bad);
    for (size_t i = 0; i < v.nsrc; i++)
        free(v.src[i].url);
    free(v.src);
    if (v.r)
        redisFree(v.r);
    mdb_free(v.m);
    return rc;
}
