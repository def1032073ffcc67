#!/usr/bin/env bash
# setup.sh -- install what pixflow needs on Debian 12; safe to run again (it only adds what is
# missing). Installs Debian packages with apt, builds FerretDB v1 (the MongoDB wire-protocol
# server on SQLite used by the demo and the tests) with Go into .cache/bin/, and makes the test
# virtualenv .cache/venv. Prints what it did; on failure, one line says what could not be had.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=$root/.cache
ferretdb_version=v1.24.0
packages=(build-essential cmake pkg-config git curl ca-certificates python3 python3-venv
    libhiredis-dev libevent-dev libcurl4-openssl-dev libstb-dev libmongoc-dev libbson-dev
    libssl-dev libcmocka-dev libjpeg62-turbo-dev libdeflate-dev redis-server
    clang libclang-rt-14-dev clang-format prometheus)
python_packages=(pytest==9.2.0 redis==8.1.0 pymongo==4.20.0)

say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"; fi
}

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
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
        die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install failed for: ${missing[*]}"
}

# FerretDB's own build stamps its version into build/version/version.txt, which the published
# module does not carry; we build from a copy of the module with that file added.
build_ferretdb() {
    local bin=$cache/bin/ferretdb work=$cache/ferretdb-build
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$ferretdb_version"; then
        say "FerretDB: $ferretdb_version present"
        return
    fi
    command -v go >/dev/null || die "Go is missing: install Go >= 1.22 (needed to build FerretDB)"
    say "FerretDB: building $ferretdb_version with $(go version | cut -d' ' -f3)"
    rm -rf "$work"
    mkdir -p "$work" "$cache/bin"
    cat >"$work/go.mod" <<MOD
module pixflow.local/ferretdb

go 1.22

require github.com/FerretDB/FerretDB $ferretdb_version
MOD
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/FerretDB/FerretDB/cmd/ferretdb"\n' \
        >"$work/tools.go"
    (
        cd "$work"
        export GOFLAGS=-mod=mod GOTOOLCHAIN=auto
        go mod tidy >/dev/null 2>&1 || die "cannot fetch FerretDB $ferretdb_version modules"
        src=$(go list -m -f '{{.Dir}}' github.com/FerretDB/FerretDB)
        cp -r "$src" src
        chmod -R u+w src
        echo "$ferretdb_version" >src/build/version/version.txt
        go mod edit -replace github.com/FerretDB/FerretDB=./src
        go mod tidy >/dev/null 2>&1
        GOFLAGS="-mod=mod -buildvcs=false" go build -o "$bin" \
            github.com/FerretDB/FerretDB/cmd/ferretdb || die "FerretDB build failed"
    )
    rm -rf "$work"
    say "FerretDB: $("$bin" --version 2>/dev/null | head -1)"
}

make_venv() {
    local venv=$cache/venv
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import pytest, redis, pymongo' 2>/dev/null; then
        say "Python test packages: present"
        return
    fi
    say "Python test packages: installing ${python_packages[*]}"
    python3 -m venv "$venv" || die "cannot create $venv (python3-venv missing?)"
    "$venv/bin/pip" install -q --disable-pip-version-check "${python_packages[@]}" ||
        die "pip install failed for: ${python_packages[*]}"
}

start=$(date +%s)
install_packages
build_ferretdb
make_venv
"$root/tests/deploy/setup.sh" || die "the deployment test tools could not be installed"
say "ready in $(($(date +%s) - start)) s"
