#!/usr/bin/env python3
"""bench_celery.py -- pixflow against a Celery + Pillow + pymongo peer, on the same servers.

A benchmark, not a test: it prints figures and asserts nothing; a missed target is printed as
MISSED and the exit status stays 0. On one private stack (scripts/stack.sh: Redis, FerretDB,
pixflow-picsum --deterministic), on bench_aliases.py's two catalogs (same functions, same seeds):
a distinct one (every URL a new picture) and an aliased one (>= 70 % of the URLs return a
picture an earlier URL already produced):

  pixflow: bench_aliases.run, 1 worker with --threads CORES, as bench_aliases measures it.
  peer:    celery_peer.py, a Celery app on the stack's Redis (db 1) with a prefork worker
           (`celery -A celery_peer worker --pool=prefork --concurrency N`), one task per URL:
           requests.get over HTTPS to picsum.photos (the local image server, verified against
           the test CA), Pillow convert("L"), PNG, base64, SHA-256, update_one upsert by SHA-256
           into its own database on the same FerretDB, a Redis INCR when done. Each of
           --concurrency's values is one run; the best is the peer's figure.

Before any run every URL of both catalogs is fetched once from the image server, so each system
is served from its cache (as picsum's CDN would) and none pays for the first rendering.
Entries/s = entries finished / seconds from the first enqueue (pixflow: from before
pixflow-ingest starts) to the last one finished. Target (issue): pixflow >= 3x the peer's best
on both catalogs.

    python3 tests/bench/bench_celery.py [--build-dir DIR] [--urls N] [--concurrency 2,4,8]
        [--prefetch N] [--seconds S] [--keep]

Runs itself under .cache/bench-venv (celery[redis], pillow, requests, pymongo, redis); the
README says how to make it.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH_VENV = HERE.parents[1] / ".cache" / "bench-venv"
SETUP = (f"python3 -m venv {BENCH_VENV} && {BENCH_VENV}/bin/pip install 'celery[redis]' "
         "pillow requests pymongo redis")

if Path(sys.prefix).resolve() != BENCH_VENV.resolve():
    if not (BENCH_VENV / "bin" / "python").exists():
        sys.exit(f"bench_celery runs in its own venv, which is missing; make it with:\n  {SETUP}")
    os.execv(str(BENCH_VENV / "bin" / "python"), [str(BENCH_VENV / "bin" / "python"), *sys.argv])
try:
    import celery  # noqa: F401
    import PIL  # noqa: F401
    import pymongo
    import redis
    import requests  # noqa: F401
except ImportError as exc:
    sys.exit(f"{BENCH_VENV} lacks {exc.name}; install what is missing with:\n  {SETUP}")

import argparse  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

sys.path.insert(0, str(HERE))
import bench_aliases as ba  # noqa: E402
import bench_pipeline as bp  # noqa: E402

PEER_DB_NUMBER = 1  # the broker's Redis db; pixflow uses db 0 of the same server


def peer_env(stack, database, counters):
    redis_url = urllib.parse.urlsplit(stack.env["PIXFLOW_REDIS_URL"])
    broker = urllib.parse.urlunsplit(redis_url._replace(path=f"/{PEER_DB_NUMBER}"))
    return dict(os.environ, **stack.env, PEER_BROKER=broker, PEER_DB=database,
                PEER_MONGO_URI=stack.env["PIXFLOW_MONGO_URI"], PEER_COUNTERS=counters,
                PYTHONPATH=str(HERE))


class CeleryWorker:
    """`celery -A celery_peer worker` in its own process group (the prefork pool's children
    go with it when it is stopped)."""

    def __init__(self, env, concurrency, prefetch, log_path):
        self.log_file = open(log_path, "wb")
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_peer", "worker",
             "--pool=prefork", f"--concurrency={concurrency}",
             f"--prefetch-multiplier={prefetch}", "--loglevel=WARNING", "--without-gossip",
             "--without-mingle", "--without-heartbeat", "-n", f"peer{concurrency}@%h"],
            env=env, cwd=str(HERE), stdout=self.log_file, stderr=subprocess.STDOUT,
            start_new_session=True)

    def alive(self):
        return self.proc.poll() is None

    def tail(self):
        return Path(self.log_path).read_text(errors="replace")[-3000:]

    def stop(self, timeout=20):
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # pool children left behind, if any
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log_file.close()


def wait_celery_ready(app, worker, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.alive():
            sys.exit(f"the celery worker exited at start:\n{worker.tail()}")
        if app.control.ping(timeout=0.5):
            return
    sys.exit(f"the celery worker did not answer a ping within {timeout} s:\n{worker.tail()}")


def peer_run(args, stack, tmp, label, urls, concurrency):
    """One run of the peer on urls, into a fresh database; returns its figures."""
    database, counters = f"peer_{label}_c{concurrency}", f"peer:{label}:c{concurrency}:"
    env = peer_env(stack, database, counters)
    os.environ.update(PEER_BROKER=env["PEER_BROKER"])
    import celery_peer  # reads PEER_BROKER at import: the same broker for every run

    r = redis.Redis.from_url(env["PEER_BROKER"])
    r.flushdb()  # a run's leftovers (unacked tasks of a capped run) must not reach the next
    worker = CeleryWorker(env, concurrency, args.prefetch, tmp / f"peer-{label}-c{concurrency}.log")
    try:
        wait_celery_ready(celery_peer.app, worker)
        t0, t0_ms = time.monotonic(), time.time() * 1000
        for u in urls:
            celery_peer.fetch_store.apply_async((u,))
        enqueued = time.monotonic() - t0
        deadline = t0 + args.seconds
        while True:
            done, failed = (int(v or 0) for v in r.mget(counters + "done", counters + "failed"))
            if done + failed >= len(urls) or time.monotonic() > deadline:
                break
            if not worker.alive():
                sys.exit(f"the celery worker exited during the run:\n{worker.tail()}")
            time.sleep(0.02)
        wall = time.monotonic() - t0
    finally:
        worker.stop()
    if failed:
        print(f"  [peer {label} c{concurrency}] {failed} tasks failed; the worker's log ends:\n"
              f"{worker.tail()}", flush=True)
    db = pymongo.MongoClient(env["PIXFLOW_MONGO_URI"], tz_aware=True)[database]
    stored = sorted(d["inserted_at"].timestamp() * 1000
                    for d in db.images.find({}, {"inserted_at": 1}))
    images = len(stored)
    # What one of the peer's upserts costs on the collection as the run left it (a no-op: the
    # _id exists). FerretDB v1 on SQLite answers a filter on _id with a scan (README).
    probe_ms = float("nan")
    some = db.images.find_one({}, {"_id": 1})
    if some:
        t = time.perf_counter()
        db.images.update_one({"_id": some["_id"]}, {"$setOnInsert": {"probe": 1}}, upsert=True)
        probe_ms = 1000 * (time.perf_counter() - t)
    return {"label": label, "concurrency": concurrency, "n": len(urls), "finished": done + failed,
            "done": done, "failed": failed, "wall": wall, "rate": (done + failed) / wall,
            "enqueue": enqueued, "images": images, "capped": done + failed < len(urls),
            "quarters": bp.quarter_rates(stored, t0_ms), "probe_ms": probe_ms}


def show_peer(f):
    print(f"  peer {f['label']:<9} --concurrency {f['concurrency']}: {f['finished']:>5}/"
          f"{f['n']:<5} tasks in {f['wall']:6.1f} s = {f['rate']:6.1f} entries/s  (done "
          f"{f['done']}, failed {f['failed']}; {f['images']} images; enqueueing took "
          f"{f['enqueue']:.2f} s){'  CAPPED' if f['capped'] else ''}", flush=True)
    print("      images/s by quarter of the stored images, in storing order: " +
          "  ".join(f"{q:.1f}" for q in f["quarters"]) + f";  one upsert on the final "
          f"collection ({f['images']} images): {f['probe_ms']:.0f} ms", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ba.catalog_args(ap)
    ap.add_argument("--concurrency", default="2,4,8",
                    help="comma-separated celery worker --concurrency values, one run each")
    ap.add_argument("--prefetch", type=int, default=4, help="celery --prefetch-multiplier")
    args = ap.parse_args()
    try:
        levels = [int(c) for c in args.concurrency.split(",")]
        if not levels or min(levels) < 1:
            raise ValueError
    except ValueError:
        sys.exit(f"--concurrency wants a list of positive integers, like 2,4,8: "
                 f"'{args.concurrency}'")
    args.build_dir = args.build_dir.resolve()
    args.workers = 1  # bench_aliases.run's pixflow setup: one worker, --threads CORES
    for b in ("bin/pixflow-consumer", "bin/pixflow-ingest", "bin/pixflow-picsum"):
        if not (args.build_dir / b).exists():
            sys.exit(f"{args.build_dir / b} is not built")

    tmp = Path(tempfile.mkdtemp(prefix="bench-celery-"))
    stack = bp.Stack(tmp / "stack", args.build_dir)
    stack.start()
    try:
        # The same catalogs as bench_aliases.py's main(): same functions, same seeds.
        distinct = [bp.url_of(wh) for wh in bp.pipeline_sizes(args.urls, args.seed)]
        aliased, pictures = ba.aliased_catalog(args.urls, args.alias_share, args.seed + 1, "k")
        w, h, q = re.match(r".*/(\d+)/(\d+)\?(.*)", aliased[0]).groups()
        ba.check_hash(stack, int(w), int(h), q)
        print(f"pixflow (1 worker x {bp.CORES} threads) against Celery + Pillow + pymongo "
              f"(prefork, --concurrency {args.concurrency}, --prefetch-multiplier "
              f"{args.prefetch}); FerretDB, {os.cpu_count()} cores", flush=True)
        print(f"  catalogs: distinct {len(distinct)} URLs; aliased {len(aliased)} URLs over "
              f"{pictures} pictures ({100 * (1 - pictures / len(aliased)):.0f} % aliases)",
              flush=True)
        ba.warm(stack, [distinct, aliased])
        results = []
        for label, urls in (("distinct", distinct), ("aliased", aliased)):
            px = ba.run(args, stack, tmp, label, urls)
            ba.show(px)
            peers = []
            for c in levels:
                peers.append(peer_run(args, stack, tmp, label, urls, c))
                show_peer(peers[-1])
            results.append((label, px, max(peers, key=lambda f: f["rate"])))
        ok = True
        for label, px, best in results:
            ratio = px["rate"] / best["rate"] if best["rate"] else float("inf")
            ok = ok and ratio >= 3
            print(f"{label:<9} pixflow {px['rate']:7.1f} entries/s   peer (best, --concurrency "
                  f"{best['concurrency']}) {best['rate']:6.1f} entries/s   ratio {ratio:.2f}x"
                  f"{'  (a run was CAPPED)' if px['capped'] or best['capped'] else ''}")
        print(f"target: pixflow >= 3x the peer on both catalogs: {ba.verdict(ok)}")
    finally:
        stack.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
