"""pixflow under Redis Sentinel (SPEC §2 redis-sentinel://): a primary, a replica and three
sentinels on loopback, started here; the stack's FerretDB and image server. a failover
mid-run (kill -9 of the primary, or its demotion): the workers and the tools move to the promoted
replica, every URL is stored once and the counters reconcile. Ingest with
PIXFLOW_REDIS_WAIT_REPLICAS through a failover queues every line once, and with two workers
storing its catalog meanwhile the answer key holds; a WAIT that cannot be met is reported, never
claimed; +switch-master moves an idle worker."""
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import redis as redis_lib

from conftest import binary, run
from pixflow_helpers import Keys, mongo_for, reconcile, sizes, token, wait_for

PICSUM = "https://picsum.photos"
MASTER = "pixflow"

pytestmark = pytest.mark.skipif(shutil.which("redis-sentinel") is None,
                                reason="redis-sentinel is not installed (scripts/setup.sh)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Topology:
    """A primary, a replica and three sentinels (quorum 2), each a child process."""

    def __init__(self, folder, password=None):
        self.folder = folder
        self.password = password
        self.procs = {}
        self.ports = {"primary": free_port(), "replica": free_port()}
        auth = ["--requirepass", password, "--masterauth", password] if password else []
        self.server("primary", *auth)
        self.server("replica", *auth, "--replicaof", "127.0.0.1", str(self.ports["primary"]))
        # Each sentinel's configuration names the replica and the other sentinels, as one that
        # ran before has them rewritten, so the quorum is whole at once rather than after their
        # hello messages (every 2 s).
        self.sentinels = [free_port() for _ in range(3)]
        ids = [f"{i + 1:040x}" for i in range(3)]
        for i, port in enumerate(self.sentinels):
            conf = folder / f"sentinel{i}.conf"
            lines = [f"port {port}", "bind 127.0.0.1", f"dir {folder}",
                     f"sentinel myid {ids[i]}",
                     f"sentinel monitor {MASTER} 127.0.0.1 {self.ports['primary']} 2",
                     f"sentinel down-after-milliseconds {MASTER} 1000",
                     f"sentinel failover-timeout {MASTER} 5000",
                     f"sentinel known-replica {MASTER} 127.0.0.1 {self.ports['replica']}"]
            lines += [f"sentinel known-sentinel {MASTER} 127.0.0.1 {p} {ids[j]}"
                      for j, p in enumerate(self.sentinels) if j != i]
            if password:
                lines.append(f"sentinel auth-pass {MASTER} {password}")
            conf.write_text("\n".join(lines) + "\n")
            self.spawn(f"sentinel{i}", ["redis-sentinel", str(conf)])
        wait_for("the replica in sync", lambda: self.client("replica").info("replication")
                 .get("master_link_status") == "up", 20)
        wait_for("the sentinels to know the replica and each other", self.settled, 30)

    def spawn(self, name, argv):
        log = open(self.folder / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def server(self, name, *args):
        port = self.ports[name]
        (self.folder / name).mkdir(exist_ok=True)
        self.spawn(name, ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir",
                          str(self.folder / name), "--save", "", "--appendonly", "no",
                          "--repl-diskless-sync-delay", "0", *args])
        wait_for(f"redis {name}", lambda: self.ping(port), 10)

    def ping(self, port):
        try:
            return redis_lib.Redis(port=port, password=self.password).ping()
        except redis_lib.RedisError:
            return False

    def client(self, name):
        return redis_lib.Redis(port=self.ports[name], password=self.password)

    def sentinel(self, i=0):
        return redis_lib.Redis(port=self.sentinels[i], decode_responses=True)

    def settled(self):
        try:
            for i in range(3):
                info = self.sentinel(i).sentinel_master(MASTER)
                if int(info["num-slaves"]) < 1 or int(info["num-other-sentinels"]) < 2:
                    return False
        except redis_lib.RedisError:
            return False  # not listening yet
        return True

    def primary_port(self):
        return int(self.sentinel().execute_command("SENTINEL", "get-master-addr-by-name",
                                                   MASTER)[1])

    def url(self, db=0, user=""):
        creds = f"{user}:{self.password}@" if self.password else ""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        return f"redis-sentinel://{creds}{hosts}/{db}#{MASTER}"

    def kill(self, name):
        self.procs[name].kill()
        self.procs[name].wait()

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def topology(tmp_path):
    t = Topology(tmp_path)
    try:
        yield t
    finally:
        t.close()


def sentinel_env(env, topology):
    return dict(env, PIXFLOW_REDIS_URL=topology.url())


# Workers' timings for a failover mid-run: entries held through it are reclaimed in seconds. A
# 1.5 s download has taken over 3 s on a loaded machine, and an entry past its deadline gets no
# retry: both leave the margin a retry needs.
TIMING = ["--entry-deadline", "15s", "--fetch-timeout", "6s", "--reclaim-idle", "4s",
          "--reclaim-every", "300ms", "--max-inflight", "8"]


def fail_over(topology, how):
    """kill -9 of the primary, or SENTINEL FAILOVER; returns once the sentinels name the replica.
    A killed primary comes back (its machine restarted) with the configuration the sentinels
    rewrote: a replica of the new primary, so that a WAIT for one replica can be met again.
    (Back empty as a primary, it would be synced from and wipe the data.)"""
    if how == "kill-9":
        topology.kill("primary")
    else:
        topology.sentinel().execute_command("SENTINEL", "FAILOVER", MASTER)
    wait_for("the failover", lambda: topology.primary_port() == topology.ports["replica"], 30)
    if how == "kill-9":
        topology.server("primary", "--replicaof", "127.0.0.1", str(topology.ports["replica"]))


@pytest.mark.parametrize("how", ["kill-9", "demoted"])
def test_failover_mid_run_loses_nothing(env, topology, fleet, how):
    """kill -9 of the primary (its connections die with it), or SENTINEL FAILOVER (the old
    primary lives on as a replica, and the sentinels close its clients' connections)."""
    penv = sentinel_env(env, topology)
    primary = topology.client("primary")
    keys = Keys(primary, penv["PIXFLOW_PREFIX"])
    t = token()
    dims = sizes(40)
    urls = [f"{PICSUM}/{w}/{h}" + (f"?fault=slow&delay_ms=1500&u={t}" if i % 2 else "")
            for i, (w, h) in enumerate(dims)]
    keys.xadd_all(urls)
    assert primary.execute_command("WAIT", 1, 5000) == 1
    a = fleet.start(penv, "A", *TIMING)
    b = fleet.start(penv, "B", *TIMING)
    wait_for("work under way", lambda: keys.stats().get("stored", 0) >= 8, 30)
    assert keys.pending() > 0, "nothing in flight at the failover"
    fail_over(topology, how)
    new = topology.client("replica")
    keys = Keys(new, penv["PIXFLOW_PREFIX"])
    try:
        wait_for("every URL settled", lambda: keys.stats().get("received", 0) >= len(urls)
                 and keys.pending() == 0, 90)
    except BaseException:
        print("stats:", keys.stats(), "pending:", keys.pending(), "dead:", keys.dead())
        for w in (a, b):
            print(f"--- {w.name}\n{w.log()[-4000:]}")
        raise
    assert keys.dead() == [], keys.dead()
    for w in (a, b):
        assert f"redis=127.0.0.1:{topology.ports['replica']}" in w.log(), w.log()[-3000:]
        assert "event=redis_up" in w.log()
    a.signal(15)
    b.signal(15)
    a.assert_clean_exit(15)
    b.assert_clean_exit(15)
    mclient, db = mongo_for(penv)
    docs = list(db["sources"].find({}))
    assert sorted(d["_id"] for d in docs) == sorted(set(urls))
    stats = keys.stats()
    assert stats["received"] == stats["stored"] == len(urls), stats
    assert reconcile(stats, db["images"].count_documents({})) is None
    assert db["images"].count_documents({}) == len(urls)
    # The tools find the new primary through the sentinels too.
    res = run("pixflow", "stats", "--json", env=penv)
    assert res.returncode == 0, res.stderr.decode()
    assert f'"stored":{len(urls)}' in res.stdout.decode().replace(" ", ""), res.stdout
    mclient.close()


def test_ingest_through_the_sentinels_writes_to_the_primary(env, topology):
    penv = sentinel_env(env, topology)
    res = run("pixflow-ingest", "-", env=penv, input=f"{PICSUM}/10/20\n")
    assert res.returncode == 0, res.stderr.decode()
    stream = penv["PIXFLOW_PREFIX"] + "urls"
    assert topology.client("primary").xlen(stream) == 1
    wait_for("the replica", lambda: topology.client("replica").xlen(stream) == 1, 10)


def test_bad_master_name_is_one_clear_line(env, topology):
    url = topology.url().replace(f"#{MASTER}", "#nosuch")
    res = run("pixflow", "stats", env=dict(env, PIXFLOW_REDIS_URL=url))
    assert res.returncode != 0
    err = res.stderr.decode()
    assert "nosuch" in err and "sentinel" in err, err


def test_failover_with_an_acl_user_and_password(env, tmp_path):
    """Credentials of the URL go to whichever node is primary; the sentinels need none."""
    topology = Topology(tmp_path, password="s3cret")
    try:
        for name in ("primary", "replica"):  # ACL commands are not replicated
            topology.client(name).execute_command("ACL", "SETUSER", "pix", "on", ">s3cret",
                                                  "~*", "&*", "+@all")
        penv = dict(env, PIXFLOW_REDIS_URL=topology.url(user="pix"))
        stream = penv["PIXFLOW_PREFIX"] + "urls"
        res = run("pixflow-ingest", "-", env=penv, input=f"{PICSUM}/10/20\n")
        assert res.returncode == 0, res.stderr.decode()
        assert topology.client("primary").xlen(stream) == 1
        assert topology.client("primary").execute_command("WAIT", 1, 5000) == 1
        topology.kill("primary")
        wait_for("the failover", lambda: topology.primary_port() == topology.ports["replica"], 30)
        res = run("pixflow-ingest", "-", env=penv, input=f"{PICSUM}/10/30\n")
        assert res.returncode == 0, res.stderr.decode()
        assert topology.client("replica").xlen(stream) == 2
        bad = dict(env, PIXFLOW_REDIS_URL=topology.url(user="nobody"))
        res = run("pixflow", "stats", env=bad)
        assert res.returncode != 0 and b"WRONGPASS" in res.stderr, res.stderr
    finally:
        topology.close()


def wait_catalog(t, n, faults=False):
    """n lines: unique URLs, every 10th a repeat of the line before it, every 25th invalid.
    With faults, for workers to fetch: every 7th URL answers after a second (work in flight at
    any moment), every 50th is a 404 (a dead letter). Returns the lines and {line number: URL}
    of the lines that must be queued."""
    lines, queued = [], {}
    for i in range(n):
        if i % 25 == 24:
            lines.append(f"ftp://picsum.photos/{i}/1")
        elif i % 10 == 9:
            lines.append(lines[-1])
        else:
            fault = ""
            if faults and i % 50 == 3:
                fault = "&fault=404"
            elif faults and i % 7 == 1:
                fault = "&fault=slow&delay_ms=1000"
            lines.append(f"{PICSUM}/{1 + i % 1000}/{1 + i // 1000}?u={t}{fault}")
            queued[i + 1] = lines[-1]
    return lines, queued


def assert_queued_once(client, prefix, lines, queued):
    """The stream holds each line that had to be queued exactly once, and the counters say so."""
    entries = client.xrange(prefix + "urls")
    got = sorted(int(f[b"line"]) for _, f in entries)
    assert got == sorted(queued), f"{len(got)} entries for {len(queued)} lines"
    assert all(f[b"url"].decode() == queued[int(f[b"line"])] for _, f in entries)
    stats = {k.decode(): int(v) for k, v in client.hgetall(prefix + "stats").items()}
    invalid = sum(1 for x in lines if x.startswith("ftp:"))
    assert stats["ingest_lines"] == len(lines), stats
    assert stats["ingest_queued"] == len(queued), stats
    assert stats["ingest_invalid"] == invalid, stats
    assert stats["ingest_duplicates"] == len(lines) - len(queued) - invalid, stats


def feed_slowly(proc, lines, pause):
    """Write lines to proc's stdin 20 at a time, pause seconds apart, so that what a test does
    comes mid-ingest."""
    try:
        for i in range(0, len(lines), 20):
            proc.stdin.write(("\n".join(lines[i:i + 20]) + "\n").encode())
            proc.stdin.flush()
            time.sleep(pause)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # ingest stopped: the test reads why


@contextlib.contextmanager
def ingest_under_way(penv, topology, tmp_path, lines, started=200, pause=0.02):
    """Ingest (waiting for one replica) fed lines slowly (feed_slowly), once its first `started`
    entries are on the primary; yields (process, stdout file, stderr file), and ends it when the
    test is done."""
    out, err = tmp_path / "ingest.out", tmp_path / "ingest.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([binary("pixflow-ingest"), "--batch", "20", "--retries", "15",
                                 "--source", "catalog", "-"],
                                env=dict(penv, PIXFLOW_REDIS_WAIT_REPLICAS="1"),
                                stdin=subprocess.PIPE, stdout=o, stderr=e)
    feeder = threading.Thread(target=feed_slowly, args=(proc, lines, pause))
    feeder.start()
    try:
        stream = penv["PIXFLOW_PREFIX"] + "urls"
        wait_for("ingest under way",
                 lambda: topology.client("primary").xlen(stream) >= started, 30)
        yield proc, out, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        feeder.join(timeout=120)


@pytest.mark.parametrize("how", ["kill-9", "demoted"])
def test_ingest_waiting_for_a_replica_queues_every_line_once_through_a_failover(
        env, topology, tmp_path, how):
    """Each batch is confirmed by WAIT 1; the failover lands mid-ingest; the batch the old
    primary took without confirming is found missing on the new one and sent again, or found
    there and only confirmed."""
    penv = sentinel_env(env, topology)
    lines, queued = wait_catalog(token(), 3000)
    with ingest_under_way(penv, topology, tmp_path, lines) as (proc, out, err):
        fail_over(topology, how)
        assert proc.wait(timeout=120) == 0, err.read_text()[-3000:]
    log = err.read_text()
    assert "event=redis_retry" in log, log[-3000:]  # the failover came mid-ingest
    assert f"lines={len(lines)} queued={len(queued)} " in out.read_text(), out.read_text()
    assert_queued_once(topology.client("replica"), penv["PIXFLOW_PREFIX"], lines, queued)


@pytest.mark.parametrize("how", ["kill-9", "demoted"])
def test_ingest_and_two_workers_through_a_failover_hold_the_answer_key(
        env, topology, tmp_path, fleet, mongo_db, how):
    """The whole run: ingest (WAIT 1) reads a catalog with bad lines and repeats while two workers
    store it; the failover lands mid-ingest with downloads in flight. Nothing restarts, the run
    drains on the new primary, and every URL is kept or dead-lettered exactly once."""
    penv = sentinel_env(env, topology)
    prefix = penv["PIXFLOW_PREFIX"]
    lines, queued = wait_catalog(token(), 400, faults=True)
    missing = {u for u in queued.values() if "fault=404" in u}
    valid = set(queued.values()) - missing
    workers = [fleet.start(penv, name, *TIMING, "--trim-every", "600s") for name in "AB"]
    for w in workers:
        wait_for(f"worker {w.name} ready", lambda: "event=group_ready" in w.log(), 30)
    keys = Keys(topology.client("primary"), prefix)
    with ingest_under_way(penv, topology, tmp_path, lines, started=100, pause=0.1) as (proc, out,
                                                                                       err):
        wait_for("downloads in flight", lambda: keys.pending() > 0, 10)
        fail_over(topology, how)
        assert proc.wait(timeout=120) == 0, err.read_text()[-3000:]
    assert "event=redis_retry" in err.read_text(), err.read_text()[-3000:]
    assert f"lines={len(lines)} queued={len(queued)} " in out.read_text(), out.read_text()

    new = topology.client("replica")
    keys = Keys(new, prefix)
    wait_for("the run drained", lambda: keys.stats().get("received", 0) >= len(queued)
             and keys.pending() == 0, 90)
    for w in workers:
        assert f" redis={topology.url()} " in w.log(), w.log()[:3000]  # the start line
        assert f"redis=127.0.0.1:{topology.ports['replica']}" in w.log(), w.log()[-3000:]
        w.signal(signal.SIGTERM)
    for w in workers:
        w.assert_clean_exit(15)

    # Ingest's answer: every line to queue in the stream once, the rest counted as it said.
    assert_queued_once(new, prefix, lines, queued)
    # The workers': every URL stored or aliased once, every 404 dead-lettered once.
    sources = [d["_id"] for d in mongo_db["sources"].find({}, {"_id": 1})]
    assert len(sources) == len(set(sources)) and set(sources) == valid, \
        f"{len(set(sources) - valid)} unexpected, {len(valid - set(sources))} lost"
    dead = [d["url"] for d in keys.dead()]
    assert sorted(dead) == sorted(missing), dead
    stats = keys.stats()
    assert stats["received"] == len(queued), stats
    assert stats["stored"] + stats.get("aliased", 0) == len(valid), stats
    assert stats["failed"] == stats["failed:http_404"] == len(missing), stats
    assert stats.get("duplicates", 0) == stats.get("invalid", 0) == 0, stats
    assert reconcile(stats, mongo_db["images"].count_documents({})) is None
    assert keys.pending() == 0
    # The tools find the new primary through the sentinels: verify judges every image and URL
    # (their entries are acked), and finds each sound and named.
    res = run("pixflow", "verify", env=penv)
    report = res.stdout.decode() + res.stderr.decode()
    assert res.returncode == 0 and "Sanitizer" not in report, report
    n = stats["stored"]
    assert f"checked {n} images ({n} ok, 0 corrupt) and {len(valid)} sources; 0 layout " \
        "problems" in report, report


def test_a_wait_that_cannot_be_met_is_reported_not_claimed(env, topology, tmp_path):
    """The replica stopped: WAIT 1 answers 0. Ingest retries saying why, then gives up with
    nothing acknowledged; with the replica back during the retries, it goes on."""
    penv = dict(sentinel_env(env, topology), PIXFLOW_REDIS_WAIT_REPLICAS="1")
    prefix = penv["PIXFLOW_PREFIX"]
    replica = topology.procs["replica"].pid
    t = token()
    first = "".join(f"{PICSUM}/{i}/7?u={t}\n" for i in range(1, 41))
    os.kill(replica, signal.SIGSTOP)
    try:
        res = run("pixflow-ingest", "--retries", "2", "--redis-timeout", "1s", "-", env=penv,
                  input=first)
        errtext = res.stderr.decode()
        assert res.returncode == 1, errtext
        assert "WAIT: 0 of 1 replicas acknowledged the batch" in errtext, errtext
        assert "event=redis_retry" in errtext and "gave up after 3 attempts" in errtext, errtext
        assert "no batch was acknowledged" in errtext, errtext
        assert "ingest failed: lines=0 queued=0 " in res.stdout.decode(), res.stdout

        second = "".join(f"{PICSUM}/{i}/9?u={t}\n" for i in range(1, 41))
        err = tmp_path / "second.err"
        with open(err, "wb") as e:
            proc = subprocess.Popen([binary("pixflow-ingest"), "--retries", "20", "--batch", "10",
                                     "--redis-timeout", "1s", "-"], env=penv,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=e)
        proc.stdin.write(second.encode())
        proc.stdin.close()
        wait_for("ingest waiting for the replica", lambda: "WAIT: 0 of 1" in err.read_text(), 20)
        assert proc.poll() is None, err.read_text()
        os.kill(replica, signal.SIGCONT)
        assert proc.wait(timeout=60) == 0, err.read_text()
        assert b"ingest ok: lines=40 queued=40 " in proc.stdout.read()
    finally:
        os.kill(replica, signal.SIGCONT)
    # What the primary took without its replica stays there (counted by the first run, which
    # said so); the second run's lines are all there, and on the replica.
    client = topology.client("replica")
    wait_for("the replica caught up", lambda: client.xlen(prefix + "urls") == 80, 20)


def test_switch_master_moves_an_idle_worker(env, topology, fleet):
    """The primary stops answering (no RST, no error: a machine gone): the sentinels promote the
    replica and announce it; the idle worker moves at once, long before its own timeouts."""
    penv = sentinel_env(env, topology)
    rport = topology.ports["replica"]
    w = fleet.start(penv, "A", "--redis-timeout", "30s")
    wait_for("the worker up and subscribed",
             lambda: "event=sentinel_watch " in w.log() and "link=reader" in w.log()
             and "event=redis_up link=commands" in w.log(), 20)
    primary = topology.procs["primary"]
    os.kill(primary.pid, signal.SIGSTOP)
    try:
        wait_for("the failover", lambda: topology.primary_port() == rport, 30)
        t0 = time.monotonic()
        for link in ("reader", "commands"):
            wait_for(f"the {link} link on the new primary",
                     lambda: f"event=redis_up link={link} redis=127.0.0.1:{rport}" in w.log(), 10)
        moved = time.monotonic() - t0
        assert moved < 5, f"{moved:.1f}s to move (its timeout: 30s)"
        assert "event=sentinel_switch" in w.log() and "event=redis_switch" in w.log(), w.log()
        keys = Keys(topology.client("replica"), penv["PIXFLOW_PREFIX"])
        keys.xadd(f"{PICSUM}/31/32")
        wait_for("the URL stored", lambda: keys.stats().get("stored", 0) == 1, 30)
    finally:
        topology.kill("primary")  # SIGKILL ends a stopped process too
    w.signal(15)
    w.assert_clean_exit(15)


def test_a_primary_that_lost_confirmed_batches_stops_ingest(env, topology, tmp_path):
    """What WAIT confirmed is gone when ingest reconnects (here wiped on purpose, as a primary
    restarted empty would): ingest cannot tell what else is missing, so it stops, naming the
    last line confirmed, instead of going on as if all were there."""
    lines, _ = wait_catalog(token(), 3000)
    with ingest_under_way(sentinel_env(env, topology), topology, tmp_path, lines) as (proc, out,
                                                                                       err):
        wipe = topology.client("primary").pipeline(transaction=True)
        wipe.flushall()
        wipe.execute_command("CLIENT", "KILL", "TYPE", "normal")
        wipe.execute()
        assert proc.wait(timeout=60) == 1, err.read_text()[-3000:]
    log = err.read_text()
    assert "a failover lost writes WAIT had confirmed" in log, log[-3000:]
    assert "acknowledged by Redis: everything up to catalog line " in log, log[-3000:]
    assert "ingest failed:" in out.read_text()
