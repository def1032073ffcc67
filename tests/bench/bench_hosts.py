#!/usr/bin/env python3
"""bench_hosts.py -- what politeness costs: a fleet held at a host's rate limit (SPEC §5.8) against
that limit, and the Redis commands each request takes.

A benchmark, not a test: it prints figures and asserts nothing; a missed target is printed as
MISSED and the exit status stays 0. On a private stack (scripts/stack.sh in a temporary folder),
for each --rate R: --workers pixflow-consumer processes share PIXFLOW_HOST_LIMITS
`*:rate=R,burst=--burst,inflight=--inflight` over a backlog of small distinct pictures (each entry
is two requests: picsum.photos, then its redirect to fastly.picsum.photos), so every host is held
at R requests a second. After --warmup seconds (the burst spent), the image server's own request
count per host over --seconds gives the rate the fleet reached; the loss to coordination is
1 - reached / R (target: under 5 %). Also printed, over the same window: politeness script calls
per request (the workers' pixflow_host_calls_total / pixflow_host_requests_total: round trips),
every command Redis ran per request (INFO commandstats, which counts the commands inside scripts
too, and the stream's, the acks' and the heartbeats'), and the requests that waited for their host.

Then what limits cost when they do not bind: bench_pipeline's run (b) over --urls distinct
pictures, with the stack's limits (`*:rate=5000,burst=1000,inflight=1000`, far above what two
cores reach) against PIXFLOW_HOST_LIMITS=off (no gate, no script), alternated --rounds times, each
by its median rate (target: at most 5 % slower), and the Redis time the politeness script takes per
request (INFO commandstats: the scripts' time with limits less that without, per request).

    python3 tests/bench/bench_hosts.py [--build-dir DIR] [--workers N] [--rate R...]
        [--burst B] [--inflight N] [--warmup S] [--seconds S] [--urls N] [--rounds N]
"""
import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pipeline as bp  # noqa: E402  (re-executes itself under the venv when needed)

HOSTS = ("picsum.photos", "fastly.picsum.photos")
TARGET_LOSS = 0.05


def picsum_hosts(stack):
    with urllib.request.urlopen(f"http://{stack.env['PIXFLOW_PICSUM_HTTP']}/__control/stats",
                                timeout=10) as reply:
        return json.loads(reply.read())["hosts"]


def redis_commands(r):
    """Every command Redis has run so far (INFO commandstats)."""
    return sum(v["calls"] for k, v in r.info("commandstats").items())


def worker_metrics(workers):
    """(script calls, requests let through, requests that waited) summed over the workers."""
    calls = requests = waits = 0
    for w in workers:
        port = re.search(r"event=http_listening \S+ port=(\d+)", w.log_path.read_text())
        with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/metrics",
                                    timeout=10) as reply:
            text = reply.read().decode()
        for m in re.finditer(r"^(pixflow_host_\w+?)(?:\{[^}]*\})? (\S+)$", text, re.M):
            value = float(m.group(2))
            if m.group(1) == "pixflow_host_calls_total":
                calls += value
            elif m.group(1) == "pixflow_host_requests_total":
                requests += value
            elif m.group(1) == "pixflow_host_waits_total":
                waits += value
    return calls, requests, waits


def one_rate(args, stack, rate, folder):
    prefix = f"bh{int(rate)}:"
    env = bp.run_env(stack, args.build_dir, prefix, f"bench_hosts_{int(rate)}", level="info")
    env["PIXFLOW_HOST_LIMITS"] = f"*:rate={rate:g},burst={args.burst},inflight={args.inflight}"
    r = bp.redis.Redis.from_url(stack.env["PIXFLOW_REDIS_URL"])
    # enough entries for warm-up + window with room to spare, all distinct (no alias, no cache
    # of ours in the way): the small pictures keep the CPU stage far from the limit
    n = int(rate * (args.warmup + args.seconds) * 1.5) + 100
    sizes = bp.small_sizes(n, seed=int(rate), low=40, high=400)
    catalog = folder / f"catalog-{int(rate)}.txt"
    bp.write_catalog(catalog, sizes)
    bp.fetch_paths(stack.env["PIXFLOW_PICSUM_HTTP"], [f"/{w}/{h}" for w, h in sizes],
                   lambda i, body: None)  # the server renders and caches each picture once
    bp.ingest(args.build_dir, env, catalog)
    workers = [bp.Consumer(args.build_dir, env, f"b{int(rate)}-{i}",
                           ["--http", "127.0.0.1:0", "--threads", "1"], folder)
               for i in range(args.workers)]
    try:
        bp.wait_ready(r, prefix, workers)
        time.sleep(args.warmup)
        h0, c0, m0, t0 = picsum_hosts(stack), redis_commands(r), worker_metrics(workers), \
            time.monotonic()
        time.sleep(args.seconds)
        h1, c1, m1, t1 = picsum_hosts(stack), redis_commands(r), worker_metrics(workers), \
            time.monotonic()
        left = bp.finished(bp.stats(r, prefix)) < n
    finally:
        for w in workers:
            w.stop()
    span = t1 - t0
    reached = {h: (h1[h]["requests"] - h0.get(h, {"requests": 0})["requests"]) / span
               for h in HOSTS}
    requests = sum(h1[h]["requests"] - h0.get(h, {"requests": 0})["requests"] for h in HOSTS)
    calls, let, waits = (m1[i] - m0[i] for i in range(3))
    for h in HOSTS:
        loss = 1 - reached[h] / rate
        verdict = "ok" if loss < TARGET_LOSS else "MISSED"
        print(f"  rate {rate:7g}/s  {h:22s} reached {reached[h]:8.2f}/s  loss {loss * 100:5.1f} %"
              f"  (target < {TARGET_LOSS * 100:.0f} %: {verdict})"
              f"  peak {h1[h]['peak_in_flight']} at once")
    print(f"  rate {rate:7g}/s  politeness script calls per request {calls / max(let, 1):.3f}"
          f"  Redis commands run per request {(c1 - c0) / max(requests, 1):.1f} (all of them:"
          f" the scripts' own, the stream's, acks, heartbeats)"
          f"  requests that waited {waits / max(let, 1) * 100:.0f} %"
          f"{'' if left else '  (backlog ran out: figures cover less than the window)'}")


def script_usec(r):
    """Microseconds Redis has spent in scripts so far (EVAL, EVALSHA, FCALL and their _RO)."""
    stats = r.info("commandstats")
    return sum(v["usec"] for k, v in stats.items()
               if k.removeprefix("cmdstat_").split("|")[0] in ("eval", "evalsha", "eval_ro",
                                                               "evalsha_ro", "fcall", "fcall_ro"))


def overhead(args, stack, folder):
    """The pipeline with limits that do not bind against none at all."""
    import redis
    r = redis.Redis.from_url(stack.env["PIXFLOW_REDIS_URL"])
    sizes = bp.pipeline_sizes(args.urls, 2024)
    pics = list(zip(sizes, bp.fetch_pictures(stack.env["PIXFLOW_PICSUM_HTTP"], sizes,
                                             folder / "pictures")))
    modes = [("limits", {"PIXFLOW_HOST_LIMITS": stack.env["PIXFLOW_HOST_LIMITS"]}),
             ("off", {"PIXFLOW_HOST_LIMITS": "off"})]
    out = {label: [] for label, _ in modes}
    for k in range(args.rounds):
        for label, extra in modes:
            u0 = script_usec(r)
            p = bp.pipeline(args, stack, pics, folder, prefix=f"hosts{label}{k}:",
                            database=f"bench_hosts_{label}{k}", extra=extra)
            p["script_usec"] = script_usec(r) - u0
            out[label].append(p)
    rate = {label: statistics.median(p["images_per_s"] for p in runs)
            for label, runs in out.items()}
    print(f"limits that do not bind ({stack.env['PIXFLOW_HOST_LIMITS']}) against none, "
          f"{args.urls} pictures, {args.workers} workers, {args.rounds} round(s), median rate:")
    for label, runs in out.items():
        rates = " ".join(f"{p['images_per_s']:.1f}" for p in runs)
        print(f"  {label:<7} {rate[label]:6.1f} pictures/s  (runs: {rates})")
    ratio = rate["limits"] / rate["off"] if rate["off"] else 0
    print(f"  limits / off = {ratio:.3f}: {(1 - ratio) * 100:+.1f} % slower (target <= 5 %)"
          f"{'' if ratio >= 1 - TARGET_LOSS else '  MISSED'}")
    # Two requests a picture (picsum.photos, then its redirect to fastly.picsum.photos).
    extra_us = statistics.median(p["script_usec"] for p in out["limits"]) - \
        statistics.median(p["script_usec"] for p in out["off"])
    print(f"  Redis time in the politeness script: {extra_us / (2 * args.urls):.1f} us per request "
          f"(scripts' time with limits less without, INFO commandstats)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", type=Path, default=bp.ROOT / "build")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--rate", type=float, nargs="*", default=[20, 50],
                    help="rates to hold the fleet at (none: only the overhead runs)")
    ap.add_argument("--burst", type=int, default=5)
    ap.add_argument("--inflight", type=int, default=32)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--urls", type=int, default=600, help="pictures of the overhead runs")
    ap.add_argument("--rounds", type=int, default=2, help="overhead runs of each kind")
    ap.add_argument("--threads", type=int, default=0, help="pool threads per worker (cores)")
    ap.add_argument("--pipeline-seconds", type=float, default=60)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hosts-") as tmp:
        folder = Path(tmp)
        stack = bp.Stack(folder / "stack", args.build_dir)
        stack.start()
        try:
            print(f"bench_hosts: {args.workers} workers, burst {args.burst}, inflight "
                  f"{args.inflight}, {args.warmup:g} s warm-up then {args.seconds:g} s measured")
            for rate in args.rate:
                one_rate(args, stack, rate, folder)
            (folder / "pictures").mkdir()
            overhead(args, stack, folder)
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
