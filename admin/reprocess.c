/* reprocess.c -- pixflow reprocess NAME: give every kept original that lacks rendition NAME
 * (--stale: or has it from another chain) one entry of <prefix>reprocess (SPEC §3, §5.9).
 *
 * What lacks it: the `originals` documents (--since: inserted since), against the `renditions`
 * documents of NAME, one cursor each. What is stale: a document whose recorded chain (names,
 * versions, .so SHA-256s, configurations) differs from the chain NAME builds here. Each pair is
 * queued by one script that adds "<original>/<name>" to <prefix>reprocess:queued and, only when
 * it was not there, the entry and the counter reprocess_queued: a pair queued and not yet acked
 * is never queued twice, by two runs or two operators. The worker's ack releases it.
 * Pictures stored before originals were kept (their `sources` name no original in `originals`)
 * cannot be reprocessed: they are counted as skipped, and said why. */
#include "admin.h"
#include "human.h"
#include "mdb.h"
#include "names.h"
#include "rendition_chain.h"
#include "requeue.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define CMD          "reprocess"
#define QUEUE_BATCH  200
#define WAIT_POLL_MS 500

static const char synopsis[] =
    "pixflow reprocess NAME [--stale] [--since DATE] [--limit N] [--wait]\n\n"
    "Queues into <prefix>reprocess one entry per kept original that lacks rendition NAME\n"
    "(--stale: also those whose recorded chain differs from the chain NAME builds here: another\n"
    "plugin version or .so, another configuration). Workers make them from the raw store, never\n"
    "from the web. Running it again queues nothing already queued and not yet done.\n"
    "--since DATE: only originals kept since then (2024-05-01[T12:30[:15]][Z], UTC, or 24h).\n"
    "--limit N: at most N entries. --wait: a progress bar until they are done, then a summary;\n"
    "without it the command prints what it queued and returns.\n"
    "Exit: 0 done, 1 a server failed, a reprocess failed (--wait) or no raw store, 2 bad usage";

static struct {
    int stale, wait;
    const char *since;
    long limit;
} opt;

static const struct cfg_option own_options[] = {
    {"stale", NULL, cfg_switch, &opt.stale, "", .flags = CFG_NOARG,
     .help = "also originals whose rendition was made by another chain"},
    {"since", NULL, cfg_string, &opt.since, "", .meta = "DATE",
     .help = "only originals kept since DATE"},
    {"limit", NULL, cfg_long, &opt.limit, "0", 0, 0, .meta = "N",
     .help = "at most N entries; 0: all"},
    {"wait", NULL, cfg_switch, &opt.wait, "", .flags = CFG_NOARG,
     .help = "show progress until the queued entries are done"},
    {NULL},
};

/* An array of sha256s, each with a mark; sorted before any lookup. */
struct sha {
    char id[65];
    int mark;
};
struct shas {
    struct sha *v;
    size_t n, cap;
};

static int shas_add(struct shas *s, const char *id, int mark)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        struct sha *v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    snprintf(s->v[s->n].id, sizeof(s->v[s->n].id), "%s", id);
    s->v[s->n++].mark = mark;
    return 0;
}

static int shas_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sha *)a)->id, ((const struct sha *)b)->id);
}

static void shas_sort(struct shas *s)
{
    if (s->n)
        qsort(s->v, s->n, sizeof(*s->v), shas_cmp);
}

/* The mark of id, or -1 when absent. */
static int shas_find(const struct shas *s, const char *id)
{
    struct sha key;
    snprintf(key.id, sizeof(key.id), "%s", id);
    const struct sha *hit = s->n ? bsearch(&key, s->v, s->n, sizeof(*s->v), shas_cmp) : NULL;
    return hit ? hit->mark : -1;
}

static void shas_free(struct shas *s)
{
    free(s->v);
}

static void on_rendition(const char *original, int current, void *arg)
{
    shas_add(arg, original, current);
}

struct scan {
    const struct shas *have;
    struct shas *kept, *todo;
    int stale;
    long long missing, stale_n;
};

static int on_original(const bson_t *doc, void *arg, char *err, size_t errlen)
{
    struct scan *sc = arg;
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, DOC_ID) || !BSON_ITER_HOLDS_UTF8(&it))
        return 0;
    const char *id = bson_iter_utf8(&it, NULL);
    if (strlen(id) != 64)
        return 0;
    if (sc->todo == NULL) /* the first pass: every original kept */
        return shas_add(sc->kept, id, 1) < 0 ? (snprintf(err, errlen, "out of memory"), -1) : 0;
    if (opt.limit > 0 && (long)sc->todo->n >= opt.limit)
        return 1;
    int mark = shas_find(sc->have, id);
    if (mark < 0)
        sc->missing++;
    else if (mark == 0)
        sc->stale_n++;
    if (mark < 0 || (mark == 0 && sc->stale))
        if (shas_add(sc->todo, id, 0) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    return 0;
}

struct skip {
    const struct shas *kept;
    long long n;
};

static int on_source(const bson_t *doc, void *arg, char *err, size_t errlen)
{
    struct skip *sk = arg;
    bson_iter_t it;
    const char *origin = bson_iter_init_find(&it, doc, SRC_ORIGIN) && BSON_ITER_HOLDS_UTF8(&it)
                             ? bson_iter_utf8(&it, NULL)
                             : "";
    if (shas_find(sk->kept, origin) < 0)
        sk->n++;
    return 0;
}

static long long now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static long long stat_value(redisContext *r, const char *k_stats, const char *name)
{
    redisReply *rep = redisCommand(r, "HGET %s %s", k_stats, name);
    long long v = rep && rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : 0;
    if (rep)
        freeReplyObject(rep);
    return v;
}

/* Members of the queued set still there (not acked yet); -1 when Redis failed. */
static long long still_queued(redisContext *r, const char *k_queued, const struct shas *q,
                              const char *name)
{
    long long left = 0;
    for (size_t from = 0; from < q->n; from += QUEUE_BATCH) {
        size_t k = q->n - from < QUEUE_BATCH ? q->n - from : QUEUE_BATCH;
        const char **argv = calloc(k + 2, sizeof(*argv));
        char(*members)[65 + 66] = calloc(k + 1, sizeof(*members));
        if (argv == NULL || members == NULL) {
            free(argv), free(members);
            return -1;
        }
        argv[0] = "SMISMEMBER";
        argv[1] = k_queued;
        for (size_t i = 0; i < k; i++) {
            snprintf(members[i], sizeof(members[i]), "%s/%s", q->v[from + i].id, name);
            argv[i + 2] = members[i];
        }
        redisReply *rep = redisCommandArgv(r, (int)k + 2, argv, NULL);
        free(argv), free(members);
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
            if (rep)
                freeReplyObject(rep);
            return -1;
        }
        for (size_t i = 0; i < rep->elements; i++)
            left += rep->element[i]->integer;
        freeReplyObject(rep);
    }
    return left;
}

static void progress(long long done, long long total, double secs, int tty)
{
    double rate = secs > 0 ? done / secs : 0;
    char left[32] = "?";
    if (rate > 0)
        snprintf(left, sizeof(left), "%.0fs", (total - done) / rate);
    int width = 30, fill = total ? (int)(width * done / total) : width;
    fprintf(stderr, "%s[%.*s%*s] %lld/%lld  %.1f/s  %s left%s", tty ? "\r" : "", fill,
            "##############################", width - fill, "", done, total, rate, left,
            tty ? "   " : "\n");
    fflush(stderr);
}

int reprocess_main(int argc, char **argv)
{
    struct settings s;
    struct admin_common c;
    char **ops, err[512] = "";
    int nops, status;
    if (admin_settings(&s, SET_REDIS | SET_MONGO | SET_PLUGINS | SET_RAW, own_options, &c, CMD,
                       synopsis, argc, argv, &ops, &nops, &status) < 0)
        return status;
    if (nops != 1)
        return admin_fail(CMD, ADMIN_USAGE, "want one rendition NAME (try --help)");
    const char *name = ops[0];
    long long since_ms = -1;
    if (opt.since[0] && human_since(opt.since, now_ms(), &since_ms, err, sizeof(err)) < 0)
        return admin_fail(CMD, ADMIN_USAGE, "--since: %s", err);
    if (opt.limit < 0)
        return admin_fail(CMD, ADMIN_USAGE, "--limit: want 0 or more");
    if (s.raw.kind == RAW_NONE)
        return admin_fail(CMD, ADMIN_FAIL,
                          "originals are not kept (PIXFLOW_RAW_URL is empty): nothing to "
                          "reprocess from");
    if (!rendition_name_ok(name))
        return admin_fail(CMD, ADMIN_USAGE,
                          "%s: not a rendition to reprocess (`default` is every URL's own; "
                          "names are 1 to 64 of a-z 0-9 _ -)",
                          name);
    redisContext *r = admin_redis(&s, &c, CMD);
    if (r == NULL)
        return ADMIN_FAIL;
    char k_rend[SET_KEY_MAX], k_queued[SET_KEY_MAX], k_stats[SET_KEY_MAX];
    settings_key(&s, KEY_RENDITIONS, k_rend, sizeof(k_rend));
    settings_key(&s, KEY_REPROCESS_QUEUED, k_queued, sizeof(k_queued));
    settings_key(&s, KEY_STATS, k_stats, sizeof(k_stats));
    struct rendition_chain rc = {0};
    struct shas have = {0}, kept = {0}, todo = {0};
    struct store *st = NULL;
    struct mdb *m = NULL;
    status = ADMIN_FAIL;

    redisReply *rep = redisCommand(r, "HGET %s %s", k_rend, name);
    if (rep == NULL || rep->type != REDIS_REPLY_STRING) {
        admin_fail(CMD, ADMIN_FAIL, "%s: %s", name,
                   rep && rep->type == REDIS_REPLY_NIL ? "no such rendition (pixflow renditions "
                                                         "add NAME CHAIN)"
                                                       : r->errstr);
        goto done;
    }
    if (rendition_chain_load(&s, rep->str, &rc, err, sizeof(err)) < 0 && opt.stale) {
        admin_fail(CMD, ADMIN_FAIL, "--stale: the chain of %s does not build here: %s", name, err);
        goto done;
    }
    st = store_new(s.mongo_uri, err, sizeof(err));
    m = st ? mdb_new(s.mongo_uri, c.timeout_ms, err, sizeof(err)) : NULL;
    if (m == NULL || store_renditions_each(st, name, rc.chain ? rc.lineage : NULL, rc.n,
                                           on_rendition, &have, err, sizeof(err)) < 0) {
        admin_fail(CMD, ADMIN_FAIL, "%s", err);
        goto done;
    }
    shas_sort(&have);
    /* Every original kept (for the skipped count), then those to queue (--since, --limit). */
    bson_t *none = bson_new();
    bson_t *filter = since_ms >= 0
                         ? BCON_NEW(DOC_INSERTED_AT, "{", "$gte", BCON_DATE_TIME(since_ms), "}")
                         : bson_new();
    bson_t *proj = BCON_NEW("projection", "{", DOC_ID, BCON_INT32(1), "}", "sort", "{", DOC_ID,
                            BCON_INT32(1), "}");
    struct scan first = {&have, &kept, NULL, 0, 0, 0}, sc = {&have, &kept, &todo, opt.stale, 0, 0};
    int rcm = mdb_each(m->originals, none, proj, on_original, &first, err, sizeof(err));
    shas_sort(&kept);
    if (rcm >= 0)
        rcm = mdb_each(m->originals, filter, proj, on_original, &sc, err, sizeof(err));
    struct skip sk = {&kept, 0};
    bson_t *roles = BCON_NEW(SRC_ROLE, BCON_UTF8(ROLE_SOURCE));
    bson_t *oproj = BCON_NEW("projection", "{", SRC_ORIGIN, BCON_INT32(1), "}");
    if (rcm >= 0)
        rcm = mdb_each(m->sources, roles, oproj, on_source, &sk, err, sizeof(err));
    bson_destroy(none), bson_destroy(filter), bson_destroy(proj), bson_destroy(roles);
    bson_destroy(oproj);
    if (rcm < 0) {
        admin_fail(CMD, ADMIN_FAIL, "%s", err);
        goto done;
    }
    long long before_failed = stat_value(r, k_stats, C_REPROCESS_FAILED);
    struct shas queued = {0};
    for (size_t from = 0; from < todo.n; from += QUEUE_BATCH) {
        size_t k = todo.n - from < QUEUE_BATCH ? todo.n - from : QUEUE_BATCH;
        const char **ids = calloc(k + 1, sizeof(*ids));
        if (ids == NULL)
            break;
        for (size_t i = 0; i < k; i++)
            ids[i] = todo.v[from + i].id;
        redisReply *q = requeue_run(r, &s, name, ids, k, err, sizeof(err));
        free(ids);
        if (q == NULL) {
            admin_fail(CMD, ADMIN_FAIL, "%s", err);
            shas_free(&queued);
            goto done;
        }
        for (size_t i = 0; i < q->elements; i++)
            shas_add(&queued, q->element[i]->str, 0);
        freeReplyObject(q);
    }
    printf("reprocess %s: %zu queued (%lld lacked it, %lld from another chain%s, %zu already "
           "queued)\n",
           name, queued.n, sc.missing, sc.stale_n, opt.stale ? "" : ": --stale redoes them",
           todo.n - queued.n);
    if (sk.n)
        printf("skipped %lld stored pictures whose original was not kept (stored before the raw "
               "zone, or without it): they keep their default rendition only\n",
               sk.n);
    fflush(stdout);
    if (opt.wait && queued.n) {
        int tty = isatty(2);
        long long t0 = now_ms(), total = (long long)queued.n, left = total;
        while (left > 0) {
            left = still_queued(r, k_queued, &queued, name);
            if (left < 0) {
                admin_fail(CMD, ADMIN_FAIL, "redis: %s", r->errstr);
                shas_free(&queued);
                goto done;
            }
            progress(total - left, total, (now_ms() - t0) / 1000.0, tty);
            if (left > 0)
                usleep(WAIT_POLL_MS * 1000);
        }
        double secs = (now_ms() - t0) / 1000.0;
        long long failed = stat_value(r, k_stats, C_REPROCESS_FAILED) - before_failed;
        fprintf(stderr, "%s", tty ? "\n" : "");
        printf("done: %lld of %s in %.1fs (%.1f/s), %lld failed (pixflow dead lists them)\n", total,
               name, secs, secs > 0 ? total / secs : 0.0, failed);
        if (failed > 0) {
            shas_free(&queued);
            goto done;
        }
    }
    shas_free(&queued);
    status = ADMIN_OK;
done:
    if (rep)
        freeReplyObject(rep);
    rendition_chain_free(&rc);
    shas_free(&have);
    shas_free(&kept);
    shas_free(&todo);
    mdb_free(m);
    store_free(st);
    redisFree(r);
    return status;
}
