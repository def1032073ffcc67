#!/usr/bin/env bash
# stack.sh -- start, stop and inspect the local servers pixflow needs: redis-server (AOF on),
# FerretDB (MongoDB wire protocol on SQLite), versitygw (an S3 server for the raw store, bucket
# `pixflow`) and pixflow-picsum (the picsum-like image server), each on a free loopback port,
# with data under $PIXFLOW_STACK_DIR (default .stack/). `stop` also ends the console a demo left
# running there (console.pid).
#
#   scripts/stack.sh start | stop | status | env
#   scripts/stack.sh stop redis|ferretdb|s3    stop one server (outage tests)
#   scripts/stack.sh start redis|ferretdb|s3   start it again, same port, same data
#
# `start` writes $PIXFLOW_STACK_DIR/env with the PIXFLOW_* exports that point pixflow at them:
#   . .stack/env
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${PIXFLOW_STACK_DIR:-$root/.stack}
build=${PIXFLOW_BUILD_DIR:-$root/build}
ferretdb=${PIXFLOW_FERRETDB:-$root/.cache/bin/ferretdb}
versitygw=${PIXFLOW_VERSITYGW:-$root/.cache/bin/versitygw}
bucket=pixflow
empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

die() { echo "stack: $*" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

alive() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

wait_port() { # name port
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        alive "$1" || die "$1 exited during start-up; see $dir/$1.log"
        sleep 0.1
    done
    die "$1 did not listen on 127.0.0.1:$2 within 10 s; see $dir/$1.log"
}

start_redis() { # port
    mkdir -p "$dir/redis"
    redis-server --bind 127.0.0.1 --port "$1" --dir "$dir/redis" --appendonly yes \
        --appendfsync everysec --save "" --daemonize yes --pidfile "$dir/redis.pid" \
        --logfile "$dir/redis.log" >/dev/null
    for _ in $(seq 1 50); do [ -s "$dir/redis.pid" ] && break; sleep 0.1; done
    wait_port redis "$1"
}

start_ferretdb() { # port
    mkdir -p "$dir/ferretdb"
    "$ferretdb" --handler=sqlite --sqlite-url="file:$dir/ferretdb/" \
        --listen-addr="127.0.0.1:$1" --debug-addr=127.0.0.1:0 --telemetry=disable \
        --state-dir="$dir/ferretdb" --log-level=warn >>"$dir/ferretdb.log" 2>&1 &
    echo $! >"$dir/ferretdb.pid"
    wait_port ferretdb "$1"
}

# The credentials go through the environment, not the command line that ps shows.
start_s3() { # port access-key secret-key
    mkdir -p "$dir/s3"
    ROOT_ACCESS_KEY=$2 ROOT_SECRET_KEY=$3 "$versitygw" --port "127.0.0.1:$1" --quiet \
        posix "$dir/s3" >>"$dir/s3.log" 2>&1 &
    echo $! >"$dir/s3.pid"
    wait_port s3 "$1"
}

# A signed PUT of the bucket (SigV4 by curl itself); 409 means it is there already.
make_bucket() { # port access-key secret-key
    local code
    code=$(curl -sS -o "$dir/s3.bucket" -w '%{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 \
        --user "$2:$3" -H "x-amz-content-sha256: $empty_sha256" -X PUT \
        "http://127.0.0.1:$1/$bucket") || die "cannot create bucket $bucket on 127.0.0.1:$1"
    case "$code" in
    200 | 409) ;;
    *) die "bucket $bucket: HTTP $code: $(cat "$dir/s3.bucket")" ;;
    esac
    rm -f "$dir/s3.bucket"
}

start_picsum() {
    mkdir -p "$dir/picsum"
    rm -f "$dir/picsum/ready"
    # shellcheck disable=SC2086 # PIXFLOW_PICSUM_ARGS is a list of flags, e.g. --deterministic
    "$build/bin/pixflow-picsum" --state-dir "$dir/picsum" --ready-file "$dir/picsum/ready" \
        ${PIXFLOW_PICSUM_ARGS:-} >"$dir/picsum.log" 2>&1 &
    echo $! >"$dir/picsum.pid"
    for _ in $(seq 1 100); do [ -f "$dir/picsum/ready" ] && break; alive picsum || break; sleep 0.1; done
    [ -f "$dir/picsum/ready" ] || die "pixflow-picsum did not start; see $dir/picsum.log"
}

start() {
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    for s in redis ferretdb s3 picsum; do
        alive "$s" && die "$s already runs (pid $(cat "$dir/$s.pid")); run '$0 stop' first"
    done
    command -v redis-server >/dev/null || die "redis-server is missing: run scripts/setup.sh"
    [ -x "$ferretdb" ] || die "FerretDB is missing at $ferretdb: run scripts/setup.sh"
    [ -x "$versitygw" ] || die "versitygw is missing at $versitygw: run scripts/setup.sh"
    [ -x "$build/bin/pixflow-picsum" ] || die "$build/bin/pixflow-picsum is missing: build first"

    local rport mport sport secret https http ca
    rport=$(free_port)
    start_redis "$rport"
    mport=$(free_port)
    start_ferretdb "$mport"
    sport=$(free_port)
    secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    start_s3 "$sport" pixflow "$secret"
    make_bucket "$sport" pixflow "$secret"
    start_picsum
    https=$(sed -n 's/^https=//p' "$dir/picsum/ready")
    http=$(sed -n 's/^http=//p' "$dir/picsum/ready")
    ca=$(sed -n 's/^ca=//p' "$dir/picsum/ready")

    cat >"$dir/env" <<ENV
export PIXFLOW_STACK_DIR='$dir'
export PIXFLOW_REDIS_URL='redis://127.0.0.1:$rport/0'
export PIXFLOW_MONGO_URI='mongodb://127.0.0.1:$mport/pixflow'
export PIXFLOW_CONNECT_TO='picsum.photos:443:127.0.0.1:$https,fastly.picsum.photos:443:127.0.0.1:$https,picsum.photos:80:127.0.0.1:$http,fastly.picsum.photos:80:127.0.0.1:$http'
export PIXFLOW_CA_FILE='$ca'
export PIXFLOW_HOST_LIMITS='*:rate=5000,burst=1000,inflight=1000'
export PIXFLOW_PICSUM_HTTP='127.0.0.1:$http'
export PIXFLOW_PICSUM_HTTPS='127.0.0.1:$https'
export PIXFLOW_RAW_URL='s3://$bucket/raw'
export PIXFLOW_S3_ENDPOINT='http://127.0.0.1:$sport'
export PIXFLOW_S3_REGION='us-east-1'
export AWS_ACCESS_KEY_ID='pixflow'
export AWS_SECRET_ACCESS_KEY='$secret'
ENV
    status
}

# A variable of the running stack's env file.
recorded() { # NAME
    [ -f "$dir/env" ] || die "no stack started in $dir"
    sed -n "s|^export $1='\(.*\)'\$|\1|p" "$dir/env"
}

# The port a running stack gave a server, from its env file.
recorded_port() { # redis|ferretdb|s3
    local var=PIXFLOW_REDIS_URL
    [ "$1" = ferretdb ] && var=PIXFLOW_MONGO_URI
    [ "$1" = s3 ] && var=PIXFLOW_S3_ENDPOINT
    recorded "$var" | sed -n 's|^[a-z]*://127.0.0.1:\([0-9]*\).*|\1|p'
}

start_one() { # redis|ferretdb|s3
    case "$1" in
    redis | ferretdb | s3) ;;
    *) die "start: unknown server '$1' (redis, ferretdb, s3)" ;;
    esac
    alive "$1" && die "$1 already runs"
    if [ "$1" = s3 ]; then
        start_s3 "$(recorded_port s3)" "$(recorded AWS_ACCESS_KEY_ID)" \
            "$(recorded AWS_SECRET_ACCESS_KEY)"
    else
        "start_$1" "$(recorded_port "$1")"
    fi
    echo "stack: started $1 again on port $(recorded_port "$1")"
}

stop() { # [server...]
    local s pid
    for s in "${@:-console picsum s3 ferretdb redis}"; do
        for s in $s; do
            [ -f "$dir/$s.pid" ] || continue
            pid=$(cat "$dir/$s.pid")
            if kill -0 "$pid" 2>/dev/null; then
                kill -TERM "$pid" 2>/dev/null || true
                for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                kill -KILL "$pid" 2>/dev/null || true
                echo "stack: stopped $s (pid $pid)"
            fi
            rm -f "$dir/$s.pid"
        done
    done
}

status() {
    local s
    for s in redis ferretdb s3 picsum; do
        if alive "$s"; then
            echo "stack: $s runs (pid $(cat "$dir/$s.pid"), log $dir/$s.log)"
        else
            echo "stack: $s is not running"
        fi
    done
    if alive console; then
        echo "stack: console runs (pid $(cat "$dir/console.pid"), log $dir/console.log)"
    fi
    if [ -f "$dir/env" ]; then
        sed -n -e 's/^export \(PIXFLOW_\(REDIS_URL\|MONGO_URI\|PICSUM_HTTPS\)\)=/stack: \1=/p' \
            -e 's/^export \(PIXFLOW_\(S3_ENDPOINT\|RAW_URL\)\)=/stack: \1=/p' "$dir/env"
    fi
}

case "${1:-}" in
start) if [ -n "${2:-}" ]; then start_one "$2"; else start; fi ;;
stop) shift; stop "$@" ;;
status) status ;;
env) [ -f "$dir/env" ] && cat "$dir/env" || die "no stack started in $dir" ;;
*) echo "usage: $0 start|stop [redis|ferretdb|s3] | status | env" >&2; exit 2 ;;
esac
