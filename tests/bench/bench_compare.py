#!/usr/bin/env python3
"""bench_compare.py -- pixflow's CPU stage against Pillow and libvips on the same pictures, one
core, one run, on two sets: real photographs (--photos, by default the JPEG photographs of
Debian's mate-backgrounds) and the local image server's pictures (bench_compute
--write-samples). For each set it prints:

  Mpixel/s and stored bytes per source byte of
    libjpeg-turbo decoding the luma (Y) plane alone   the limit for a gray result
    pixflow `grayscale` (gray PNG, the default)       and the fraction of that limit it reaches
    pixflow `grayscale,jpeg` (DCT domain)
    Pillow  convert("L") + PNG (its defaults)
    libvips colourspace("b-w") + PNG, and + JPEG q90  (pyvips, VIPS_CONCURRENCY=1)
  pictures/s of thumbnails:
    pixflow `grayscale,thumbnail:size=256`
    libvips thumbnail_buffer(256) + b-w + PNG         (shrink-on-load, as imgproxy)

then each target, `met` or `MISSED`: gray PNG >= 0.5x the limit and <= 1.10x Pillow's bytes;
the DCT-domain JPEG >= 0.8x the limit and <= the source's bytes; the thumbnail >= 1.5x
libvips's. pixflow runs as bench_compute (its figures include SHA-256 and base64, the others'
do not); the others run the same way: a loop over the files for --seconds after one untimed
pass; the limit is bench_compute --decode-limit (best of 3 passes).

    python3 tests/bench/bench_compare.py [--build build] [--photos DIR] [--samples DIR]
                                         [--sets photos,samples] [--seconds 4]

Runs itself under .cache/bench-venv (pillow, pyvips over Debian's libvips42), or the venv
PIXFLOW_BENCH_VENV names; `scripts/setup.sh --bench` makes it and installs the photographs.
A benchmark prints figures; it asserts nothing."""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[1]
BENCH_VENV = Path(os.environ.get("PIXFLOW_BENCH_VENV", SOURCE / ".cache" / "bench-venv"))
SETUP = "scripts/setup.sh --bench"

if Path(sys.prefix).resolve() != BENCH_VENV.resolve():
    if not (BENCH_VENV / "bin" / "python").exists():
        sys.exit(f"bench_compare runs in its own venv, {BENCH_VENV}, which is missing; make it "
                 f"with:\n  {SETUP}")
    os.execv(str(BENCH_VENV / "bin" / "python"), [str(BENCH_VENV / "bin" / "python"), *sys.argv])

os.environ.setdefault("VIPS_CONCURRENCY", "1")  # one thread, as bench_compute --threads 1
try:
    import pyvips  # noqa: E402  (after VIPS_CONCURRENCY, which libvips reads when it starts)
    from PIL import Image  # noqa: E402
except (ImportError, OSError) as exc:
    sys.exit(f"{BENCH_VENV} cannot load {exc}; install what is missing with:\n  {SETUP}")

import argparse  # noqa: E402
import glob  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

PHOTOS = "/usr/share/backgrounds/mate/nature"  # Debian's mate-backgrounds: 12 JPEG photographs


def pillow_png(d):
    out = io.BytesIO()
    Image.open(io.BytesIO(d)).convert("L").save(out, "PNG")
    return out.getvalue()


OTHERS = {
    "Pillow gray PNG": pillow_png,
    "libvips gray PNG": lambda d: pyvips.Image.new_from_buffer(d, "", access="sequential")
    .colourspace("b-w").pngsave_buffer(),
    "libvips gray JPEG q90": lambda d: pyvips.Image.new_from_buffer(d, "", access="sequential")
    .colourspace("b-w").jpegsave_buffer(Q=90),
    "libvips thumbnail 256": lambda d: pyvips.Image.thumbnail_buffer(d, 256)
    .colourspace("b-w").pngsave_buffer(),
}
CHAINS = {
    "pixflow grayscale (PNG)": "grayscale",
    "pixflow grayscale,jpeg (DCT)": "grayscale,jpeg",
    "pixflow grayscale,jpeg:quality=90": "grayscale,jpeg:quality=90",
    "pixflow thumbnail 256": "grayscale,thumbnail:size=256",
}


def loop(fn, datas, pixels, seconds):
    """(pictures/s, Mpixel/s of source, stored bytes) of fn over the files, as bench_compute."""
    stored = sum(len(fn(d)) for d in datas)  # the untimed pass
    n = px = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        i = n % len(datas)
        fn(datas[i])
        n += 1
        px += pixels[i]
    elapsed = time.perf_counter() - start
    return n / elapsed, px / elapsed / 1e6, stored


def bench_compute(exe, args, files):
    return subprocess.run([exe, *args, *files], check=True, capture_output=True, text=True).stdout


def one_set(name, files, exe, seconds):
    datas = [open(f, "rb").read() for f in files]
    src = sum(map(len, datas))
    pixels = []
    for d in datas:
        im = pyvips.Image.new_from_buffer(d, "")
        pixels.append(im.width * im.height)
    print(f"\n{name}: {len(files)} pictures, {sum(pixels) / 1e6:.1f} Mpixel, {src / 1e6:.2f} MB "
          f"of JPEG; 1 core, {seconds:g} s per row")
    out = bench_compute(exe, ["--decode-limit"], files)
    limit = float(re.search(r"luma plane only.*?([\d.]+) Mpixel/s", out).group(1))
    rows = {}
    for label, spec in CHAINS.items():
        j = json.loads(bench_compute(exe, ["--json", "--threads", "1", "--seconds", str(seconds),
                                           "--transforms", spec], files))
        rows[label] = (j["images_per_s"], j["mpixel_per_s"], sum(j["png_bytes"].values()))
    for label, fn in OTHERS.items():
        rows[label] = loop(fn, datas, pixels, seconds)

    print(f"  {'':36} {'pictures/s':>10} {'Mpixel/s':>9} {'x limit':>8} {'bytes/source':>13}")
    print(f"  {'luma-only decode (the limit)':36} {'':>10} {limit:9.1f} {1:8.2f}")
    for label in ["pixflow grayscale (PNG)", "pixflow grayscale,jpeg (DCT)",
                  "pixflow grayscale,jpeg:quality=90", "Pillow gray PNG", "libvips gray PNG",
                  "libvips gray JPEG q90", "pixflow thumbnail 256", "libvips thumbnail 256"]:
        rate, mpx, stored = rows[label]
        print(f"  {label:36} {rate:10.1f} {mpx:9.1f} {mpx / limit:8.2f} {stored / src:13.3f}")

    png, dct = rows["pixflow grayscale (PNG)"], rows["pixflow grayscale,jpeg (DCT)"]
    pil = rows["Pillow gray PNG"]
    thumb, vthumb = rows["pixflow thumbnail 256"], rows["libvips thumbnail 256"]
    targets = [
        ("gray PNG speed", png[1] / limit, ">=", 0.5, "x the limit"),
        ("gray PNG bytes", png[2] / pil[2], "<=", 1.10, "x Pillow's"),
        ("DCT JPEG speed", dct[1] / limit, ">=", 0.8, "x the limit"),
        ("DCT JPEG bytes", dct[2] / src, "<=", 1.0, "x the source's"),
        ("thumbnail speed", thumb[0] / vthumb[0], ">=", 1.5, "x libvips's"),
    ]
    for what, got, op, bar, unit in targets:
        ok = got >= bar if op == ">=" else got <= bar
        print(f"  {what:16} {got:6.3f}{unit:15} (target {op} {bar:g}): "
              f"{'met' if ok else 'MISSED'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("PIXFLOW_BUILD_DIR", str(SOURCE / "build")))
    ap.add_argument("--photos", default=PHOTOS, help=f"a folder of JPEG photographs ({PHOTOS})")
    ap.add_argument("--samples", default=str(SOURCE / ".cache" / "bench-samples"),
                    help="the image server's pictures (written there when missing)")
    ap.add_argument("--sets", default="photos,samples")
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    exe = os.path.join(args.build, "bin", "bench_compute")
    pyvips.cache_set_max(0)
    print(f"Pillow {Image.__version__}, libvips {pyvips.version(0)}.{pyvips.version(1)}, "
          f"pixflow {exe}")
    for s in args.sets.split(","):
        if s == "photos":
            files = sorted(glob.glob(os.path.join(args.photos, "*.jpg")))
            if not files:
                sys.exit(f"no *.jpg in {args.photos}: `{SETUP}` installs mate-backgrounds, or "
                         "give --photos DIR")
            one_set(f"photographs ({args.photos})", files, exe, args.seconds)
        elif s == "samples":
            files = sorted(glob.glob(os.path.join(args.samples, "*.jpg")))
            if not files:
                subprocess.run([exe, "--write-samples", args.samples], check=True,
                               stdout=subprocess.DEVNULL)
                files = sorted(glob.glob(os.path.join(args.samples, "*.jpg")))
            one_set(f"the image server's pictures ({args.samples})", files, exe, args.seconds)
        else:
            sys.exit(f"--sets: photos or samples, not {s!r}")


if __name__ == "__main__":
    main()
