"""Fixtures for integration tests: real servers, real binaries, one isolated namespace per test.

The servers come from scripts/stack.sh. When the test command has started a stack it exports
PIXFLOW_STACK_ENV (the stack's env file) and every test reuses it; run alone, a test session
starts a private stack in a temporary folder and stops it at the end. Each test gets its own
Redis key prefix and MongoDB database, so tests never see each other's data.
"""
import os
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest

SOURCE_DIR = Path(os.environ.get("PIXFLOW_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD_DIR = Path(os.environ.get("PIXFLOW_BUILD_DIR", SOURCE_DIR / "build"))
STACK = SOURCE_DIR / "scripts" / "stack.sh"


def read_env_file(path):
    """The `export NAME='value'` lines of a stack env file, as a dict."""
    env = {}
    for line in Path(path).read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return env


def start_stack(folder, picsum_args=""):
    """Start a private stack in `folder`; returns its env dict. Stop it with stop_stack.
    picsum_args: extra flags for pixflow-picsum, e.g. "--deterministic"."""
    env = dict(os.environ, PIXFLOW_STACK_DIR=str(folder), PIXFLOW_BUILD_DIR=str(BUILD_DIR),
               PIXFLOW_PICSUM_ARGS=picsum_args)
    subprocess.run([str(STACK), "start"], env=env, check=True, stdout=subprocess.DEVNULL)
    return read_env_file(Path(folder) / "env")


def stop_stack(folder, *servers):
    """Stop a stack, or only the named servers of it ("redis", "ferretdb", "s3")."""
    env = dict(os.environ, PIXFLOW_STACK_DIR=str(folder))
    subprocess.run([str(STACK), "stop", *servers], env=env, check=False,
                   stdout=subprocess.DEVNULL)


def restart_server(folder, server):
    """Start a stopped server of a stack again, on the same port with the same data."""
    env = dict(os.environ, PIXFLOW_STACK_DIR=str(folder), PIXFLOW_BUILD_DIR=str(BUILD_DIR))
    subprocess.run([str(STACK), "start", server], env=env, check=True, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The shared servers: PIXFLOW_REDIS_URL, PIXFLOW_MONGO_URI, PIXFLOW_CONNECT_TO, ..."""
    shared = os.environ.get("PIXFLOW_STACK_ENV")
    if shared:
        yield read_env_file(shared)
        return
    folder = tmp_path_factory.mktemp("stack")
    try:
        yield start_stack(folder)
    finally:
        stop_stack(folder)


@pytest.fixture
def private_stack(tmp_path):
    """Servers of this test alone, for tests that stop or break them."""
    folder = tmp_path / "stack"
    try:
        yield start_stack(folder)
    finally:
        stop_stack(folder)


def isolated_env(stack_env):
    """os.environ + the stack + a fresh key prefix and MongoDB database."""
    tag = "t" + uuid.uuid4().hex[:10]
    env = dict(os.environ)
    env.update(stack_env)
    env["PIXFLOW_PREFIX"] = tag + ":"
    base = stack_env["PIXFLOW_MONGO_URI"].rsplit("/", 1)[0]
    env["PIXFLOW_MONGO_URI"] = base + "/" + tag
    if stack_env.get("PIXFLOW_RAW_URL", "").startswith("s3://"):  # originals: a prefix of its own
        bucket = stack_env["PIXFLOW_RAW_URL"][len("s3://"):].split("/", 1)[0]
        env["PIXFLOW_RAW_URL"] = f"s3://{bucket}/{tag}"
    env["PIXFLOW_PLUGIN_PATH"] = str(BUILD_DIR / "lib" / "pixflow" / "plugins")
    # libmongoc's shared-memory counters collide with files left in /dev/shm by killed processes
    # whose pid is reused; the tests kill workers on purpose.
    env["MONGOC_DISABLE_SHM"] = "1"
    return env


@pytest.fixture
def env(stack):
    return isolated_env(stack)


def binary(name):
    path = BUILD_DIR / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is not built")
    return str(path)


def run(name, *args, env, input=None, timeout=120):
    """Run a pixflow binary to completion; returns the CompletedProcess (bytes)."""
    if isinstance(input, str):
        input = input.encode()
    return subprocess.run([binary(name), *map(str, args)], env=env, input=input,
                          capture_output=True, timeout=timeout)


@pytest.fixture
def redis_client(env):
    """A redis-py client on the stack's Redis (decode_responses off: values are bytes)."""
    import redis
    client = redis.Redis.from_url(env["PIXFLOW_REDIS_URL"])
    yield client
    for key in client.scan_iter(match=env["PIXFLOW_PREFIX"] + "*"):
        client.delete(key)
    client.close()


@pytest.fixture
def mongo_db(env):
    """A pymongo Database for this test's database, dropped afterwards."""
    import pymongo
    uri = env["PIXFLOW_MONGO_URI"]
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
    name = uri.rsplit("/", 1)[1].split("?")[0]
    yield client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture
def fleet(tmp_path):
    """Starts pixflow-consumer workers (pixflow_helpers.Fleet) and kills what still runs."""
    from pixflow_helpers import Fleet
    f = Fleet(tmp_path)
    try:
        yield f
    finally:
        f.close()
