"""Shared tools of the consumer's integration tests: running workers, reading what they left in
Redis and MongoDB, checking PNG files, talking to the image server's control routes and opening
sockets that must never see a connection."""
import base64
import hashlib
import json
import random
import re
import signal
import socket
import struct
import subprocess
import time
import urllib.request
import uuid
import zlib
from pathlib import Path

import pytest

from conftest import binary

CONSUMER = "pixflow-consumer"

# Quick timings for short runs: small batches flushed often, retries in tenths of a second.
FAST = ["--block", "300ms", "--flush-every", "50ms", "--retry-base", "100ms", "--retry-max",
        "1s", "--threads", "2"]


def token():
    """A short random tag, so fault budgets and picture paths are fresh on a shared server."""
    return uuid.uuid4().hex[:8]


def sizes(n, low=40, high=400):
    """n distinct (width, height) pairs chosen at random, so no two URLs of a test can yield the
    same picture (which would make one an alias) and request counts per path are ours alone."""
    out = set()
    while len(out) < n:
        out.add((random.randint(low, high), random.randint(low, high)))
    return sorted(out)


def wait_for(what, predicate, timeout, interval=0.05):
    """Poll predicate() until it returns something true; fail naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---- workers ----


class Worker:
    """One pixflow-consumer process, its output in a log file."""

    def __init__(self, env, name, args, log_dir):
        self.name = name
        self.env = dict(env, PIXFLOW_CONSUMER=name)
        self.log_path = Path(log_dir) / f"{name}.log"
        self.log_file = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([binary(CONSUMER), *map(str, args)], env=self.env,
                                     stdout=self.log_file, stderr=subprocess.STDOUT)

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def running(self):
        return self.proc.poll() is None

    def wait(self, timeout):
        """The exit status; fails (with the log) if the worker is still running after timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker {self.name} still ran after {timeout}s:\n{self.log()[-6000:]}")

    def signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def kill(self):
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def close(self):
        self.kill()
        self.log_file.close()

    def assert_clean_exit(self, timeout):
        rc = self.wait(timeout)
        log = self.log()
        assert rc == 0, f"worker {self.name} exited with {rc}:\n{log[-6000:]}"
        assert "Sanitizer" not in log and "runtime error" not in log, log[-6000:]


class Fleet:
    """Starts workers and kills whatever still runs at the end of the test."""

    def __init__(self, log_dir):
        self.log_dir = Path(log_dir)
        self.workers = []

    def start(self, env, name, *args, fast=True):
        w = Worker(env, name, [*(FAST if fast else []), *args], self.log_dir)
        self.workers.append(w)
        return w

    def logs(self):
        return "\n".join(f"--- {w.name}\n{w.log()[-4000:]}" for w in self.workers)

    def close(self):
        for w in self.workers:
            w.close()


# ---- Redis ----


class Keys:
    """The Redis keys of one prefix, read through a redis-py client (bytes in, str out)."""

    def __init__(self, client, prefix, group="pixflow"):
        self.r = client
        self.prefix = prefix
        self.group = group
        self.stream = prefix + "urls"
        self.dead_key = prefix + "dead"

    def xadd(self, url, **fields):
        return self.r.xadd(self.stream, {"url": url, **fields}).decode()

    def xadd_all(self, urls):
        pipe = self.r.pipeline(transaction=False)
        for u in urls:
            pipe.xadd(self.stream, {"url": u})
        return [i.decode() for i in pipe.execute()]

    def stats(self):
        return {k.decode(): int(v) for k, v in self.r.hgetall(self.prefix + "stats").items()}

    def dead(self):
        """Dead letters as dicts of str, oldest first."""
        return [{k.decode(): v.decode(errors="replace") for k, v in fields.items()}
                | {"_id": i.decode()}
                for i, fields in self.r.xrange(self.dead_key)]

    def pending(self):
        """XPENDING summary count of the group (0 when the group does not exist yet)."""
        try:
            return int(self.r.xpending(self.stream, self.group)["pending"])
        except Exception as exc:  # NOGROUP before any worker created it
            if "NOGROUP" in str(exc):
                return 0
            raise

    def pending_by_consumer(self):
        try:
            summary = self.r.xpending(self.stream, self.group)
        except Exception as exc:
            if "NOGROUP" in str(exc):
                return {}
            raise
        return {c["name"].decode(): int(c["pending"]) for c in summary["consumers"]}

    def pending_ids(self):
        rows = self.r.xpending_range(self.stream, self.group, "-", "+", 10000)
        return [row["message_id"].decode() for row in rows]

    def xlen(self):
        return self.r.xlen(self.stream)


def reconcile(stats, documents):
    """SPEC §7 at rest: received = duplicates + invalid + stored + aliased + failed, stored =
    documents. Returns a message when it does not hold, else None."""
    parts = sum(stats.get(k, 0) for k in ("duplicates", "invalid", "stored", "aliased", "failed"))
    if stats.get("received", 0) != parts:
        return f"received {stats.get('received', 0)} != sum of outcomes {parts}: {stats}"
    if stats.get("stored", 0) != documents:
        return f"stored {stats.get('stored', 0)} != {documents} documents: {stats}"
    per_reason = sum(v for k, v in stats.items() if k.startswith("failed:"))
    if per_reason != stats.get("failed", 0):
        return f"failed {stats.get('failed', 0)} != sum of failed:<reason> {per_reason}: {stats}"
    per_reason = sum(v for k, v in stats.items() if k.startswith("invalid:"))
    if per_reason != stats.get("invalid", 0):
        return f"invalid {stats.get('invalid', 0)} != sum of invalid:<reason> {per_reason}"
    return None


# ---- MongoDB documents and PNG ----


def png_info(data):
    """Checks a whole PNG file (signature, chunk CRCs, IHDR, IDAT stream size); returns
    (width, height, bit_depth, color_type). Raises AssertionError on anything malformed."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "no PNG signature"
    i, ihdr, idat, seen_end = 8, None, b"", False
    while i < len(data):
        assert i + 12 <= len(data), "chunk header past the end"
        (length,) = struct.unpack(">I", data[i:i + 4])
        kind = data[i + 4:i + 8]
        body = data[i + 8:i + 8 + length]
        assert len(body) == length, f"{kind!r} chunk truncated"
        (crc,) = struct.unpack(">I", data[i + 8 + length:i + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            seen_end = True
            i += 12 + length
            break
        i += 12 + length
    assert ihdr is not None and seen_end and i == len(data), "IHDR or IEND missing"
    width, height, depth, color = ihdr[:4]
    raw = zlib.decompress(idat)
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color, 1)
    assert len(raw) == height * (1 + width * channels * depth // 8), "IDAT size does not match"
    return width, height, depth, color


def png_gray_pixels(data):
    """The pixel values of an 8-bit grayscale, non-interlaced PNG, row after row (bytes)."""
    width, height, depth, color = png_info(data)
    assert (depth, color) == (8, 0), (depth, color)
    i, idat = 8, b""
    while i < len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        if data[i + 4:i + 8] == b"IDAT":
            idat += data[i + 8:i + 8 + length]
        i += 12 + length
    raw, out, prev = zlib.decompress(idat), bytearray(), bytearray(width)
    for y in range(height):
        kind, row = raw[y * (width + 1)], bytearray(raw[y * (width + 1) + 1:(y + 1) * (width + 1)])
        for x in range(width):
            a, b = row[x - 1] if x else 0, prev[x]
            c = prev[x - 1] if x else 0
            if kind == 1:
                row[x] = (row[x] + a) & 255
            elif kind == 2:
                row[x] = (row[x] + b) & 255
            elif kind == 3:
                row[x] = (row[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                row[x] = (row[x] + pred) & 255
        out += row
        prev = row
    return bytes(out)


def check_document(doc, url, width, height):
    """The SPEC §6 fields of one stored grayscale picture."""
    assert isinstance(doc["_id"], str) and len(doc["_id"]) == 64, doc["_id"]
    image = base64.b64decode(doc["image"], validate=True)
    digest = hashlib.sha256(image).hexdigest()
    assert digest == doc["_id"] == doc["sha256"], "sha256(image) must be _id and sha256"
    assert png_info(image) == (width, height, 8, 0), f"{url}: not an 8-bit gray {width}x{height}"
    assert doc["format"] == "png"
    assert (doc["width"], doc["height"], doc["channels"]) == (width, height, 1)
    assert doc["bytes"] == len(image)
    assert doc["source"] == url
    assert "aliases" not in doc and "alias_from" not in doc  # the URLs are in `sources`
    origin = doc["origin"]
    scheme = url.split(":", 1)[0]
    assert re.fullmatch(rf"{scheme}://fastly\.picsum\.photos/id/\d+/{width}/{height}\.jpg\?.*",
                        origin["final_url"]), origin
    assert origin["content_type"].startswith("image/jpeg"), origin
    assert isinstance(origin["bytes"], int) and origin["bytes"] > 0
    assert isinstance(origin["sha256"], str) and len(origin["sha256"]) == 64
    assert origin["sha256"] != doc["sha256"]  # the JPEG downloaded is not the PNG stored
    assert (origin["width"], origin["height"]) == (width, height)
    assert [t["name"] for t in doc["transforms"]] == ["grayscale"]
    assert all(isinstance(t["version"], str) and t["version"] for t in doc["transforms"])
    assert type(doc["inserted_at"]).__name__ == "datetime"
    assert isinstance(doc["stream_id"], str) and "-" in doc["stream_id"]
    assert isinstance(doc["consumer"], str) and doc["consumer"]
    assert isinstance(doc["attempts"], int) and doc["attempts"] >= 1


def mongo_for(env):
    """(client, database) of env's PIXFLOW_MONGO_URI."""
    import pymongo
    uri = env["PIXFLOW_MONGO_URI"]
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
    return client, client[uri.rsplit("/", 1)[1].split("?")[0]]


# ---- the image server ----


def picsum_control(env, what):
    with urllib.request.urlopen(f"http://{env['PIXFLOW_PICSUM_HTTP']}/__control/{what}",
                                timeout=10) as reply:
        return json.loads(reply.read())


def requests_for(env, path):
    """How many requests the image server has seen for this exact path."""
    return picsum_control(env, "stats")["by_path"].get(path, 0)


def requests_matching(env, predicate):
    return sum(n for p, n in picsum_control(env, "stats")["by_path"].items() if predicate(p))


# ---- sockets that must stay untouched ----


class Trap:
    """A listening TCP socket nobody should connect to. Connections complete in the kernel even
    without accept(), so a non-blocking accept afterwards tells whether anyone came."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.host = host
        self.port = self.sock.getsockname()[1]

    def connections(self):
        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1

    def close(self):
        self.sock.close()


def port_open(port, host="127.0.0.1"):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


