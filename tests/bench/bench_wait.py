#!/usr/bin/env python3
"""bench_wait.py -- what PIXFLOW_REDIS_WAIT_REPLICAS costs pixflow-ingest.

A benchmark, not a test: it prints figures and asserts nothing. It starts a redis-server primary
and one replica on loopback (no persistence), generates bench_ingest.py's catalog, then for each
--batch size alternates, --runs times each, pixflow-ingest with PIXFLOW_REDIS_WAIT_REPLICAS=0
(batches pipelined, acknowledged by the primary) and =1 (each batch one transaction confirmed by
WAIT 1, one batch in flight), and prints the medians: wall time, lines/s, and the time one batch
takes with WAIT. Loopback hides the network: on real machines add a round trip to the replica per
batch.

    python3 tests/bench/bench_wait.py [--lines N] [--runs R] [--batch B[,B...]] [--build-dir DIR]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_ingest import ROOT, free_port, make_catalog


def start(data, port, *extra):
    data.mkdir()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(data), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if cli(port, "PING") == "PONG":
            return proc
        time.sleep(0.1)
    sys.exit(f"redis-server on {port} did not start")


def cli(port, *args):
    res = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True)
    return res.stdout.decode().strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", default="100,1000")
    ap.add_argument("--build-dir", default=os.environ.get("PIXFLOW_BUILD_DIR", ROOT / "build"))
    args = ap.parse_args()
    ingest = Path(args.build_dir) / "bin" / "pixflow-ingest"
    if not ingest.exists():
        sys.exit(f"{ingest} is not built")
    batches = [int(b) for b in args.batch.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench_wait_") as tmp:
        tmp = Path(tmp)
        catalog = tmp / "catalog.txt"
        uniques = make_catalog(catalog, args.lines)
        port, rport = free_port(), free_port()
        servers = [start(tmp / "primary", port)]
        try:
            servers.append(start(tmp / "replica", rport, "--replicaof", "127.0.0.1", str(port)))
            while "master_link_status:up" not in cli(rport, "INFO", "replication"):
                time.sleep(0.1)
            env = dict(os.environ, PIXFLOW_REDIS_URL=f"redis://127.0.0.1:{port}/0",
                       PIXFLOW_LOG_LEVEL="warn")

            def run(batch, wait):
                cli(port, "FLUSHALL")
                t0 = time.perf_counter()
                subprocess.run([str(ingest), "--batch", str(batch), str(catalog)], check=True,
                               stdout=subprocess.DEVNULL,
                               env=dict(env, PIXFLOW_REDIS_WAIT_REPLICAS=str(wait)))
                wall = time.perf_counter() - t0
                if int(cli(port, "XLEN", "pixflow:urls")) != len(uniques):
                    sys.exit("ingest did not queue the whole catalog")
                return wall

            print(f"catalog: {args.lines} lines, {len(uniques)} unique valid URLs; primary and "
                  f"one replica on loopback; {args.runs} runs each, medians")
            for batch in batches:
                run(batch, 0), run(batch, 1)  # warm-up, unmeasured
                walls = {0: [], 1: []}
                for i in range(args.runs):
                    for wait in ((0, 1) if i % 2 == 0 else (1, 0)):
                        walls[wait].append(run(batch, wait))
                nbatches = -(-args.lines // batch)
                for wait in (0, 1):
                    t = statistics.median(walls[wait])
                    print(f"  --batch {batch:5d} WAIT_REPLICAS={wait}: {t:7.3f} s "
                          f"{args.lines / t:10.0f} lines/s  {1000 * t / nbatches:6.2f} ms/batch")
                print(f"  --batch {batch:5d} cost of WAIT: "
                      f"{statistics.median(walls[1]) / statistics.median(walls[0]):.2f}x")
        finally:
            for s in servers:
                s.terminate()
                s.wait(10)


if __name__ == "__main__":
    main()
