"""Shared tools of the console's tests: a pixflow-web process, a small real run on a
deterministic image server (so two URLs can yield the same picture: an alias), and the `sources`
documents of SPEC §6 when the worker in this tree still writes the older layout."""
import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import conftest
from conftest import binary, isolated_env, run
from pixflow_helpers import Keys, Worker, mongo_for

PICSUM = "https://picsum.photos"
TOKEN = "0123456789abcdef-console-token"

# The small run: what each URL becomes.
STORED = f"{PICSUM}/200/300"
ALIASED = f"{PICSUM}/200/300.jpg"       # the same picture: the deterministic server agrees
OTHER = f"{PICSUM}/321/123"
DEAD = f"{PICSUM}/150/100?fault=404"    # 404 every time
REPLAYABLE = f"{PICSUM}/120/80?fault=404&times=1"  # 404 once, then a picture
INVALID = "ftp://picsum.photos/10/10"   # rejected by ingest: bad_scheme
HOSTILE = f"{PICSUM}/77/66?q=<img src=x onerror=alert(1)>"  # dead-lettered: bad_char
HOSTILE_SOURCE = "<script>alert('source')</script>"


class Console:
    """One pixflow-web on a free loopback port; its first line tells the address."""

    def __init__(self, env, *args, token=None, log_dir=None):
        self.env = dict(env)
        if token is not None:
            self.env["PIXFLOW_WEB_TOKEN"] = token
        self.log_path = Path(log_dir or ".") / f"console-{id(self)}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary("pixflow-web"), "--listen", "127.0.0.1:0", *args],
                                     env=self.env, stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not m:
            self.close()
            pytest.fail(f"pixflow-web did not start: {line!r} {self.log_path.read_text()}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def request(self, path, data=None, headers=None, method=None):
        """(status, headers, body bytes); never raises on an HTTP status."""
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {},
                                     method=method)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=30) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, path, **kw):
        status, _, body = self.request(path, **kw)
        return status, json.loads(body)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
            assert rc == 0, f"pixflow-web exited with {rc}"
        self.log.close()
        text = self.log_path.read_text(errors="replace")
        assert "Sanitizer" not in text and "runtime error" not in text, text


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def backfill_sources(db):
    """The `sources` documents (SPEC §6) of what the worker stored, for a worker that still
    writes `aliases`/`alias_from` in `images`; writes nothing the worker already wrote."""
    for doc in db.images.find({}, {"image": 0}):
        first = {"image": doc["_id"], "role": "source", "stream_id": doc.get("stream_id"),
                 "consumer": doc.get("consumer"), "inserted_at": doc.get("inserted_at")}
        db.sources.update_one({"_id": doc["source"]}, {"$setOnInsert": first}, upsert=True)
        for alias in doc.get("alias_from", []):
            other = dict(first, role="alias", stream_id=alias.get("stream_id"))
            db.sources.update_one({"_id": alias["url"]}, {"$setOnInsert": other}, upsert=True)


def run_worker(env, log_dir, name="w1"):
    """One worker, one entry at a time (the URL pushed first stores the picture), until idle."""
    w = Worker(env, name, ["--block", "300ms", "--flush-every", "50ms", "--retry-base", "100ms",
                           "--exit-when-idle", "1s", "--max-inflight", "1"], log_dir)
    try:
        w.assert_clean_exit(60)
    finally:
        w.close()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The small run, once per test file (import this fixture by name)."""
    p = Pipeline(tmp_path_factory.mktemp("web"))
    try:
        yield p
    finally:
        p.close()


class Pipeline:
    """A private deterministic stack after a small run: see the URL constants above."""

    def __init__(self, folder):
        self.folder = folder
        self.env = isolated_env(conftest.start_stack(folder, "--deterministic"))
        import redis
        self.redis = redis.Redis.from_url(self.env["PIXFLOW_REDIS_URL"])
        self.mclient, self.db = mongo_for(self.env)
        self.keys = Keys(self.redis, self.env["PIXFLOW_PREFIX"])
        catalog = Path(folder) / "catalog.txt"
        catalog.write_text("\n".join([STORED, ALIASED, DEAD, REPLAYABLE, INVALID, OTHER]) + "\n")
        r = run("pixflow-ingest", catalog, env=self.env)
        assert r.returncode == 0, r.stderr
        self.keys.xadd(HOSTILE, source=HOSTILE_SOURCE, line='"><b>1</b>')
        run_worker(self.env, folder)
        self.refresh()

    def refresh(self):
        backfill_sources(self.db)

    def stats(self):
        return self.keys.stats()

    def close(self):
        self.mclient.close()
        self.redis.close()
        conftest.stop_stack(self.folder)
