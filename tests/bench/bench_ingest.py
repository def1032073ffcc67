#!/usr/bin/env python3
"""bench_ingest.py -- pixflow-ingest against `redis-cli --pipe` pushing the same XADDs.

A benchmark, not a test: it prints figures and asserts nothing. It generates a catalog
(default 1,000,000 lines: 10% duplicates, 5% invalid) in a temporary folder, then for each
persistence setting (--persistence: `off`, no AOF and no snapshots; `always`, AOF with
`appendfsync always`, the setting under which an acked XADD survives a crash of the machine;
both by default) starts its own redis-server on a free port with its data in that folder, warms
it up with one unmeasured run of each, then alternates (in turn first), --runs times each:
  - pixflow-ingest CATALOG (wall time, and peak RSS through /usr/bin/time),
  - FLUSHALL, and redis-cli --pipe fed the XADDs ingest would send for the same catalog
    (the RESP is generated here, before the clock starts),
and prints the medians per setting: lines/s, XADD/s, the ratio of the two wall times, peak RSS.

    python3 tests/bench/bench_ingest.py [--lines N] [--runs R] [--build-dir DIR] [--batch B]
                                        [--persistence off|always|both]
"""
import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_catalog(path, lines, seed=7):
    """Valid unique URLs, with 10% duplicates (exact and only-normalization-differs) and 5%
    invalid lines mixed in. Returns the normalized unique URLs in first-seen order, with the
    line number where each first appears."""
    rng = random.Random(seed)
    bad = ["ftp://picsum.photos/200/300", "https://example.com/200/300",
           "https://picsum.photos/0/300", "https://picsum.photos/6000/10", "not a url",
           "https://user:pw@picsum.photos/1/1", "https://picsum.photos/abc/def"]
    uniques, out = [], []
    n = 0
    for line_no in range(1, lines + 1):
        r = rng.random()
        if r < 0.05:
            out.append(rng.choice(bad))
        elif r < 0.15 and uniques:
            url, _ = uniques[rng.randrange(len(uniques))]
            variant = rng.randrange(4)
            if variant == 1:
                url = url.replace("https://picsum.photos", "HTTPS://Picsum.Photos")
            elif variant == 2:
                url += "/"
            elif variant == 3:
                url = url.replace("picsum.photos/", "picsum.photos:443/")
            out.append(url)
        else:
            url = f"https://picsum.photos/{1 + n % 5000}/{1 + n // 5000}"
            n += 1
            uniques.append((url, line_no))
            out.append(url)
    Path(path).write_text("\n".join(out) + "\n")
    return uniques


def resp(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


def run_measured(argv, tmp, stdin=None, env=None):
    """Run argv; returns (wall seconds, peak RSS in KiB of that process).

    The RSS comes from /usr/bin/time, which forks the program from a small process: a child
    forked straight from this (large) Python process would count Python's pages as its own."""
    rss_file = Path(tmp) / "rss"
    wrapped = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *argv]
    t0 = time.perf_counter()
    proc = subprocess.run(wrapped, stdin=stdin, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode()}")
    return wall, int(rss_file.read_text().split()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--persistence", choices=["off", "always", "both"], default="both")
    ap.add_argument("--build-dir", default=os.environ.get("PIXFLOW_BUILD_DIR", ROOT / "build"))
    args = ap.parse_args()
    ingest = Path(args.build_dir) / "bin" / "pixflow-ingest"
    if not ingest.exists():
        sys.exit(f"{ingest} is not built")
    for tool in ("redis-server", "redis-cli", "/usr/bin/time"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing")

    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        tmp = Path(tmp)
        catalog = tmp / "catalog.txt"
        uniques = make_catalog(catalog, args.lines)
        with open(tmp / "xadd.resp", "wb") as f:
            for url, line in uniques:
                f.write(resp("XADD", "pixflow:urls", "*", "url", url, "source", str(catalog),
                             "line", line))
        settings = ["off", "always"] if args.persistence == "both" else [args.persistence]
        results = {p: bench(p, args, ingest, catalog, uniques, tmp) for p in settings}

    n = len(uniques)
    print(f"catalog: {args.lines} lines, {n} unique valid URLs "
          f"({args.lines - n} duplicates or invalid); {args.runs} runs each, medians")
    for persistence, (ingest_runs, pipe_runs) in results.items():
        t_ingest = statistics.median(w for w, _ in ingest_runs)
        t_pipe = statistics.median(w for w, _ in pipe_runs)
        rss = max(r for _, r in ingest_runs)
        print(f"persistence {PERSISTENCE[persistence][0]}:")
        print(f"  pixflow-ingest : {t_ingest:7.3f} s  {args.lines / t_ingest:10.0f} lines/s  "
              f"{n / t_ingest:10.0f} XADD/s  peak RSS {rss / 1024:.1f} MiB")
        print(f"  redis-cli --pipe: {t_pipe:7.3f} s  {'':>10}          "
              f"{n / t_pipe:10.0f} XADD/s")
        print(f"  ratio (pipe time / ingest time, same XADDs): {t_pipe / t_ingest:.2f}")
        print("  all runs (s): ingest " + " ".join(f"{w:.3f}" for w, _ in ingest_runs) +
              " | pipe " + " ".join(f"{w:.3f}" for w, _ in pipe_runs))


# What redis-server is started with for each --persistence setting.
PERSISTENCE = {
    "off": ("off (no AOF, no snapshots)", ["--appendonly", "no"]),
    "always": ("AOF, appendfsync always", ["--appendonly", "yes", "--appendfsync", "always"]),
}


def bench(persistence, args, ingest, catalog, uniques, tmp):
    """Runs both programs against a fresh redis-server with this persistence; returns the
    (wall, rss) lists of ingest and of redis-cli --pipe."""
    data = tmp / f"redis-{persistence}"
    data.mkdir()
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--dir", str(data), *PERSISTENCE[persistence][1]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli = ["redis-cli", "-p", str(port)]
    try:
        for _ in range(100):
            if subprocess.run(cli + ["PING"], capture_output=True).stdout.strip() == b"PONG":
                break
            time.sleep(0.1)
        env = dict(os.environ, PIXFLOW_REDIS_URL=f"redis://127.0.0.1:{port}/0",
                   PIXFLOW_PREFIX="pixflow:", PIXFLOW_LOG_LEVEL="warn")

        def run_ingest():
            subprocess.run(cli + ["FLUSHALL"], check=True, capture_output=True)
            m = run_measured([str(ingest), "--batch", str(args.batch), str(catalog)], tmp,
                             env=env)
            xlen = int(subprocess.run(cli + ["XLEN", "pixflow:urls"], check=True,
                                      capture_output=True).stdout)
            if xlen != len(uniques):
                sys.exit(f"ingest queued {xlen} entries, expected {len(uniques)}")
            return m

        def run_pipe():
            subprocess.run(cli + ["FLUSHALL"], check=True, capture_output=True)
            with open(tmp / "xadd.resp", "rb") as f:
                return run_measured(cli + ["--pipe"], tmp, stdin=f)

        # One unmeasured round first: a fresh redis-server pays its page faults once, and
        # not on whichever program happens to go first.
        run_ingest()
        run_pipe()
        ingest_runs, pipe_runs = [], []
        for i in range(args.runs):
            if i % 2:
                pipe_runs.append(run_pipe())
                ingest_runs.append(run_ingest())
            else:
                ingest_runs.append(run_ingest())
                pipe_runs.append(run_pipe())
        return ingest_runs, pipe_runs
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
