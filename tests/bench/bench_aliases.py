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

With --kill, instead: 2 workers on the distinct catalog, the finished count sampled every 0.5 s;
at --kill-at (40 %) of the entries finished, kill -9 of one worker and, at once, a replacement
under the same consumer name (what a supervisor does; it re-reads its own pending list at start).
Prints entries/s from 10 % to the kill and from the kill to the last entry, their ratio (target
>= 0.9), and whether anything was lost (finished == entries, nothing pending, the counters
reconcile as tests/integration/pixflow_helpers.reconcile checks). Then the same without a
replacement (informative): the survivor gets the dead worker's entries after --reclaim-idle.

    python3 tests/bench/bench_aliases.py [--build-dir DIR] [--urls N] [--workers W]
        [--store-urls N] [--seconds S] [--keep]
    python3 tests/bench/bench_aliases.py --kill [--urls N] [--kill-at F] [--reclaim-idle S]
"""
import argparse
import os
import random
import re
import socket
import sys
import tempfile
import time
import urllib.parse
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


def warm(stack, catalogs):
    """Every URL fetched once from the image server, so every run is served from its cache and
    none pays for the first rendering of a picture."""
    paths = sorted({urllib.parse.urlsplit(u)._replace(scheme="", netloc="").geturl()
                    for urls in catalogs for u in urls})
    t0 = time.monotonic()
    bp.fetch_paths(stack.env["PIXFLOW_PICSUM_HTTP"], paths, lambda i, body: None)
    print(f"  image server warmed: {len(paths)} URLs in {time.monotonic() - t0:.1f} s",
          flush=True)


# ---- kill -9 of a worker mid-run ----


def rate_between(samples, lo, hi):
    """Entries/s between the first samples (t, finished) at or past lo and hi finished."""
    a = next((s for s in samples if s[1] >= lo), None)
    b = next((s for s in samples if s[1] >= hi), None)
    if not a or not b or b[0] <= a[0]:
        return float("nan")
    return (b[1] - a[1]) / (b[0] - a[0])


def kill_run(args, stack, tmp, label, urls, replace, ph):
    """2 workers on urls; at --kill-at of the entries finished, kill -9 the first one and, when
    replace, start another under the same consumer name at once (it re-reads its own pending
    list at start). Samples the finished count every 0.5 s; returns the figures. ph: the
    integration tests' pixflow_helpers (Keys, reconcile)."""
    prefix, database = f"{label}:", f"bench_{label}"
    env = bp.run_env(stack, args.build_dir, prefix, database)
    catalog = tmp / f"{label}.txt"
    catalog.write_text("".join(u + "\n" for u in urls))
    r = redis.Redis.from_url(stack.env["PIXFLOW_REDIS_URL"])
    keys = ph.Keys(r, prefix)
    # A lower --reclaim-idle, so that without a replacement the dead worker's entries come back
    # within the run; it must exceed --entry-deadline plus --fetch-timeout (consumer/main.c).
    flags = ["--threads", str(bp.CORES), "--drain-timeout", "2s", "--reclaim-idle",
             f"{args.reclaim_idle:g}s", "--entry-deadline", "5s", "--fetch-timeout", "10s",
             "--reclaim-every", "1s"]
    (tmp / label).mkdir()
    ports = {}

    def start(name, log_dir):
        ports[name] = free_port()
        return bp.Consumer(args.build_dir, env, name,
                           flags + ["--http", f"127.0.0.1:{ports[name]}"], log_dir)

    workers = [start(f"{label}-w{k + 1}", tmp / label) for k in range(2)]
    n, samples, killed, t_kill, at_kill = len(urls), [], None, None, None
    held = up = reclaim_back = None
    try:
        bp.wait_ready(r, prefix, workers)
        t0 = time.monotonic()
        bp.ingest(args.build_dir, env, catalog)
        deadline, next_sample = t0 + args.seconds, t0
        while True:
            now = time.monotonic()
            st = bp.stats(r, prefix)
            done = bp.finished(st)
            if now >= next_sample or done >= n:
                samples.append((now - t0, done))
                next_sample += 0.5
            if killed is None and done >= args.kill_at * n:
                killed = workers[0]
                killed.proc.kill()
                t_kill, at_kill = now - t0, done
                samples.append((t_kill, done))
                killed.proc.wait()
                killed.log_file.close()
                held = keys.pending_by_consumer().get(killed.name, 0)
                if replace:
                    (tmp / label / "replacement").mkdir()
                    workers[0] = start(killed.name, tmp / label / "replacement")
                    bp.wait_ready(r, prefix, [workers[0]])
                    up = time.monotonic() - t0 - t_kill
                else:
                    workers = workers[1:]
            if reclaim_back is None and st.get("reclaimed", 0) > 0:
                reclaim_back = now - t0 - t_kill
            if (done >= n and keys.pending() == 0) or now > deadline:
                break
            for w in workers:
                if not w.alive():
                    sys.exit(f"{w.name} exited early ({w.proc.returncode}):\n{w.tail()}")
            time.sleep(0.05)
        # The store's own time per entry in each live worker (its /metrics histogram): a
        # redelivery reads before it writes, a first delivery only writes (store/store.c).
        store = {("replacement" if replace and w is workers[0] else "survivor"):
                 store_seconds(ports[w.name]) for w in workers}
    finally:
        for w in workers:
            w.stop()
    st = bp.stats(r, prefix)
    documents = pymongo.MongoClient(env["PIXFLOW_MONGO_URI"])[database].images.count_documents({})
    # The last entry, or where the cap stopped the run (then the rate covers what was done).
    t_end, at_end = next((s for s in samples if s[1] >= n), samples[-1])
    after = (at_end - at_kill) / (t_end - t_kill) if t_kill and t_end > t_kill else float("nan")
    return {"label": label, "n": n, "replace": replace, "finished": bp.finished(st),
            "pending": keys.pending(), "documents": documents, "stats": st,
            "reconcile": ph.reconcile(st, documents), "t_kill": t_kill, "t_end": t_end,
            "capped": at_end < n,
            "before": rate_between(samples, 0.1 * n, at_kill) if t_kill else float("nan"),
            "after": after, "held": held, "up": up, "reclaim_back": reclaim_back,
            "store": store}


def show_kill(f, target):
    if f["t_kill"] is None:
        print(f"  no kill: {f['finished']}/{f['n']} entries finished within --seconds, short of "
              "--kill-at", flush=True)
        return
    ratio = f["after"] / f["before"] if f["before"] else float("nan")
    what = ("replacement started at once, same consumer name" if f["replace"]
            else "no replacement, the survivor alone")
    print(f"  {what}: before the kill (10 % -> kill) {f['before']:.1f} entries/s, after "
          f"(kill -> {'cap' if f['capped'] else 'last entry'}) {f['after']:.1f} entries/s, "
          f"ratio {ratio:.2f}"
          + (f" (target >= 0.9: {verdict(ratio >= 0.9)})" if target else " (informative)"),
          flush=True)
    t_end = f"{f['t_end']:.1f} s" + (" (CAPPED: --seconds)" if f["capped"] else "")
    print(f"    killed at {f['t_kill']:.1f} s with {f['held']} entries pending at it; last entry "
          f"at {t_end}" + (f"; replacement reading after {f['up']:.2f} s" if f["up"] else "")
          + (f"; first reclaim {f['reclaim_back']:.1f} s after the kill"
             if f["reclaim_back"] is not None else "; nothing reclaimed"), flush=True)
    print("    store time per entry (worker's histogram): " + ", ".join(
        f"{who} {1000 * total / count if count else 0:.1f} ms over {count} entries"
        for who, (total, count) in f["store"].items()), flush=True)
    st = f["stats"]
    left = f["n"] - f["finished"]
    if f["capped"]:  # not lost: still in the stream, pending or not yet delivered
        fate = f"{left} not finished by the cap"
    else:
        fate = "none lost" if left == 0 else f"{left} LOST"
    print(f"    finished {f['finished']}/{f['n']} ({fate}), pending {f['pending']}, {f['documents']} images; stored {st.get('stored', 0)}, "
          f"aliased {st.get('aliased', 0)}, failed {st.get('failed', 0)}, received "
          f"{st.get('received', 0)}, reclaimed {st.get('reclaimed', 0)}; counters reconcile: "
          f"{f['reconcile'] or 'yes'}", flush=True)


def kill_figures(args, stack, tmp):
    sys.path.insert(0, str(bp.ROOT / "tests" / "integration"))
    try:  # Keys and reconcile: what the integration tests check (they need pytest)
        import pixflow_helpers as ph
    except ImportError as exc:
        sys.exit(f"--kill needs tests/integration/pixflow_helpers.py and {exc.name} "
                 "(.cache/venv has them)")
    urls = [bp.url_of(wh) for wh in bp.pipeline_sizes(args.urls, args.seed)]
    print(f"kill -9 of one of 2 workers x {bp.CORES} threads at {100 * args.kill_at:.0f} % of "
          f"{len(urls)} distinct URLs; --reclaim-idle {args.reclaim_idle:g}s; FerretDB, "
          f"{os.cpu_count()} cores", flush=True)
    warm(stack, [urls])
    show_kill(kill_run(args, stack, tmp, "kill-replaced", urls, True, ph), True)
    show_kill(kill_run(args, stack, tmp, "kill-alone", urls, False, ph), False)


def show(f):
    print(f"  {f['label']:<10} {f['finished']:>6}/{f['n']:<6} entries in {f['wall']:6.1f} s = "
          f"{f['rate']:7.1f} entries/s  (stored {f['stored']}, aliased {f['aliased']}, "
          f"failed {f['failed']}; store {f['store_ms']:.2f} ms/entry; {f['images']} images, "
          f"{f['sources']} sources){'  CAPPED' if f['capped'] else ''}", flush=True)


def verdict(ok):
    return "met" if ok else "MISSED"


def catalog_args(ap):
    """The flags of the two catalogs and of a run, shared with bench_celery.py so that its
    defaults (seeds included) give the same catalogs as this program's."""
    ap.add_argument("--build-dir", type=Path,
                    default=Path(os.environ.get("PIXFLOW_BUILD_DIR", bp.ROOT / "build")))
    ap.add_argument("--urls", type=int, default=2000)
    ap.add_argument("--alias-share", type=float, default=0.7)
    ap.add_argument("--seconds", type=float, default=300, help="cap on each run")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    catalog_args(ap)
    ap.add_argument("--store-urls", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--kill", action="store_true",
                    help="instead: the kill -9 figures, 2 workers on the distinct catalog")
    ap.add_argument("--kill-at", type=float, default=0.4, help="share finished at the kill")
    ap.add_argument("--reclaim-idle", type=float, default=20,
                    help="the workers' --reclaim-idle in seconds with --kill (above 15)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-aliases-"))
    stack = bp.Stack(tmp / "stack", args.build_dir)
    stack.start()
    try:
        if args.kill:
            kill_figures(args, stack, tmp)
            return
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
