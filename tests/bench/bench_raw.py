#!/usr/bin/env python3
"""bench_raw.py -- what keeping originals costs the pipeline: the same catalog, on the same
servers, in one run, without a raw store, with the stack's S3 server (versitygw) and with a
folder; then one worker's peak RSS on a 1,000 and a 100,000-entry backlog with originals kept in
S3 (it must stay flat: bodies are held until their PUT is done, inside the download memory).

A benchmark, not a test: it prints figures and asserts nothing; a missed target (S3 >= 0.9x the
run without) is printed as MISSED and the exit status stays 0. Each pipeline run is
bench_pipeline's (b) on its own key prefix and database; the image server is warmed first, so
every run fetches from its cache. With --rounds N the three runs alternate N times and each is
reported by its median rate: on a machine shared with other work, one run each is noisy. Each
run's CPU per stored picture is printed by process (worker loop and pool, FerretDB, Redis, the S3
server, the rest of the machine), and the ratio is given again by the pipeline's own CPU per
picture, which bounds its rate on a machine it has alone and which other work disturbs much
less than the rate.

    python3 tests/bench/bench_raw.py [--build-dir DIR] [--urls N] [--workers W] [--threads T]
        [--pipeline-seconds S] [--rounds N] [--rss-small N] [--rss-large N] [--rss-seconds S]
        [--keep]
"""
import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pipeline as bp  # noqa: E402  (re-executes itself under the venv when needed)

TARGET_S3 = 0.9


def median_run(runs):
    """The run of median rate (the lower middle one of an even count)."""
    return sorted(runs, key=lambda p: p["images_per_s"])[(len(runs) - 1) // 2]


def line(label, runs, base=None):
    p = median_run(runs)
    ratio = f"  {p['images_per_s'] / base['images_per_s']:.2f}x" if base else ""
    hwm = max(max(r["hwm"].values()) for r in runs if r["hwm"]) / 1024
    rates = " ".join(f"{r['images_per_s']:.1f}" for r in runs)
    s3_cpu = p["server_cpu"].get("s3", 0.0)
    print(f"  {label:<8} {p['images_per_s']:7.1f} images/s{ratio:7}  {p['documents']}/{p['n']} "
          f"stored in {p['elapsed']:.1f} s, p50 {p['lat_p50'] / 1000:.2f} s, peak RSS "
          f"{hwm:.1f} MiB, S3 server CPU {s3_cpu:.1f} s  (runs: {rates})")
    # Where the CPU went, per stored picture: on two shared cores the servers' CPU is taken from
    # the workers, and "others" is whatever else the machine ran meanwhile (noise).
    cpu = cpu_per_picture(p)
    print("           CPU ms/picture: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
          + f"  (pipeline {pipeline_ms(p):.1f})")


def cpu_per_picture(p):
    """CPU ms per stored picture of the workers' loop and pool, each server but the image
    server (it stands for the web), and the rest of the machine."""
    per = 1000 / max(1, p["documents"])
    cpu = {"worker loop": p["loop_cpu"] * per, "worker pool": p["other_cpu"] * per}
    cpu.update({k: v * per for k, v in p["server_cpu"].items() if k != "picsum"})
    cpu["others"] = p["others"] * per
    return cpu


def pipeline_ms(p):
    """The pipeline's own CPU per picture: what bounds its rate on a machine it has alone."""
    return sum(v for k, v in cpu_per_picture(p).items() if k != "others")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", type=Path, default=bp.ROOT / "build")
    ap.add_argument("--urls", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="pool threads per worker (cores)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--pipeline-seconds", type=float, default=60)
    ap.add_argument("--rounds", type=int, default=1, help="alternate the three runs N times")
    ap.add_argument("--rss-small", type=int, default=1000)
    ap.add_argument("--rss-large", type=int, default=100_000)
    ap.add_argument("--rss-seconds", type=float, default=20, help="cap on each backlog run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="pixflow-bench-raw-"))
    (tmp / "pictures").mkdir()
    stack = bp.Stack(tmp / "stack", args.build_dir)
    try:
        stack.start()
        bucket = stack.raw_bucket()
        sizes = bp.pipeline_sizes(args.urls, args.seed)
        t = time.monotonic()
        files = bp.fetch_pictures(stack.env["PIXFLOW_PICSUM_HTTP"], sizes, tmp / "pictures")
        print(f"image server warmed: {len(files)} pictures in {time.monotonic() - t:.1f} s")
        pics = list(zip(sizes, files))
        folder = tmp / "raw"
        folder.mkdir()
        runs = [("none", {"PIXFLOW_RAW_URL": ""}),
                ("s3", {"PIXFLOW_RAW_URL": f"s3://{bucket}/bench-raw"}),
                ("file", {"PIXFLOW_RAW_URL": f"file://{folder}"})]
        out = {label: [] for label, _ in runs}
        for k in range(args.rounds):
            for label, extra in runs:
                if label != "none":  # a fresh prefix or folder: nothing is kept there yet
                    extra = {"PIXFLOW_RAW_URL": f"{extra['PIXFLOW_RAW_URL']}/r{k}"}
                if label == "file":
                    (folder / f"r{k}").mkdir()
                out[label].append(bp.pipeline(args, stack, pics, tmp, prefix=f"raw{label}{k}:",
                                              database=f"bench_raw_{label}{k}", extra=extra))
        small = bp.small_sizes(args.rss_large, args.seed + 1)
        s3 = {"PIXFLOW_RAW_URL": f"s3://{bucket}/bench-rss"}
        rss_small = bp.rss_run(args, stack, tmp, small[:args.rss_small], "1k", s3)
        rss_large = bp.rss_run(args, stack, tmp, small, "100k", s3)
    finally:
        stack.stop()

    base = median_run(out["none"])
    print(f"pixflow raw zone benchmark: {args.urls} distinct URLs (seed {args.seed}), "
          f"{args.workers} workers, {bp.CORES} cores, one stack, the same catalog each run, "
          f"{args.rounds} round(s), median rate")
    line("no raw", out["none"])
    line("s3", out["s3"], base)
    line("file", out["file"], base)
    s3 = median_run(out["s3"])
    ratio = s3["images_per_s"] / base["images_per_s"] if base["images_per_s"] else 0
    print(f"  S3 / none = {ratio:.2f} (target >= {TARGET_S3}){'' if ratio >= TARGET_S3 else '  MISSED'}")
    # The same ratio by CPU, which other work on the machine disturbs much less than the rate.
    for label in ("s3", "file"):
        runs = out[label]
        cost = statistics.median(pipeline_ms(r) for r in runs)
        none = statistics.median(pipeline_ms(r) for r in out["none"])
        print(f"  by pipeline CPU per picture, {label} / none = {none / cost:.2f} "
              f"({cost:.1f} ms against {none:.1f} ms, median of {len(runs)})")
    for label, r in (("1k", rss_small), ("100k", rss_large)):
        print(f"  backlog {r['backlog']:>6} ({label}), originals in S3: peak RSS "
              f"{bp.mib(r['hwm']):.1f} MiB (polled {bp.mib(r['polled']):.1f}), "
              f"{r['processed']} processed in {r['seconds']:.1f} s")
    print(f"  RSS 100k / 1k = {rss_large['hwm'] / rss_small['hwm']:.2f}")
    if args.keep:
        print(f"kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
