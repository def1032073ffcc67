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
cmake -S . -B build >/dev/null
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
echo "demo: counters (pixflow:stats)"
r HGETALL pixflow:stats | paste - - | sort | sed 's/^/  /'
echo
echo "demo: dead letters (pixflow:dead)"
r --raw XRANGE pixflow:dead - + | awk '
    $0 == "url" || $0 == "reason" || $0 == "error" { k = $0; next }
    k != "" { f[k] = $0; k = ""; if ("error" in f) { printf "  %-10s %s  (%s)\n", f["reason"], f["url"], f["error"]; delete f } }'
echo
echo "demo: stored images (MongoDB $PIXFLOW_MONGO_URI, collection images)"
.cache/venv/bin/python - "$PIXFLOW_MONGO_URI" "$PIXFLOW_STACK_DIR/example.png" <<'PY'
import base64, hashlib, sys
import pymongo
uri, out = sys.argv[1], sys.argv[2]
db = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)[uri.rsplit("/", 1)[1]]
docs = list(db.images.find().sort("source"))
for d in docs[:8]:
    png = base64.b64decode(d["image"])
    ok = "sha256 ok" if hashlib.sha256(png).hexdigest() == d["_id"] else "CORRUPT"
    print(f"  {d['_id'][:12]}  {d['width']:>4}x{d['height']:<4} {d['bytes']:>7} B  {ok}  {d['source']}")
print(f"  ... {len(docs)} documents" if len(docs) > 8 else f"  {len(docs)} documents")
if docs:
    open(out, "wb").write(base64.b64decode(docs[0]["image"]))
    print(f"  the first one, decoded from base64: {out}")
PY
echo
echo "demo: the stack keeps running for a look around:"
echo "  . .stack/env; redis-cli -u \$PIXFLOW_REDIS_URL HGETALL pixflow:stats"
echo "  scripts/stack.sh status | stop"
