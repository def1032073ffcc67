/* get.c -- pixflow get: one stored image out of MongoDB, by content id or by URL.
 *
 * A URL is normalized as the workers do (SPEC §4) and resolved with store_find_url(): its
 * `sources` document, then the image it names (two reads by _id), the worker's own rule, so
 * `get URL` answers what a redelivery of that URL would find. The bytes written are checked
 * against the id before they are trusted: a corrupt image is still written (it is evidence) but
 * the command says so and exits 1.
 *
 * --original writes the downloaded original back from the raw store instead: the URL's
 * `sources` document names it (`origin`), the `originals` document says where it is kept, and
 * the bytes read back must hash to that name. */
#include "admin.h"
#include "digest.h"
#include "json.h"
#include "mdb.h"
#include "names.h"
#include "raw.h"
#include "store.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "get"

static const char synopsis[] =
    "pixflow get ID|URL [-o FILE] [--json] [--original] [--rendition NAME]\n\n"
    "Writes the stored PNG of the image with that _id (its SHA-256), or of the image a URL maps\n"
    "to (as the source that produced it or as an alias; the URL is normalized first). Without\n"
    "-o the PNG goes to stdout, which must not be a terminal. --json prints the document's\n"
    "metadata (everything but the base64 image) as JSON instead, or as well with -o FILE.\n"
    "--original: the downloaded original instead, read back from the raw store\n"
    "(PIXFLOW_RAW_URL), by URL or by the original's SHA-256; --json prints its `originals`\n"
    "document.\n"
    "--rendition NAME: that rendition of the URL's original (or of the original whose SHA-256\n"
    "is given) instead of the URL's own picture (`default`).\n"
    "Exit: 0 written, 1 no such image, the image does not match its id, or a server failed,\n"
    "2 bad usage";

static struct {
    const char *output;
    int json;
    int original;
    const char *rendition;
} opt;

static const struct cfg_option own_options[] = {
    {"output", NULL, cfg_string, &opt.output, "", .meta = "FILE",
     .help = "write the PNG there ('-': stdout); also -o FILE"},
    {"json", NULL, cfg_switch, &opt.json, "", .flags = CFG_NOARG,
     .help = "print the metadata (without the image) as JSON"},
    {"original", NULL, cfg_switch, &opt.original, "", .flags = CFG_NOARG,
     .help = "the downloaded original, from the raw store"},
    {"rendition", NULL, cfg_string, &opt.rendition, "", .meta = "NAME",
     .help = "that rendition of the URL's original (default: the URL's own picture)"},
    {NULL},
};

static int get_is_id(const char *s)
{
    return strlen(s) == DIGEST_HEX_LEN && strspn(s, "0123456789abcdefABCDEF") == DIGEST_HEX_LEN;
}

/* --rendition NAME: the image of renditions[<original>/NAME], the original named by its SHA-256
 * or found through the URL's `sources` document (SPEC §6: three reads by _id). */
static int get_rendition(const struct settings *s, const char *what, char *id, char *how,
                         size_t howlen, char *err, size_t errlen)
{
    char origin[65] = "";
    struct url *u = malloc(sizeof(*u));
    struct store *st = u ? store_new(s->mongo_uri, err, errlen) : NULL;
    int rc = -1, found = 0;
    if (u == NULL)
        snprintf(err, errlen, "out of memory");
    if (st && get_is_id(what)) {
        for (int i = 0; i <= DIGEST_HEX_LEN; i++)
            origin[i] = (char)tolower((unsigned char)what[i]);
        found = 1;
    } else if (st) {
        const char *url = url_parse(what, strlen(what), &s->allowed, u) == URL_OK ? u->norm : what;
        if (store_find_origin(st, url, &found, origin, err, errlen) < 0)
            found = -1;
        else if (!found || !origin[0])
            snprintf(err, errlen, "%s %.900s",
                     found ? "no original recorded for URL" : "no stored image for URL", url);
    }
    struct store_rendition r;
    if (st && (found == 0 || (found == 1 && !origin[0]))) {
        rc = 0;
    } else if (st && found == 1 &&
               store_find_rendition(st, origin, opt.rendition, NULL, 0, &r, err, errlen) == 0) {
        rc = r.found ? 1 : 0;
        if (r.found) {
            memcpy(id, r.image, sizeof(r.image));
            snprintf(how, howlen, "rendition %s of original %s", opt.rendition, origin);
        } else {
            struct store_original o;
            int kept = 1;
            store_find_original(st, origin, &kept, &o, err, errlen);
            if (kept)
                snprintf(err, errlen,
                         "original %s has no rendition %.64s yet (pixflow reprocess "
                         "%.64s)",
                         origin, opt.rendition, opt.rendition);
            else
                snprintf(err, errlen,
                         "original %s was not kept (stored without a raw store): "
                         "it has its default rendition only",
                         origin);
        }
    }
    store_free(st);
    free(u);
    return rc;
}

/* The _id the operand names into id (65 bytes); 1 found, 0 not found, -1 with err. */
static int get_resolve(const struct settings *s, const char *what, char *id, char *how,
                       size_t howlen, char *err, size_t errlen)
{
    if (opt.rendition[0] && strcmp(opt.rendition, REND_DEFAULT) != 0 && !opt.original)
        return get_rendition(s, what, id, how, howlen, err, errlen);
    if (get_is_id(what)) {
        for (int i = 0; i <= DIGEST_HEX_LEN; i++)
            id[i] = (char)tolower((unsigned char)what[i]);
        snprintf(how, howlen, "id");
        return 1;
    }
    struct url *u = malloc(sizeof(*u));
    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *url = what;
    if (url_parse(what, strlen(what), &s->allowed, u) == URL_OK)
        url = u->norm;
    int rc = -1, found = 0;
    struct store *st = store_new(s->mongo_uri, err, errlen);
    if (st && opt.original && store_find_origin(st, url, &found, id, err, errlen) == 0) {
        snprintf(how, howlen, "URL %s", url);
        rc = found && id[0] ? 1 : 0;
        if (!rc)
            snprintf(err, errlen, "%s %.900s", found ? "no original recorded for URL" :
                     "no stored image for URL", url);
    } else if (st && !opt.original && store_find_url(st, url, id, NULL, &found, err, errlen) == 0) {
        snprintf(how, howlen, "%s %s", found == STORE_FOUND_ALIAS ? "alias" : "source", url);
        rc = found ? 1 : 0;
        if (!found)
            snprintf(err, errlen, "no stored image for URL %.900s", url);
    }
    store_free(st);
    free(u);
    return rc;
}

/* Writes len bytes to path through a temporary file and a rename: never half a PNG. The
 * temporary file is made by mkstemp in the target's folder (same file system for the rename, a
 * fresh name nobody can have planted a link at), then given the mode a new file would get. */
static int get_write(const char *path, const unsigned char *data, size_t len, char *err,
                     size_t errlen)
{
    if (strcmp(path, "-") == 0) {
        if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
            snprintf(err, errlen, "stdout: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    size_t plen = dirlen + 32;
    char *tmp = malloc(plen);
    if (tmp == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(tmp, plen, "%.*s.pixflow-get-XXXXXX", (int)dirlen, path);
    int fd = mkstemp(tmp);
    int rc = -1;
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto done;
    }
    mode_t mask = umask(0);
    umask(mask);
    int bad = fchmod(fd, 0666 & ~mask) != 0;
    for (size_t off = 0; !bad && off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        bad = n <= 0;
        off += n > 0 ? (size_t)n : 0;
    }
    bad |= fsync(fd) != 0;
    bad |= close(fd) != 0;
    if (bad || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        goto done;
    }
    rc = 0;
done:
    free(tmp);
    return rc;
}

/* Writes the bytes, then checks them against the name they were asked by: content-addressed,
 * so bytes that hash to anything else are damaged. They are written all the same (evidence),
 * and the command says so and fails. */
static int get_write_checked(const char *out, const unsigned char *data, size_t len,
                             const char *id, const char *damaged)
{
    char err[1024], hex[DIGEST_HEX_LEN + 1];
    if (get_write(out, data, len, err, sizeof(err)) < 0)
        return admin_fail(CMD, ADMIN_FAIL, "%s", err);
    if (digest_sha256_hex(data, len, hex, err, sizeof(err)) < 0)
        return admin_fail(CMD, ADMIN_FAIL, "%s: %s", id, err);
    if (strcmp(hex, id) != 0)
        return admin_fail(CMD, ADMIN_FAIL, "%s: written, but its bytes hash to %s: %s", id, hex,
                          damaged);
    return ADMIN_OK;
}

static void get_print_json(const bson_t *doc)
{
    bson_t meta = BSON_INITIALIZER;
    bson_copy_to_excluding_noinit(doc, &meta, DOC_IMAGE, NULL);
    char *text = bson_as_relaxed_extended_json(&meta, NULL);
    struct json j;
    json_init(&j, stdout);
    json_raw(&j, text ? text : "null");
    putchar('\n');
    fflush(stdout);
    bson_free(text);
    bson_destroy(&meta);
}

/* --original: the bytes kept under sha256 `id`, checked against it, written to out. */
static int get_original(const struct settings *s, const struct mdb *m, const char *id,
                        const char *how, const char *out)
{
    char err[1024], where[RAW_LOCATION_MAX];
    bson_t *doc = NULL;
    bson_error_t e;
    unsigned char *bytes = NULL;
    size_t len = 0;
    int found = 0, status = ADMIN_FAIL;
    struct raw_store *r = NULL;
    if (stored_find_id(m->originals, id, NULL, &doc, &e) < 0)
        return admin_fail(CMD, ADMIN_FAIL, "mongo: %s", e.message);
    if (doc == NULL)
        return admin_fail(CMD, ADMIN_FAIL, "no kept original with id %s%s", id,
                          strcmp(how, "id") ? " (the URL names it but it is not recorded)" : "");
    if (opt.json)
        get_print_json(doc);
    if (out == NULL) {
        status = ADMIN_OK;
        goto done;
    }
    if (s->raw.kind == RAW_NONE) {
        admin_fail(CMD, ADMIN_FAIL, "PIXFLOW_RAW_URL is not set: where are originals kept?");
        goto done;
    }
    r = raw_new(&s->raw, NULL, err, sizeof(err));
    if (r == NULL || raw_get(r, id, &found, &bytes, &len, NULL, err, sizeof(err)) < 0) {
        admin_fail(CMD, ADMIN_FAIL, "raw store: %s", err);
        goto done;
    }
    if (!found) {
        bson_iter_t it;
        const char *kept = bson_iter_init_find(&it, doc, ORIG_RAW) && BSON_ITER_HOLDS_UTF8(&it)
                               ? bson_iter_utf8(&it, NULL)
                               : "?";
        admin_fail(CMD, ADMIN_FAIL, "original %s is missing from %s (recorded at %s)", id,
                   raw_location(r, id, where, sizeof(where)), kept);
        goto done;
    }
    status = get_write_checked(out, bytes, len, id, "the kept original is damaged (see pixflow "
                               "verify --raw)");
done:
    free(bytes);
    raw_free(r);
    bson_destroy(doc);
    return status;
}

int get_main(int argc, char **argv)
{
    struct settings s;
    struct admin_common c;
    char **ops, err[1024], id[DIGEST_HEX_LEN + 1], how[URL_MAX + 16];
    int nops, status;
    if (admin_settings(&s, SET_MONGO | SET_HOSTS | SET_RAW, own_options, &c, CMD, synopsis, argc, argv, &ops,
                       &nops, &status) < 0)
        return status;
    if (nops != 1)
        return admin_fail(CMD, ADMIN_USAGE, "%s (try --help)",
                          nops ? "one ID or URL at a time" : "which image? give an ID or a URL");
    const char *out = opt.output[0] ? opt.output : opt.json ? NULL : "-";
    if (opt.json && out && strcmp(out, "-") == 0)
        return admin_fail(CMD, ADMIN_USAGE, "--json and -o -: both would go to stdout");
    if (out && strcmp(out, "-") == 0 && isatty(STDOUT_FILENO))
        return admin_fail(CMD, ADMIN_USAGE,
                          "stdout is a terminal: write the PNG with -o FILE or redirect it");

    int rc = get_resolve(&s, ops[0], id, how, sizeof(how), err, sizeof(err));
    if (rc <= 0)
        return admin_fail(CMD, ADMIN_FAIL, "%s", err);

    struct mdb *m = mdb_new(s.mongo_uri, c.timeout_ms, err, sizeof(err));
    if (m == NULL)
        return admin_fail(CMD, ADMIN_FAIL, "%s", err);
    if (opt.original) {
        status = get_original(&s, m, id, how, out);
        mdb_free(m);
        return status;
    }
    bson_t *filter = BCON_NEW(DOC_ID, BCON_UTF8(id));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(m->images, filter, NULL, NULL);
    const bson_t *doc;
    bson_error_t e;
    unsigned char *png = NULL;
    size_t len = 0;
    status = ADMIN_FAIL;
    if (!mongoc_cursor_next(cur, &doc)) {
        if (mongoc_cursor_error(cur, &e))
            admin_fail(CMD, ADMIN_FAIL, "mongo: %s", e.message);
        else
            admin_fail(CMD, ADMIN_FAIL, "no stored image with id %s%s", id,
                       strcmp(how, "id") ? " (the URL names it but it is gone)" : "");
        goto done;
    }
    if (opt.json)
        get_print_json(doc);
    if (out == NULL) {
        status = ADMIN_OK;
        goto done;
    }
    if (stored_png(m->db, &m->bucket, doc, &png, &len, err, sizeof(err)) != STORED_OK) {
        admin_fail(CMD, ADMIN_FAIL, "%s: %s", id, err);
        goto done;
    }
    status = get_write_checked(out, png, len, id,
                               "the stored image is corrupt (see pixflow verify)");
done:
    free(png);
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    mdb_free(m);
    return status;
}
