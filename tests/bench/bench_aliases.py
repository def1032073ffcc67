#!/usr/bin/env python3
"""bench_aliases.py -- the whole pipeline on a catalog where most URLs return a stored picture.

A benchmark, not a test: it prints figures and asserts nothing; a missed target is printed as
MISSED and the exit status stays 0. picsum serves about a thousand photographs, so on a real
catalog most URLs are aliases of a picture already stored. On a private stack (scripts/stack.sh:
Redis, FerretDB, pixflow-picsum --deterministic), with the same workers each time:

  (1) distinct: --urls URLs of distinct W x H (100..1920 x 100..1080): every URL a new picture.
  (2) aliased: --urls URLs over pictures of the same size distribution, at least --alias-share
      of them (70 %) returning a picture an earlier URL already produced. The deterministic
      image server picks the photograph of /W/H?QUERY from a hash of "W/H?" and the query
      (tests/picsum/serve.c, serve_pick_id): this script computes the same hash to find queries
      that land on the same photograph, so W/H?k=a and W/H?k=b are byte-identical pictures.
  (3) store cost against the collections' size: an aliased catalog of --store-urls URLs into a
      database pre-filled (pymongo) with 1,000 and then with 50,000 images and sources
      documents; the store time per entry is the worker's own histogram
      (pixflow_stage_seconds{stage="store"} on /metrics: sum / count).

Entries/s = entries finished (stored + aliased + ...) / seconds from the first XADD to the last
finished entry. Targets (issue): aliased >= 0.8 x distinct; store time at 50k within 1.5 x of 1k.

    python3 tests/bench/bench_aliases.py [--build-dir DIR] [--urls N] [--workers W]
        [--store-urls N] [--seconds S] [--keep]
"""
import argparse
import os
import random
import re
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pipeline as bp  # noqa: E402  (re-executes itself under the venv when needed)

pymongo, redis = bp.pymongo, bp.redis

IMAGE_COUNT = 1085  # tests/picsum/route.h ROUTE_IMAGE_COUNT
M64 = (1 << 64) - 1


def fnv1a(h, data):
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & M64
    return h


def mix64(x):
    x = (x + 0x9e3779b97f4a7c15) & M64
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M64
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & M64
    return x ^ (x >> 31)


def picture_id(w, h, query):
    """The photograph a --deterministic pixflow-picsum serves for /W/H?query."""
    x = fnv1a(0xcbf29ce484222325, f"{w}/{h}?".encode())
    return mix64(fnv1a(x, query.encode())) % IMAGE_COUNT


def aliased_catalog(n, share, seed, salt):
    """n URLs, at least share of them aliases: groups of URLs of one size whose queries land on
    the same photograph. Returns (urls in shuffled order, number of distinct pictures)."""
    rng = random.Random(seed)
    pictures = max(1, int(n * (1 - share)))
    per = n // pictures
    urls = []
    sizes = bp.pipeline_sizes(pictures, seed)
    for k, (w, h) in enumerate(sizes):
        want = per + (1 if k < n - per * pictures else 0)
        buckets = {}
        i = 0
        while True:
            q = f"{salt}={i}"
            group = buckets.setdefault(picture_id(w, h, q), [])
            group.append(q)
            i += 1
            if len(group) == want:
                break
        urls += [f"https://picsum.photos/{w}/{h}?{q}" for q in group]
    rng.shuffle(urls)
    return urls, pictures


def check_hash(stack, w, h, query):
    """The server's redirect names the photograph picture_id() predicts."""
    conn = socket.create_connection(tuple(stack.env["PIXFLOW_PICSUM_HTTP"].rsplit(":", 1)))
    conn.sendall(f"GET /{w}/{h}?{query} HTTP/1.0\r\nHost: picsum.photos\r\n\r\n".encode())
    head = conn.recv(4096).decode(errors="replace")
    conn.close()
    m = re.search(r"Location: [^\r\n]*/id/(\d+)/", head)
    if not m or int(m.group(1)) != picture_id(w, h, query):
        sys.exit(f"the image server does not pick photographs as expected:\n{head[:400]}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def store_seconds(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = re.search(r'pixflow_stage_seconds_sum\{stage="store"\} ([0-9.e+-]+)', text)
    count = re.search(r'pixflow_stage_seconds_count\{stage="store"\} (\d+)', text)
    return float(total.group(1)), int(count.group(1))


def prefill(env, n):
    """n images documents (small PNG-sized base64, random ids) and their sources documents."""
    db = pymongo.MongoClient(env["PIXFLOW_MONGO_URI"])[env["bench_db"]]
    rng = random.Random(n)
    blob = "A" * 4000
    for start in range(0, n, 1000):
        images, sources = [], []
        for i in range(start, min(n, start + 1000)):
            sha = "%064x" % rng.getrandbits(256)
            url = f"https://picsum.photos/{1 + i % 5000}/{1 + i // 5000}?fill={i}"
            images.append({"_id": sha, "image": blob, "sha256": sha, "format": "png",
                           "width": 1, "height": 1, "channels": 1, "bytes": 3000,
                           "source": url, "stream_id": f"1-{i}", "consumer": "fill"})
            sources.append({"_id": url, "image": sha, "role": "source", "stream_id": f"1-{i}",
                            "consumer": "fill"})
        db.images.insert_many(images, ordered=False)
        db.sources.insert_many(sources, ordered=False)


def run(args, stack, tmp, label, urls, fill=0):
    """One pipeline run of urls into a fresh database; returns its figures."""
    prefix, database = f"{label}:", f"bench_{label}"
    env = bp.run_env(stack, args.build_dir, prefix, database)
    env["bench_db"] = database
    if fill:
        t0 = time.monotonic()
        prefill(env, fill)
        print(f"  [{label}] pre-filled {fill} documents in {time.monotonic() - t0:.1f} s",
              flush=True)
    catalog = tmp / f"{label}.txt"
    catalog.write_text("".join(u + "\n" for u in urls))
    r = redis.Redis.from_url(stack.env["PIXFLOW_REDIS_URL"])
    ports = [free_port() for _ in range(args.workers)]
    workers = [bp.Consumer(args.build_dir, env, f"{label}-w{k + 1}",
                           ["--threads", str(bp.CORES), "--drain-timeout", "2s", "--http",
                            f"127.0.0.1:{ports[k]}"], tmp)
               for k in range(args.workers)]
    try:
        bp.wait_ready(r, prefix, workers)
        t0 = time.monotonic()
        bp.ingest(args.build_dir, env, catalog)
        st = bp.wait_processed(r, prefix, workers, len(urls), args.seconds)
        wall = time.monotonic() - t0
        store = [store_seconds(p) for p in ports]
    finally:
        for w in workers:
            w.stop()
    done = bp.finished(st)
    total, count = sum(s for s, _ in store), sum(c for _, c in store)
    db = pymongo.MongoClient(env["PIXFLOW_MONGO_URI"])[database]
    return {"label": label, "n": len(urls), "finished": done, "wall": wall,
            "rate": done / wall, "stored": st.get("stored", 0), "aliased": st.get("aliased", 0),
            "failed": st.get("failed", 0), "store_ms": 1000 * total / count if count else 0,
            "images": db.images.count_documents({}), "sources": db.sources.count_documents({}),
            "capped": done < len(urls)}


def show(f):
    print(f"  {f['label']:<10} {f['finished']:>6}/{f['n']:<6} entries in {f['wall']:6.1f} s = "
          f"{f['rate']:7.1f} entries/s  (stored {f['stored']}, aliased {f['aliased']}, "
          f"failed {f['failed']}; store {f['store_ms']:.2f} ms/entry; {f['images']} images, "
          f"{f['sources']} sources){'  CAPPED' if f['capped'] else ''}", flush=True)


def verdict(ok):
    return "met" if ok else "MISSED"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", type=Path,
                    default=Path(os.environ.get("PIXFLOW_BUILD_DIR", bp.ROOT / "build")))
    ap.add_argument("--urls", type=int, default=2000)
    ap.add_argument("--store-urls", type=int, default=1000)
    ap.add_argument("--alias-share", type=float, default=0.7)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-aliases-"))
    stack = bp.Stack(tmp / "stack", args.build_dir)
    stack.start()
    try:
        distinct = [bp.url_of(wh) for wh in bp.pipeline_sizes(args.urls, args.seed)]
        aliased, pictures = aliased_catalog(args.urls, args.alias_share, args.seed + 1, "k")
        w, h, q = re.match(r".*/(\d+)/(\d+)\?(.*)", aliased[0]).groups()
        check_hash(stack, int(w), int(h), q)
        print(f"pixflow pipeline, {args.workers} worker(s) x {bp.CORES} threads, FerretDB, "
              f"{os.cpu_count()} cores")
        print(f"  aliased catalog: {len(aliased)} URLs over {pictures} pictures "
              f"({100 * (1 - pictures / len(aliased)):.0f} % aliases)")
        a = run(args, stack, tmp, "distinct", distinct)
        show(a)
        b = run(args, stack, tmp, "aliased", aliased)
        show(b)
        small, _ = aliased_catalog(args.store_urls, args.alias_share, args.seed + 2, "s")
        c = run(args, stack, tmp, "fill1k", small, fill=1000)
        show(c)
        d = run(args, stack, tmp, "fill50k", small, fill=50000)
        show(d)
        ratio = b["rate"] / a["rate"] if a["rate"] else 0
        growth = d["store_ms"] / c["store_ms"] if c["store_ms"] else 0
        print(f"aliased / distinct entries/s: {ratio:.2f} (target >= 0.8: {verdict(ratio >= 0.8)})")
        print(f"store ms/entry at 50k / at 1k documents: {d['store_ms']:.2f} / "
              f"{c['store_ms']:.2f} = {growth:.2f} (target <= 1.5: {verdict(growth <= 1.5)})")
    finally:
        stack.stop()
        if not args.keep:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


if __name__ == "__main__":
    main()
