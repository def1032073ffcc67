#!/usr/bin/env python3
"""chaos.py -- pixflow's guarantees under faults, in one run on a private stack of real servers
(scripts/stack.sh): URLs arrive all along (some slow, some pushed twice, some invalid), three
workers are killed with SIGKILL every 2-4 s and started again (under the same name or a new
one), Redis is killed with SIGKILL and restarted (AOF, fsync always) half-way, and the
MongoDB-protocol server is stopped for a while at three quarters. Then the killing stops, the
workers drain what is left, get SIGTERM, and the run is reconciled: 0 lost, 0 doubled, counters
exact (SPEC §7), nothing pending, no dead letter, every stop within the drain timeout.

    .cache/venv/bin/python tests/chaos.py --minutes 5        # by hand, a longer storm
    tests/integration/test_faults.py runs it for 40 s

It prints what it does as it goes and the reconciliation at the end; exit status 0 when every
check holds, 1 otherwise. Needs a build (PIXFLOW_BUILD_DIR, default build/)."""
import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))

import conftest  # noqa: E402
from pixflow_helpers import Fleet, Keys, mongo_for, reconcile, sizes, token  # noqa: E402

PICSUM = "https://picsum.photos"
DRAIN_S = 1.0
# Deadlines short enough that a killed worker's entries come back within seconds, long enough
# for a retry of a slow download on a loaded machine: an 800 ms download has taken over 3 s
# under the sanitizers with both cores busy, and an entry past its deadline gets no retry.
WORKER_ARGS = ["--entry-deadline", "12s", "--fetch-timeout", "6s", "--reclaim-idle", "8s",
               "--reclaim-every", "300ms", "--drain-timeout", f"{int(DRAIN_S * 1000)}ms",
               "--max-inflight", "16"]


def kill_server(folder, name):
    """SIGKILL one server of a stack (an outage that begins at once, unlike stack.sh stop, whose
    SIGTERM lets it finish what it serves); returns its pid. restart_server starts it again."""
    pidfile = Path(folder) / f"{name}.pid"
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGKILL)
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    pidfile.unlink()  # stack.sh would read the dead pid as a failed start
    return pid


class Storm:
    def __init__(self, seconds, out=print, rate=6.0, db_outage_s=None, seed=None):
        self.seconds = seconds
        self.out = out
        self.rate = rate  # URLs pushed per second
        self.db_outage_s = min(12.0, seconds / 6) if db_outage_s is None else db_outage_s
        self.rng = random.Random(seed)
        self.valid, self.pushed, self.duplicates, self.invalid = [], 0, 0, 0
        self.invalid_urls = set()
        self.kills = self.starts = 0
        self.stop_times = []

    def say(self, what):
        self.out(f"[{time.monotonic() - self.t0:7.1f}s] {what}")

    # ---- servers ----

    def kill_redis(self):
        pid = kill_server(self.folder, "redis")
        self.say(f"Redis killed (SIGKILL, pid {pid})")
        time.sleep(1.0)
        conftest.restart_server(self.folder, "redis")
        self.redis_fsync_always()
        self.say("Redis started again on its port, from its AOF")

    def redis_fsync_always(self):
        for _ in range(100):
            try:
                self.r.config_set("appendfsync", "always")
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("Redis did not come back")

    # ---- input ----

    def push(self, n):
        """n more entries: most new URLs, a few repeats of earlier ones, a few invalid lines."""
        fields = []
        for _ in range(n):
            roll = self.rng.random()
            if roll < 0.06 and self.valid:
                fields.append(("dup", self.rng.choice(self.valid)))
            elif roll < 0.10:
                fields.append(("invalid", f"{PICSUM}/0/{self.rng.randint(1, 99999)}"))
            else:
                w, h = self.fresh.pop()
                slow = f"?fault=slow&delay_ms=800&u={self.tag}" if self.rng.random() < 0.3 else ""
                fields.append(("new", f"{PICSUM}/{w}/{h}{slow}"))
        try:
            pipe = self.r.pipeline(transaction=False)
            for _, url in fields:
                pipe.xadd(self.keys.stream, {"url": url})
            pipe.execute()
        except Exception:
            return  # Redis is away: these were not pushed, the next ones will be
        for kind, url in fields:
            self.pushed += 1
            if kind == "new":
                self.valid.append(url)
            elif kind == "dup":
                self.duplicates += 1
            else:
                self.invalid += 1
                self.invalid_urls.add(url)

    # ---- workers ----

    def start_worker(self, slot, gen):
        same = gen > 0 and self.rng.random() < 0.5  # a restart under the same name re-reads its
        name = self.names[slot] if same else f"w{slot}-{gen}"  # own pending list
        self.names[slot] = name
        self.slots[slot] = self.fleet.start(self.env, name, *WORKER_ARGS)
        self.starts += 1

    def run(self, keep=None):
        """keep: a folder for the stack's data and every worker's log, left in place."""
        self.t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="pixflow-chaos-") as tmp:
            if keep:
                tmp = Path(keep)
                tmp.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tmp) / "stack"
            try:
                self.env = conftest.isolated_env(conftest.start_stack(self.folder))
                return self._run(Path(tmp))
            finally:
                if hasattr(self, "fleet"):
                    self.fleet.close()
                conftest.stop_stack(self.folder)

    def _run(self, tmp):
        import redis
        self.r = redis.Redis.from_url(self.env["PIXFLOW_REDIS_URL"])
        self.keys = Keys(self.r, self.env["PIXFLOW_PREFIX"])
        self.redis_fsync_always()
        self.tag = token()
        self.fresh = sizes(int(self.seconds * self.rate) + 10, 40, 900)
        self.rng.shuffle(self.fresh)
        self.fleet = Fleet(tmp)
        self.slots, self.names = [None] * 3, [None] * 3
        for slot in range(3):
            self.start_worker(slot, 0)
        self.say(f"stack up, 3 workers, storm of {self.seconds:.0f}s, "
                 f"{self.db_outage_s:.0f}s database outage")

        redis_at, db_at = self.seconds * 0.5, self.seconds * 0.75
        next_kill = self.rng.uniform(2, 4)
        redis_done = db_down = db_done = False
        gen, t_push = 1, 0.0
        while (now := time.monotonic() - self.t0) < self.seconds:
            if now >= t_push:
                self.push(max(1, int(self.rate)))
                t_push = now + 1.0
            if now >= next_kill:
                slot = self.rng.randrange(3)
                victim = self.slots[slot]
                victim.kill()
                self.kills += 1
                self.say(f"kill -9 {victim.name}")
                time.sleep(0.3)
                self.start_worker(slot, gen)
                gen += 1
                self.say(f"started {self.names[slot]}")
                next_kill = now + self.rng.uniform(2, 4)
            if not redis_done and now >= redis_at:
                self.kill_redis()
                redis_done = True
            if not db_down and not db_done and now >= db_at and self.db_outage_s > 0:
                conftest.stop_stack(self.folder, "ferretdb")
                self.say("database server stopped")
                db_down, db_until = True, time.monotonic() - self.t0 + self.db_outage_s
            if db_down and now >= db_until:
                conftest.restart_server(self.folder, "ferretdb")
                self.say("database server started again")
                db_down, db_done = False, True
            time.sleep(0.05)
        if db_down:
            conftest.restart_server(self.folder, "ferretdb")
            self.say("database server started again")

        self.say(f"storm over: {self.kills} kills, {self.pushed} entries pushed; draining")
        began = time.monotonic()
        deadline = began + 120 + self.seconds
        while time.monotonic() < deadline:
            stats = self.keys.stats()
            if stats.get("received", 0) >= self.pushed and self.keys.pending() == 0:
                break
            time.sleep(0.2)
        drained_s = time.monotonic() - began
        self.say(f"drained in {drained_s:.1f}s")
        for w in self.slots:
            w.signal(signal.SIGTERM)
        for w in self.slots:
            t = time.monotonic()
            try:
                rc = w.proc.wait(timeout=DRAIN_S + 10)
            except Exception:
                rc = None
                w.kill()
            self.stop_times.append((w.name, rc, time.monotonic() - t))
        return self.reconcile(drained_s)

    # ---- the verdict ----

    def reconcile(self, drained_s):
        client, db = mongo_for(self.env)
        try:
            docs = list(db["images"].find({}, {"source": 1}))
            sources = list(db["sources"].find({}, {"role": 1}))
        finally:
            client.close()
        stats = self.keys.stats()
        by_source = {}
        for d in docs:
            by_source.setdefault(d["source"], 0)
            by_source[d["source"]] += 1
        valid = set(self.valid)
        lost = sorted(valid - set(by_source))
        doubled = sum(n - 1 for n in by_source.values()) + len(set(by_source) - valid)
        # Invalid lines are dead-lettered as such, once each; any other dead letter is a fault.
        dead = [d for d in self.keys.dead()
                if not (d["url"] in self.invalid_urls and d["reason"] == "bad_size")]
        pending = self.keys.pending()
        aliases = sum(1 for s in sources if s.get("role") == "alias")
        problems = []
        if lost:
            problems.append(f"{len(lost)} lost, e.g. {lost[:3]}")
        if doubled:
            problems.append(f"{doubled} doubled")
        problem = reconcile(stats, len(docs))
        if problem:
            problems.append(problem)
        expect = {"received": self.pushed, "duplicates": self.duplicates,
                  "invalid": self.invalid, "stored": len(valid), "failed": 0,
                  "aliased": aliases}
        for k, v in expect.items():
            if stats.get(k, 0) != v:
                problems.append(f"{k} is {stats.get(k, 0)}, expected {v}")
        if pending:
            problems.append(f"{pending} still pending")
        if dead:
            problems.append(f"{len(dead)} unexpected dead letters: "
                            f"{[(d['url'], d['reason']) for d in dead][:5]}")
        for w in self.fleet.workers:
            log = w.log()
            if "Sanitizer" in log or "runtime error" in log:
                problems.append(f"{w.name}: sanitizer report in {w.log_path}")
        for name, rc, took in self.stop_times:
            if rc != 0 or took > DRAIN_S + 6:
                problems.append(f"{name} stopped with {rc} after {took:.1f}s")

        self.out("")
        self.out("reconciliation")
        self.out(f"  pushed {self.pushed}: {len(valid)} distinct valid URLs, "
                 f"{self.duplicates} repeats, {self.invalid} invalid")
        self.out(f"  workers: {self.starts} started, {self.kills} killed with SIGKILL, "
                 f"1 Redis SIGKILL, {self.db_outage_s:.0f}s database outage; "
                 f"drained in {drained_s:.1f}s")
        self.out("  stops: " + ", ".join(f"{n} rc={rc} in {t:.1f}s" for n, rc, t in self.stop_times))
        self.out(f"  documents {len(docs)}, lost {len(lost)}, doubled {doubled}, "
                 f"pending {pending}, dead letters besides invalid lines {len(dead)}")
        keys = ("received", "duplicates", "invalid", "stored", "aliased", "failed", "reclaimed",
                "retries")
        self.out("  stats: " + ", ".join(f"{k}={stats.get(k, 0)}" for k in keys))
        self.out(f"  received {stats.get('received', 0)} = duplicates + invalid + stored + aliased"
                 f" + failed = {sum(stats.get(k, 0) for k in keys[1:6])}")
        self.out("  " + ("OK" if not problems else "FAILED: " + "; ".join(problems)))
        return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=1.0, help="length of the storm")
    ap.add_argument("--rate", type=float, default=6.0, help="URLs pushed per second")
    ap.add_argument("--db-outage", type=float, default=None,
                    help="seconds the database server is down (default: a sixth, at most 12)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", metavar="DIR", help="keep the stack's data and the worker logs there")
    a = ap.parse_args()
    if a.minutes <= 0 or a.rate <= 0:
        ap.error("--minutes and --rate must be positive")
    storm = Storm(a.minutes * 60, rate=a.rate, db_outage_s=a.db_outage, seed=a.seed)
    sys.exit(1 if storm.run(keep=a.keep) else 0)


if __name__ == "__main__":
    main()
