/* dead.c -- pixflow dead: list the dead letters, or put them back into the stream.
 *
 * Letters are read page by page (XRANGE, oldest first), so a large <prefix>dead costs no memory.
 * A replay is one Lua script per letter that reads the letter, SREMs its normalized URL from
 * <prefix>seen (or the worker's dedup would drop it as already seen), XADDs url, source and line
 * to the stream with replay_of = the letter's id, and XDELs the letter. Redis runs it whole or
 * not at all, so a letter is never lost nor queued twice: a second replay, or two operators at
 * once, find it gone and skip it. */
#include "admin.h"
#include "human.h"
#include "json.h"
#include "names.h"
#include "rconn.h"
#include "rdb.h"
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "dead"

static const char synopsis[] =
    "pixflow dead [--reason R[,R...]] [--limit N] [--replay] [--json]\n\n"
    "Lists the dead letters of <prefix>dead, oldest first: id, reason, attempts, URL, error.\n"
    "--replay puts each listed letter back into <prefix>urls (url, source, line, replay_of) after\n"
    "removing its URL from <prefix>seen, then deletes the letter, atomically per letter; running\n"
    "it twice replays nothing the second time. Letters whose URL is invalid (bad_host...) fail\n"
    "again unless the configuration changed: pick what to replay with --reason.\n"
    "--json: one JSON object per letter (and per replay, then a summary).\n"
    "Exit: 0 done, 1 Redis failed, 2 bad usage";

static struct {
    const char *reason;
    long limit;
    int replay, json;
} opt;

static const struct cfg_option own_options[] = {
    {"reason", NULL, cfg_string, &opt.reason, "", .meta = "LIST",
     .help = "only letters with these reasons, e.g. http_404,timeout (failed:/invalid: "
             "prefixes accepted)"},
    {"limit", NULL, cfg_long, &opt.limit, "0", 0, 0, .meta = "N",
     .help = "at most N letters (the oldest); 0: all"},
    {"replay", NULL, cfg_switch, &opt.replay, "", .flags = CFG_NOARG,
     .help = "re-queue the letters into the stream"},
    {"json", NULL, cfg_switch, &opt.json, "", .flags = CFG_NOARG,
     .help = "JSON lines instead of a table"},
    {NULL},
};

struct dead {
    struct settings s;
    struct admin_common c;
    redisContext *r;
    struct json j;
    int tty;
    long long shown, replayed, gone, no_url;
    char k_dead[SET_KEY_MAX], k_seen[SET_KEY_MAX], k_stream[SET_KEY_MAX], k_stats[SET_KEY_MAX];
};

/* One letter's fields, pointing into the reply. */
struct letter {
    const char *id;
    const redisReply *url, *reason, *error, *attempts, *entry, *consumer, *source, *line;
};

static int dead_wanted(const redisReply *reason)
{
    const char *list = opt.reason, *item;
    size_t len;
    if (opt.reason[0] == '\0')
        return 1;
    if (reason == NULL || reason->type != REDIS_REPLY_STRING)
        return 0;
    while (cfg_next_item(&list, &item, &len)) {
        if (len > 7 && strncmp(item, "failed:", 7) == 0)
            item += 7, len -= 7;
        else if (len > 8 && strncmp(item, "invalid:", 8) == 0)
            item += 8, len -= 8;
        if (len == reason->len && memcmp(item, reason->str, len) == 0)
            return 1;
    }
    return 0;
}

static const char *str_or(const redisReply *r, const char *def)
{
    return r && r->type == REDIS_REPLY_STRING ? r->str : def;
}

static size_t len_or(const redisReply *r, const char *def)
{
    return r && r->type == REDIS_REPLY_STRING ? r->len : strlen(def);
}

static void dead_kv(struct json *j, const char *key, const redisReply *v)
{
    json_key(j, key);
    if (v && v->type == REDIS_REPLY_STRING)
        json_strn(j, v->str, v->len);
    else
        json_null(j);
}

static void dead_show(struct dead *d, const struct letter *l)
{
    if (opt.json) {
        long long attempts;
        json_object(&d->j);
        json_kv_str(&d->j, "id", l->id);
        dead_kv(&d->j, DEAD_REASON, l->reason);
        json_key(&d->j, DEAD_ATTEMPTS);
        if (rdb_ll(l->attempts, &attempts) == 0)
            json_int(&d->j, attempts);
        else
            json_null(&d->j);
        dead_kv(&d->j, FIELD_URL, l->url);
        dead_kv(&d->j, DEAD_ERROR, l->error);
        dead_kv(&d->j, DEAD_ENTRY, l->entry);
        dead_kv(&d->j, DEAD_CONSUMER, l->consumer);
        dead_kv(&d->j, FIELD_SOURCE, l->source);
        dead_kv(&d->j, FIELD_LINE, l->line);
        json_end(&d->j);
        return;
    }
    if (d->shown == 1)
        printf("%-20s  %-16s  %8s  %-*s  %s\n", "ID", "REASON", "ATTEMPTS", d->tty ? 60 : 0, "URL",
               "ERROR");
    /* On a terminal the columns are cut to fit; piped, every byte is there (less controls). */
    printf("%-20s  ", l->id);
    size_t n = human_print(stdout, str_or(l->reason, "-"), len_or(l->reason, "-"), d->tty ? 16 : 0);
    printf("%*s  %8s  ", n < 16 ? (int)(16 - n) : 0, "", str_or(l->attempts, "-"));
    n = human_print(stdout, str_or(l->url, "-"), len_or(l->url, "-"), d->tty ? 60 : 0);
    printf("%*s  ", d->tty && n < 60 ? (int)(60 - n) : 0, "");
    human_print(stdout, str_or(l->error, ""), len_or(l->error, ""), d->tty ? 80 : 0);
    putchar('\n');
}

static int dead_replay(struct dead *d, const struct letter *l, char *err, size_t errlen)
{
    const char *keys[] = {d->k_dead, d->k_seen, d->k_stream, d->k_stats};
    redisReply *r = replay_run(d->r, keys, l->id, l->url, err, errlen);
    if (r == NULL)
        return -1;
    const char *what;
    if (r->type == REDIS_REPLY_NIL) {
        d->gone++;
        what = NULL;
    } else if (r->type == REDIS_REPLY_STRING && r->len == 0) {
        d->no_url++;
        what = "";
    } else {
        d->replayed++;
        what = r->str;
    }
    if (opt.json) {
        json_object(&d->j);
        json_kv_str(&d->j, "id", l->id);
        dead_kv(&d->j, FIELD_URL, l->url);
        json_key(&d->j, "replayed_as");
        if (what && *what)
            json_str(&d->j, what);
        else
            json_null(&d->j);
        if (what == NULL || *what == '\0')
            json_kv_str(&d->j, "skipped", what ? "no url field" : "replayed already");
        json_end(&d->j);
    } else {
        printf("%-20s  ", l->id);
        if (what == NULL)
            printf("skipped: replayed already\n");
        else if (*what == '\0')
            printf("skipped: no url field\n");
        else {
            printf("replayed as %s  ", what);
            human_print(stdout, str_or(l->url, ""), len_or(l->url, ""), d->tty ? 80 : 0);
            putchar('\n');
        }
    }
    freeReplyObject(r);
    return 0;
}

static void dead_letter(const redisReply *e, struct letter *l)
{
    const redisReply *f = e->element[1];
    memset(l, 0, sizeof(*l));
    l->id = e->element[0]->str;
    l->url = rdb_field(f, FIELD_URL);
    l->reason = rdb_field(f, DEAD_REASON);
    l->error = rdb_field(f, DEAD_ERROR);
    l->attempts = rdb_field(f, DEAD_ATTEMPTS);
    l->entry = rdb_field(f, DEAD_ENTRY);
    l->consumer = rdb_field(f, DEAD_CONSUMER);
    l->source = rdb_field(f, FIELD_SOURCE);
    l->line = rdb_field(f, FIELD_LINE);
}

/* One letter of the walk: shown or replayed when wanted; 1 once --limit is reached. */
static int dead_one(const redisReply *e, void *arg, char *err, size_t errlen)
{
    struct dead *d = arg;
    struct letter l;
    dead_letter(e, &l);
    if (!dead_wanted(l.reason))
        return 0;
    d->shown++;
    if (opt.replay && dead_replay(d, &l, err, errlen) < 0)
        return -1;
    if (!opt.replay)
        dead_show(d, &l);
    return opt.limit && d->shown >= opt.limit;
}

/* Pages through the letters, oldest first. */
static int dead_walk(struct dead *d, char *err, size_t errlen)
{
    return rdb_walk(d->r, d->k_dead, 0, 0, dead_one, d, err, errlen);
}

static void dead_summary(struct dead *d)
{
    if (!opt.replay) {
        if (opt.json)
            return;
        long long total = -1;
        const char *argv[] = {"XLEN", d->k_dead};
        char err[256];
        redisReply *r = rconn_command(d->r, 2, argv, NULL, err, sizeof(err));
        if (r) {
            rdb_ll(r, &total);
            freeReplyObject(r);
        }
        if (d->shown == 0)
            printf("no dead letters%s (%lld in %s)\n", opt.reason[0] ? " with that reason" : "",
                   total, d->k_dead);
        else
            printf("%lld dead letter%s shown (%lld in %s)\n", d->shown, d->shown == 1 ? "" : "s",
                   total, d->k_dead);
        return;
    }
    if (opt.json) {
        json_object(&d->j);
        json_kv_int(&d->j, "replayed", d->replayed);
        json_kv_int(&d->j, "skipped", d->gone + d->no_url);
        json_end(&d->j);
        return;
    }
    printf("replayed %lld dead letter%s", d->replayed, d->replayed == 1 ? "" : "s");
    if (d->gone + d->no_url)
        printf(", skipped %lld", d->gone + d->no_url);
    printf("\n");
}

int dead_main(int argc, char **argv)
{
    struct dead d = {0};
    char **ops, err[1024];
    int nops, status;
    if (admin_settings(&d.s, SET_REDIS, own_options, &d.c, CMD, synopsis, argc, argv, &ops, &nops,
                       &status) < 0)
        return status;
    if (nops > 0)
        return admin_fail(CMD, ADMIN_USAGE, "%s: unexpected operand (try --help)", ops[0]);
    json_init(&d.j, stdout);
    d.tty = isatty(STDOUT_FILENO);
    settings_key(&d.s, KEY_DEAD, d.k_dead, sizeof(d.k_dead));
    settings_key(&d.s, KEY_SEEN, d.k_seen, sizeof(d.k_seen));
    settings_key(&d.s, KEY_STREAM, d.k_stream, sizeof(d.k_stream));
    settings_key(&d.s, KEY_STATS, d.k_stats, sizeof(d.k_stats));
    d.r = admin_redis(&d.s, &d.c, CMD);
    if (d.r == NULL)
        return ADMIN_FAIL;
    int rc = dead_walk(&d, err, sizeof(err));
    dead_summary(&d);
    fflush(stdout);
    if (rc < 0)
        admin_fail(CMD, ADMIN_FAIL, "%s", err);
    redisFree(d.r);
    return rc < 0 ? ADMIN_FAIL : ADMIN_OK;
}
