"""pixflow-consumer under faults (SPEC §5, §7), against real servers: a database outage longer
than max-attempts x reclaim-idle, SIGTERM during an outage and during a decode that never ends,
a lost ack reply, and the kill -9 storm of tests/chaos.py. Each test that stops a server runs on
a private stack; every spawned process is killed at the end of its test."""
import os
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import redis as redis_lib

import conftest
from conftest import BUILD_DIR, isolated_env
from pixflow_helpers import Keys, mongo_for, reconcile, sizes, token, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import chaos  # noqa: E402  tests/chaos.py

PICSUM = "https://picsum.photos"
# Deadlines short enough that several reclaim periods fit in a test, long enough for a slow
# download on a loaded machine (or under ASan).
RECLAIM_IDLE_S = 5
QUICK = ["--entry-deadline", "2s", "--fetch-timeout", "2500ms", "--reclaim-idle",
         f"{RECLAIM_IDLE_S}s", "--reclaim-every", "300ms"]


@pytest.fixture
def pstack(tmp_path):
    """A private stack: (folder, env, Keys, pymongo database)."""
    folder = tmp_path / "stack"
    try:
        penv = isolated_env(conftest.start_stack(folder))
        client = redis_lib.Redis.from_url(penv["PIXFLOW_REDIS_URL"])
        mclient, db = mongo_for(penv)
        yield folder, penv, Keys(client, penv["PIXFLOW_PREFIX"]), db
        mclient.close()
        client.close()
    finally:
        conftest.stop_stack(folder)


def assert_reconciled(keys, db):
    problem = reconcile(keys.stats(), db["images"].count_documents({}))
    assert problem is None, problem


def deliveries(keys):
    return [row["times_delivered"]
            for row in keys.r.xpending_range(keys.stream, keys.group, "-", "+", 10000)]


def timed_stop(worker, limit):
    """SIGTERM; returns how long the worker took to exit (asserting it did so cleanly)."""
    worker.signal(signal.SIGTERM)
    began = time.monotonic()
    worker.assert_clean_exit(limit + 10)
    return time.monotonic() - began


# ---- a database outage longer than max-attempts x reclaim-idle ----


def test_database_outage_poisons_nothing(pstack, fleet):
    """The issue's first case: entries held through an outage of several reclaim periods. The
    leases keep them from being reclaimed, so no delivery count grows, nothing becomes a poison
    pill, nothing fails, and the counters are exact once the server is back."""
    folder, penv, keys, db = pstack
    t = token()
    dims = sizes(24)
    # Half of them slow, so the outage begins with downloads, stores and reads all in flight.
    urls = [f"{PICSUM}/{w}/{h}" + (f"?fault=slow&delay_ms=1000&u={t}" if i % 2 else "")
            for i, (w, h) in enumerate(dims)]
    keys.xadd_all(urls[:20])
    args = [*QUICK, "--max-attempts", "2", "--exit-when-idle", "2s"]
    a, b = fleet.start(penv, "A", *args), fleet.start(penv, "B", *args)
    wait_for("some pictures stored", lambda: keys.stats().get("stored", 0) >= 3, 20)
    chaos.kill_server(folder, "ferretdb")
    keys.xadd_all(urls[20:])
    outage = 2 * RECLAIM_IDLE_S + 3  # max-attempts x reclaim-idle, and then some
    time.sleep(outage)
    assert a.running() and b.running(), fleet.logs()
    assert keys.pending() > 0, "the outage must catch entries in flight"
    assert set(deliveries(keys)) == {1}, "an entry held by a live worker was delivered again"
    assert keys.dead() == [], keys.dead()
    assert "event=parked" in a.log() + b.log()
    conftest.restart_server(folder, "ferretdb")

    a.assert_clean_exit(60)
    b.assert_clean_exit(60)
    docs = list(db["images"].find({}, {"source": 1}))
    assert sorted(d["source"] for d in docs) == sorted(urls), fleet.logs()
    stats = keys.stats()
    assert (stats["received"], stats["stored"]) == (24, 24), stats
    assert stats.get("failed", 0) == 0 and stats.get("reclaimed", 0) == 0, stats
    assert keys.dead() == []
    assert keys.pending() == 0
    assert_reconciled(keys, db)


# ---- stop ----


def test_sigterm_during_a_database_outage(pstack, fleet):
    """SIGTERM while MongoDB is away: the worker ends within the drain timeout (parked entries do
    not hold it), leaves everything pending, and the next worker stores it all."""
    folder, penv, keys, db = pstack
    conftest.stop_stack(folder, "ferretdb")
    urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(8)]
    keys.xadd_all(urls)
    drain = 2.0
    a = fleet.start(penv, "A", *QUICK, "--drain-timeout", f"{int(drain * 1000)}ms")
    wait_for("the entries to be read", lambda: keys.pending() == len(urls), 15)
    wait_for("stores failing", lambda: "event=store_failed" in a.log(), 15)
    time.sleep(1.5)
    took = timed_stop(a, drain + 6)
    assert took <= drain + 6, (took, a.log()[-3000:])
    assert keys.pending_by_consumer() == {"A": len(urls)}
    assert keys.dead() == [] and keys.stats().get("received", 0) == 0, keys.stats()

    conftest.restart_server(folder, "ferretdb")
    fleet.start(penv, "B", *QUICK, "--exit-when-idle", "1s").assert_clean_exit(60)
    docs = list(db["images"].find({}, {"source": 1}))
    assert sorted(d["source"] for d in docs) == sorted(urls)
    stats = keys.stats()
    assert (stats["received"], stats["stored"], stats["reclaimed"]) == (8, 8, 8), stats
    assert keys.pending() == 0
    assert_reconciled(keys, db)


def test_sigterm_during_a_stuck_decode(env, redis_client, mongo_db, fleet, tmp_path):
    """A transform that never returns (the `stall` test plugin sleeps ten minutes): the pool
    threads are not joined, the process still ends within the drain timeout, exit 0, and the
    entries stay pending for another worker."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    os.symlink(BUILD_DIR / "tests" / "plugins" / "stall" / "stall.so", plugins / "stall.so")
    keys = Keys(redis_client, env["PIXFLOW_PREFIX"])
    urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(3)]
    keys.xadd_all(urls)
    wenv = dict(env, PIXFLOW_PLUGIN_PATH=str(plugins), PIXFLOW_TRANSFORMS="stall:value=600000")
    drain = 2.0
    a = fleet.start(wenv, "A", "--drain-timeout", f"{int(drain * 1000)}ms")
    wait_for("the entries to be read", lambda: keys.pending() == len(urls), 15)
    time.sleep(1.5)  # downloaded and asleep in the plugin
    took = timed_stop(a, drain + 6)
    assert took <= drain + 6, (took, a.log()[-3000:])
    assert "event=exit_with_stuck_threads threads=2" in a.log(), a.log()[-3000:]
    assert keys.pending_by_consumer() == {"A": len(urls)}
    assert keys.stats().get("received", 0) == 0 and keys.dead() == []
    assert mongo_db["images"].count_documents({}) == 0


# ---- a lost ack reply ----


class DroppingProxy:
    """TCP proxy in front of Redis that loses the reply of a command: when a request holding
    `marker` goes by, it stops passing replies on, forwards the request, gives Redis time to run
    it, then closes both sides. The first `drops` such requests are treated so."""

    def __init__(self, port, marker, drops):
        self.target, self.marker, self.left, self.dropped = port, marker, drops, 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        upstream = socket.create_connection(("127.0.0.1", self.target))
        hold = False
        try:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 1.0)
                if self.closed:
                    return
                if client in ready:
                    data = client.recv(1 << 16)
                    if not data:
                        return
                    with self.lock:
                        drop = self.marker in data and self.left > 0
                        if drop:
                            self.left -= 1
                    if drop:
                        hold = True
                    upstream.sendall(data)
                    if drop:
                        time.sleep(0.3)  # Redis runs it; its reply goes nowhere
                        with self.lock:
                            self.dropped += 1
                        return
                if upstream in ready:
                    data = upstream.recv(1 << 16)
                    if not data:
                        return
                    if not hold:
                        client.sendall(data)
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self):
        self.closed = True
        self.listener.close()


def test_a_lost_ack_reply_counts_once(env, redis_client, mongo_db, fleet):
    """The ack script runs, its reply is lost, the worker gives the batch again: the second run
    acks nothing, so no counter (outcomes, bytes_in, bytes_out, transform:*) is added twice."""
    keys = Keys(redis_client, env["PIXFLOW_PREFIX"])
    port = int(env["PIXFLOW_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    proxy = DroppingProxy(port, b"local i, acked, sum, names, done = 3, 0", drops=3)
    try:
        urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(12)]
        keys.xadd_all(urls)
        wenv = dict(env, PIXFLOW_REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0")
        w = fleet.start(wenv, "A", "--exit-when-idle", "1s")
        w.assert_clean_exit(60)
        assert proxy.dropped == 3, proxy.dropped
        assert "event=ack_failed" in w.log()
    finally:
        proxy.close()
    docs = list(mongo_db["images"].find({}, {"source": 1, "bytes": 1, "origin.bytes": 1}))
    assert sorted(d["source"] for d in docs) == sorted(urls)
    stats = keys.stats()
    assert (stats["received"], stats["stored"]) == (12, 12), stats
    assert stats["bytes_in"] == sum(d["origin"]["bytes"] for d in docs), stats
    assert stats["bytes_out"] == sum(d["bytes"] for d in docs), stats
    assert stats["transform:grayscale:ok"] == 12, stats
    assert stats.get("retries", 0) == 0, stats
    assert keys.pending() == 0
    assert_reconciled(keys, mongo_db)


# ---- the storm ----


def test_kill_9_storm_with_a_redis_restart(capsys):
    """tests/chaos.py for 40 s: three workers under kill -9 every 2-4 s, Redis killed and
    restarted half-way, a short database outage; 0 lost, 0 doubled, exact counters, nothing
    pending, every stop within the drain timeout."""
    lines = []
    problems = chaos.Storm(40, out=lines.append, db_outage_s=5).run()
    report = "\n".join(lines)
    with capsys.disabled():
        print("\n" + "\n".join(lines[-9:]))
    assert not problems, report
    assert "kill -9" in report and "Redis killed" in report
