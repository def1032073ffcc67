"""pixflow-ingest against a real Redis: what lands in the stream, the counters, the rejects file,
exit statuses, --follow, --watch, back-pressure and recovery from a Redis that fails mid-way."""
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_lib

from conftest import binary, run

INGEST = "pixflow-ingest"

# N unique valid URLs (written in normal form), D lines that repeat them (exactly or once
# normalized), B invalid lines with the reason each must get.
UNIQUE = [f"https://picsum.photos/{w}/{h}" for w, h in
          [(10, 10), (200, 300), (640, 480), (5000, 5000), (1, 1), (37, 41)]]
UNIQUE += ["https://picsum.photos/77", "https://picsum.photos/200/300.jpg",
           "http://picsum.photos/200/300", "https://fastly.picsum.photos/12/34",
           "https://picsum.photos/200/300?grayscale", "https://picsum.photos:8443/5/5"]
DUPLICATES = [
    "https://picsum.photos/200/300",              # exact repeat
    "HTTPS://PICSUM.PHOTOS/200/300",              # scheme and host case
    "https://picsum.photos/200/300/",             # trailing slash
    "https://picsum.photos:443/200/300",          # default port
    "https://picsum.photos/200/300#frag",         # fragment
    "https://picsum.photos/0200/0300",            # leading zeros
    "   https://picsum.photos/10/10\t",           # surrounding whitespace
    "https://picsum.photos/77/\r",                # CR (a CRLF file)
    "http://picsum.photos:80/200/300",            # default http port
]
BAD = [
    ("ftp://picsum.photos/200/300", "bad_scheme"),
    ("picsum.photos/200/300", "bad_scheme"),
    ("https://example.com/200/300", "bad_host"),
    ("https://[::1]/200/300", "bad_host"),
    ("https://user:pw@picsum.photos/200/300", "userinfo"),
    ("https://picsum.photos:65536/200/300", "bad_port"),
    ("https://picsum.photos/abc", "bad_path"),
    ("https://picsum.photos/0/300", "bad_size"),
    ("https://picsum.photos/5001/300", "bad_size"),
    ("https://picsum.photos/200 /300", "bad_char"),
    ("https://picsum.photos/" + "9" * 3000, "too_long"),
]


def write_catalog(path):
    """The catalog: uniques, then duplicates and bad lines interleaved, with blank lines."""
    lines = list(UNIQUE)
    first_line = {u: i + 1 for i, u in enumerate(UNIQUE)}
    rest = []
    for i in range(max(len(DUPLICATES), len(BAD))):
        if i < len(DUPLICATES):
            rest.append(DUPLICATES[i])
        if i < len(BAD):
            rest.append(BAD[i][0])
        if i % 4 == 0:
            rest.append("")
    lines += rest
    Path(path).write_bytes(("\n".join(lines) + "\n").encode())
    bad_lines = {len(UNIQUE) + 1 + rest.index(text): reason for text, reason in BAD}
    return first_line, bad_lines


def entries(client, prefix):
    out = []
    for _id, fields in client.xrange(prefix + "urls"):
        out.append({k.decode(): v.decode() for k, v in fields.items()})
    return out


def stats(client, prefix):
    return {k.decode(): int(v) for k, v in client.hgetall(prefix + "stats").items()}


def wait_for(cond, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def own_redis(tmp_path, request):
    """A redis-server of this test alone, for tests that change its settings; extra
    redis-server arguments come from indirect parametrization."""
    extra = getattr(request, "param", ())
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis_lib.Redis(port=port)
    try:
        wait_for(lambda: _ping(client), 10, "redis-server")
        yield port, client
    finally:
        proc.terminate()
        proc.wait(10)


def _ping(client):
    try:
        return client.ping()
    except redis_lib.exceptions.ConnectionError:
        return False


class Background:
    """pixflow-ingest running in the background, stopped with SIGTERM."""

    def __init__(self, args, env):
        self.proc = subprocess.Popen([binary(INGEST), *map(str, args)], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.result = None

    def stop(self):
        """SIGTERM (if still running) and wait; returns (status, stdout, stderr)."""
        if self.result is None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self, timeout=60):
        if self.result is None:
            try:
                out, err = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, err = self.proc.communicate()
            self.result = (self.proc.returncode, out.decode(), err.decode())
        return self.result


def test_catalog_entries_counters_and_rejects(env, redis_client, tmp_path):
    prefix = env["PIXFLOW_PREFIX"]
    catalog = tmp_path / "catalog.txt"
    first_line, bad_lines = write_catalog(catalog)
    rejects = tmp_path / "rejects.tsv"

    r = run(INGEST, "--rejects", rejects, catalog, env=env)
    assert r.returncode == 0, r.stderr.decode()

    got = entries(redis_client, prefix)
    assert len(got) == len(UNIQUE)
    assert sorted(e["url"] for e in got) == sorted(UNIQUE)  # written in normal form already
    for e in got:
        assert e["source"] == str(catalog)
        assert int(e["line"]) == first_line[e["url"]]
        assert set(e) == {"url", "source", "line"}

    st = stats(redis_client, prefix)
    assert st["ingest_lines"] == len(UNIQUE) + len(DUPLICATES) + len(BAD)
    assert st["ingest_queued"] == len(UNIQUE)
    assert st["ingest_duplicates"] == len(DUPLICATES)
    assert st["ingest_invalid"] == len(BAD)
    for reason in {reason for _, reason in BAD}:
        assert st[f"ingest_invalid:{reason}"] == sum(1 for _, x in BAD if x == reason)

    records = rejects.read_text().splitlines()
    assert len(records) == len(BAD)
    seen = {}
    for rec in records:
        line, reason, text = rec.split("\t")
        seen[int(line)] = reason
        assert "\t" not in text
    assert seen == bad_lines
    too_long = [rec for rec in records if "\ttoo_long\t" in rec][0]
    assert too_long.endswith("...(3022 bytes)")

    summary = r.stdout.decode()
    assert summary.count("\n") == 1
    assert f"queued={len(UNIQUE)}" in summary and f"invalid={len(BAD)}" in summary
    assert r.stderr.count(b"error") == 0


def test_second_run_adds_nothing_once_consumed(env, redis_client, tmp_path):
    prefix = env["PIXFLOW_PREFIX"]
    catalog = tmp_path / "catalog.txt"
    write_catalog(catalog)
    assert run(INGEST, catalog, env=env).returncode == 0
    assert redis_client.xlen(prefix + "urls") == len(UNIQUE)
    # What the consumer does on its first delivery of each entry (SPEC §5.1).
    for e in entries(redis_client, prefix):
        redis_client.sadd(prefix + "seen", e["url"])

    r = run(INGEST, "--json", catalog, env=env)
    assert r.returncode == 0, r.stderr.decode()
    summary = json.loads(r.stdout)
    assert summary["queued"] == 0
    assert summary["duplicates"] == len(UNIQUE) + len(DUPLICATES)
    assert summary["duplicates_seen"] == len(UNIQUE)
    assert summary["duplicates_input"] == len(DUPLICATES)
    assert redis_client.xlen(prefix + "urls") == len(UNIQUE)
    st = stats(redis_client, prefix)
    assert st["ingest_queued"] == len(UNIQUE)
    assert st["ingest_duplicates"] == len(DUPLICATES) + len(UNIQUE) + len(DUPLICATES)
    assert st["ingest_lines"] == 2 * (len(UNIQUE) + len(DUPLICATES) + len(BAD))
    # ingest never writes the seen set itself
    assert redis_client.scard(prefix + "seen") == len(UNIQUE)


def test_stdin_json_and_source(env, redis_client):
    prefix = env["PIXFLOW_PREFIX"]
    data = "https://picsum.photos/3/3\nhttps://picsum.photos/3/3\nnope\n\nhttps://picsum.photos/4\n"
    r = run(INGEST, "--json", env=env, input=data)
    assert r.returncode == 0, r.stderr.decode()
    s = json.loads(r.stdout)
    assert (s["status"], s["lines"], s["queued"], s["duplicates"], s["invalid"], s["blank"]) == \
        ("ok", 4, 2, 1, 1, 1)
    assert s["invalid_reasons"] == {"bad_scheme": 1}
    assert s["last_source"] == "stdin" and s["last_line"] == 5
    got = entries(redis_client, prefix)
    assert [(e["url"], e["source"], e["line"]) for e in got] == [
        ("https://picsum.photos/3/3", "stdin", "1"), ("https://picsum.photos/4", "stdin", "5")]

    r = run(INGEST, "--source", "nightly-batch", "-", env=env,
            input="https://picsum.photos/9/9\n")
    assert r.returncode == 0
    assert entries(redis_client, prefix)[-1]["source"] == "nightly-batch"


@pytest.mark.parametrize("args,flag", [
    (["--bogus"], "--bogus"),
    (["--batch", "0"], "--batch"),
    (["--max-backlog", "lots"], "--max-backlog"),
    (["--redis-url", "http://x"], "--redis-url"),
    (["--follow", "--watch", "/tmp"], "--watch"),
    (["--follow"], "--follow"),
    (["--dedup-memory", "10k"], "--dedup-memory"),
    (["--resume", "nope"], "--resume"),
    (["/nonexistent/catalog.txt"], "/nonexistent/catalog.txt"),
])
def test_bad_usage_exits_2_with_one_line(env, args, flag):
    r = run(INGEST, *args, env=env, input="")
    assert r.returncode == 2
    err = r.stderr.decode()
    assert err.count("\n") == 1, err
    assert flag in err


def test_help(env):
    r = run(INGEST, "--help", env=env)
    assert r.returncode == 0
    for flag in ["--rejects", "--follow", "--watch", "--json", "--batch", "--max-backlog",
                 "--source", "--redis-url", "--allowed-hosts", "--group"]:
        assert flag in r.stdout.decode()


def test_redis_down_exits_1_and_says_how_far(env, tmp_path):
    catalog = tmp_path / "c.txt"
    catalog.write_text("https://picsum.photos/1/1\n")
    bad_env = dict(env, PIXFLOW_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    r = run(INGEST, "--retries", "1", "--json", catalog, env=bad_env)
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "Connection refused" in err
    assert "gave up after 2 attempts" in err
    assert "no batch was acknowledged" in err and "rerun" in err
    assert json.loads(r.stdout)["status"] == "failed"


# Without the AOF each XADD goes alone; with it a batch's XADDs go in one MULTI/EXEC.
AOF = [(), ("--appendonly", "yes", "--appendfsync", "always")]


@pytest.mark.parametrize("own_redis", AOF, indirect=True, ids=["plain", "multi"])
def test_failure_mid_way_then_resume_loses_nothing(env, tmp_path, own_redis, request):
    port, client = own_redis
    urls = [f"https://picsum.photos/{1 + i % 5000}/{1 + i // 5000}?pad={'x' * 200}"
            for i in range(20000)]
    catalog = tmp_path / "big.txt"
    catalog.write_text("\n".join(urls) + "\n")
    my_env = dict(env, PIXFLOW_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "3mb")
    prefix = env["PIXFLOW_PREFIX"]

    r = run(INGEST, "--batch", "100", "--retries", "2", catalog, env=my_env)
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "OOM" in err
    assert f"multi={int(request.node.callspec.id == 'multi')}" in err, err
    resume = err.split("--resume '")[1].split("'")[0]
    source, line = resume.rsplit(":", 1)
    line = int(line)
    assert source == str(catalog) and 0 < line < len(urls)
    in_stream = {f[b"url"].decode() for _, f in client.xrange(prefix + "urls")}
    # every line up to the acknowledged one is in the stream
    assert set(urls[:line]) <= in_stream
    assert int(client.hget(prefix + "stats", "ingest_queued")) == line

    client.config_set("maxmemory", "0")
    r = run(INGEST, "--batch", "100", "--resume", resume, catalog, env=my_env)
    assert r.returncode == 0, r.stderr.decode()
    stream = [f[b"url"].decode() for _, f in client.xrange(prefix + "urls")]
    assert set(stream) == set(urls)
    # only what was XADDed and not yet acknowledged is sent twice: the window it announced
    window = int(err.split("up to ")[2].split(" lines after it")[0])
    assert 0 < window <= 1000
    assert len(stream) - len(urls) <= window
    assert int(client.hget(prefix + "stats", "ingest_lines")) == len(urls)


@pytest.mark.parametrize("own_redis", [("--rename-command", "SMISMEMBER", "")], indirect=True)
def test_without_smismember_falls_back_to_sismember(env, tmp_path, own_redis):
    """Redis before 6.2 has no SMISMEMBER: one pipelined SISMEMBER per URL instead."""
    port, client = own_redis
    prefix = env["PIXFLOW_PREFIX"]
    my_env = dict(env, PIXFLOW_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    catalog = tmp_path / "c.txt"
    write_catalog(catalog)
    client.sadd(prefix + "seen", UNIQUE[0], UNIQUE[3])
    r = run(INGEST, "--json", "--batch", "4", catalog, env=my_env)
    assert r.returncode == 0, r.stderr.decode()
    assert "smismember=0" in r.stderr.decode()
    s = json.loads(r.stdout)
    assert (s["queued"], s["duplicates_seen"]) == (len(UNIQUE) - 2, 2)
    stream = {f[b"url"].decode() for _, f in client.xrange(prefix + "urls")}
    assert stream == set(UNIQUE) - {UNIQUE[0], UNIQUE[3]}


@pytest.mark.parametrize("own_redis", AOF, indirect=True, ids=["plain", "multi"])
def test_connection_drops_are_retried_and_counted_once(env, tmp_path, own_redis, request):
    port, client = own_redis
    urls = [f"https://picsum.photos/{1 + i % 5000}/{1 + i // 5000}" for i in range(100000)]
    catalog = tmp_path / "c.txt"
    catalog.write_text("\n".join(urls + urls[:5000]) + "\n")  # and 5000 repeats
    my_env = dict(env, PIXFLOW_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    prefix = env["PIXFLOW_PREFIX"]
    bg = Background(["--batch", "10", "--json", catalog], my_env)
    kills = 0
    try:
        while bg.proc.poll() is None and kills < 10:
            time.sleep(0.02)
            kills += client.client_kill_filter(_type="normal", skipme=True)
        code, out, err = bg.wait()
    finally:
        bg.stop()
    assert code == 0, err
    assert kills > 0 and "event=redis_retry" in err
    assert f"multi={int(request.node.callspec.id == 'multi')}" in err, err
    stream = [f[b"url"].decode() for _, f in client.xrange(prefix + "urls")]
    assert set(stream) == set(urls)  # nothing lost; a resent XADD may appear twice
    st = {k.decode(): int(v) for k, v in client.hgetall(prefix + "stats").items()}
    # counted exactly once, whatever was resent
    assert st["ingest_lines"] == 105000
    assert st["ingest_queued"] == 100000
    assert st["ingest_duplicates"] == 5000
    assert json.loads(out)["queued"] == 100000
    assert not client.keys(prefix + "ingest:run:*")  # the run's key goes at the end


def test_hostile_bytes_do_not_crash_and_are_counted(env, redis_client, tmp_path):
    prefix = env["PIXFLOW_PREFIX"]
    data = (b"https://picsum.photos/1/1\r\n"
            b"https://picsum.photos/2/2\x00\n"
            b"\xff\xfe\xfd\n"
            b"https://picsum.photos/\xc3\xa9/1\n"
            + b"A" * (1 << 20) + b"\n"
            + b"\x00\x00\x00\n"
            b"https://picsum.photos/3/3")  # no final newline
    catalog = tmp_path / "hostile.txt"
    catalog.write_bytes(data)
    rejects = tmp_path / "rejects.tsv"
    r = run(INGEST, "--json", "--rejects", rejects, catalog, env=env)
    assert r.returncode == 0, r.stderr.decode()
    s = json.loads(r.stdout)
    assert (s["lines"], s["queued"], s["invalid"]) == (7, 2, 5)
    assert s["invalid_reasons"] == {"not_utf8": 3, "bad_char": 1, "too_long": 1}
    assert sorted(e["url"] for e in entries(redis_client, prefix)) == [
        "https://picsum.photos/1/1", "https://picsum.photos/3/3"]
    raw = rejects.read_bytes()
    assert all(0x20 <= b < 0x7f or b in b"\t\n" for b in raw)
    recs = raw.decode().splitlines()
    assert len(recs) == 5
    assert recs[0] == "2\tnot_utf8\thttps://picsum.photos/2/2\\0"
    assert recs[1] == "3\tnot_utf8\t\\xff\\xfe\\xfd"
    assert recs[3].startswith("5\ttoo_long\tAAAA") and recs[3].endswith(f"...({1 << 20} bytes)")

    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    r = run(INGEST, "--json", empty, env=env)
    assert r.returncode == 0
    assert json.loads(r.stdout)["lines"] == 0


def test_follow_appends_rotation_truncation(env, redis_client, tmp_path):
    prefix = env["PIXFLOW_PREFIX"]
    log = tmp_path / "feed.log"
    log.write_text("https://picsum.photos/1/1\n")
    bg = Background(["--follow", "--poll", "50ms", log], env)
    try:
        urls = lambda: [(e["url"], e["line"]) for e in entries(redis_client, prefix)]
        wait_for(lambda: len(urls()) == 1, what="the first line")
        with open(log, "a") as f:
            f.write("https://picsum.photos/2/2\nhttps://picsum.photos/3/")
            f.flush()
            wait_for(lambda: len(urls()) == 2, what="the appended line")
            time.sleep(0.3)
            assert len(urls()) == 2  # the unterminated line waits for its end
            f.write("3\n")
        wait_for(lambda: len(urls()) == 3, what="the completed line")
        assert urls()[2] == ("https://picsum.photos/3/3", "3")

        # rotation: the old file is finished (its last line has no newline), a new one begins
        with open(log, "a") as f:
            f.write("https://picsum.photos/4/4")
        os.rename(log, tmp_path / "feed.log.1")
        log.write_text("https://picsum.photos/5/5\nhttps://picsum.photos/1/1\n")
        wait_for(lambda: len(urls()) == 5, what="the rotated file")
        assert ("https://picsum.photos/4/4", "4") in urls()
        assert ("https://picsum.photos/5/5", "1") in urls()  # line numbers restart

        # truncation: read again from the start
        log.write_text("https://picsum.photos/6/6\n")
        wait_for(lambda: len(urls()) == 6, what="the truncated file")
        assert urls()[5] == ("https://picsum.photos/6/6", "1")
    finally:
        code, out, err = bg.stop()
    assert code == 0, err
    assert "event=follow_rotated" in err and "event=follow_truncated" in err
    assert "queued=6" in out and "duplicates=1" in out


def test_watch_ingests_each_file_once(env, redis_client, tmp_path):
    prefix = env["PIXFLOW_PREFIX"]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.txt").write_text("https://picsum.photos/1/1\nhttps://picsum.photos/2/2\n")
    os.mkfifo(inbox / "pipe")
    bg = Background(["--watch", inbox, "--json"], env)
    try:
        wait_for(lambda: (inbox / ".done" / "a.txt").exists(), what="a.txt done")
        wait_for(lambda: (inbox / ".failed" / "pipe").exists(), what="the fifo refused")
        assert redis_client.xlen(prefix + "urls") == 2

        # the recommended way: write a dot-file, rename it when complete
        tmp = inbox / ".b.txt.tmp"
        tmp.write_text("https://picsum.photos/3/3\nnot a url\n")
        time.sleep(0.3)
        assert redis_client.xlen(prefix + "urls") == 2  # dot-files are ignored
        os.rename(tmp, inbox / "b.txt")
        wait_for(lambda: (inbox / ".done" / "b.txt").exists(), what="b.txt done")

        # a plain write, closed: IN_CLOSE_WRITE; and the same name again later
        (inbox / "a.txt").write_text("https://picsum.photos/4/4\n")
        wait_for(lambda: (inbox / ".done" / "a.txt.1").exists(), what="second a.txt done")
        wait_for(lambda: redis_client.xlen(prefix + "urls") == 4, what="4 entries")
        sources = sorted((e["source"], e["url"]) for e in entries(redis_client, prefix))
        assert sources == [("a.txt", "https://picsum.photos/1/1"),
                           ("a.txt", "https://picsum.photos/2/2"),
                           ("a.txt", "https://picsum.photos/4/4"),
                           ("b.txt", "https://picsum.photos/3/3")]
        assert sorted(p.name for p in inbox.iterdir()) == [".done", ".failed"]
    finally:
        code, out, err = bg.stop()
    assert code == 0, err
    s = json.loads(out)
    assert (s["queued"], s["invalid"], s["files_done"], s["files_failed"]) == (4, 1, 3, 1)
    assert redis_client.xlen(prefix + "urls") == 4


def test_max_backlog_waits_for_the_consumers(env, redis_client, tmp_path):
    prefix = env["PIXFLOW_PREFIX"]
    group = env.get("PIXFLOW_GROUP", "pixflow")
    redis_client.xgroup_create(prefix + "urls", group, id="0", mkstream=True)
    catalog = tmp_path / "c.txt"
    catalog.write_text("".join(f"https://picsum.photos/{i}/{i}\n" for i in range(1, 61)))
    bg = Background(["--max-backlog", "10", "--batch", "5", catalog], env)
    try:
        wait_for(lambda: redis_client.xlen(prefix + "urls") >= 10, what="the first entries")
        time.sleep(0.5)
        assert bg.proc.poll() is None  # waiting, not done
        assert redis_client.xlen(prefix + "urls") <= 10
        # a consumer takes entries: the lag drops, ingest goes on, until all 60 are in
        def consume():
            redis_client.xreadgroup(group, "c1", {prefix + "urls": ">"}, count=100)
            return redis_client.xlen(prefix + "urls") == 60
        wait_for(consume, timeout=30, what="all entries")
    finally:
        code, out, err = bg.stop()
    assert code == 0, err
    assert "event=backpressure" in err
    assert "queued=60" in out


def test_stop_while_held_by_backlog_then_resume(env, redis_client, tmp_path):
    prefix = env["PIXFLOW_PREFIX"]
    group = env.get("PIXFLOW_GROUP", "pixflow")
    redis_client.xgroup_create(prefix + "urls", group, id="0", mkstream=True)
    catalog = tmp_path / "c.txt"
    urls = [f"https://picsum.photos/{i}/{i}" for i in range(1, 41)]
    catalog.write_text("\n".join(urls) + "\n")
    bg = Background(["--max-backlog", "8", "--batch", "4", catalog], env)
    try:
        wait_for(lambda: redis_client.xlen(prefix + "urls") >= 8, what="the first entries")
        time.sleep(0.5)
        assert bg.proc.poll() is None  # held by the backlog
    finally:
        code, out, err = bg.stop()
    assert code == 128 + signal.SIGTERM, err
    assert "event=backpressure " in err
    assert "ingest interrupted:" in out
    resume = err.split("--resume '")[1].split("'")[0]
    line = int(resume.rsplit(":", 1)[1])
    # everything up to the mark is in, counted once; nothing after it was sent
    assert [f[b"url"].decode() for _, f in redis_client.xrange(prefix + "urls")] == urls[:line]
    assert int(redis_client.hget(prefix + "stats", "ingest_lines")) == line
    assert "may be in the stream too" not in err

    redis_client.xreadgroup(group, "c1", {prefix + "urls": ">"}, count=1000)
    r = run(INGEST, "--resume", resume, catalog, env=env)
    assert r.returncode == 0, r.stderr.decode()
    assert [f[b"url"].decode() for _, f in redis_client.xrange(prefix + "urls")] == urls
    assert int(redis_client.hget(prefix + "stats", "ingest_lines")) == len(urls)
