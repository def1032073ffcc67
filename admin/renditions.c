/* renditions.c -- pixflow renditions: the named renditions besides `default` (SPEC §3, §6).
 *
 *   pixflow renditions                 each rendition, its chain and its coverage
 *   pixflow renditions add NAME CHAIN  checked against the plugins this machine loads, then saved
 *   pixflow renditions remove NAME
 *
 * The hash <prefix>renditions is what running workers follow (consumer/renditions.c). Coverage
 * is the originals that have the rendition (`renditions` documents of that name) against the
 * originals kept (`originals`). */
#include "admin.h"
#include "json.h"
#include "mdb.h"
#include "names.h"
#include "rendition_chain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "renditions"

static const char synopsis[] =
    "pixflow renditions [--json]\n"
    "pixflow renditions add NAME CHAIN\n"
    "pixflow renditions remove NAME\n\n"
    "Lists the renditions (`default` is PIXFLOW_TRANSFORMS; the others live in\n"
    "<prefix>renditions) with each one's coverage: originals that have it / originals kept.\n"
    "add saves NAME -> CHAIN (e.g. thumb grayscale,thumbnail:size=64) once the chain builds from\n"
    "the plugins this machine loads; running workers follow within seconds. remove deletes it\n"
    "(pictures already stored stay). NAME: 1 to 64 of a-z 0-9 _ -, not `default`.\n"
    "Exit: 0 done, 1 a server failed or the chain does not build, 2 bad usage";

static struct {
    int json;
} opt;

static const struct cfg_option own_options[] = {
    {"json", NULL, cfg_switch, &opt.json, "", .flags = CFG_NOARG, .help = "one JSON object"},
    {NULL},
};

int rendition_chain_load(const struct settings *s, const char *spec, struct rendition_chain *rc,
                         char *err, size_t errlen)
{
    memset(rc, 0, sizeof(*rc));
    rc->loader = loader_new(NULL, NULL);
    if (rc->loader == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (loader_scan(rc->loader, s->plugin_path, err, errlen) < 0 ||
        (rc->chain = loader_chain_new(rc->loader, spec, err, errlen)) == NULL) {
        rendition_chain_free(rc);
        return -1;
    }
    rc->n = (int)chain_length(rc->chain);
    rc->lineage = calloc((size_t)rc->n + 1, sizeof(*rc->lineage));
    if (rc->lineage == NULL) {
        snprintf(err, errlen, "out of memory");
        rendition_chain_free(rc);
        return -1;
    }
    for (int i = 0; i < rc->n; i++) {
        const struct chain_link_info *li = chain_link(rc->chain, (size_t)i);
        rc->lineage[i] = (struct lineage_link){li->name, li->version, li->sha256, li->config};
    }
    return 0;
}

void rendition_chain_free(struct rendition_chain *rc)
{
    chain_free(rc->chain);
    loader_free(rc->loader);
    free(rc->lineage);
    memset(rc, 0, sizeof(*rc));
}

static int renditions_add(const struct settings *s, redisContext *r, const char *name,
                          const char *spec)
{
    char err[512], key[SET_KEY_MAX];
    struct rendition_chain rc;
    if (!rendition_name_ok(name))
        return admin_fail(CMD, ADMIN_USAGE,
                          "%s: not a rendition name (1 to 64 of a-z 0-9 _ -, not default)", name);
    if (rendition_chain_load(s, spec, &rc, err, sizeof(err)) < 0)
        return admin_fail(CMD, ADMIN_FAIL, "%s: the chain does not build here: %s", name, err);
    rendition_chain_free(&rc);
    settings_key(s, KEY_RENDITIONS, key, sizeof(key));
    redisReply *rep = redisCommand(r, "HSET %s %s %s", key, name, spec);
    int ok = rep && rep->type == REDIS_REPLY_INTEGER;
    printf("%s %s: %s\n", ok && rep->integer == 0 ? "changed" : "added", name, spec);
    if (rep)
        freeReplyObject(rep);
    return ok ? ADMIN_OK : admin_fail(CMD, ADMIN_FAIL, "redis: %s", r->errstr);
}

static int renditions_remove(const struct settings *s, redisContext *r, const char *name)
{
    char key[SET_KEY_MAX];
    settings_key(s, KEY_RENDITIONS, key, sizeof(key));
    redisReply *rep = redisCommand(r, "HDEL %s %s", key, name);
    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        if (rep)
            freeReplyObject(rep);
        return admin_fail(CMD, ADMIN_FAIL, "redis: %s", r->errstr);
    }
    long long n = rep->integer;
    freeReplyObject(rep);
    if (n == 0)
        return admin_fail(CMD, ADMIN_FAIL, "%s: no such rendition", name);
    printf("removed %s (its pictures stay stored)\n", name);
    return ADMIN_OK;
}

static long long renditions_count(struct mdb *m, const char *name, char *err, size_t errlen)
{
    bson_error_t e;
    bson_t *filter = BCON_NEW(DOC_RENDITION, BCON_UTF8(name));
    mongoc_collection_t *coll = mongoc_database_get_collection(m->db, COLL_RENDITIONS);
    int64_t n = mongoc_collection_count_documents(coll, filter, NULL, NULL, NULL, &e);
    mongoc_collection_destroy(coll);
    bson_destroy(filter);
    if (n < 0)
        snprintf(err, errlen, "mongo: %s", e.message);
    return n;
}

static int renditions_list(const struct settings *s, const struct admin_common *c, redisContext *r)
{
    char err[512] = "", key[SET_KEY_MAX];
    bson_error_t e;
    settings_key(s, KEY_RENDITIONS, key, sizeof(key));
    redisReply *rep = redisCommand(r, "HGETALL %s", key);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        if (rep)
            freeReplyObject(rep);
        return admin_fail(CMD, ADMIN_FAIL, "redis: %s", r->errstr);
    }
    struct mdb *m = mdb_new(s->mongo_uri, c->timeout_ms, err, sizeof(err));
    if (m == NULL) {
        freeReplyObject(rep);
        return admin_fail(CMD, ADMIN_FAIL, "%s", err);
    }
    bson_t empty = BSON_INITIALIZER;
    int64_t kept = mongoc_collection_count_documents(m->originals, &empty, NULL, NULL, NULL, &e);
    int status = ADMIN_OK;
    struct json j;
    if (kept < 0) {
        status = admin_fail(CMD, ADMIN_FAIL, "mongo: %s", e.message);
        goto done;
    }
    if (opt.json) {
        json_init(&j, stdout);
        json_object(&j);
        json_kv_int(&j, "originals", kept);
        json_key(&j, "renditions");
        json_array(&j);
    } else {
        printf("%-16s %-14s %s\n", "NAME", "COVERAGE", "CHAIN");
    }
    for (size_t i = 0; i <= rep->elements; i += 2) {
        const char *name = i == 0 ? REND_DEFAULT : rep->element[i - 2]->str;
        const char *spec = i == 0 ? s->transforms : rep->element[i - 1]->str;
        long long have = renditions_count(m, name, err, sizeof(err));
        if (have < 0) {
            status = admin_fail(CMD, ADMIN_FAIL, "%s", err);
            break;
        }
        if (opt.json) {
            json_object(&j);
            json_kv_str(&j, "name", name);
            json_kv_str(&j, "chain", spec);
            json_kv_int(&j, "have", have);
            json_end(&j);
        } else {
            char cov[40];
            snprintf(cov, sizeof(cov), "%lld/%lld", have, (long long)kept);
            printf("%-16s %-14s %s\n", name, cov, spec);
        }
    }
    if (opt.json) {
        json_end(&j);
        json_end(&j);
        putchar('\n');
    }
done:
    bson_destroy(&empty);
    mdb_free(m);
    freeReplyObject(rep);
    return status;
}

int renditions_main(int argc, char **argv)
{
    struct settings s;
    struct admin_common c;
    char **ops;
    int nops, status;
    if (admin_settings(&s, SET_REDIS | SET_MONGO | SET_PLUGINS, own_options, &c, CMD, synopsis,
                       argc, argv, &ops, &nops, &status) < 0)
        return status;
    const char *verb = nops > 0 ? ops[0] : "list";
    int want = strcmp(verb, "add") == 0      ? 3
               : strcmp(verb, "remove") == 0 ? 2
               : strcmp(verb, "list") == 0   ? (nops ? 1 : 0)
                                             : -1;
    if (want < 0 || nops != want)
        return admin_fail(CMD, ADMIN_USAGE,
                          "usage: renditions [list | add NAME CHAIN | "
                          "remove NAME] (try --help)");
    redisContext *r = admin_redis(&s, &c, CMD);
    if (r == NULL)
        return ADMIN_FAIL;
    if (strcmp(verb, "add") == 0)
        status = renditions_add(&s, r, ops[1], ops[2]);
    else if (strcmp(verb, "remove") == 0)
        status = renditions_remove(&s, r, ops[1]);
    else
        status = renditions_list(&s, &c, r);
    redisFree(r);
    return status;
}
