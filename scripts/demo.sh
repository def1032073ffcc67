#!/usr/bin/env bash
# demo.sh -- the main job on one machine: set up, build, start a fresh local stack (Redis,
# FerretDB, an S3 server for the originals, the picsum-like image server), ingest
# examples/catalog.txt, run two workers until the stream is drained, and show the counters, the
# dead letters, a check of every stored document and original, one stored picture and the
# original it was made from, read back from the raw store; then a rendition added and
# reprocessed from the kept originals.
# The stack stays up afterwards with the console (pixflow web) on a free loopback port, so the
# results can be inspected; the script itself ends, and `scripts/stack.sh stop` stops them all.
# The stack lives in $PIXFLOW_STACK_DIR (default .stack/), stopped and emptied first.
# It installs and builds only what it runs (scripts/setup.sh --demo); scripts/test.sh adds the rest.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
catalog=${1:-examples/catalog.txt}

# Only what the demo runs: the tests' own tools come with scripts/test.sh.
scripts/setup.sh --demo
echo "demo: building"
# A new build folder leaves the tests out (their packages are not installed); one configured
# before keeps its choice.
tests=()
[ -f build/CMakeCache.txt ] || tests=(-DPIXFLOW_TESTS=OFF)
cmake -S . -B build "${tests[@]}" >/dev/null
cmake --build build -j"$(nproc)" >build/build-output.log 2>&1 || { tail -40 build/build-output.log; exit 1; }

export PIXFLOW_STACK_DIR=${PIXFLOW_STACK_DIR:-$root/.stack}
scripts/stack.sh stop >/dev/null 2>&1 || true
rm -rf "$PIXFLOW_STACK_DIR"
scripts/stack.sh start
# shellcheck disable=SC1091
. "$PIXFLOW_STACK_DIR/env"
export PIXFLOW_PLUGIN_PATH=$root/build/lib/pixflow/plugins

echo
echo "demo: ingesting $catalog"
build/bin/pixflow-ingest --rejects "$PIXFLOW_STACK_DIR/rejects.tsv" "$catalog"
echo "demo: rejected lines (line, reason, text) are in $PIXFLOW_STACK_DIR/rejects.tsv:"
cut -c1-100 "$PIXFLOW_STACK_DIR/rejects.tsv" | sed 's/^/  /'

echo
echo "demo: anyone can push: one new URL and one already queued, with redis-cli"
r() { redis-cli -u "$PIXFLOW_REDIS_URL" --no-auth-warning "$@"; }
r XADD pixflow:urls '*' url https://picsum.photos/333/222 source redis-cli >/dev/null
r XADD pixflow:urls '*' url HTTPS://PICSUM.PHOTOS/200/300/ source redis-cli >/dev/null

echo
echo "demo: two workers, until the stream is drained"
pids=()
for n in 1 2; do
    PIXFLOW_CONSUMER=demo-$n build/bin/pixflow-consumer --exit-when-idle 2s --retry-base 200ms \
        --log-level warn 2>"$PIXFLOW_STACK_DIR/consumer-$n.log" &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

echo
build/bin/pixflow stats
echo
echo "demo: dead letters (pixflow dead; replay them with pixflow dead --replay)"
build/bin/pixflow dead
echo
echo "demo: every stored document re-checked, every original re-hashed (pixflow verify --raw)"
build/bin/pixflow verify --raw || true
build/bin/pixflow get https://picsum.photos/1200/800 -o "$PIXFLOW_STACK_DIR/example.png"
build/bin/pixflow get https://picsum.photos/1200/800 --original -o "$PIXFLOW_STACK_DIR/original.jpg"

echo
echo "demo: a transform added today reaches what was collected: a rendition, reprocessed from the"
echo "      kept originals (no download), while a worker runs"
build/bin/pixflow renditions add thumb grayscale,thumbnail:size=64
PIXFLOW_CONSUMER=demo-3 build/bin/pixflow-consumer --exit-when-idle 3s --log-level warn \
    2>"$PIXFLOW_STACK_DIR/consumer-3.log" &
worker=$!
build/bin/pixflow reprocess thumb --wait
wait "$worker"
build/bin/pixflow renditions
build/bin/pixflow get https://picsum.photos/1200/800 --rendition thumb -o "$PIXFLOW_STACK_DIR/thumb.png"
echo
echo "demo: one stored picture, decoded from its base64: $PIXFLOW_STACK_DIR/example.png"
echo "demo: its thumb rendition, made from the kept original: $PIXFLOW_STACK_DIR/thumb.png"
echo "demo: the original it was made from, as downloaded, from the raw store ($PIXFLOW_RAW_URL):"
echo "  $PIXFLOW_STACK_DIR/original.jpg ($(wc -c <"$PIXFLOW_STACK_DIR/original.jpg") bytes)"

# The console, in the background: it outlives this script and stops with the stack.
build/bin/pixflow-web --listen 127.0.0.1:0 </dev/null >"$PIXFLOW_STACK_DIR/console.log" 2>&1 &
echo $! >"$PIXFLOW_STACK_DIR/console.pid"
console=
for _ in $(seq 1 50); do
    console=$(sed -n 's|^pixflow-web: listening on \(http://[^ ]*\).*|\1|p' "$PIXFLOW_STACK_DIR/console.log")
    [ -n "$console" ] && break
    sleep 0.1
done
echo "demo: the stack keeps running for a look around:"
echo "  . $PIXFLOW_STACK_DIR/env; build/bin/pixflow stats --watch"
echo "  build/bin/pixflow get https://picsum.photos/200/300 --json"
echo "  PIXFLOW_STACK_DIR=$PIXFLOW_STACK_DIR scripts/stack.sh status | stop"
if [ -n "$console" ]; then
    echo "console: $console (scripts/stack.sh stop to end)"
else
    echo "console: did not start, see $PIXFLOW_STACK_DIR/console.log"
fi
