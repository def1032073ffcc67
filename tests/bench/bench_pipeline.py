#!/usr/bin/env python3
"""bench_pipeline.py -- the whole pipeline against its compute floor, on the local image server.

A benchmark, not a test: it prints figures and asserts nothing; a missed target is printed as
MISSED and the exit status stays 0. In one run, on a private stack (scripts/stack.sh: Redis,
FerretDB, pixflow-picsum --deterministic) in a temporary folder:

  (a) compute floor: downloads once, straight from the image server, the very pictures the
      pipeline will fetch (--urls distinct W x H from 100x100 to 1920x1080, fixed seed), then runs
      `bench_compute --threads CORES` on those files: decode -> grayscale -> PNG -> SHA-256 ->
      base64 in a tight loop, all cores. Its images/s is the floor, its split the CPU stage's.
  (b) pipeline: --workers pixflow-consumer processes wait on the group; pixflow-ingest XADDs the
      same URLs; the clock runs from the first XADD (its stream id) to the last document's
      inserted_at, until every URL is stored or --pipeline-seconds (then the report says CAPPED
      and covers the documents stored by then). Reports images/s, the ratio to (a), the rate
      per quarter of the stored documents, p50/p99 latency XADD -> inserted_at, peak RSS per
      worker (VmHWM, read while it still runs), where the CPU went (per process, the consumer's
      loop thread apart from its other threads, and other processes on this shared machine),
      download times (the consumer's debug fetch_done lines), transform time
      (transform:grayscale:usec), and two probes of the database as the run left it: the read
      store_put makes after a colliding insert or for a redelivery, and a lone insert of a
      document like the stored ones.
  (c) memory under backlog: one worker with --max-inflight 64 on a 1,000-entry backlog, then on a
      100,000-entry backlog of small pictures (distinct W x H in 100..420, so none aliases),
      each stopped with SIGTERM when done or after --rss-seconds; compares peak RSS (VmHWM).

The image server is warm for (b): (a) fetched every picture once, so the server answers from its
cache, like picsum's CDN does. Stage timings the consumer does not record (decode, encode and
store inside the worker) are not estimated: the CPU stage's internal split comes from (a).

    python3 tests/bench/bench_pipeline.py [--build-dir DIR] [--urls N] [--workers W]
        [--threads T] [--compute-seconds S] [--pipeline-seconds S] [--rss-small N]
        [--rss-large N] [--rss-seconds S] [--keep]

Needs redis and pymongo: runs itself again under .cache/venv/bin/python when python3 lacks them.
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".cache" / "venv" / "bin" / "python"

try:
    import pymongo
    import redis
except ImportError:
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parents[1].resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])
    sys.exit("bench_pipeline needs the redis and pymongo modules (.cache/venv has them)")

TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
RSS_INFLIGHT = 64


# ---- URL sets ----


def pipeline_sizes(n, seed):
    """n distinct (W, H), W in 100..1920 and H in 100..1080, uniform: distinct sizes make distinct
    pictures on a --deterministic server, so no URL becomes an alias of another."""
    rng = random.Random(seed)
    seen, out = set(), []
    while len(out) < n:
        wh = (rng.randint(100, 1920), rng.randint(100, 1080))
        if wh not in seen:
            seen.add(wh)
            out.append(wh)
    return out


def small_sizes(n, seed, low=100, high=420):
    """n distinct small (W, H) in low..high, in random order."""
    side = high - low + 1
    if n > side * side:
        sys.exit(f"only {side * side} distinct small sizes, {n} asked")
    return [(low + k % side, low + k // side)
            for k in random.Random(seed).sample(range(side * side), n)]


def url_of(wh):
    return f"https://picsum.photos/{wh[0]}/{wh[1]}"


def write_catalog(path, sizes):
    Path(path).write_text("".join(url_of(wh) + "\n" for wh in sizes))


# ---- processes ----


def cpu_ticks(pid):
    """utime + stime of a process (all its threads, live and gone), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def thread_ticks(pid):
    """{tid: utime + stime} of each live thread of pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = int(fields[11]) + int(fields[12])
        except FileNotFoundError:
            pass
    return out


def machine_busy():
    """Busy clock ticks of the whole machine, all cores (the first line of /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class RssPoller:
    """Samples VmRSS of some processes every 50 ms and keeps each one's maximum."""

    def __init__(self, pids):
        self.peak = {pid: 0 for pid in pids}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop.is_set():
            for pid in self.peak:
                try:
                    self.peak[pid] = max(self.peak[pid], status_kib(pid, "VmRSS"))
                except (FileNotFoundError, ProcessLookupError):
                    pass
            self.stop.wait(0.05)

    def close(self):
        self.stop.set()
        self.thread.join()


class Stack:
    """A private scripts/stack.sh stack in folder; .env holds its PIXFLOW_* variables."""

    def __init__(self, folder, build_dir):
        self.folder = Path(folder)
        self.base = dict(os.environ, PIXFLOW_STACK_DIR=str(self.folder),
                         PIXFLOW_BUILD_DIR=str(build_dir),
                         PIXFLOW_PICSUM_ARGS="--deterministic --cache-mb 1024")
        self.env = {}

    def start(self):
        subprocess.run([str(ROOT / "scripts" / "stack.sh"), "start"], env=self.base, check=True,
                       stdout=subprocess.DEVNULL)
        for line in (self.folder / "env").read_text().splitlines():
            m = re.match(r"export (\w+)='(.*)'$", line)
            if m:
                self.env[m.group(1)] = m.group(2)

    def stop(self):
        subprocess.run([str(ROOT / "scripts" / "stack.sh"), "stop"], env=self.base,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def pid(self, name):
        return int((self.folder / f"{name}.pid").read_text())

    def raw_bucket(self):
        """The bucket the stack keeps originals in (PIXFLOW_RAW_URL s3://BUCKET/...), or exit."""
        url = self.env.get("PIXFLOW_RAW_URL", "")
        if not url.startswith("s3://"):
            sys.exit("the stack keeps no originals in S3 (scripts/stack.sh sets PIXFLOW_RAW_URL)")
        return url[len("s3://"):].split("/", 1)[0]


# ---- (a) the pictures and the compute floor ----


def fetch_paths(picsum_http, paths, each, threads=2):
    """GET each path ("/W/H" or "/W/H?query"), then its redirect's /id/N/W/H.jpg, from the image
    server's plain HTTP port (the same bytes as over HTTPS), on `threads` connections; calls
    each(i, body) for the i-th path. This also has the server render and cache each picture."""
    host, port = picsum_http.rsplit(":", 1)
    errors = []

    def work(first):
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            for i in range(first, len(paths), threads):
                conn.request("GET", paths[i])
                r = conn.getresponse()
                r.read()
                loc = r.getheader("Location")
                if r.status != 302 or not loc:
                    raise RuntimeError(f"{paths[i]}: HTTP {r.status}, no redirect")
                u = urllib.parse.urlsplit(loc)
                conn.request("GET", u.path + ("?" + u.query if u.query else ""))
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise RuntimeError(f"{loc}: HTTP {r.status}")
                each(i, body)
        except Exception as exc:  # reported by the caller, which stops the run
            errors.append(exc)
        finally:
            conn.close()

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    if errors:
        sys.exit(f"downloading the pictures failed: {errors[0]}")


def fetch_pictures(picsum_http, sizes, folder, threads=2):
    """Downloads /W/H for each size (fetch_paths); writes the JPEGs, returns [(path, sha256
    hex)] in sizes' order."""
    out = [None] * len(sizes)

    def keep(i, body):
        w, h = sizes[i]
        path = Path(folder) / f"{i:05d}-{w}x{h}.jpg"
        path.write_bytes(body)
        out[i] = (path, hashlib.sha256(body).hexdigest())

    fetch_paths(picsum_http, [f"/{w}/{h}" for w, h in sizes], keep, threads)
    return out


def compute_floor(build_dir, files, seconds):
    """bench_compute's JSON, plus "others": the share of the machine other processes took while
    it ran (the machine is shared; the floor is only as good as the cores it got)."""
    bench = Path(build_dir) / "bin" / "bench_compute"
    plugins = Path(build_dir) / "lib" / "pixflow" / "plugins"
    argv = [str(bench), "--json", "--threads", str(CORES), "--seconds", str(seconds),
            "--plugins", str(plugins), *map(str, files)]
    busy0, ru0, t0 = machine_busy(), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True)
    busy1, ru1, wall = machine_busy(), resource.getrusage(resource.RUSAGE_CHILDREN), \
        time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"bench_compute failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout)
    own = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    out["others"] = max(0.0, (busy1 - busy0) / TICK - own) / (wall * CORES)
    return out


# ---- the consumer ----


class Consumer:
    def __init__(self, build_dir, env, name, args, log_dir):
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(Path(build_dir) / "bin" / "pixflow-consumer"), "--consumer", name, *args],
            env=env, stdout=self.log_file, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=15):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        return self.proc.returncode

    def tail(self):
        return self.log_path.read_text(errors="replace")[-3000:]


def run_env(stack, build_dir, prefix, database, level="warn"):
    mongo = urllib.parse.urlsplit(stack.env["PIXFLOW_MONGO_URI"])
    env = dict(os.environ, **stack.env)
    env.update(PIXFLOW_PREFIX=prefix,
               PIXFLOW_MONGO_URI=urllib.parse.urlunsplit(mongo._replace(path="/" + database)),
               PIXFLOW_PLUGIN_PATH=str(Path(build_dir) / "lib" / "pixflow" / "plugins"),
               PIXFLOW_LOG_LEVEL=level)
    return env


def ingest(build_dir, env, catalog):
    proc = subprocess.run([str(Path(build_dir) / "bin" / "pixflow-ingest"), str(catalog)],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"pixflow-ingest failed ({proc.returncode}): {proc.stderr[-2000:]}")


def stats(r, prefix):
    return {k.decode(): int(v) for k, v in r.hgetall(prefix + "stats").items()}


def finished(st):
    return sum(st.get(k, 0) for k in ("stored", "aliased", "failed", "duplicates", "invalid"))


def wait_ready(r, prefix, workers, timeout=30):
    """Until every worker has read the stream once (it shows in XINFO CONSUMERS)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            names = {c["name"].decode() for c in r.xinfo_consumers(prefix + "urls", "pixflow")}
        except redis.ResponseError:  # no stream or no group yet
            names = set()
        if all(w.name in names for w in workers):
            return
        for w in workers:
            if not w.alive():
                sys.exit(f"{w.name} exited at start:\n{w.tail()}")
        if time.monotonic() > deadline:
            sys.exit(f"workers not reading after {timeout} s:\n" + workers[0].tail())
        time.sleep(0.05)


def wait_processed(r, prefix, workers, target, timeout):
    """Poll the counters until target entries are finished, a worker dies or timeout; returns
    the last counters."""
    deadline = time.monotonic() + timeout
    while True:
        st = stats(r, prefix)
        if finished(st) >= target:
            return st
        for w in workers:
            if not w.alive():
                sys.exit(f"{w.name} exited early ({w.proc.returncode}):\n{w.tail()}")
        if time.monotonic() > deadline:
            return st
        time.sleep(0.05)


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def stream_ms(stream_id):
    return int(stream_id.split("-", 1)[0])


def store_probe(db, url, ferretdb_pid, copies=20):
    """On the collection as the run left it: times the read store_put makes after a colliding
    insert or for a redelivery (pixflow's store_settle: the documents whose source or aliases hold the URL), and what
    inserting documents like the stored ones costs alone (copies with a fresh _id and source, in
    a scratch collection dropped afterwards), in wall time and in the server's CPU."""
    flt = {"$or": [{"source": url}, {"aliases": url}]}
    proj = {"_id": 1, "source": 1, "stream_id": 1, "alias_from": 1}
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        list(db.images.find(flt, proj))
        best = min(best, time.perf_counter() - t0)
    try:
        pushdown = db.command("explain", {"find": "images", "filter": flt}).get("filterPushdown")
    except pymongo.errors.PyMongoError:
        pushdown = None
    try:
        size = db.command("collStats", "images").get("size", 0)
    except pymongo.errors.PyMongoError:
        size = 0
    samples = list(db.images.find({}).limit(copies))
    scratch = db["bench_probe"]
    cpu0, t0 = cpu_ticks(ferretdb_pid), time.perf_counter()
    for k, doc in enumerate(samples):
        doc["_id"] = hashlib.sha256(f"probe{k}".encode()).hexdigest()
        doc["source"] = f"probe:{k}"
        scratch.insert_one(doc)
    insert_wall = (time.perf_counter() - t0) / max(len(samples), 1)
    insert_cpu = (cpu_ticks(ferretdb_pid) - cpu0) / TICK / max(len(samples), 1)
    scratch.drop()
    return {"ms": best * 1000, "pushdown": pushdown, "size": size,
            "insert_ms": insert_wall * 1000, "insert_cpu_ms": insert_cpu * 1000}


def quarter_rates(done_at, start_ms):
    """Documents/s over each quarter of done_at (sorted store times in ms, from start_ms), in
    storing order: a store whose cost grows with the collection shows as a falling rate."""
    quarters, prev = [], start_ms
    for k in range(4):
        chunk = done_at[k * len(done_at) // 4:(k + 1) * len(done_at) // 4]
        if chunk:
            quarters.append(len(chunk) / max((chunk[-1] - prev) / 1000, 1e-3))
            prev = chunk[-1]
    return quarters


def pipeline(args, stack, pics, tmp, prefix="bench:", database="bench_pipeline", extra=None):
    """(b): returns a dict of figures. extra: environment variables of this run alone."""
    env = dict(run_env(stack, args.build_dir, prefix, database, level="debug"), **(extra or {}))
    r = redis.Redis.from_url(stack.env["PIXFLOW_REDIS_URL"])
    catalog = tmp / f"pipeline-{database}.txt"
    write_catalog(catalog, [wh for wh, _ in pics])
    n = len(pics)

    threads = args.threads or CORES
    workers = [Consumer(args.build_dir, env, f"{prefix.rstrip(':')}-w{k + 1}",
                        ["--threads", str(threads), "--drain-timeout", "2s"], tmp)
               for k in range(args.workers)]
    servers = {"picsum": stack.pid("picsum"), "ferretdb": stack.pid("ferretdb"),
               "redis": stack.pid("redis")}
    if (stack.folder / "s3.pid").exists():
        servers["s3"] = stack.pid("s3")
    try:
        wait_ready(r, prefix, workers)
        poller = RssPoller([w.pid for w in workers])
        cpu0 = {name: cpu_ticks(pid) for name, pid in servers.items()}
        cpu0.update({w.name: cpu_ticks(w.pid) for w in workers})
        thr0 = {w.name: thread_ticks(w.pid) for w in workers}
        busy0 = machine_busy()
        wall0 = time.monotonic()
        ingest(args.build_dir, env, catalog)
        st = wait_processed(r, prefix, workers, n, args.pipeline_seconds)
        wall = time.monotonic() - wall0
        cap_ms = time.time() * 1000
        busy1 = machine_busy()
        cpu1 = {name: cpu_ticks(pid) for name, pid in servers.items()}
        cpu1.update({w.name: cpu_ticks(w.pid) for w in workers})
        thr1 = {w.name: thread_ticks(w.pid) for w in workers}
        hwm = {w.name: status_kib(w.pid, "VmHWM") for w in workers}
        poller.close()
        polled = {w.name: poller.peak[w.pid] for w in workers}
    finally:
        for w in workers:
            w.stop()

    db = pymongo.MongoClient(env["PIXFLOW_MONGO_URI"], tz_aware=True)[database]
    docs = list(db.images.find({}, {"stream_id": 1, "inserted_at": 1, "source": 1,
                                    "origin.sha256": 1}))
    late = sum(1 for d in docs if d["inserted_at"].timestamp() * 1000 > cap_ms)
    probe = store_probe(db, docs[-1]["source"], servers["ferretdb"]) if docs else None
    # Documents the workers finished while stopping, after the run was capped, are left out.
    docs = [d for d in docs if d["inserted_at"].timestamp() * 1000 <= cap_ms]
    want = {url_of(wh): sha for wh, (_, sha) in pics}
    same = sum(1 for d in docs if want.get(d["source"]) == d["origin"]["sha256"])
    lat = sorted(d["inserted_at"].timestamp() * 1000 - stream_ms(d["stream_id"]) for d in docs)
    done_at = sorted(d["inserted_at"].timestamp() * 1000 for d in docs)
    first_xadd = min(stream_ms(d["stream_id"]) for d in docs) if docs else 0
    elapsed = (done_at[-1] - first_xadd) / 1000 if docs else float("nan")
    quarters = quarter_rates(done_at, first_xadd)

    # Per-thread CPU: the thread whose id is the pid runs the event loop (curl, TLS, hiredis);
    # the others are the pool (decode, transforms, PNG, SHA-256, base64, BSON and the MongoDB
    # round trip) and libraries' helper threads.
    loop_cpu = other_cpu = 0
    busiest = []
    for w in workers:
        for tid, ticks in thr1[w.name].items():
            used = (ticks - thr0[w.name].get(tid, 0)) / TICK
            if tid == w.pid:
                loop_cpu += used
            else:
                other_cpu += used
                busiest.append(used)
    server_cpu = {name: (cpu1[name] - cpu0[name]) / TICK for name in servers}
    ours = sum(cpu1[k] - cpu0[k] for k in cpu0) / TICK
    others = max(0.0, (busy1 - busy0) / TICK - ours)

    downloads = []
    for w in workers:
        for line in w.log_path.read_text(errors="replace").splitlines():
            if "event=fetch_done" in line and "result=ok" in line:
                m = re.search(r" ms=([0-9.]+)", line)
                if m:
                    downloads.append(float(m.group(1)))
    downloads.sort()

    ok = st.get("transform:grayscale:ok", 0)
    return {
        "n": n, "finished": finished(st), "stored": st.get("stored", 0),
        "failed": st.get("failed", 0), "aliased": st.get("aliased", 0),
        "reclaimed": st.get("reclaimed", 0), "documents": len(docs), "late": late,
        "same_bytes": same,
        "elapsed": elapsed, "images_per_s": len(docs) / elapsed if docs else 0.0,
        "quarters": quarters, "probe": probe,
        "lat_p50": percentile(lat, 50), "lat_p99": percentile(lat, 99),
        "lat_max": lat[-1] if lat else float("nan"),
        "hwm": hwm, "polled": polled,
        "window": wall, "loop_cpu": loop_cpu, "other_cpu": other_cpu,
        "pool_threads": sorted(busiest, reverse=True)[:threads * len(workers)],
        "server_cpu": server_cpu, "others": others,
        "downloads": downloads,
        "transform_ms": st.get("transform:grayscale:usec", 0) / 1000 / ok if ok else float("nan"),
        "threads": threads,
    }


# ---- (c) memory under backlog ----


def rss_run(args, stack, tmp, sizes, label, extra=None):
    """One worker, --max-inflight 64, on a backlog of len(sizes) entries queued before it starts;
    stopped (SIGTERM) when the backlog is done or after --rss-seconds, VmHWM read first."""
    prefix, database = f"rss{label}:", f"bench_rss{label}"
    env = dict(run_env(stack, args.build_dir, prefix, database), **(extra or {}))
    r = redis.Redis.from_url(stack.env["PIXFLOW_REDIS_URL"])
    catalog = tmp / f"rss{label}.txt"
    write_catalog(catalog, sizes)
    ingest(args.build_dir, env, catalog)
    backlog = r.xlen(prefix + "urls")
    w = Consumer(args.build_dir, env, f"rss{label}",
                 ["--threads", str(args.threads or CORES), "--max-inflight", str(RSS_INFLIGHT),
                  "--drain-timeout", "2s"], tmp)
    try:
        poller = RssPoller([w.pid])
        wait_ready(r, prefix, [w])
        t0 = time.monotonic()
        st = wait_processed(r, prefix, [w], backlog, args.rss_seconds)
        took = time.monotonic() - t0
        hwm = status_kib(w.pid, "VmHWM")
        poller.close()
    finally:
        w.stop()
    return {"backlog": backlog, "processed": finished(st), "seconds": took, "hwm": hwm,
            "polled": poller.peak[w.pid]}


# ---- report ----


def mib(kib):
    return kib / 1024


def report(args, floor, pipe, rss_small, rss_large, pics_bytes, pics_px):
    n = pipe["n"]
    print(f"pixflow pipeline benchmark: {n} distinct URLs, 100x100..1920x1080 (seed {args.seed}), "
          f"{pics_px / n / 1e6:.2f} Mpixel and {pics_bytes / n / 1e3:.0f} kB of JPEG on average; "
          f"{CORES} cores")
    sp = floor["split"]
    print(f"(a) compute floor  {floor['images_per_s']:8.1f} images/s   bench_compute "
          f"--threads {floor['threads']}, {floor['images']} images in {floor['seconds']:.1f} s; "
          f"other processes took {100 * floor['others']:.0f}% of the machine meanwhile")
    print(f"    CPU stage split: decode {100 * sp['decode']:.0f}%  grayscale "
          f"{100 * sp['transform']:.0f}%  PNG {100 * sp['encode']:.0f}%  SHA-256+base64 "
          f"{100 * sp['digest']:.0f}%")

    ratio = pipe["images_per_s"] / floor["images_per_s"] if floor["images_per_s"] else 0
    print(f"(b) pipeline       {pipe['images_per_s']:8.1f} images/s   {args.workers} workers x "
          f"{pipe['threads']} threads, {pipe['documents']} documents in {pipe['elapsed']:.2f} s "
          f"(first XADD -> last inserted_at)")
    if pipe["finished"] < n:
        print(f"    CAPPED: {pipe['documents']} of {n} URLs stored within --pipeline-seconds "
              f"{args.pipeline_seconds:g}; the figures cover those ({pipe['late']} more "
              "stored while the workers stopped are left out)")
    print(f"    ratio pipeline/floor {ratio:.3f}  (target >= 0.80)"
          f"{'' if ratio >= 0.8 else '  MISSED'}")
    print("    images/s by quarter of the stored documents, in storing order: " +
          "  ".join(f"{q:.1f}" for q in pipe["quarters"]))
    print(f"    counters at the cap: stored {pipe['stored']}, aliased {pipe['aliased']}, failed "
          f"{pipe['failed']}, reclaimed {pipe['reclaimed']}; {pipe['same_bytes']}/"
          f"{pipe['documents']} documents downloaded the bytes (a) measured")
    print(f"    latency XADD -> inserted_at: p50 {pipe['lat_p50'] / 1000:.2f} s  p99 "
          f"{pipe['lat_p99'] / 1000:.2f} s  max {pipe['lat_max'] / 1000:.2f} s  (stored "
          f"documents; all URLs queued at once, so mostly queueing)")
    print("    peak RSS per worker: " + ", ".join(
        f"{name} {mib(kib):.1f} MiB (polled VmRSS max {mib(pipe['polled'][name]):.1f})"
        for name, kib in pipe["hwm"].items()))

    win = pipe["window"]
    cap = win * CORES
    used = pipe["loop_cpu"] + pipe["other_cpu"] + sum(pipe["server_cpu"].values()) + \
        pipe["others"]
    docs = max(pipe["documents"], 1)
    print(f"    CPU over the {win:.1f} s run: {used:.1f} of {cap:.1f} core-s "
          f"({100 * used / cap:.0f}%)")
    parts = [("consumer pool + helper threads", pipe["other_cpu"]),
             ("consumer loop threads (curl, TLS, Redis)", pipe["loop_cpu"]),
             ("FerretDB (MongoDB wire + SQLite)", pipe["server_cpu"]["ferretdb"]),
             ("pixflow-picsum (TLS, cached JPEGs)", pipe["server_cpu"]["picsum"]),
             ("redis-server", pipe["server_cpu"]["redis"]),
             ("other processes on the machine", pipe["others"])]
    for name, secs in parts:
        print(f"      {name:42s} {secs:7.2f} core-s {100 * secs / cap:5.1f}%  "
              f"{1000 * secs / docs:8.2f} ms per stored image")
    print("      busiest consumer threads (core-s): " +
          " ".join(f"{t:.2f}" for t in pipe["pool_threads"]) +
          f";  the floor spends {1000 * CORES / floor['images_per_s']:.2f} core-ms per image")
    pr = pipe["probe"]
    if pr:
        push = {True: "yes", False: "no", None: "unknown"}[pr["pushdown"]]
        print(f"    store read probe: find {{$or: [{{source: URL}}, {{aliases: URL}}]}} (store_put's "
              f"lookup after a colliding insert or for a redelivery), on the final collection "
              f"({pipe['documents'] + pipe['late']} documents, {pr['size'] / 1e6:.0f} MB): "
              f"{pr['ms']:.0f} ms; filter pushdown: {push}")
        print(f"    store insert probe: inserting a copy of a stored document alone takes "
              f"{pr['insert_ms']:.1f} ms, {pr['insert_cpu_ms']:.1f} ms of the server's CPU")
    d = pipe["downloads"]
    if d:
        print(f"    stage download (wall, both hops, overlapped): p50 {percentile(d, 50):.1f} ms  "
              f"p99 {percentile(d, 99):.1f} ms  mean {statistics.fmean(d):.1f} ms "
              f"({len(d)} fetch_done lines)")
    else:
        print("    stage download: no fetch_done lines in the workers' debug logs")
    print(f"    stage grayscale (transform:grayscale:usec): {pipe['transform_ms']:.2f} ms/image")
    print("    stages decode, PNG, digest and store inside the worker: not recorded by the "
          "consumer; CPU split from (a), CPU per process above")

    ratio_rss = rss_large["hwm"] / rss_small["hwm"] if rss_small["hwm"] else 0
    for rr in (rss_small, rss_large):
        print(f"(c) backlog {rr['backlog']:6d}: peak RSS {mib(rr['hwm']):6.1f} MiB (polled VmRSS "
              f"max {mib(rr['polled']):.1f})  {rr['processed']} entries done in "
              f"{rr['seconds']:.1f} s, --max-inflight {RSS_INFLIGHT}")
    print(f"    RSS ratio {rss_large['backlog']}/{rss_small['backlog']}-entry backlog "
          f"{ratio_rss:.3f}  (target within 10%)"
          f"{'' if abs(ratio_rss - 1) <= 0.10 else '  MISSED'}")
    for rr in (rss_small, rss_large):
        if rr["processed"] < rr["backlog"]:
            print(f"    the {rr['backlog']}-entry run was stopped (SIGTERM) after "
                  f"{args.rss_seconds:g} s with {rr['backlog'] - rr['processed']} entries left: "
                  "what is compared is memory while the stream holds the backlog")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", type=Path,
                    default=Path(os.environ.get("PIXFLOW_BUILD_DIR", ROOT / "build")))
    ap.add_argument("--urls", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="pool threads per worker (cores)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--compute-seconds", type=float, default=15)
    ap.add_argument("--pipeline-seconds", type=float, default=60,
                    help="cap on the pipeline run, from the first XADD")
    ap.add_argument("--rss-small", type=int, default=1000)
    ap.add_argument("--rss-large", type=int, default=100_000)
    ap.add_argument("--rss-seconds", type=float, default=20, help="cap on each backlog run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = ap.parse_args()
    args.build_dir = args.build_dir.resolve()
    for b in ("bin/pixflow-consumer", "bin/pixflow-ingest", "bin/pixflow-picsum",
              "bin/bench_compute", "lib/pixflow/plugins/grayscale.so"):
        if not (args.build_dir / b).exists():
            sys.exit(f"{args.build_dir / b} is not built")
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is missing")

    tmp = Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    stack = Stack(tmp / "stack", args.build_dir)
    t_all = time.monotonic()

    def step(what, t):
        print(f"  {what} in {time.monotonic() - t:.1f} s", file=sys.stderr)
        return time.monotonic()

    try:
        stack.start()
        t = step("stack started", t_all)
        sizes = pipeline_sizes(args.urls, args.seed)
        (tmp / "pictures").mkdir()
        files = fetch_pictures(stack.env["PIXFLOW_PICSUM_HTTP"], sizes, tmp / "pictures")
        pics = list(zip(sizes, files))
        pics_bytes = sum(p.stat().st_size for p, _ in files)
        pics_px = sum(w * h for w, h in sizes)
        t = step(f"{len(files)} pictures fetched ({pics_bytes / 1e6:.1f} MB)", t)
        floor = compute_floor(args.build_dir, [p for p, _ in files], args.compute_seconds)
        t = step("compute floor measured", t)
        pipe = pipeline(args, stack, pics, tmp)
        t = step("pipeline measured", t)
        small = small_sizes(args.rss_large, args.seed)
        rss_small = rss_run(args, stack, tmp, small[:args.rss_small], "1k")
        rss_large = rss_run(args, stack, tmp, small, "100k")
        step("backlog runs measured", t)
        step("whole run", t_all)
        report(args, floor, pipe, rss_small, rss_large, pics_bytes, pics_px)
    finally:
        stack.stop()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
