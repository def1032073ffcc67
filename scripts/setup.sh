#!/usr/bin/env bash
# setup.sh -- install what pixflow needs on Debian 12; safe to run again (it only adds what is
# missing). Installs Debian packages with apt, builds the local stack's servers with Go into
# .cache/bin/ (FerretDB v1, the MongoDB wire-protocol server on SQLite; versitygw, the S3 server
# the raw store uses there, Apache-2.0), makes the test virtualenv .cache/venv, and adds the
# deployment checks' tools (tests/deploy/setup.sh). Prints what it did; on failure, one line says
# what could not be had.
#
#   scripts/setup.sh           everything the tests need
#   scripts/setup.sh --demo    only what scripts/demo.sh runs: the build and the stack's servers
#                              (no test-only packages, browser, virtualenv or deployment checkers)
#   scripts/setup.sh --bench   what the tests need, and what only the benchmarks use: libvips,
#                              real photographs (mate-backgrounds), .cache/bench-venv (Pillow,
#                              pyvips) for tests/bench/bench_compare.py
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=$root/.cache
who=setup
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
demo=0
bench=0
case "${1:-}" in
--demo) demo=1 ;;
--bench) bench=1 ;;
"") ;;
*) die "usage: scripts/setup.sh [--demo|--bench]" ;;
esac
ferretdb_version=v1.24.0
versitygw_version=v1.8.0
# What the demo builds and runs.
packages=(build-essential cmake pkg-config git curl ca-certificates python3
    libhiredis-dev libevent-dev libcurl4-openssl-dev libstb-dev libmongoc-dev libbson-dev
    libssl-dev libjpeg62-turbo-dev libdeflate-dev libwebp-dev zlib1g-dev redis-server)
# What only the tests use: the virtualenv, cmocka units, sanitizers and fuzzing, the format
# check, the console's browser test.
test_packages=(python3-venv libcmocka-dev clang libclang-rt-14-dev clang-format chromium
    chromium-driver libjpeg-turbo-progs redis-sentinel)
[ $demo = 1 ] || packages+=("${test_packages[@]}")
# What only the benchmarks use (never CI): libvips for pyvips, and mate-backgrounds, whose
# nature/ folder holds the twelve JPEG photographs bench_compare.py measures (gnome-backgrounds
# ships only drawings, as WebP and SVG).
bench_packages=(libvips42 mate-backgrounds)
[ $bench = 0 ] || packages+=("${bench_packages[@]}")
python_packages=(pytest==9.2.0 redis==8.1.0 pymongo==4.20.0 selenium==4.51.0)
bench_python_packages=(pillow==13.0.0 pyvips==3.2.0)

install_packages() {
    local missing=() p
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "Debian packages: all present"
        return
    fi
    say "Debian packages: installing ${missing[*]}"
    apt_update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install failed for: ${missing[*]}"
}

# FerretDB's own build stamps its version into build/version/version.txt, which the published
# module does not carry (its binary then panics at start): build from a copy with that file added.
ferretdb_patch() {
    local src
    src=$(go list -m -f '{{.Dir}}' github.com/FerretDB/FerretDB)
    cp -r "$src" src
    chmod -R u+w src
    echo "$ferretdb_version" >src/build/version/version.txt
    go mod edit -replace github.com/FerretDB/FerretDB=./src
    go mod tidy >/dev/null 2>&1
}

build_ferretdb() {
    local bin=$cache/bin/ferretdb
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$ferretdb_version"; then
        say "FerretDB: $ferretdb_version present"
        return
    fi
    go_wrapper_build ferretdb github.com/FerretDB/FerretDB "$ferretdb_version" \
        github.com/FerretDB/FerretDB/cmd/ferretdb "$bin" "" ferretdb_patch
    say "FerretDB: $("$bin" --version 2>/dev/null | head -1)"
}

# The version is stamped the way versitygw's own Makefile does, so that a rerun can see it.
build_versitygw() {
    local bin=$cache/bin/versitygw
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$versitygw_version"; then
        say "versitygw: $versitygw_version present"
        return
    fi
    go_wrapper_build versitygw github.com/versity/versitygw "$versitygw_version" \
        github.com/versity/versitygw/cmd/versitygw "$bin" "-X main.Version=$versitygw_version"
    say "versitygw: $("$bin" --version 2>/dev/null | head -1)"
}

# make_venv VENV WHAT IMPORTS PACKAGE...: the venv with the packages, unless its Python already
# imports IMPORTS (a Python import statement's list).
make_venv() {
    local venv=$1 what=$2 imports=$3
    shift 3
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import $imports" 2>/dev/null; then
        say "$what: present"
        return
    fi
    venv_install "$venv" "$what" "$@"
}

start=$(date +%s)
install_packages
# The local stack's servers (scripts/stack.sh), which the demo runs as much as the tests.
build_ferretdb
build_versitygw
if [ $demo = 0 ]; then
    make_venv "$cache/venv" "Python test packages" "pytest, redis, pymongo, selenium" \
        "${python_packages[@]}"
    "$root/tests/deploy/setup.sh" || die "the deployment test tools could not be installed"
fi
[ $bench = 0 ] || make_venv "$cache/bench-venv" "Python benchmark packages" "PIL, pyvips" \
    "${bench_python_packages[@]}"
say "ready in $(($(date +%s) - start)) s"
