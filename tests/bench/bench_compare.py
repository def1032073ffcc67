#!/usr/bin/env python3
"""bench_vips.py -- libvips on the pictures bench_compute reads, one thread, measured as
bench_compute measures pixflow: a loop over the files for --seconds, after one untimed pass.

For each case it prints pictures/s, Mpixel/s of source and the stored bytes per source byte:
  gray PNG      new_from_buffer -> colourspace("b-w") -> pngsave_buffer (libvips's defaults)
  gray JPEG     the same, jpegsave_buffer(Q=90)
  thumbnail     thumbnail_buffer(256) -> colourspace("b-w") -> pngsave_buffer: the shrink-on-load
                path libvips and imgproxy use, against `grayscale,thumbnail:size=256`
then, with --build, bench_compute's figures for the matching chains on the same files.

pyvips comes from PyPI (ABI mode over Debian's libvips42, which libvips-tools installs):
    python3 -m venv .cache/vips-venv && .cache/vips-venv/bin/pip install pyvips
    .cache/vips-venv/bin/python tests/bench/bench_vips.py --build build [FILE.jpg...]
pixflow's figures include SHA-256 and base64, libvips's do not. A benchmark prints figures; it
asserts nothing."""
import argparse
import glob
import os
import subprocess
import sys
import time

os.environ.setdefault("VIPS_CONCURRENCY", "1")  # one thread, as bench_compute --threads 1
import pyvips  # noqa: E402  (after VIPS_CONCURRENCY, which libvips reads when it starts)

CASES = {
    "gray PNG": lambda d: pyvips.Image.new_from_buffer(d, "", access="sequential")
    .colourspace("b-w").pngsave_buffer(),
    "gray JPEG q90": lambda d: pyvips.Image.new_from_buffer(d, "", access="sequential")
    .colourspace("b-w").jpegsave_buffer(Q=90),
    "thumbnail 256, gray PNG": lambda d: pyvips.Image.thumbnail_buffer(d, 256)
    .colourspace("b-w").pngsave_buffer(),
}
PIXFLOW = {
    "gray PNG": "grayscale",
    "gray JPEG q90": "grayscale,jpeg:quality=90",
    "thumbnail 256, gray PNG": "grayscale,thumbnail:size=256",
}


def run(fn, datas, pixels, seconds):
    stored = sum(len(fn(d)) for d in datas)  # the untimed pass
    n = px = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        i = n % len(datas)
        fn(datas[i])
        n += 1
        px += pixels[i]
    elapsed = time.perf_counter() - start
    return n / elapsed, px / elapsed / 1e6, stored / sum(len(d) for d in datas)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--build", help="pixflow build folder: run bench_compute on the same files")
    args = ap.parse_args()
    files = args.files
    if not files:
        if not args.build:
            sys.exit("give files, or --build to write the default pictures")
        out = os.path.join(args.build, "bench-samples")
        subprocess.run([os.path.join(args.build, "bin", "bench_compute"), "--write-samples", out],
                       check=True, stdout=subprocess.DEVNULL)
        files = sorted(glob.glob(os.path.join(out, "*.jpg")))
    datas = [open(f, "rb").read() for f in files]
    pixels = [pyvips.Image.new_from_buffer(d, "").width * pyvips.Image.new_from_buffer(d, "").height
              for d in datas]
    pyvips.cache_set_max(0)
    print(f"libvips {pyvips.version(0)}.{pyvips.version(1)}, 1 thread, {len(files)} pictures, "
          f"{args.seconds:.0f} s each")
    for name, fn in CASES.items():
        rate, mpx, ratio = run(fn, datas, pixels, args.seconds)
        print(f"  libvips {name:26s} {rate:8.1f} pictures/s {mpx:8.1f} Mpixel/s "
              f"{ratio:6.3f} stored bytes per source byte")
    if args.build:
        exe = os.path.join(args.build, "bin", "bench_compute")
        for name, spec in PIXFLOW.items():
            r = subprocess.run([exe, "--threads", "1", "--seconds", str(args.seconds),
                                "--transforms", spec] + files,
                               check=True, capture_output=True, text=True).stdout
            print(f"  pixflow {spec}:\n    " + "\n    ".join(r.strip().splitlines()[1:]))


if __name__ == "__main__":
    main()
