#!/usr/bin/env bash
# setup.sh -- install what pixflow needs on Debian 12; safe to run again (it only adds what is
# missing). Installs Debian packages with apt, builds FerretDB v1 (the MongoDB wire-protocol
# server on SQLite used by the demo and the tests) and versitygw (the S3 server the raw store
# uses there, Apache-2.0) with Go into .cache/bin/, makes the test
# virtualenv .cache/venv, and adds the deployment checks' tools (tests/deploy/setup.sh). Prints
# what it did; on failure, one line says what could not be had.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=$root/.cache
who=setup
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
ferretdb_version=v1.24.0
versitygw_version=v1.8.0
packages=(build-essential cmake pkg-config git curl ca-certificates python3 python3-venv
    libhiredis-dev libevent-dev libcurl4-openssl-dev libstb-dev libmongoc-dev libbson-dev
    libssl-dev libcmocka-dev libjpeg62-turbo-dev libdeflate-dev libwebp-dev zlib1g-dev
    libjpeg-turbo-progs redis-server clang libclang-rt-14-dev clang-format chromium chromium-driver)
python_packages=(pytest==9.2.0 redis==8.1.0 pymongo==4.20.0 selenium==4.51.0)

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

make_venv() {
    if [ -x "$cache/venv/bin/python" ] &&
        "$cache/venv/bin/python" -c 'import pytest, redis, pymongo, selenium' 2>/dev/null; then
        say "Python test packages: present"
        return
    fi
    venv_install "$cache/venv" "Python test packages" "${python_packages[@]}"
}

start=$(date +%s)
install_packages
build_ferretdb
build_versitygw
make_venv
"$root/tests/deploy/setup.sh" || die "the deployment test tools could not be installed"
say "ready in $(($(date +%s) - start)) s"
