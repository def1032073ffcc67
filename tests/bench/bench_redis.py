#!/usr/bin/env python3
"""bench_redis.py -- what one entry costs Redis over its whole life, and what one core sustains.

A benchmark, not a test: it prints figures and asserts nothing. On a private stack
(scripts/stack.sh in a temporary folder), with Redis's statistics reset first: pixflow-ingest
queues --urls distinct small pictures, --workers pixflow-consumer processes take them to
MongoDB until every entry is finished and nothing is pending, then stop (SIGTERM). Everything
an entry makes Redis do is inside the window: ingest's SMISMEMBER, XADD and counting
transaction, XREADGROUP, the dedup script, the store mark, the politeness script, leases, the
ack script with its counters, heartbeats, trims, group checks. Printed: Redis commands per entry
(what clients sent, and what ran with the commands scripts call), the busiest commands, Redis
CPU (user + system of the redis-server process, from INFO) per entry, and the entries per second
one Redis core would sustain at that cost (1 s / CPU per entry). The stack's Redis runs with
the AOF on (appendfsync everysec), as in production.

    python3 tests/bench/bench_redis.py [--build-dir DIR] [--urls N] [--workers W] [--threads T]

Needs redis and pymongo: runs itself again under .cache/venv/bin/python when python3 lacks them.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pipeline as bp  # noqa: E402  (re-executes itself under the venv when needed)

PREFIX = "benchredis:"


def redis_cpu(r):
    cpu = r.info("cpu")
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"]


def command_calls(r):
    return {k[len("cmdstat_"):]: v["calls"] for k, v in r.info("commandstats").items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", type=Path, default=bp.ROOT / "build")
    ap.add_argument("--urls", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        folder = Path(tmp)
        stack = bp.Stack(folder / "stack", args.build_dir)
        stack.start()
        try:
            run(args, stack, folder)
        finally:
            stack.stop()


def run(args, stack, folder):
    env = bp.run_env(stack, args.build_dir, PREFIX, "bench_redis")
    r = bp.redis.Redis.from_url(env["PIXFLOW_REDIS_URL"])
    catalog = folder / "catalog.txt"
    bp.write_catalog(catalog, bp.small_sizes(args.urls, seed=7))
    # Redis's own cost at rest (its cron, the AOF's fsync each second), taken out below.
    idle0 = redis_cpu(r)
    time.sleep(3)
    idle_rate = (redis_cpu(r) - idle0) / 3
    r.config_resetstat()
    cpu0 = redis_cpu(r)
    started = time.monotonic()
    workers = [bp.Consumer(args.build_dir, env, f"w{i}", ["--threads", str(args.threads)], folder)
               for i in range(args.workers)]
    bp.ingest(args.build_dir, env, catalog)
    bp.wait_ready(r, PREFIX, workers)  # the group exists; its XINFO calls are few, left in
    polls = 0  # this script's HGETALL and XPENDING, taken out of the counts
    while True:
        st = bp.stats(r, PREFIX)
        pending = r.xpending(PREFIX + "urls", "pixflow")["pending"]
        polls += 1
        if bp.finished(st) >= args.urls and pending == 0:
            break
        if time.monotonic() - started > args.timeout or not all(w.alive() for w in workers):
            sys.exit("the run did not finish:\n" + workers[0].tail())
        time.sleep(0.2)
    for w in workers:
        w.stop()
    took = time.monotonic() - started
    cpu = redis_cpu(r) - cpu0 - idle_rate * took
    calls = command_calls(r)
    for name in ("hgetall", "xpending"):
        calls[name] = calls.get(name, 0) - polls
    for name in ("info", "config|resetstat"):  # this script's own
        calls.pop(name, None)
    ran = sum(calls.values())
    scripts = sum(calls.get(k, 0) for k in ("eval", "evalsha", "fcall"))
    n = bp.finished(st)
    print(f"bench_redis: {n} entries ({args.urls} queued, stored {st.get('stored', 0)}), "
          f"{args.workers} workers x {args.threads} threads, {took:.1f} s")
    print(f"  Redis commands run per entry: {ran / n:.1f} (the commands scripts call included; "
          f"{scripts / n:.2f} of them are script calls)")
    top = sorted(calls.items(), key=lambda kv: -kv[1])[:12]
    print("  busiest: " + ", ".join(f"{name} {c / n:.2f}" for name, c in top))
    print(f"  Redis CPU per entry: {cpu / n * 1e6:.0f} us (user + system, {cpu:.2f} s in all, "
          f"less its cost at rest: {idle_rate * 1000:.1f} ms/s)")
    print(f"  one Redis core sustains about {n / cpu:.0f} entries/s at that cost")


if __name__ == "__main__":
    main()
