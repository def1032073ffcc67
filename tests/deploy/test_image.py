"""test_image.py -- the Dockerfile, checked without a container engine: hadolint lints it; its
build stage is repeated on this machine (the build context .dockerignore lets through, the same
CMake commands, a staging folder standing for the image's filesystem); then every header and
library the compiler and linker used must come from the build stage's Debian packages, and every
shared library the installed programs and plugins load from the runtime stage's."""

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from docker.utils.build import exclude_paths

from deploy_tools import ROOT, hadolint_bin, run

DOCKERFILE = ROOT / "Dockerfile"
BUILD_TOOLS = {"build-essential", "gcc", "cc", "clang", "cmake", "make", "pkg-config", "g++"}


# ---- reading the Dockerfile -------------------------------------------------------------------

def stages():
    """[{name, base, instructions: [(INSTRUCTION, value)]}] in order."""
    parser = DockerfileParser(str(DOCKERFILE))
    out = []
    for ins in parser.structure:
        kind, value = ins["instruction"], ins["value"]
        if kind == "FROM":
            parts = value.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            out.append({"name": name, "base": parts[0], "instructions": []})
        elif kind != "COMMENT":
            assert out, f"{kind} before the first FROM"
            out[-1]["instructions"].append((kind, value))
    return out


def stage(name):
    for s in stages():
        if s["name"] == name:
            return s
    pytest.fail(f"the Dockerfile has no stage named {name}")


def runs(s):
    return [v for k, v in s["instructions"] if k == "RUN"]


def apt_packages(s):
    """The packages of the stage's `apt-get install` commands."""
    pkgs = []
    for cmd in runs(s):
        for segment in re.split(r"&&|;|\|\|", cmd):
            words = shlex.split(segment)
            if "apt-get" in words and "install" in words[words.index("apt-get"):]:
                after = words[words.index("install", words.index("apt-get")) + 1:]
                pkgs += [w for w in after if not w.startswith("-")]
    assert pkgs, f"stage {s['name']} installs no Debian package"
    return pkgs


def cmake_run(s):
    found = [r for r in runs(s) if re.search(r"(^|&&|;)\s*cmake\s", r)]
    assert len(found) == 1, "the build stage must run CMake in exactly one RUN"
    return found[0]


def install_prefix():
    m = re.search(r"-DCMAKE_INSTALL_PREFIX=(\S+)", cmake_run(stage("build")))
    assert m, "the build stage's cmake configure must set CMAKE_INSTALL_PREFIX"
    return m.group(1)


def image_env():
    env = {}
    for kind, value in stage("runtime")["instructions"]:
        if kind == "ENV":
            for word in shlex.split(value):
                key, _, val = word.partition("=")
                env[key] = val
    return env


# ---- apt and dpkg ---------------------------------------------------------------------------

def closure(packages):
    """The packages plus everything they depend on, recursively (alternatives included)."""
    proc = run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *packages])
    names = set()
    for line in proc.stdout.splitlines():
        if line and not line[0].isspace():
            names.add(line.strip().strip("<>").split(":")[0])
    missing = set(packages) - names
    assert not missing, f"apt knows nothing of {sorted(missing)}"
    return names


def _usr_variants(path):
    p = str(path)
    out = [p]
    if p.startswith("/usr/"):
        out.append(p[4:])
    else:
        out.append("/usr" + p)
    return out


def owners(paths):
    """{path: package} for files Debian packages own (usr-merged paths tried both ways)."""
    candidates = {}
    for p in paths:
        for c in dict.fromkeys(_usr_variants(p) + _usr_variants(os.path.realpath(p))):
            candidates.setdefault(c, p)
    found = {}
    names = list(candidates)
    for i in range(0, len(names), 200):
        proc = subprocess.run(["dpkg-query", "-S", *names[i:i + 200]], capture_output=True,
                              text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("diversion ") or ": " not in line:
                continue
            pkgs, path = line.split(": ", 1)
            if path in candidates:
                found[candidates[path]] = pkgs.split(",")[0].strip().split(":")[0]
    return found


# ---- the build, once ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """Builds the way the build stage does; returns the staging folder, build tree and log."""
    work = tmp_path_factory.mktemp("image")
    src, tree, stage_dir = work / "src", work / "build", work / "stage"
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]
    context = sorted(exclude_paths(str(ROOT), patterns))
    for rel in context:
        source = ROOT / rel
        if source.is_symlink() or source.is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, src / rel, follow_symlinks=False)

    build_stage = stage("build")
    assert ("COPY", ". /src") in build_stage["instructions"], "the build stage copies . to /src"
    cmd = cmake_run(build_stage)
    # The image's /src and /build become folders here; the prefix stays as compiled in, and
    # DESTDIR puts the installed files under the staging folder instead of the root.
    cmd = re.sub(r"(?<![\w/.-])/src(?=[/\s]|$)", str(src), cmd)
    cmd = re.sub(r"(?<![\w/.-])/build(?=[/\s]|$)", str(tree), cmd)
    env = dict(os.environ, DESTDIR=str(stage_dir))
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", cmd], capture_output=True,
                          text=True, env=env, timeout=900)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"the build stage's CMake commands failed here:\n{cmd}\n{log[-6000:]}",
                    pytrace=False)
    return {"context": context, "stage": stage_dir, "tree": tree, "src": src, "log": log,
            "prefix": stage_dir / install_prefix().lstrip("/")}


def elf_files(folder):
    out = []
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file() and not p.is_symlink():
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(p)
    return out


# ---- the checks -----------------------------------------------------------------------------

def test_hadolint_passes():
    proc = run([hadolint_bin(), "--no-color", str(DOCKERFILE)], check=False)
    assert proc.returncode == 0, f"hadolint:\n{proc.stdout}{proc.stderr}"


def test_two_bookworm_stages_runtime_last():
    s = stages()
    assert [x["name"] for x in s] == ["build", "runtime"]
    for x in s:
        assert re.fullmatch(r"debian:bookworm(-slim)?", x["base"]), x["base"]


def test_build_stage_packages_are_the_setup_script_ones():
    """The image builds with the packages the developers and CI build with."""
    script = (ROOT / "scripts" / "setup.sh").read_text()
    block = re.search(r"^packages=\(.*?\)$", script, re.S | re.M)
    assert block, "scripts/setup.sh has no packages=(...) list"
    proc = run(["bash", "-c", block.group(0) + '\nprintf "%s\\n" "${packages[@]}"'])
    setup = set(proc.stdout.split())
    build = apt_packages(stage("build"))
    assert set(build) <= setup, f"not installed by scripts/setup.sh: {set(build) - setup}"
    for pkg in build:
        status = run(["dpkg-query", "-W", "-f=${Status}", pkg], check=False).stdout
        assert status == "install ok installed", f"{pkg} is not installed here ({status!r})"


def test_runtime_packages_exist_and_are_runtime_only():
    pkgs = apt_packages(stage("runtime"))
    for pkg in pkgs:
        assert not pkg.endswith("-dev") and pkg not in BUILD_TOOLS, f"{pkg} in the runtime stage"
        policy = run(["apt-cache", "policy", pkg]).stdout
        m = re.search(r"Candidate:\s*(\S+)", policy)
        assert m and m.group(1) != "(none)", f"Debian bookworm has no {pkg}:\n{policy}"


def test_build_installs_every_program_and_plugin(build):
    prefix = build["prefix"]
    bins = {p.name for p in (prefix / "bin").iterdir()}
    assert {"pixflow-consumer", "pixflow-ingest"} <= bins, bins
    if re.search(r"add_subdirectory\(\s*admin\s*\)", (ROOT / "CMakeLists.txt").read_text()):
        assert "pixflow" in bins, "the admin CLI is built but not installed"
    built = {p.name for p in (build["tree"] / "lib" / "pixflow" / "plugins").glob("*.so")}
    installed = {p.name for p in (prefix / "lib" / "pixflow" / "plugins").glob("*.so")}
    assert "grayscale.so" in installed
    assert built == installed, f"built but not installed: {built - installed}"


def test_image_paths_match_the_install(build):
    prefix = install_prefix()
    runtime = stage("runtime")["instructions"]
    assert ("COPY", f"--from=build {prefix} {prefix}") in runtime
    env = image_env()
    assert env["PIXFLOW_PLUGIN_PATH"] == f"{prefix}/lib/pixflow/plugins"
    assert env["PATH"].split(":")[0] == f"{prefix}/bin"
    # The compiled-in default agrees with the variable, so either can be relied on.
    consumer = build["prefix"] / "bin" / "pixflow-consumer"
    proc = run([consumer, "--help"], env={"PATH": "/usr/bin:/bin"})
    assert f"(default: {env['PIXFLOW_PLUGIN_PATH']})" in proc.stdout
    run([build["prefix"] / "bin" / "pixflow-ingest", "--help"], env={"PATH": "/usr/bin:/bin"})


def test_build_used_only_build_stage_packages(build):
    """Headers the compiler read and libraries the linker took, mapped to their packages: an
    -dev package this machine has but the image lacks would break only the image build."""
    tree, src = build["tree"], build["src"]
    used = set()
    for dep in tree.rglob("*.o.d"):
        for word in dep.read_text().replace("\\\n", " ").split():
            if word.startswith("/") and not word.startswith((str(tree), str(src))):
                used.add(os.path.normpath(word))
    for link in tree.rglob("link.txt"):
        for word in link.read_text().split():
            if word.startswith("/usr/") and re.search(r"\.(so|a)(\.\d+)*$", word):
                used.add(word)
    assert len(used) > 50, "the build left no dependency information"
    owned = owners(sorted(used))
    unowned = sorted(set(used) - set(owned))
    assert not unowned, f"used by the build, owned by no Debian package: {unowned[:20]}"
    allowed = closure(apt_packages(stage("build")))
    outside = sorted({(pkg, path) for path, pkg in owned.items() if pkg not in allowed})
    assert not outside, f"the build used packages the build stage does not install: {outside}"


def test_runtime_packages_provide_every_shared_library(build):
    elves = elf_files(build["prefix"])
    assert len(elves) >= 3
    libs = set()
    for elf in elves:
        out = run(["ldd", elf]).stdout
        assert "not found" not in out, f"{elf.name}: unresolved libraries\n{out}"
        libs.update(m.group(1) for m in re.finditer(r"=>\s+(/\S+)", out))
    owned = owners(sorted(libs))
    unowned = sorted(libs - set(owned))
    assert not unowned, f"libraries owned by no Debian package: {unowned}"
    allowed = closure(apt_packages(stage("runtime")))
    missing = sorted({(pkg, lib) for lib, pkg in owned.items() if pkg not in allowed})
    assert not missing, f"loaded at run time but not brought by the runtime stage: {missing}"


def test_runtime_stage_runs_as_non_root_with_a_health_check():
    runtime = dict(stage("runtime")["instructions"])
    user = runtime["USER"].split(":")
    assert user[0].isdigit() and int(user[0]) != 0, "USER must be a numeric non-root id"
    assert len(user) == 2 and user[1].isdigit() and int(user[1]) != 0
    accounts = next(r for r in runs(stage("runtime")) if "useradd" in r)
    assert re.search(rf"groupadd\b[^&]*--gid {user[1]}\b", accounts), accounts
    assert re.search(rf"useradd\b[^&]*--uid {user[0]}\b", accounts), accounts
    health = runtime["HEALTHCHECK"]
    assert "http://127.0.0.1:8080/healthz" in health
    assert "curl" in health and "curl" in apt_packages(stage("runtime"))
    assert runtime["EXPOSE"] == "8080"
    # The listener stays on loopback unless a deployment opens it (with a token).
    assert image_env()["PIXFLOW_HTTP"] == "127.0.0.1:8080"
    assert runtime["CMD"] == '["pixflow-consumer"]'


def test_build_context_leaves_out_build_trees_and_caches(build):
    tops = {rel.split("/")[0] for rel in build["context"]}
    assert {"CMakeLists.txt", "lib", "consumer", "ingest", "plugins", "include"} <= tops
    leaked = sorted(t for t in tops if t.startswith(("build", ".cache", ".git", ".stack")) and
                    t != ".gitignore")
    assert not leaked, f"sent to the image build: {leaked}"
    assert not [r for r in build["context"] if r.startswith("tests/") and
                not r.startswith("tests/picsum")]


def test_dockerignore_keeps_secrets_and_local_data_out(tmp_path):
    """The rules applied to a sample tree holding what a working copy may have lying around."""
    files = ["CMakeLists.txt", "consumer/main.c", "tests/picsum/picsum.c", "tests/lib/test_x.c",
             ".env", ".env.local", "catalogs/today.txt", "build/bin/pixflow-consumer",
             "build-asan/x.o", ".cache/venv/bin/python", ".stack/redis/appendonly.aof",
             ".git/HEAD", "consumer/__pycache__/x.pyc", "charts/pixflow/Chart.yaml"]
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]
    kept = {p for p in exclude_paths(str(tmp_path), patterns) if (tmp_path / p).is_file()}
    assert kept == {"CMakeLists.txt", "consumer/main.c", "tests/picsum/picsum.c"}
