#!/usr/bin/env python3
"""bench_pillow.py -- Pillow's Image.open -> convert("L") -> save(PNG), default settings, on the
same pictures as bench_compute, then the comparison: speed on one core and on all cores, and the
size of every stored PNG.

Pillow comes from PyPI in its own venv:
    python3 -m venv .cache/bench-venv && .cache/bench-venv/bin/pip install pillow
    .cache/bench-venv/bin/python tests/bench/bench_pillow.py --build build [--sweep]

Without --samples, the default picsum-like pictures are written once by
`bench_compute --write-samples`. pixflow's figures include SHA-256 and base64, Pillow's do not.
A benchmark prints figures; it asserts nothing."""
import argparse
import glob
import io
import json
import multiprocessing
import os
import subprocess
import sys
import time

from PIL import Image


def pillow_once(data):
    """The Pillow pipeline on one picture; returns (PNG bytes, pixels)."""
    im = Image.open(io.BytesIO(data))
    gray = im.convert("L")
    out = io.BytesIO()
    gray.save(out, "PNG")
    return len(out.getvalue()), im.width * im.height


def pillow_loop(args):
    """One worker: cycle through the pictures until the time is up."""
    datas, first, seconds = args
    images = in_bytes = pixels = 0
    end = time.perf_counter() + seconds
    i = first
    while time.perf_counter() < end:
        data = datas[i % len(datas)]
        _, px = pillow_once(data)
        images += 1
        in_bytes += len(data)
        pixels += px
        i += 1
    return images, in_bytes, pixels


def pillow_run(datas, procs, seconds):
    start = time.perf_counter()
    work = [(datas, k * len(datas) // procs, seconds) for k in range(procs)]
    if procs == 1:
        results = [pillow_loop(work[0])]
    else:
        with multiprocessing.Pool(procs) as pool:
            results = pool.map(pillow_loop, work)
    elapsed = time.perf_counter() - start
    images = sum(r[0] for r in results)
    return {
        "images_per_s": images / elapsed,
        "in_mb_per_s": sum(r[1] for r in results) / elapsed / 1e6,
        "mpixel_per_s": sum(r[2] for r in results) / elapsed / 1e6,
        "images": images,
    }


def bench_compute(bench, files, threads, seconds):
    out = subprocess.run([bench, "--json", "--threads", str(threads), "--seconds", str(seconds)]
                         + files, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    source = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.environ.get("PIXFLOW_BUILD_DIR",
                                                      os.path.join(source, "build")))
    ap.add_argument("--samples", default=os.path.join(source, ".cache", "bench-samples"))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--sweep", action="store_true", help="also run bench_compute's PNG sweep")
    args = ap.parse_args()

    bench = os.path.join(args.build, "bin", "bench_compute")
    files = sorted(glob.glob(os.path.join(args.samples, "*.jpg")))
    if not files:
        subprocess.run([bench, "--write-samples", args.samples], check=True)
        files = sorted(glob.glob(os.path.join(args.samples, "*.jpg")))
    datas = [open(f, "rb").read() for f in files]
    names = [os.path.basename(f) for f in files]
    pillow_sizes = [pillow_once(d)[0] for d in datas]

    print(f"{len(files)} pictures from {args.samples}, {sum(map(len, datas)) / 1e6:.2f} MB of "
          f"JPEG; Pillow {Image.__version__}; {args.seconds:g} s per run")
    rows = []
    for n in sorted({1, args.threads}):
        pil = pillow_run(datas, n, args.seconds)
        pix = bench_compute(bench, files, n, args.seconds)
        rows.append((n, pil, pix))
    print(f"\n{'cores':>5} {'':8} {'images/s':>9} {'MB/s in':>8} {'Mpixel/s':>9}")
    for n, pil, pix in rows:
        for label, r in (("Pillow", pil), ("pixflow", pix)):
            print(f"{n:>5} {label:8} {r['images_per_s']:9.1f} {r['in_mb_per_s']:8.2f} "
                  f"{r['mpixel_per_s']:9.1f}")
        print(f"{'':5} {'ratio':8} {pix['images_per_s'] / pil['images_per_s']:8.2f}x")
    split = rows[-1][2]["split"]
    print("\npixflow split: " + "  ".join(f"{k} {100 * v:.0f}%" for k, v in split.items()))

    sizes = rows[-1][2]["png_bytes"]
    print(f"\n{'picture':28} {'Pillow PNG':>11} {'pixflow PNG':>12} {'ratio':>7}")
    for name, ref in zip(names, pillow_sizes):
        print(f"{name:28} {ref:11d} {sizes[name]:12d} {sizes[name] / ref:7.3f}")
    total_ref, total = sum(pillow_sizes), sum(sizes[n] for n in names)
    print(f"{'total':28} {total_ref:11d} {total:12d} {total / total_ref:7.3f}")
    print(f"largest ratio {max(sizes[n] / r for n, r in zip(names, pillow_sizes)):.3f}")

    if args.sweep:
        print()
        sys.stdout.flush()
        subprocess.run([bench, "--sweep", "--ref-bytes", str(total_ref)] + files, check=True)


if __name__ == "__main__":
    main()
