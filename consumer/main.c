/* main.c -- pixflow-consumer: settings in, worker_run, exit status out. */
#include "http.h"
#include "settings.h"
#include "store.h"
#include "worker.h"

#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static struct settings s;
    static struct worker_options o;
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    char threads_default[24];
    snprintf(threads_default, sizeof(threads_default), "%ld", threads > 0 ? threads : 2);

    const struct cfg_option own[] = {
        {"max-inflight", "PIXFLOW_MAX_INFLIGHT", cfg_long, &o.max_inflight, "128", 1, 10000,
         .meta = "N",
         .help = "entries worked on at once (downloads + CPU + store); those waiting for their "
                 "host hold no slot, up to 3 times as many more"},
        {"threads", "PIXFLOW_THREADS", cfg_long, &o.threads, threads_default, 1, 256, .meta = "N",
         .help = "pool threads for decode, transforms, encoding and MongoDB"},
        {"max-attempts", "PIXFLOW_MAX_ATTEMPTS", cfg_long, &o.max_attempts, "5", 1, 100,
         .meta = "N", .help = "downloads per entry; deliveries beyond it make a poison pill"},
        {"entry-deadline", "PIXFLOW_ENTRY_DEADLINE", cfg_millis, &o.entry_deadline_ms, "120s", 1000,
         86400000, .meta = "TIME", .help = "no retry starts after an entry is this old"},
        {"reclaim-idle", "PIXFLOW_RECLAIM_IDLE", cfg_millis, &o.reclaim_idle_ms, "30s", 1000,
         86400000, .meta = "TIME",
         .help = "reclaim entries of a worker whose lease lapsed this long ago; "
                 "a live worker renews its own every quarter of it"},
        {"reclaim-every", NULL, cfg_millis, &o.reclaim_every_ms, "5s", 100, 3600000, .meta = "TIME",
         .help = "how often to look for entries to reclaim"},
        {"drain-timeout", "PIXFLOW_DRAIN_TIMEOUT", cfg_millis, &o.drain_timeout_ms, "30s", 0,
         3600000, .meta = "TIME",
         .help = "on SIGTERM, time for in-flight work to finish; the rest stays pending and the "
                 "process ends at most a few seconds later"},
        {"exit-when-idle", NULL, cfg_millis, &o.exit_when_idle_ms, "0", 0, 86400000, .meta = "TIME",
         .help = "exit once the group has had no backlog and nothing pending this long"},
        {"block", NULL, cfg_millis, &o.block_ms, "2s", 10, 60000, .meta = "TIME",
         .help = "XREADGROUP BLOCK"},
        {"flush-every", NULL, cfg_millis, &o.flush_ms, "250ms", 10, 60000, .meta = "TIME",
         .help = "acks and counters are written at most this often"},
        {"heartbeat-every", NULL, cfg_millis, &o.heartbeat_ms, "5s", 100, 3600000, .meta = "TIME",
         .help = "worker heartbeat period (the key expires after 3 periods)"},
        {"trim-every", NULL, cfg_millis, &o.trim_every_ms, "60s", 100, 86400000, .meta = "TIME",
         .help = "XTRIM MINID below the oldest entry still needed"},
        {"redis-timeout", NULL, cfg_millis, &o.redis_timeout_ms, "10s", 100, 600000, .meta = "TIME",
         .help = "a Redis command unanswered this long: reconnect"},
        {"retry-base", NULL, cfg_millis, &o.retry_base_ms, "1s", 1, 3600000, .meta = "TIME",
         .help = "first retry delay (doubles each attempt, with jitter)"},
        {"retry-max", NULL, cfg_millis, &o.retry_max_ms, "30s", 1, 3600000, .meta = "TIME",
         .help = "longest retry delay"},
        {"max-bytes", "PIXFLOW_MAX_BYTES", cfg_bytes, &o.fetch.max_bytes, "20M", 1024, 1L << 31,
         .meta = "SIZE", .help = "largest download"},
        {"download-memory", "PIXFLOW_DOWNLOAD_MEMORY", cfg_bytes, &o.fetch.memory, "48M", 1024,
         1L << 40, .meta = "SIZE",
         .help = "memory all downloaded bodies may hold at once, until decoded (>= --max-bytes)"},
        {"connect-timeout", NULL, cfg_millis, &o.fetch.connect_timeout_ms, "10s", 100, 600000,
         .meta = "TIME", .help = "TCP + TLS connection timeout"},
        {"fetch-timeout", "PIXFLOW_FETCH_TIMEOUT", cfg_millis, &o.fetch.total_timeout_ms, "30s",
         100, 3600000, .meta = "TIME", .help = "whole download, redirects included"},
        {"max-pixels", "PIXFLOW_MAX_PIXELS", cfg_long, &o.process.max_pixels,
         CFG_STR(PROCESS_DEFAULT_MAX_PIXELS), 1, 1000000000, .meta = "N",
         .help = "largest picture (width x height) decoded"},
        {"decode-memory", "PIXFLOW_DECODE_MEMORY", cfg_bytes, &o.process.decode_memory, "160M",
         1L << 20, 1L << 40, .meta = "SIZE",
         .help = "memory all pictures being decoded, transformed and encoded may hold at once"},
        {"max-scans", "PIXFLOW_MAX_SCANS", cfg_long, &o.process.image.max_scans, "500", 1, 1000000,
         .meta = "N", .help = "most scans a progressive JPEG may have"},
        {"decode-budget", "PIXFLOW_DECODE_BUDGET", cfg_millis, &o.process.image.cpu_ms, "4s", 10,
         3600000, .meta = "TIME", .help = "CPU time one picture may take to decode"},
        {"http", "PIXFLOW_HTTP", cfg_hostport, &o.http_addr, "", .meta = "HOST:PORT",
         .help = "serve /healthz, /readyz and /metrics there (off when empty)"},
        {NULL},
    };
    int first;
    int rc = settings_load(
        &s, SET_REDIS | SET_MONGO | SET_GROUP | SET_CONSUMER | SET_PLUGINS | SET_FETCH | SET_HTTP |
            SET_RAW,
        own, "pixflow-consumer", "pixflow-consumer [options]", argc, argv, &first);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (first < argc) {
        fprintf(stderr, "pixflow-consumer: unexpected argument '%s'\n", argv[first]);
        return 2;
    }
    /* No bound ties --reclaim-idle to --entry-deadline or --fetch-timeout: an entry's idle time
     * starts again at each lease (every quarter of --reclaim-idle), however long its downloads,
     * retries or store take, so only the entries of a worker that stopped renewing (dead, or cut
     * from Redis for three lease periods) are ever reclaimed. A worker cut off that long finds its
     * entries lost at its next lease and drops them; what it stored meanwhile, the store's
     * one-image-per-URL protocol absorbs. */
    if (o.fetch.memory < o.fetch.max_bytes) {
        fprintf(stderr,
                "pixflow-consumer: --download-memory (%ld bytes) must be at least "
                "--max-bytes (%ld bytes)\n",
                o.fetch.memory, o.fetch.max_bytes);
        return 2;
    }
    o.fetch.max_redirects = 3;
    o.fetch.idle_connections = o.max_inflight; /* one per transfer that may run */
    o.fetch.low_speed_bytes = 1024;
    o.fetch.low_speed_secs = 15;
    o.process.max_dimension = PROCESS_DEFAULT_MAX_DIMENSION;
    /* libjpeg's coefficient buffers are part of a picture's cost, so they share its budget. */
    o.process.image.max_memory = (size_t)o.process.decode_memory;
    store_global_init();
    rc = worker_run(&s, &o);
    store_global_cleanup();
    return rc;
}
