# lib.sh -- what the set-up scripts share; sourced, never run. The sourcing script sets `who`
# (the prefix of its messages) and `cache` (the project's .cache folder) first.

say() { echo "$who: $*"; }
die() {
    echo "$who: $*" >&2
    exit 1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

apt_update() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
        die "apt-get update failed"
}

# go_wrapper_build NAME MODULE VERSION PACKAGE OUTPUT [LDFLAGS] [PREPARE]
# Builds PACKAGE of MODULE at VERSION into OUTPUT through a throwaway wrapper module that requires
# it: the module proxy answers 403 to the @v/list lookup that `go install pkg@version` makes, and
# a go.mod with a fixed version needs no list. PREPARE, a function, runs in the wrapper folder
# after the modules are fetched (FerretDB patches its copy there).
go_wrapper_build() {
    local name=$1 module=$2 version=$3 package=$4 output=$5 ldflags=${6:-} prepare=${7:-}
    local work=$cache/$name-build
    command -v go >/dev/null || die "Go is missing: install Go >= 1.22 (needed to build $name)"
    say "$name: building $version with $(go version | cut -d' ' -f3)"
    rm -rf "$work"
    mkdir -p "$work" "$(dirname "$output")"
    printf 'module pixflow.local/%s\n\ngo 1.22\n\nrequire %s %s\n' "$name" "$module" "$version" \
        >"$work/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$package" >"$work/tools.go"
    (
        cd "$work"
        export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=auto
        go mod tidy >/dev/null 2>&1 || die "cannot fetch the $name $version modules"
        [ -z "$prepare" ] || "$prepare"
        go build -ldflags "$ldflags" -o "$output" "$package" || die "$name build failed"
    )
    rm -rf "$work"
}

# venv_install VENV WHAT PACKAGE==VERSION...: pip-installs the pinned packages into VENV (made
# when missing).
venv_install() {
    local venv=$1 what=$2
    shift 2
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" ||
        die "cannot create $venv (python3-venv missing?)"
    say "$what: installing $*"
    "$venv/bin/pip" install -q --disable-pip-version-check "$@" || die "pip install failed for: $*"
}
