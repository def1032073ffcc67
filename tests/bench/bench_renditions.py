#!/usr/bin/env python3
"""bench_renditions.py -- what renditions cost: the same catalog, on the same servers, processed
for the first time with `default` alone and with `default` plus a second rendition (one download,
one decode, two chains), then the first run's originals reprocessed from the raw store for that
second rendition.

Figures: pictures per second of each run, the workers' CPU per picture, the mean decode time per
picture (the workers' own `pixflow_stage_seconds{stage="decode"}`), and two targets:
  - reprocessing is at least as fast as first-time processing of the same originals;
  - the second rendition costs the workers less CPU per picture than a second decode would.
A benchmark, not a test: it prints figures and asserts nothing; a missed target is printed as
MISSED and the exit status stays 0.

    python3 tests/bench/bench_renditions.py [--build-dir DIR] [--urls N] [--workers W]
        [--threads T] [--chain CHAIN] [--seconds S] [--keep]
"""
import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pipeline as bp  # noqa: E402  (re-executes itself under the venv when needed)

import redis  # noqa: E402


def scrape_decode(port):
    """(sum, count) of the decode stage histogram of one worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if 'stage="decode"' in line and line.startswith("pixflow_stage_seconds_sum"):
            total = float(line.split()[-1])
        elif 'stage="decode"' in line and line.startswith("pixflow_stage_seconds_count"):
            count = float(line.split()[-1])
    return total, count


def run(args, stack, tmp, label, prefix, db, catalog, n, done_counter, before=None):
    """Workers on prefix/db until `done_counter` reaches n; before(env) runs once they read."""
    env = bp.run_env(stack, args.build_dir, prefix, db, level="info")
    r = redis.Redis.from_url(stack.env["PIXFLOW_REDIS_URL"])
    threads = args.threads or bp.CORES
    workers = [bp.Consumer(args.build_dir, env, f"{label}-w{k + 1}",
                           ["--threads", str(threads), "--drain-timeout", "2s",
                            "--http", "127.0.0.1:0"], tmp) for k in range(args.workers)]
    try:
        bp.wait_ready(r, prefix, workers)
        time.sleep(2.5)  # the renditions hash is read every 2 s
        cpu0 = {w.name: bp.cpu_ticks(w.pid) for w in workers}
        t0 = time.monotonic()
        if catalog:
            bp.ingest(args.build_dir, env, catalog)
        if before:
            before(env)
        deadline = t0 + args.seconds
        while bp.stats(r, prefix).get(done_counter, 0) < n and time.monotonic() < deadline:
            for w in workers:
                if not w.alive():
                    sys.exit(f"{w.name} exited:\n{w.tail()}")
            time.sleep(0.05)
        wall = time.monotonic() - t0
        st = bp.stats(r, prefix)
        cpu = sum(bp.cpu_ticks(w.pid) - cpu0[w.name] for w in workers) / bp.TICK
        decode_s = decode_n = 0.0
        for w in workers:
            m = re.search(r"event=http_listening addr=\S+ port=(\d+)", w.log_path.read_text())
            if m:
                s, c = scrape_decode(int(m.group(1)))
                decode_s, decode_n = decode_s + s, decode_n + c
    finally:
        for w in workers:
            w.stop()
    done = st.get(done_counter, 0)
    return {"label": label, "done": done, "wall": wall, "rate": done / wall if wall else 0,
            "cpu_per": cpu / done if done else float("nan"),
            "decode_per": decode_s / decode_n if decode_n else float("nan"), "env": env}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", type=Path, default=bp.ROOT / "build")
    ap.add_argument("--urls", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="pool threads per worker (cores)")
    ap.add_argument("--chain", default="grayscale,thumbnail:size=64")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--seconds", type=float, default=300, help="cap on each run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="pixflow-bench-renditions-"))
    (tmp / "pictures").mkdir()
    stack = bp.Stack(tmp / "stack", args.build_dir)
    try:
        stack.start()
        stack.raw_bucket()  # the reprocess reads the originals from S3
        sizes = bp.pipeline_sizes(args.urls, args.seed)
        bp.fetch_pictures(stack.env["PIXFLOW_PICSUM_HTTP"], sizes, tmp / "pictures")
        catalog = tmp / "catalog.txt"
        bp.write_catalog(catalog, sizes)
        r = redis.Redis.from_url(stack.env["PIXFLOW_REDIS_URL"])
        n = len(sizes)
        one = run(args, stack, tmp, "one", "rend1:", "bench_rend1", catalog, n, "stored")
        r.hset("rend2:renditions", "second", args.chain)
        two = run(args, stack, tmp, "two", "rend2:", "bench_rend2", catalog, n, "stored")

        queued = {}

        def queue(env):
            t = time.monotonic()
            r.hset("rend1:renditions", "second", args.chain)
            out = subprocess.run([str(args.build_dir / "bin" / "pixflow"), "reprocess", "second"],
                                 env=env, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"pixflow reprocess: {out.stderr}")
            queued["s"] = time.monotonic() - t
        # The first run's originals, its stored count being what they are.
        kept = bp.stats(r, "rend1:").get("stored", 0)
        rep = run(args, stack, tmp, "reprocess", "rend1:", "bench_rend1", None, kept,
                  "reprocessed", before=queue)
    finally:
        stack.stop()

    print(f"pixflow renditions benchmark: {n} distinct URLs (seed {args.seed}), {args.workers} "
          f"workers x {args.threads or bp.CORES} threads, {bp.CORES} cores, originals in S3, "
          f"second rendition {args.chain!r}")
    for x in (one, two, rep):
        print(f"  {x['label']:<10} {x['rate']:7.1f} pictures/s  {x['done']} in {x['wall']:.1f} s, "
              f"worker CPU {x['cpu_per'] * 1000:.1f} ms/picture, decode "
              f"{x['decode_per'] * 1000:.1f} ms/picture")
    print(f"  (the reprocess run includes `pixflow reprocess` itself: {queued['s']:.2f} s; "
          f"the first-time runs include pixflow-ingest)")
    ratio = rep["rate"] / one["rate"] if one["rate"] else 0
    print(f"  reprocess / first time (default only) = {ratio:.2f} (target >= 1.00)"
          f"{'' if ratio >= 1 else '  MISSED'}")
    extra = two["cpu_per"] - one["cpu_per"]
    print(f"  second rendition: +{extra * 1000:.1f} ms CPU/picture against a decode of "
          f"{one['decode_per'] * 1000:.1f} ms{'' if extra < one['decode_per'] else '  MISSED'}; "
          f"rate two / one = {two['rate'] / one['rate'] if one['rate'] else 0:.2f}")
    if args.keep:
        print(f"kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
