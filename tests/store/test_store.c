/* test_store.c -- store/store.c against a real FerretDB this test starts on a free port.
 *
 * The server runs as a child process (PIXFLOW_FERRETDB, default the project's .cache/bin/ferretdb)
 * with its data in a temporary folder; it is killed in the group teardown, by an atexit handler
 * if a test aborts, and by the kernel (PR_SET_PDEATHSIG) if this process dies any other way.
 * Each test uses its own database. The stop/restart test runs last. */
#include "store.h"

#include "common/server.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <mongoc/mongoc.h>
#include <openssl/evp.h>

#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NTHREADS 8

static struct tserver ferret = {.pid = -1};
static char ferret_dir[900]; /* room for "/ferretdb.log" in ferret.log */
static char ferret_bin[PATH_MAX];
static int test_seq;
static int stream_seq;

/* ---- the FerretDB child ---- */

static void ferret_stop(void)
{
    tserver_stop(&ferret);
}

static int ferret_start(void)
{
    char sqlite[1100], state[1100], listen[64];
    snprintf(sqlite, sizeof(sqlite), "--sqlite-url=file:%s/", ferret_dir);
    snprintf(state, sizeof(state), "--state-dir=%s", ferret_dir);
    snprintf(listen, sizeof(listen), "--listen-addr=127.0.0.1:%d", ferret.port);
    snprintf(ferret.log, sizeof(ferret.log), "%s/ferretdb.log", ferret_dir);
    char *argv[] = {ferret_bin,
                    "--handler=sqlite",
                    sqlite,
                    state,
                    listen,
                    "--debug-addr=127.0.0.1:0",
                    "--telemetry=disable",
                    "--log-level=warn",
                    NULL};
    return tserver_start(&ferret, argv, 15);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

static void at_exit_kill(void)
{
    if (ferret.pid > 0)
        kill(ferret.pid, SIGKILL);
}

static int group_setup(void **state)
{
    if (tserver_cache_bin("PIXFLOW_FERRETDB", "ferretdb", ferret_bin, sizeof(ferret_bin)) < 0)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(ferret_dir, sizeof(ferret_dir), "%s/pixflow-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(ferret_dir) == NULL)
        return -1;
    atexit(at_exit_kill);
    ferret.port = tserver_free_port();
    if (ferret.port < 0 || ferret_start() < 0)
        return -1;
    store_global_init();
    return 0;
}

static int group_teardown(void **state)
{
    ferret_stop();
    nftw(ferret_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    store_global_cleanup();
    return 0;
}

/* ---- test data ---- */

struct timg {
    unsigned char *raw;
    size_t len;
    char *b64;
    size_t b64_len;
    char sha[65];
};

static void timg_make(struct timg *t, uint32_t seed, size_t len)
{
    t->raw = malloc(len);
    assert_non_null(t->raw);
    uint64_t x = 0x9E3779B97F4A7C15ull ^ seed;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t->raw[i] = (unsigned char)x;
    }
    t->len = len;
    t->b64 = malloc(4 * ((len + 2) / 3) + 1);
    assert_non_null(t->b64);
    t->b64_len = (size_t)EVP_EncodeBlock((unsigned char *)t->b64, t->raw, (int)len);
    unsigned char md[32];
    unsigned int mdlen;
    assert_int_equal(EVP_Digest(t->raw, len, md, &mdlen, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(t->sha + 2 * i, 3, "%02x", md[i]);
}

static void timg_free(struct timg *t)
{
    free(t->raw);
    free(t->b64);
}

static const struct lineage_link test_chain[] = {
    {"grayscale", "1.0.0", "aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11", ""},
    {"resize", "0.3.1", NULL, ""},
};

static const struct image_decoder test_decoder = {"libjpeg-turbo", "2.1.5", "luma", 2};

static struct store_doc doc_of(const struct timg *t, const char *url)
{
    struct store_doc d = {
        .sha256 = t->sha,
        .image_b64 = t->b64,
        .image_b64_len = t->b64_len,
        .image = t->raw,
        .image_len = t->len,
        .format = "png",
        .width = 320,
        .height = 200,
        .channels = 1,
        .source = url,
        .origin = {.final_url = "https://fastly.picsum.photos/id/7/320/200.jpg?hmac=x",
                   .content_type = "image/jpeg",
                   .sha256 = "bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22",
                   .bytes = 12345,
                   .width = 320,
                   .height = 200},
        .transforms = test_chain,
        .ntransforms = 2,
        .decoder = &test_decoder,
        .encoder = "png:level=0",
        .stream_id = "1700000000000-0",
        .consumer = "host-42",
        .attempts = 1,
    };
    return d;
}

/* ---- per-test database and a plain client to look at it ---- */

struct ctx {
    char uri[256];
    char db[32];
    struct store *st;
    mongoc_client_t *client;
    mongoc_collection_t *coll; /* images */
    mongoc_collection_t *sources;
};

static int ctx_setup(void **state)
{
    struct ctx *c = calloc(1, sizeof(*c));
    char err[256];
    if (c == NULL)
        return -1;
    snprintf(c->db, sizeof(c->db), "t%d_%d", (int)getpid(), ++test_seq);
    snprintf(c->uri, sizeof(c->uri), "mongodb://127.0.0.1:%d/%s?w=majority", ferret.port, c->db);
    c->st = store_new(c->uri, err, sizeof(err));
    if (c->st == NULL || store_prepare(c->st, err, sizeof(err)) < 0) {
        fprintf(stderr, "store: %s\n", err);
        store_free(c->st);
        free(c);
        return -1;
    }
    c->client = mongoc_client_new(c->uri);
    mongoc_client_set_error_api(c->client, MONGOC_ERROR_API_VERSION_2);
    c->coll = mongoc_client_get_collection(c->client, c->db, "images");
    c->sources = mongoc_client_get_collection(c->client, c->db, "sources");
    *state = c;
    return 0;
}

static int ctx_teardown(void **state)
{
    struct ctx *c = *state;
    if (c == NULL)
        return 0;
    mongoc_collection_destroy(c->coll);
    mongoc_collection_destroy(c->sources);
    mongoc_client_destroy(c->client);
    store_free(c->st);
    free(c);
    return 0;
}

static int64_t count_where(struct ctx *c, bson_t *filter)
{
    bson_error_t e;
    int64_t n = mongoc_collection_count_documents(c->coll, filter, NULL, NULL, NULL, &e);
    if (n < 0)
        fprintf(stderr, "count: %s\n", e.message);
    bson_destroy(filter);
    return n;
}

static int64_t count_all(struct ctx *c)
{
    return count_where(c, bson_new());
}

static bson_t *fetch_from(mongoc_collection_t *coll, const char *id)
{
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    const bson_t *doc;
    bson_t *copy = NULL;
    if (mongoc_cursor_next(cur, &doc))
        copy = bson_copy(doc);
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    return copy;
}

static bson_t *fetch(struct ctx *c, const char *id)
{
    return fetch_from(c->coll, id);
}

/* The `sources` document of url, or NULL. */
static bson_t *claim_of(struct ctx *c, const char *url)
{
    return fetch_from(c->sources, url);
}

static int64_t count_sources(struct ctx *c, bson_t *filter)
{
    bson_error_t e;
    int64_t n = mongoc_collection_count_documents(c->sources, filter, NULL, NULL, NULL, &e);
    bson_destroy(filter);
    return n;
}
static void expect_str(const bson_t *doc, const char *path, const char *want)
{
    bson_iter_t it;
    assert_true(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &it));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_UTF8);
    assert_string_equal(bson_iter_utf8(&it, NULL), want);
}

static void expect_int(const bson_t *doc, const char *path, bson_type_t type, int64_t want)
{
    bson_iter_t it;
    assert_true(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &it));
    assert_int_equal(bson_iter_type(&it), type);
    assert_int_equal(bson_iter_as_int64(&it), want);
}

static int has_field(const bson_t *doc, const char *path)
{
    bson_iter_t it;
    return bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &it);
}

/* A stream id no other put of this run uses: a distinct entry. */
static void new_stream_id(char *buf, size_t len)
{
    snprintf(buf, len, "1700000000001-%d", ++stream_seq);
}

/* Store t from url as stream entry stream_id (NULL: unknown). */
static int put_as(struct ctx *c, const struct timg *t, const char *url, const char *stream_id,
                  enum store_outcome *out)
{
    char err[512] = "";
    struct store_doc d = doc_of(t, url);
    d.stream_id = stream_id;
    d.maybe_written = 1; /* a retry or a redelivery whose earlier delivery began its store */
    int rc = store_put(c->st, &d, out, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "store_put(%s): %d %s\n", url, rc, err);
    return rc;
}

/* Store t from url as the first delivery of a new stream entry (its SADD returned 1). */
static int put_first(struct ctx *c, const struct timg *t, const char *url, enum store_outcome *out)
{
    char err[512] = "", sid[STORE_OWNER_MAX];
    new_stream_id(sid, sizeof(sid));
    struct store_doc d = doc_of(t, url);
    d.stream_id = sid;
    d.first_delivery = 1;
    int rc = store_put(c->st, &d, out, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "store_put(%s): %d %s\n", url, rc, err);
    return rc;
}

/* Store t from url as a new stream entry. */
static int put(struct ctx *c, const struct timg *t, const char *url, enum store_outcome *out)
{
    char sid[STORE_OWNER_MAX];
    new_stream_id(sid, sizeof(sid));
    return put_as(c, t, url, sid, out);
}

/* The layout holds (SPEC §6): every `sources` document names an existing image, with role source
 * exactly when that image's source and stream_id are its own; every image has its source-role
 * `sources` document; no image holds a list of URLs. Returns the number of aliases. */
static int check_layout(struct ctx *c)
{
    bson_error_t e;
    bson_t empty = BSON_INITIALIZER;
    const bson_t *doc;
    int aliases = 0;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c->sources, &empty, NULL, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        assert_true(bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_UTF8(&it));
        const char *url = bson_iter_utf8(&it, NULL);
        assert_true(bson_iter_init_find(&it, doc, "image") && BSON_ITER_HOLDS_UTF8(&it));
        bson_t *img = fetch(c, bson_iter_utf8(&it, NULL));
        if (img == NULL)
            fprintf(stderr, "source %s names a missing image\n", url);
        assert_non_null(img);
        bson_iter_t src, sid, own, role;
        assert_true(bson_iter_init_find(&src, img, "source"));
        assert_true(bson_iter_init_find(&sid, img, "stream_id"));
        assert_true(bson_iter_init_find(&own, doc, "stream_id"));
        assert_true(bson_iter_init_find(&role, doc, "role"));
        int is_source = strcmp(bson_iter_utf8(&src, NULL), url) == 0 &&
                        BSON_ITER_HOLDS_UTF8(&sid) && BSON_ITER_HOLDS_UTF8(&own) &&
                        strcmp(bson_iter_utf8(&sid, NULL), bson_iter_utf8(&own, NULL)) == 0;
        assert_string_equal(bson_iter_utf8(&role, NULL), is_source ? "source" : "alias");
        aliases += !is_source;
        bson_destroy(img);
    }
    assert_false(mongoc_cursor_error(cur, &e));
    mongoc_cursor_destroy(cur);
    cur = mongoc_collection_find_with_opts(c->coll, &empty, NULL, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it, id;
        assert_false(has_field(doc, "aliases"));
        assert_false(has_field(doc, "alias_from"));
        assert_true(bson_iter_init_find(&id, doc, "_id"));
        assert_true(bson_iter_init_find(&it, doc, "source"));
        bson_t *cl = claim_of(c, bson_iter_utf8(&it, NULL));
        assert_non_null(cl);
        expect_str(cl, "image", bson_iter_utf8(&id, NULL));
        expect_str(cl, "role", "source");
        bson_destroy(cl);
    }
    assert_false(mongoc_cursor_error(cur, &e));
    mongoc_cursor_destroy(cur);
    return aliases;
}

/* ---- tests ---- */

static void test_new_does_not_block(void **state)
{
    char err[256] = "";
    assert_null(store_new("http://nope", err, sizeof(err)));
    assert_true(strstr(err, "URI") != NULL);

    /* Nothing listens on this port: creating the pool must not try. */
    char uri[128];
    snprintf(uri, sizeof(uri), "mongodb://127.0.0.1:%d/x", tserver_free_port());
    double t0 = tserver_now();
    struct store *st = store_new(uri, err, sizeof(err));
    assert_non_null(st);
    assert_true(tserver_now() - t0 < 0.5);
    store_free(st);
}

static void test_insert_fields(void **state)
{
    struct ctx *c = *state;
    struct timg a;
    enum store_outcome out = -1;
    timg_make(&a, 1, 3000);
    int64_t before = (int64_t)time(NULL) * 1000;
    assert_int_equal(put_as(c, &a, "https://picsum.photos/320/200", "1700000000000-0", &out), 0);
    assert_int_equal(out, STORE_INSERTED);

    bson_t *doc = fetch(c, a.sha);
    assert_non_null(doc);
    expect_str(doc, "_id", a.sha);
    expect_str(doc, "sha256", a.sha);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, "image") && BSON_ITER_HOLDS_UTF8(&it));
    uint32_t len;
    const char *img = bson_iter_utf8(&it, &len);
    assert_int_equal(len, a.b64_len);
    assert_memory_equal(img, a.b64, a.b64_len);
    expect_str(doc, "format", "png");
    expect_int(doc, "width", BSON_TYPE_INT32, 320);
    expect_int(doc, "height", BSON_TYPE_INT32, 200);
    expect_int(doc, "channels", BSON_TYPE_INT32, 1);
    expect_int(doc, "bytes", BSON_TYPE_INT64, 3000);
    expect_str(doc, "source", "https://picsum.photos/320/200");
    assert_false(has_field(doc, "aliases"));
    assert_false(has_field(doc, "alias_from"));
    expect_str(doc, "origin.final_url", "https://fastly.picsum.photos/id/7/320/200.jpg?hmac=x");
    expect_str(doc, "origin.content_type", "image/jpeg");
    expect_int(doc, "origin.bytes", BSON_TYPE_INT64, 12345);
    expect_str(doc, "origin.sha256",
               "bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22");
    expect_int(doc, "origin.width", BSON_TYPE_INT32, 320);
    expect_int(doc, "origin.height", BSON_TYPE_INT32, 200);
    assert_true(bson_iter_init_find(&it, doc, "transforms"));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_ARRAY);
    expect_str(doc, "transforms.0.name", "grayscale");
    expect_str(doc, "transforms.0.version", "1.0.0");
    expect_str(doc, "transforms.0.sha256", test_chain[0].so_sha256);
    expect_str(doc, "transforms.1.name", "resize");
    expect_str(doc, "transforms.1.version", "0.3.1");
    assert_false(has_field(doc, "transforms.1.sha256"));
    assert_false(has_field(doc, "transforms.2"));
    expect_str(doc, "encoder", "png:level=0");
    expect_str(doc, "decoder.library", "libjpeg-turbo");
    expect_str(doc, "decoder.version", "2.1.5");
    expect_str(doc, "decoder.path", "luma");
    expect_int(doc, "decoder.scale", BSON_TYPE_INT32, 2);
    assert_true(bson_iter_init_find(&it, doc, "inserted_at"));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_DATE_TIME);
    int64_t at = bson_iter_date_time(&it);
    assert_true(at >= before - 1000 && at <= (int64_t)time(NULL) * 1000 + 1000);
    expect_str(doc, "stream_id", "1700000000000-0");
    expect_str(doc, "consumer", "host-42");
    expect_int(doc, "attempts", BSON_TYPE_INT32, 1);
    assert_false(has_field(doc, "storage"));
    assert_false(has_field(doc, "gridfs_id"));
    bson_destroy(doc);
    assert_int_equal(count_all(c), 1);

    doc = claim_of(c, "https://picsum.photos/320/200");
    assert_non_null(doc);
    expect_str(doc, "image", a.sha);
    expect_str(doc, "role", "source");
    expect_str(doc, "stream_id", "1700000000000-0");
    expect_str(doc, "consumer", "host-42");
    assert_true(bson_iter_init_find(&it, doc, "inserted_at"));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_DATE_TIME);
    bson_destroy(doc);
    assert_int_equal(count_sources(c, bson_new()), 1);
    assert_int_equal(check_layout(c), 0);
    timg_free(&a);
}

static void test_same_url_again(void **state)
{
    struct ctx *c = *state;
    struct timg a, b;
    enum store_outcome out;
    const char *u = "https://picsum.photos/64/64";
    timg_make(&a, 10, 500);
    timg_make(&b, 11, 500);
    assert_int_equal(put(c, &a, u, &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    assert_int_equal(put(c, &a, u, &out), 0);
    assert_int_equal(out, STORE_ALREADY);
    assert_int_equal(count_all(c), 1);
    /* A redelivery re-downloaded: picsum gave other bytes. Still the first image. */
    assert_int_equal(put(c, &b, u, &out), 0);
    assert_int_equal(out, STORE_ALREADY);
    assert_int_equal(count_all(c), 1);
    assert_null(fetch(c, b.sha));
    assert_int_equal(check_layout(c), 0);
    timg_free(&a);
    timg_free(&b);
}

static void test_alias_and_find(void **state)
{
    struct ctx *c = *state;
    struct timg a, n;
    enum store_outcome out;
    char err[256], id[65], owner[STORE_OWNER_MAX];
    int found;
    const char *u1 = "https://picsum.photos/10/10", *u2 = "https://picsum.photos/10/10?b=2";
    timg_make(&a, 20, 800);
    timg_make(&n, 21, 800);

    assert_int_equal(store_find_url(c->st, u1, id, NULL, &found, err, sizeof(err)), 0);
    assert_int_equal(found, 0);
    assert_int_equal(put_as(c, &a, u1, "1700000000010-0", &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    assert_int_equal(put_as(c, &a, u2, "1700000000010-1", &out), 0);
    assert_int_equal(out, STORE_ALIASED);
    bson_t *doc = claim_of(c, u2);
    expect_str(doc, "image", a.sha);
    expect_str(doc, "role", "alias");
    expect_str(doc, "stream_id", "1700000000010-1");
    bson_destroy(doc);

    /* The alias again, and the source again, as other entries: nothing changes. */
    assert_int_equal(put(c, &a, u2, &out), 0);
    assert_int_equal(out, STORE_ALREADY);
    assert_int_equal(put(c, &a, u1, &out), 0);
    assert_int_equal(out, STORE_ALREADY);
    /* The alias URL redelivered with new bytes maps to its image already: no new document. */
    assert_int_equal(put(c, &n, u2, &out), 0);
    assert_int_equal(out, STORE_ALREADY);
    assert_int_equal(count_all(c), 1);

    assert_int_equal(store_find_url(c->st, u1, id, owner, &found, err, sizeof(err)), 0);
    assert_int_equal(found, STORE_FOUND_SOURCE);
    assert_string_equal(id, a.sha);
    assert_string_equal(owner, "1700000000010-0");
    assert_int_equal(store_find_url(c->st, u2, id, owner, &found, err, sizeof(err)), 0);
    assert_int_equal(found, STORE_FOUND_ALIAS);
    assert_string_equal(id, a.sha);
    assert_string_equal(owner, "1700000000010-1");
    assert_int_equal(
        store_find_url(c->st, "https://picsum.photos/11", id, NULL, &found, err, sizeof(err)), 0);
    assert_int_equal(found, 0);
    assert_int_equal(check_layout(c), 1);
    timg_free(&a);
    timg_free(&n);
}

static void test_invalid_is_permanent(void **state)
{
    struct ctx *c = *state;
    struct timg a;
    enum store_outcome out;
    char err[256] = "";
    timg_make(&a, 30, 100);
    struct store_doc d = doc_of(&a, "https://picsum.photos/5/5");
    d.sha256 = "ABC";
    assert_int_equal(store_put(c->st, &d, &out, err, sizeof(err)), STORE_ERR_PERMANENT);
    assert_true(strstr(err, "sha256") != NULL);
    d = doc_of(&a, "https://picsum.photos/5/\xff\xfe");
    assert_int_equal(store_put(c->st, &d, &out, err, sizeof(err)), STORE_ERR_PERMANENT);
    assert_true(strstr(err, "UTF-8") != NULL);
    const struct image_decoder bad = {"libjpeg-turbo", "2.1.5", "lu\xffma", 1};
    d = doc_of(&a, "https://picsum.photos/5/5");
    d.decoder = &bad;
    assert_int_equal(store_put(c->st, &d, &out, err, sizeof(err)), STORE_ERR_PERMANENT);
    assert_true(strstr(err, "decoder.path") != NULL);
    d = doc_of(&a, "https://picsum.photos/5/5");
    d.image_b64 = NULL;
    assert_int_equal(store_put(c->st, &d, &out, err, sizeof(err)), STORE_ERR_PERMANENT);
    assert_int_equal(count_all(c), 0);
    assert_int_equal(count_sources(c, bson_new()), 0);
    timg_free(&a);
}

static int index_named(mongoc_collection_t *coll, const char *want, int *unique)
{
    bson_error_t e;
    mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(coll, NULL);
    const bson_t *ix;
    int n = 0;
    while (mongoc_cursor_next(cur, &ix)) {
        bson_iter_t it;
        assert_true(bson_iter_init_find(&it, ix, "name"));
        if (strcmp(bson_iter_utf8(&it, NULL), want) != 0)
            continue;
        n++;
        *unique = bson_iter_init_find(&it, ix, "unique") && bson_iter_as_bool(&it);
    }
    assert_false(mongoc_cursor_error(cur, &e));
    mongoc_cursor_destroy(cur);
    return n;
}

static void test_prepare_twice(void **state)
{
    struct ctx *c = *state;
    char err[256] = "";
    int unique = -1;
    for (int i = 0; i < 2; i++) {
        int rc = store_prepare(c->st, err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "store_prepare: %s\n", err);
        assert_int_equal(rc, 0);
    }
    /* The test server is FerretDB, and said so: its index workaround is the one in use. */
    assert_int_equal(store_is_ferretdb(c->st), 1);
    assert_int_equal(index_named(c->coll, "inserted_at_1", &unique), 1);
    assert_int_equal(unique, 0);
    assert_int_equal(index_named(c->coll, "source_1_stream_id_1", &unique), 1);
    assert_int_equal(index_named(c->sources, "image_1", &unique), 1);
    assert_int_equal(unique, 0);
    assert_int_equal(index_named(c->coll, "source_1", &unique), 0);
    assert_int_equal(index_named(c->coll, "aliases_1", &unique), 0);
}
static void download(struct ctx *c, const bson_value_t *id, unsigned char **buf, size_t *len)
{
    bson_error_t e;
    mongoc_database_t *db = mongoc_client_get_database(c->client, c->db);
    bson_t *opts = BCON_NEW("bucketName", BCON_UTF8("images"));
    mongoc_gridfs_bucket_t *b = mongoc_gridfs_bucket_new(db, opts, NULL, &e);
    assert_non_null(b);
    mongoc_stream_t *s = mongoc_gridfs_bucket_open_download_stream(b, id, &e);
    assert_non_null(s);
    size_t cap = 1 << 20, n = 0;
    unsigned char *p = malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            p = realloc(p, cap);
            assert_non_null(p);
        }
        ssize_t r = mongoc_stream_read(s, p + n, cap - n, 1, 0);
        assert_true(r >= 0);
        if (r == 0)
            break;
        n += (size_t)r;
    }
    mongoc_stream_destroy(s);
    mongoc_gridfs_bucket_destroy(b);
    bson_destroy(opts);
    mongoc_database_destroy(db);
    *buf = p;
    *len = n;
}

static void test_large_goes_to_gridfs(void **state)
{
    struct ctx *c = *state;
    struct timg big, mid;
    enum store_outcome out;
    /* 13 MiB raw = 17.3 MiB of base64: over the BSON limit. */
    timg_make(&big, 40, 13u << 20);
    assert_true(big.b64_len > 16u << 20);
    assert_int_equal(put(c, &big, "https://picsum.photos/5000/5000", &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    bson_t *doc = fetch(c, big.sha);
    assert_non_null(doc);
    assert_false(has_field(doc, "image"));
    expect_str(doc, "storage", "gridfs");
    expect_str(doc, "source", "https://picsum.photos/5000/5000");
    expect_int(doc, "bytes", BSON_TYPE_INT64, (int64_t)big.len);
    expect_str(doc, "transforms.0.name", "grayscale");
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, "gridfs_id"));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_OID);
    unsigned char *back;
    size_t back_len;
    download(c, bson_iter_value(&it), &back, &back_len);
    assert_int_equal(back_len, big.len);
    assert_memory_equal(back, big.raw, big.len);
    free(back);
    bson_destroy(doc);

    /* Same bytes from another URL: an alias, and no second upload. */
    assert_int_equal(put(c, &big, "https://picsum.photos/5000", &out), 0);
    assert_int_equal(out, STORE_ALIASED);
    mongoc_collection_t *files = mongoc_client_get_collection(c->client, c->db, "images.files");
    bson_error_t e;
    bson_t empty = BSON_INITIALIZER;
    assert_int_equal(mongoc_collection_count_documents(files, &empty, NULL, NULL, NULL, &e), 1);
    mongoc_collection_destroy(files);

    /* 10.5 MiB raw = 14 MiB of base64: fits, stays inline. */
    timg_make(&mid, 41, 21u << 19);
    assert_int_equal(put(c, &mid, "https://picsum.photos/4000/4000", &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    doc = fetch(c, mid.sha);
    assert_non_null(doc);
    assert_true(has_field(doc, "image"));
    assert_false(has_field(doc, "storage"));
    bson_destroy(doc);
    assert_int_equal(count_all(c), 2);

    /* store_get reads both back: the GridFS file and the inline base64, byte for byte, and the
     * metadata without the image. */
    const struct timg *both[] = {&big, &mid};
    for (int i = 0; i < 2; i++) {
        int found = 0;
        char *json = NULL, err[256];
        unsigned char *png = NULL;
        size_t png_len = 0;
        assert_int_equal(
            store_get(c->st, both[i]->sha, &found, &json, &png, &png_len, err, sizeof(err)), 0);
        assert_int_equal(found, 1);
        assert_int_equal(png_len, both[i]->len);
        assert_memory_equal(png, both[i]->raw, png_len);
        assert_non_null(strstr(json, both[i]->sha));
        assert_null(strstr(json, "\"image\""));
        free(json);
        free(png);
    }
    int found = 1;
    char err[256];
    assert_int_equal(store_get(c->st,
                               "0000000000000000000000000000000000000000000000000000000000000000",
                               &found, NULL, NULL, NULL, err, sizeof(err)),
                     0);
    assert_int_equal(found, 0);
    timg_free(&big);
    timg_free(&mid);
}

static void test_first_delivery(void **state)
{
    struct ctx *c = *state;
    struct timg a, b;
    enum store_outcome out = -1;
    timg_make(&a, 60, 2000);
    timg_make(&b, 61, 2100);
    assert_int_equal(put_first(c, &a, "https://picsum.photos/60/60", &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    /* Same URL, other bytes, another entry (only a lost dedup set lets it through): the
     * claim's _id refuses it. */
    assert_int_equal(put_first(c, &b, "https://picsum.photos/60/60", &out), 0);
    assert_int_equal(out, STORE_ALREADY);
    /* Same bytes from another URL: an alias. */
    assert_int_equal(put_first(c, &a, "https://picsum.photos/61/61", &out), 0);
    assert_int_equal(out, STORE_ALIASED);
    assert_int_equal(put_first(c, &b, "https://picsum.photos/61/61", &out), 0);
    assert_int_equal(out, STORE_ALREADY);
    assert_int_equal(count_all(c), 1);
    assert_int_equal(check_layout(c), 1);
    timg_free(&a);
    timg_free(&b);
}

/* A lost reply retried, and a redelivery with other bytes: the entry's own outcome, INSERTED. */
static void test_same_entry_again(void **state)
{
    struct ctx *c = *state;
    struct timg a, b, n;
    enum store_outcome out;
    const char *u = "https://picsum.photos/65/65";
    timg_make(&a, 12, 500);
    timg_make(&b, 13, 500);
    timg_make(&n, 14, 500);
    assert_int_equal(put_as(c, &a, u, "1700000000100-0", &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    assert_int_equal(put_as(c, &a, u, "1700000000100-0", &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    assert_int_equal(put_as(c, &b, u, "1700000000100-0", &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    assert_int_equal(count_all(c), 1);
    assert_null(fetch(c, b.sha));

    assert_int_equal(put_as(c, &a, u, "1700000000100-1", &out), 0);
    assert_int_equal(out, STORE_ALREADY);
    assert_int_equal(put_as(c, &b, u, "1700000000101-0", &out), 0);
    assert_int_equal(out, STORE_ALREADY);
    /* A prefix of the recorder's id is another entry. */
    assert_int_equal(put_as(c, &a, u, "1700000000100-", &out), 0);
    assert_int_equal(out, STORE_ALREADY);
    /* Unknown on this side: never taken for the recorder. */
    assert_int_equal(put_as(c, &a, u, NULL, &out), 0);
    assert_int_equal(out, STORE_ALREADY);
    assert_int_equal(put_as(c, &a, u, "", &out), 0);
    assert_int_equal(out, STORE_ALREADY);

    /* The entry redelivered after its bytes were also stored from another URL: still its own. */
    assert_int_equal(put_as(c, &n, "https://picsum.photos/65/66", "1700000000102-0", &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    assert_int_equal(put_as(c, &n, u, "1700000000100-0", &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    assert_int_equal(count_all(c), 2);
    assert_int_equal(check_layout(c), 0);
    timg_free(&a);
    timg_free(&b);
    timg_free(&n);
}

/* An alias records its entry: the same entry again is ALIASED, another entry is ALREADY. */
static void test_alias_same_entry(void **state)
{
    struct ctx *c = *state;
    struct timg a, n;
    enum store_outcome out;
    const char *src = "https://picsum.photos/70/70", *u = "https://picsum.photos/70/71";
    timg_make(&a, 15, 600);
    timg_make(&n, 16, 600);
    assert_int_equal(put_as(c, &a, src, "1700000000200-0", &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    assert_int_equal(put_as(c, &a, u, "1700000000200-1", &out), 0);
    assert_int_equal(out, STORE_ALIASED);
    assert_int_equal(put_as(c, &a, u, "1700000000200-1", &out), 0);
    assert_int_equal(out, STORE_ALIASED);
    /* Redelivered, the download differs: still this entry's alias, no new document. */
    assert_int_equal(put_as(c, &n, u, "1700000000200-1", &out), 0);
    assert_int_equal(out, STORE_ALIASED);
    assert_int_equal(put_as(c, &a, u, "1700000000200-2", &out), 0);
    assert_int_equal(out, STORE_ALREADY);
    /* The source's entry, through the alias URL: another URL, so another entry's alias. */
    assert_int_equal(put_as(c, &a, u, "1700000000200-0", &out), 0);
    assert_int_equal(out, STORE_ALREADY);
    assert_int_equal(count_all(c), 1);
    assert_int_equal(check_layout(c), 1);
    timg_free(&a);
    timg_free(&n);
}

/* A worker killed between its image and its claim: the redelivery, whatever it downloaded,
 * finds the image it wrote (source and stream_id) and claims it; a retry after a lost reply
 * answers the first call's outcome. */
/* A redelivery whose earlier delivery never began its store (maybe_written 0) reads no image:
 * a duplicate key means bytes another URL stored, and no image of an earlier try is looked for.
 * So the worker must record that a store begins (stream_mark) before the first write; this
 * shows what happens to an entry that wrote and did not say so. */
static void test_redelivery_that_never_wrote(void **state)
{
    struct ctx *c = *state;
    struct timg a, b;
    enum store_outcome out = -1;
    char err[512];
    bson_error_t e;
    const char *u1 = "https://picsum.photos/81/1", *u2 = "https://picsum.photos/81/2";
    timg_make(&a, 110, 900);
    timg_make(&b, 111, 900);
    assert_int_equal(put_first(c, &a, u1, &out), 0);
    assert_int_equal(out, STORE_INSERTED);

    struct store_doc d = doc_of(&a, u2); /* same bytes, another URL, redelivered */
    d.stream_id = "1700000000400-0";
    assert_int_equal(store_put(c->st, &d, &out, err, sizeof(err)), 0);
    assert_int_equal(out, STORE_ALIASED);
    bson_t *cl = claim_of(c, u2);
    expect_str(cl, "image", a.sha);
    expect_str(cl, "role", "alias");
    bson_destroy(cl);

    /* cut between image and claim, then redelivered without the mark: its own image a is
     * not found, b is stored beside it and a has no source (verify's no_source) */
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(u1));
    assert_true(mongoc_collection_delete_one(c->sources, sel, NULL, NULL, &e));
    bson_destroy(sel);
    bson_t *one = claim_of(c, u1);
    assert_null(one);
    d = doc_of(&b, u1);
    d.stream_id = "1700000000400-1";
    assert_int_equal(store_put(c->st, &d, &out, err, sizeof(err)), 0);
    assert_int_equal(out, STORE_INSERTED);
    cl = claim_of(c, u1);
    expect_str(cl, "image", b.sha);
    bson_destroy(cl);
    assert_int_equal(count_all(c), 2);
    timg_free(&a);
    timg_free(&b);
}

static void test_crash_between_image_and_source(void **state)
{
    struct ctx *c = *state;
    struct timg a, b;
    enum store_outcome out = -1;
    char err[512], id[65], owner[STORE_OWNER_MAX];
    int found = -1;
    bson_error_t e;
    const char *u1 = "https://picsum.photos/80/1", *u2 = "https://picsum.photos/80/2";
    timg_make(&a, 100, 900);
    timg_make(&b, 101, 900);

    assert_int_equal(put_as(c, &a, u1, "1700000000300-0", &out), 0);
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(u1));
    assert_true(mongoc_collection_delete_one(c->sources, sel, NULL, NULL, &e));
    bson_destroy(sel);
    assert_int_equal(store_find_url(c->st, u1, id, owner, &found, err, sizeof(err)), 0);
    assert_int_equal(found, 0); /* not recorded: the worker re-processes it */
    assert_int_equal(put_as(c, &b, u1, "1700000000300-0", &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    bson_t *cl = claim_of(c, u1);
    expect_str(cl, "image", a.sha);
    expect_str(cl, "role", "source");
    bson_destroy(cl);
    assert_null(fetch(c, b.sha));
    assert_int_equal(count_all(c), 1);

    /* Another entry of the URL does not take that image for its own. */
    assert_true(mongoc_collection_delete_one(c->sources, sel = BCON_NEW("_id", BCON_UTF8(u1)), NULL,
                                             NULL, &e));
    bson_destroy(sel);
    assert_int_equal(put_as(c, &b, u1, "1700000000300-9", &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    cl = claim_of(c, u1);
    expect_str(cl, "image", b.sha);
    bson_destroy(cl);
    /* a is left without its source: what verify reports as no_source. */
    sel = BCON_NEW("_id", BCON_UTF8(a.sha));
    assert_true(mongoc_collection_delete_one(c->coll, sel, NULL, NULL, &e));
    bson_destroy(sel);

    /* Lost reply of a first delivery's image insert, then its retry (not a first try). */
    struct store_doc d = doc_of(&a, u2);
    d.stream_id = "1700000000300-1";
    d.first_delivery = 1;
    assert_int_equal(store_put(c->st, &d, &out, err, sizeof(err)), 0);
    sel = BCON_NEW("_id", BCON_UTF8(u2));
    assert_true(mongoc_collection_delete_one(c->sources, sel, NULL, NULL, &e));
    bson_destroy(sel);
    d.first_delivery = 0;
    d.maybe_written = 1; /* what the worker says of a retry after a failed store_put */
    assert_int_equal(store_put(c->st, &d, &out, err, sizeof(err)), 0);
    assert_int_equal(out, STORE_INSERTED);
    assert_int_equal(store_put(c->st, &d, &out, err, sizeof(err)), 0);
    assert_int_equal(out, STORE_INSERTED);
    assert_int_equal(count_all(c), 2);
    assert_int_equal(check_layout(c), 0);
    timg_free(&a);
    timg_free(&b);
}

/* Killed between the image insert and the role update: the image's own fields decide. */
static void test_crash_before_role(void **state)
{
    struct ctx *c = *state;
    struct timg a;
    enum store_outcome out;
    char err[256], id[65], owner[STORE_OWNER_MAX];
    int found;
    const char *u = "https://picsum.photos/81/1";
    timg_make(&a, 110, 700);
    assert_int_equal(put_as(c, &a, u, "1700000000400-0", &out), 0);
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(u));
    bson_t *upd = BCON_NEW("$set", "{", "role", BCON_UTF8("alias"), "}");
    bson_error_t e;
    assert_true(mongoc_collection_update_one(c->sources, sel, upd, NULL, NULL, &e));
    bson_destroy(upd);
    /* the lookup answers from the claim alone (no read of images) ... */
    assert_int_equal(store_find_url(c->st, u, id, owner, &found, err, sizeof(err)), 0);
    assert_int_equal(found, STORE_FOUND_ALIAS);
    /* ... a put reads the image of its own claim, and corrects the role */
    assert_int_equal(put_as(c, &a, u, "1700000000400-0", &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    bson_t *cl = claim_of(c, u);
    expect_str(cl, "role", "source");
    bson_destroy(cl);
    bson_destroy(sel);
    assert_int_equal(check_layout(c), 0);
    timg_free(&a);
}

/* The image of an alias gone (verify --fix moved it away as corrupt): the next URL with the
 * true bytes stores them again instead of aliasing a missing image. */
static void test_alias_of_removed_image(void **state)
{
    struct ctx *c = *state;
    struct timg a;
    enum store_outcome out;
    bson_error_t e;
    timg_make(&a, 120, 700);
    assert_int_equal(put(c, &a, "https://picsum.photos/82/1", &out), 0);
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(a.sha));
    assert_true(mongoc_collection_delete_one(c->coll, sel, NULL, NULL, &e));
    bson_destroy(sel);
    sel = BCON_NEW("_id", BCON_UTF8("https://picsum.photos/82/1"));
    assert_true(mongoc_collection_delete_one(c->sources, sel, NULL, NULL, &e));
    bson_destroy(sel);
    assert_int_equal(put_first(c, &a, "https://picsum.photos/82/2", &out), 0);
    assert_int_equal(out, STORE_INSERTED);
    assert_int_equal(count_all(c), 1);
    assert_int_equal(check_layout(c), 0);
    timg_free(&a);
}
/* ---- concurrency ---- */

struct racer {
    struct ctx *c;
    pthread_barrier_t *go;
    const struct timg *img;
    char url[128];
    char stream[STORE_OWNER_MAX]; /* "": race() gives the racer an entry of its own */
    char origin[65];              /* "": no raw store; else the original it kept */
    int rc;
    enum store_outcome out;
};

static void *racer_run(void *arg)
{
    struct racer *r = arg;
    char err[512] = "";
    struct store_doc d = doc_of(r->img, r->url);
    d.stream_id = r->stream;
    if (r->origin[0]) {
        d.raw = "s3://pixflow/raw";
        d.origin.sha256 = r->origin;
    }
    pthread_barrier_wait(r->go);
    r->rc = store_put(r->c->st, &d, &r->out, err, sizeof(err));
    if (r->rc != 0)
        fprintf(stderr, "racer %s: %s\n", r->url, err);
    return NULL;
}

static void race(struct ctx *c, struct racer *r, int n)
{
    pthread_barrier_t go;
    pthread_t th[NTHREADS];
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        r[i].c = c;
        r[i].go = &go;
        if (r[i].stream[0] == '\0')
            new_stream_id(r[i].stream, sizeof(r[i].stream));
        assert_int_equal(pthread_create(&th[i], NULL, racer_run, &r[i]), 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
}

static int64_t count_in(struct ctx *c, const char *coll, bson_t *filter)
{
    bson_error_t e;
    mongoc_collection_t *col = mongoc_client_get_collection(c->client, c->db, coll);
    int64_t n = mongoc_collection_count_documents(col, filter, NULL, NULL, NULL, &e);
    mongoc_collection_destroy(col);
    bson_destroy(filter);
    return n;
}

/* The recorder of url, which must be one of the racers; its index in r. */
static int recorder(struct ctx *c, const struct racer *r, int n, const char *url)
{
    char err[256], id[65], owner[STORE_OWNER_MAX] = "";
    int found = 0, by = -1;
    assert_int_equal(store_find_url(c->st, url, id, owner, &found, err, sizeof(err)), 0);
    assert_true(found == STORE_FOUND_SOURCE || found == STORE_FOUND_ALIAS);
    for (int i = 0; i < n; i++)
        if (strcmp(r[i].stream, owner) == 0)
            by = i;
    assert_true(by >= 0);
    return by;
}

static void test_race_same_bytes(void **state)
{
    struct ctx *c = *state;
    struct timg a;
    struct racer r[NTHREADS] = {0};
    timg_make(&a, 50, 2000);
    for (int i = 0; i < NTHREADS; i++) {
        r[i].img = &a;
        snprintf(r[i].url, sizeof(r[i].url), "https://picsum.photos/%d/8", 100 + i);
    }
    race(c, r, NTHREADS);
    int inserted = 0, aliased = 0;
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(r[i].rc, 0);
        inserted += r[i].out == STORE_INSERTED;
        aliased += r[i].out == STORE_ALIASED;
    }
    assert_int_equal(inserted, 1);
    assert_int_equal(aliased, NTHREADS - 1);
    assert_int_equal(count_all(c), 1);
    for (int i = 0; i < NTHREADS; i++) {
        char err[256], id[65], owner[STORE_OWNER_MAX];
        int found;
        /* Each URL recorded by its own writer, with the role its answer said. */
        assert_int_equal(store_find_url(c->st, r[i].url, id, owner, &found, err, sizeof(err)), 0);
        assert_int_equal(found,
                         r[i].out == STORE_INSERTED ? STORE_FOUND_SOURCE : STORE_FOUND_ALIAS);
        assert_string_equal(owner, r[i].stream);
        assert_string_equal(id, a.sha);
    }
    assert_int_equal(check_layout(c), NTHREADS - 1);
    timg_free(&a);
}

/* One URL, 8 entries at once with 8 different downloads: one image, one writer. */
static void test_race_same_url(void **state)
{
    struct ctx *c = *state;
    struct timg img[NTHREADS];
    struct racer r[NTHREADS] = {0};
    for (int i = 0; i < NTHREADS; i++)
        timg_make(&img[i], 60 + (uint32_t)i, 1500);
    int64_t inserted = 0;
    for (int round = 0; round < 3; round++) {
        char url[128];
        snprintf(url, sizeof(url), "https://picsum.photos/77/%d", round + 1);
        for (int i = 0; i < NTHREADS; i++) {
            /* Each round reuses the bytes, so later rounds also race into existing images. */
            r[i].img = &img[(i + round) % NTHREADS];
            snprintf(r[i].url, sizeof(r[i].url), "%s", url);
            r[i].stream[0] = '\0';
        }
        race(c, r, NTHREADS);
        int written = 0;
        for (int i = 0; i < NTHREADS; i++) {
            assert_int_equal(r[i].rc, 0);
            written += r[i].out != STORE_ALREADY;
            inserted += r[i].out == STORE_INSERTED;
        }
        assert_int_equal(written, 1);
        assert_int_not_equal(r[recorder(c, r, NTHREADS, url)].out, STORE_ALREADY);
        /* stored = documents: no losing image was left behind. */
        assert_int_equal(count_all(c), inserted);
    }
    check_layout(c);
    for (int i = 0; i < NTHREADS; i++)
        timg_free(&img[i]);
}

/* One entry delivered 8 times at once (reclaimed while its workers still run): every delivery
 * answers the entry's outcome, INSERTED for 8 new images, ALIASED onto an image already stored. */
static void test_race_same_entry(void **state)
{
    struct ctx *c = *state;
    struct timg img[NTHREADS], x;
    struct racer r[NTHREADS] = {0};
    enum store_outcome out;
    const char *u1 = "https://picsum.photos/78/1", *u2 = "https://picsum.photos/78/2";
    for (int i = 0; i < NTHREADS; i++)
        timg_make(&img[i], 70 + (uint32_t)i, 1500);
    timg_make(&x, 69, 1500);
    assert_int_equal(put(c, &x, "https://picsum.photos/78/0", &out), 0);

    for (int i = 0; i < NTHREADS; i++) {
        r[i].img = &img[i];
        snprintf(r[i].url, sizeof(r[i].url), "%s", u1);
        snprintf(r[i].stream, sizeof(r[i].stream), "1700000000500-0");
    }
    race(c, r, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(r[i].rc, 0);
        assert_int_equal(r[i].out, STORE_INSERTED);
    }
    assert_int_equal(count_all(c), 2);

    for (int i = 0; i < NTHREADS; i++) {
        r[i].img = &x;
        snprintf(r[i].url, sizeof(r[i].url), "%s", u2);
        snprintf(r[i].stream, sizeof(r[i].stream), "1700000000500-1");
    }
    race(c, r, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(r[i].rc, 0);
        assert_int_equal(r[i].out, STORE_ALIASED);
    }
    assert_int_equal(count_all(c), 2);
    bson_t *cl = claim_of(c, u2);
    expect_str(cl, "stream_id", "1700000000500-1");
    expect_str(cl, "image", x.sha);
    bson_destroy(cl);
    assert_int_equal(check_layout(c), 1);
    for (int i = 0; i < NTHREADS; i++)
        timg_free(&img[i]);
    timg_free(&x);
}

/* With originals kept, one entry delivered several times at once with other bytes each time
 * (picsum): the winner's claim names one image and one original, and the `default` rendition
 * recorded is that pair's, never a loser's removed image. */
static void test_race_same_entry_kept_originals(void **state)
{
    struct ctx *c = *state;
    struct timg img[NTHREADS];
    struct racer r[NTHREADS] = {0};
    const char *u = "https://picsum.photos/79/1";
    for (int i = 0; i < NTHREADS; i++) {
        timg_make(&img[i], 170 + (uint32_t)i, 1500);
        r[i].img = &img[i];
        snprintf(r[i].url, sizeof(r[i].url), "%s", u);
        snprintf(r[i].stream, sizeof(r[i].stream), "1700000000600-0");
        snprintf(r[i].origin, sizeof(r[i].origin), "%064x", 0xabc0 + i);
    }
    race(c, r, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(r[i].rc, 0);
        assert_int_equal(r[i].out, STORE_INSERTED);
    }
    bson_t *cl = claim_of(c, u);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, cl, "image"));
    char image[65], origin[65];
    snprintf(image, sizeof(image), "%s", bson_iter_utf8(&it, NULL));
    assert_true(bson_iter_init_find(&it, cl, "origin"));
    snprintf(origin, sizeof(origin), "%s", bson_iter_utf8(&it, NULL));
    bson_destroy(cl);
    assert_int_equal(count_in(c, "renditions", bson_new()), 1);
    char id[160];
    snprintf(id, sizeof(id), "%s/default", origin);
    bson_t *named = BCON_NEW("_id", BCON_UTF8(id), "image", BCON_UTF8(image));
    assert_int_equal(count_in(c, "renditions", named), 1);
    assert_int_equal(count_where(c, BCON_NEW("_id", BCON_UTF8(image))), 1);
    assert_int_equal(count_in(c, "originals", bson_new()), NTHREADS); /* each kept its own */
    for (int i = 0; i < NTHREADS; i++)
        timg_free(&img[i]);
}

/* Two URLs upload the same large image at once: one document, one alias, and the losing upload
 * is deleted (no orphaned file or chunk is left). */
static void test_race_large(void **state)
{
    struct ctx *c = *state;
    struct timg big;
    struct racer r[2] = {0};
    timg_make(&big, 45, 12u << 20);
    for (int i = 0; i < 2; i++) {
        r[i].img = &big;
        snprintf(r[i].url, sizeof(r[i].url), "https://picsum.photos/4999/%d", 4990 + i);
    }
    race(c, r, 2);
    assert_int_equal(r[0].rc, 0);
    assert_int_equal(r[1].rc, 0);
    assert_int_equal((r[0].out == STORE_INSERTED) + (r[1].out == STORE_INSERTED), 1);
    assert_int_equal((r[0].out == STORE_ALIASED) + (r[1].out == STORE_ALIASED), 1);
    assert_int_equal(count_all(c), 1);
    assert_int_equal(count_in(c, "images.files", bson_new()), 1);
    int64_t chunks = (int64_t)((big.len + 255 * 1024 - 1) / (255 * 1024));
    assert_int_equal(count_in(c, "images.chunks", bson_new()), chunks);
    bson_t *doc = fetch(c, big.sha);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, "gridfs_id"));
    assert_int_equal(
        count_in(c, "images.chunks", BCON_NEW("files_id", BCON_OID(bson_iter_oid(&it)))), chunks);
    bson_destroy(doc);
    assert_int_equal(check_layout(c), 1);
    timg_free(&big);
}

/* Same URL, 8 downloads at once, three of them equal to images stored from other URLs: the URL
 * must end up recorded once whatever mix of inserts and aliases raced, and no image without its
 * source is left. Rounds 0-3 are 8 entries of one URL; rounds 4 and 5 one entry delivered 8
 * times at once, so no delivery may answer ALREADY. */
static void test_race_same_url_into_existing(void **state)
{
    struct ctx *c = *state;
    struct timg img[NTHREADS];
    struct racer r[NTHREADS] = {0};
    enum store_outcome out;
    for (int i = 0; i < NTHREADS; i++)
        timg_make(&img[i], 80 + (uint32_t)i, 1200);
    int64_t inserted = 0;
    for (int i = 0; i < 3; i++) {
        char url[64];
        snprintf(url, sizeof(url), "https://picsum.photos/9/%d", i + 1);
        assert_int_equal(put(c, &img[i], url, &out), 0);
        assert_int_equal(out, STORE_INSERTED);
        inserted++;
    }
    for (int round = 0; round < 6; round++) {
        char url[128], entry[STORE_OWNER_MAX];
        int same_entry = round >= 4, mix = round == 2 || round == 3 || round == 5;
        snprintf(url, sizeof(url), "https://picsum.photos/33/%d", round + 1);
        new_stream_id(entry, sizeof(entry));
        for (int i = 0; i < NTHREADS; i++) {
            /* Only existing images (alias vs alias), or a mix with new ones. */
            int k = mix ? (i + round) % NTHREADS : i % 3;
            r[i].img = &img[k];
            snprintf(r[i].url, sizeof(r[i].url), "%s", url);
            snprintf(r[i].stream, sizeof(r[i].stream), "%s", same_entry ? entry : "");
        }
        race(c, r, NTHREADS);
        int counted = 0;
        for (int i = 0; i < NTHREADS; i++) {
            assert_int_equal(r[i].rc, 0);
            if (same_entry)
                assert_int_not_equal(r[i].out, STORE_ALREADY);
            else
                counted += r[i].out == STORE_INSERTED;
        }
        /* One entry delivered 8 times is counted once by the worker's ack. */
        inserted += same_entry ? r[0].out == STORE_INSERTED : counted;
        assert_int_not_equal(r[recorder(c, r, NTHREADS, url)].out, STORE_ALREADY);
        assert_int_equal(count_all(c), inserted);
    }
    check_layout(c);
    for (int i = 0; i < NTHREADS; i++)
        timg_free(&img[i]);
}
/* ---- server down ---- */

/* ---- renditions (store_put_rendition) ---- */

static const char ORIG[] = "cc33cc33cc33cc33cc33cc33cc33cc33cc33cc33cc33cc33cc33cc33cc33cc33";

static struct store_doc rendition_of(const struct timg *t, const char *stream)
{
    struct store_doc d = doc_of(t, "https://picsum.photos/64/64");
    d.origin.sha256 = ORIG;
    d.rendition = "thumb";
    d.stream_id = stream;
    return d;
}

struct rracer {
    struct ctx *c;
    pthread_barrier_t *go;
    const struct timg *img;
    char stream[STORE_OWNER_MAX];
    int rc;
    enum store_outcome out;
};

static void *rracer_run(void *arg)
{
    struct rracer *r = arg;
    char err[256];
    struct store_doc d = rendition_of(r->img, r->stream);
    pthread_barrier_wait(r->go);
    r->rc = store_put_rendition(r->c->st, &d, 0, &r->out, err, sizeof(err));
    return NULL;
}

/* Workers making one rendition at once: one document; identical bytes are one image, and a
 * chain that is not deterministic leaves only the winner's image. */
static void test_rendition_race(void **state)
{
    struct ctx *c = *state;
    struct timg same, other[NTHREADS];
    struct rracer r[NTHREADS] = {0};
    pthread_t th[NTHREADS];
    pthread_barrier_t go;
    timg_make(&same, 70, 1500);
    for (int round = 0; round < 2; round++) {
        pthread_barrier_init(&go, NULL, NTHREADS);
        for (int i = 0; i < NTHREADS; i++) {
            if (round == 1)
                timg_make(&other[i], 80 + (uint32_t)i, 1500);
            r[i] = (struct rracer){c, &go, round == 0 ? &same : &other[i], "", 0, 0};
            snprintf(r[i].stream, sizeof(r[i].stream), "17000000%05d-%d", round, i);
            assert_int_equal(pthread_create(&th[i], NULL, rracer_run, &r[i]), 0);
        }
        for (int i = 0; i < NTHREADS; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&go);
        int inserted = 0;
        for (int i = 0; i < NTHREADS; i++) {
            assert_int_equal(r[i].rc, 0);
            inserted += r[i].out == STORE_INSERTED;
        }
        assert_int_equal(inserted, round == 0 ? 1 : 0); /* round 1: round 0's document stays */
        assert_int_equal(count_in(c, "renditions", bson_new()), 1);
        assert_int_equal(count_where(c, BCON_NEW("rendition", BCON_UTF8("thumb"))), 1);
    }
    struct store_rendition sr;
    char err[256];
    assert_int_equal(store_find_rendition(c->st, ORIG, "thumb", test_chain, 2, &sr, err,
                                          sizeof(err)),
                     0);
    assert_true(sr.found && sr.current);
    assert_string_equal(sr.image, same.sha);
    timg_free(&same);
    for (int i = 0; i < NTHREADS; i++)
        timg_free(&other[i]);
}

/* Cut between the image and its document: the next try writes the document. Then a new chain
 * (a plugin upgrade) replaces it only when asked to. */
static void test_rendition_crash_and_stale(void **state)
{
    struct ctx *c = *state;
    struct timg a;
    char err[256];
    enum store_outcome out;
    timg_make(&a, 90, 1200);
    struct store_doc d = rendition_of(&a, "1700000000001-0");
    bson_t *img = BCON_NEW("_id", BCON_UTF8(a.sha), "rendition", BCON_UTF8("thumb"));
    assert_true(mongoc_collection_insert_one(c->coll, img, NULL, NULL, NULL));
    bson_destroy(img);
    assert_int_equal(store_put_rendition(c->st, &d, 0, &out, err, sizeof(err)), 0);
    assert_int_equal(out, STORE_INSERTED); /* the image was there; the document is this call's */
    assert_int_equal(count_in(c, "renditions", bson_new()), 1);
    assert_int_equal(count_all(c), 1);

    static const struct lineage_link upgraded[] = {
        {"grayscale", "1.0.1", "dd44dd44dd44dd44dd44dd44dd44dd44dd44dd44dd44dd44dd44dd44dd44dd44",
         ""},
        {"resize", "0.3.1", NULL, "width=64"},
    };
    struct store_rendition sr;
    assert_int_equal(store_find_rendition(c->st, ORIG, "thumb", upgraded, 2, &sr, err,
                                          sizeof(err)),
                     0);
    assert_true(sr.found && !sr.current);
    d.transforms = upgraded;
    assert_int_equal(store_put_rendition(c->st, &d, 0, &out, err, sizeof(err)), 0);
    assert_int_equal(out, STORE_ALREADY); /* not asked to replace */
    assert_int_equal(store_put_rendition(c->st, &d, 1, &out, err, sizeof(err)), 0);
    assert_int_equal(out, STORE_INSERTED);
    assert_int_equal(store_find_rendition(c->st, ORIG, "thumb", upgraded, 2, &sr, err,
                                          sizeof(err)),
                     0);
    assert_true(sr.found && sr.current);
    assert_int_equal(store_put_rendition(c->st, &d, 1, &out, err, sizeof(err)), 0);
    assert_int_equal(out, STORE_ALREADY); /* current now: nothing to redo */
    d.rendition = "a/b";
    assert_int_equal(store_put_rendition(c->st, &d, 0, &out, err, sizeof(err)),
                     STORE_ERR_PERMANENT);
    timg_free(&a);
}

static void test_server_down_and_back(void **state)
{
    struct ctx *c = *state;
    struct timg a, b;
    enum store_outcome out;
    char err[512];
    timg_make(&a, 90, 700);
    timg_make(&b, 91, 700);
    assert_int_equal(put(c, &a, "https://picsum.photos/2/2", &out), 0);
    assert_int_equal(store_ping(c->st, err, sizeof(err)), 0);

    ferret_stop();
    double slowest = 0;
    for (int i = 0; i < 2; i++) {
        double t0 = tserver_now();
        err[0] = '\0';
        struct store_doc d = doc_of(&b, "https://picsum.photos/3/3");
        assert_int_equal(store_put(c->st, &d, &out, err, sizeof(err)), STORE_ERR_TRANSIENT);
        assert_true(err[0] != '\0');
        slowest = fmax(slowest, tserver_now() - t0);
        t0 = tserver_now();
        assert_int_equal(store_ping(c->st, err, sizeof(err)), -1);
        slowest = fmax(slowest, tserver_now() - t0);
        int found;
        char id[65];
        t0 = tserver_now();
        assert_int_equal(
            store_find_url(c->st, "https://picsum.photos/2/2", id, NULL, &found, err, sizeof(err)),
            -1);
        slowest = fmax(slowest, tserver_now() - t0);
    }
    fprintf(stderr, "server down: slowest call %.2f s (%s)\n", slowest, err);
    assert_true(slowest < 5.0);

    assert_int_equal(ferret_start(), 0);
    double t0 = tserver_now();
    int rc = -1;
    for (double end = tserver_now() + 30; rc != 0 && tserver_now() < end;) {
        rc = put(c, &b, "https://picsum.photos/3/3", &out);
        if (rc != 0)
            usleep(200 * 1000);
    }
    fprintf(stderr, "server back: first put succeeded after %.2f s\n", tserver_now() - t0);
    assert_int_equal(rc, 0);
    assert_int_equal(out, STORE_INSERTED);
    assert_int_equal(store_ping(c->st, err, sizeof(err)), 0);
    assert_int_equal(count_all(c), 2); /* the data survived the restart */
    timg_free(&a);
    timg_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_does_not_block),
        cmocka_unit_test_setup_teardown(test_insert_fields, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_same_url_again, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_alias_and_find, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_is_permanent, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_prepare_twice, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_large_goes_to_gridfs, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_first_delivery, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_same_entry_again, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_alias_same_entry, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_redelivery_that_never_wrote, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_crash_between_image_and_source, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_crash_before_role, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_alias_of_removed_image, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_race_same_bytes, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_race_same_url, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_race_same_entry, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_race_same_entry_kept_originals, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_race_large, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_race_same_url_into_existing, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_rendition_race, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_rendition_crash_and_stale, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_server_down_and_back, ctx_setup, ctx_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
