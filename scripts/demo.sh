#!/usr/bin/env bash
# demo.sh -- the main job on one machine: set up, build, start a fresh local stack (Redis,
# FerretDB, the picsum-like image server), ingest examples/catalog.txt, run two workers until the
# stream is drained, and print the counters, the dead letters and how to look at the images.
# The stack stays up afterwards so the results can be inspected; `scripts/stack.sh stop` ends it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
catalog=${1:-examples/catalog.txt}

scripts/setup.sh
echo "demo: building"
cmake -S . -B build -DPIXFLOW_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >build/build-output.log 2>&1 || { tail -40 build/build-output.log; exit 1; }

export PIXFLOW_STACK_DIR=$root/.stack
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
echo "demo: two workers, until the stream is drained"
pids=()
for n in 1 2; do
    PIXFLOW_CONSUMER=demo-$n build/bin/pixflow-consumer --exit-when-idle 2s --retry-base 200ms \
        --log-level warn 2>"$PIXFLOW_STACK_DIR/consumer-$n.log" &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

r() { redis-cli -u "$PIXFLOW_REDIS_URL" --no-auth-warning "$@"; }
echo
echo "demo: counters (pixflow:stats)"
r HGETALL pixflow:stats | paste - - | sort | sed 's/^/  /'
echo
echo "demo: dead letters (pixflow:dead)"
r --raw XRANGE pixflow:dead - + | awk '
    $0 == "url" || $0 == "reason" || $0 == "error" { k = $0; next }
    k != "" { f[k] = $0; k = ""; if ("error" in f) { printf "  %-10s %s  (%s)\n", f["reason"], f["url"], f["error"]; delete f } }'
echo
echo "demo: the images are in MongoDB ($PIXFLOW_MONGO_URI, collection images)."
echo "  see one:  build/bin/pixflow get <sha256> -o image.png     (issue tracker: admin CLI)"
echo "  counters: redis-cli -u $PIXFLOW_REDIS_URL HGETALL pixflow:stats"
echo "  stop:     scripts/stack.sh stop"
