"""The `pixflow` admin CLI against real servers and a real pipeline run: stats match what the run
produced, verify finds exactly the documents corrupted on purpose (and --fix moves them and gets
them stored again), get returns the stored bytes by id, source URL and alias, dead lists and
replays dead letters exactly once, plugins reports what loads and what does not."""
import base64
import datetime
import hashlib
import json
import os
import pty
import re
import select
import shutil
import socket
import subprocess
import time
from pathlib import Path

import gridfs
import pytest

from conftest import BUILD_DIR, SOURCE_DIR, run
from pixflow_helpers import FAST, Keys, reconcile, sizes, token

PICSUM = "https://picsum.photos"
ADMIN = "pixflow"


@pytest.fixture
def keys(redis_client, env):
    return Keys(redis_client, env["PIXFLOW_PREFIX"])


def pixflow(*args, env, expect=None, timeout=120):
    """Run `pixflow ARGS`; checks the exit status when `expect` is given, and that no sanitizer
    spoke. Returns the CompletedProcess with text stdout/stderr.

    MONGOC_DISABLE_SHM: libmongoc's load-time constructor warns on stderr ("Falling back to
    malloc for counters") when /dev/shm holds a stale segment of a killed process whose pid was
    reused; the tests check stderr line by line, and the counters are only for mongoc's tools."""
    p = run(ADMIN, *args, env=dict(env, MONGOC_DISABLE_SHM="1"), timeout=timeout)
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    assert "Sanitizer" not in err and "runtime error" not in err, err
    if expect is not None:
        assert p.returncode == expect, f"pixflow {' '.join(map(str, args))} -> {p.returncode}\n" \
                                       f"stdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}"
    p.out, p.err = out, err
    return p


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def ingest(env, tmp_path, lines):
    catalog = tmp_path / f"catalog-{token()}.txt"
    catalog.write_text("".join(line + "\n" for line in lines))
    p = run("pixflow-ingest", catalog, env=env)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return catalog


def consume(env, name="w1"):
    """One worker until the group is idle; every entry gets one attempt."""
    p = run("pixflow-consumer", *FAST, "--exit-when-idle", "1s", "--max-attempts", "1",
            env=dict(env, PIXFLOW_CONSUMER=name), timeout=90)
    log = p.stderr.decode(errors="replace")
    assert p.returncode == 0, log[-6000:]
    assert "Sanitizer" not in log and "runtime error" not in log, log[-6000:]
    return log


def store_valid(env, tmp_path, n):
    """Stores n fresh pictures; returns {normalized URL: (width, height)}."""
    urls = {f"{PICSUM}/{w}/{h}": (w, h) for w, h in sizes(n)}
    ingest(env, tmp_path, list(urls))
    consume(env)
    return urls


def documents(db):
    return {d["source"]: d for d in db["images"].find({})}


# ---- stats ----


def test_stats_match_the_run(env, keys, mongo_db, tmp_path):
    t = token()
    (w1, h1), (w2, h2), (w3, h3), (w4, h4), (w5, h5) = sizes(5)
    valid = [f"{PICSUM}/{w1}/{h1}", f"{PICSUM}/{w2}/{h2}", f"{PICSUM}/{w3}/{h3}"]
    not_found = f"{PICSUM}/{w4}/{h4}?fault=404&u={t}"
    unavailable = f"{PICSUM}/{w5}/{h5}?fault=503&u={t}"
    lines = valid + [valid[0], "https://example.com/200/300", not_found, unavailable]
    ingest(env, tmp_path, lines)
    consume(env)

    p = pixflow("stats", "--json", env=env, expect=0)
    s = json.loads(p.out)
    assert s["counters"] == keys.stats()  # every counter, exactly as Redis holds it
    c = s["counters"]
    assert (c["ingest_lines"], c["ingest_queued"], c["ingest_duplicates"],
            c["ingest_invalid"]) == (7, 5, 1, 1)
    assert (c["received"], c["stored"], c["failed"]) == (5, 3, 2)
    assert c["failed:http_404"] == 1 and c["failed:http_5xx"] == 1
    assert reconcile(c, mongo_db["images"].count_documents({})) is None
    assert s["prefix"] == env["PIXFLOW_PREFIX"] and s["group"] == "pixflow"
    assert s["stream"] == {"length": 5, "group_exists": True, "backlog": 0, "pending": 0,
                           "oldest_pending": None, "pending_by_consumer": {}}
    assert s["dead"] == {"letters": 2,
                         "by_reason": {"failed:http_404": 1, "failed:http_5xx": 1}}

    text = pixflow("stats", env=env, expect=0).out
    for name, value in (("received", 5), ("stored", 3), ("failed", 2), ("ingest_queued", 5),
                        ("failed:http_404", 1), ("failed:http_5xx", 1), ("length", 5),
                        ("pending (read, not acked)", 0)):
        assert re.search(rf"^\s+{re.escape(name)}\s+{value}$", text, re.M), (name, text)
    assert "dead letters 2 now in" in text

    # --watch on a pipe: one line per refresh; the second one has rates.
    lines = pixflow("stats", "--watch", "--count", "2", "--interval", "200ms", env=env,
                    expect=0).out.splitlines()
    assert len(lines) == 2, lines
    assert "received=5 " in lines[0] and "stored=3 " in lines[0] and "dead=2" in lines[0]
    assert "received=5(0.0/s)" in lines[1] and "pending=0" in lines[1]
    snaps = json_lines(pixflow("stats", "--watch", "--json", "--count", "2", "--interval",
                               "200ms", env=env, expect=0).out)
    assert len(snaps) == 2 and "rates" not in snaps[0]
    assert snaps[1]["rates"]["stored"] == 0 and snaps[1]["counters"]["stored"] == 3


def test_stats_columns_fit_long_names(env, keys):
    """Counter, reason and consumer names of any length: every number of the counters, stream
    and dead-letter rows ends in one column, and so does each column of the workers table."""
    long_reason = "failed:a_reason_longer_than_any_fixed_width_column"
    keys.r.hset(keys.prefix + "stats", mapping={
        "ingest_invalid": 3, "ingest_invalid:bad_scheme": 2, "ingest_invalid:bad_host": 1,
        "failed": 5, "failed:http_404": 4, long_reason: 1, "bytes_in": 123456789})
    keys.xadd(f"{PICSUM}/200/300")
    keys.r.xgroup_create(keys.stream, "pixflow", id="0")
    consumer = "a-consumer-on-" + "a-long-host-name." * 2 + "example-4242"
    keys.r.xreadgroup("pixflow", consumer, {keys.stream: ">"}, count=1)
    text = pixflow("stats", env=env, expect=0).out
    table = text.split("\nworkers")[0]
    ends = {}
    for line in table.splitlines():
        m = re.match(r"^( *\S.*?)  +(\d+(?:\.\d+ \w?i?B| B)?|unknown)(?:   .*)?$", line)
        if m and not line.startswith("pixflow stats"):
            ends[m.group(1).strip()] = m.end(2)
    for name in ("ingest_invalid:bad_scheme", "ingest_invalid:bad_host", "received", long_reason,
                 "failed:http_404", "bytes_in", "length", "pending (read, not acked)"):
        assert name in ends, (name, table)
    assert len(set(ends.values())) == 1, (ends, table)
    # The consumer without a heartbeat: its name in full, its note after it.
    assert re.search(rf"^  {re.escape(consumer)}  +no heartbeat, 1 pending", text, re.M), text


def test_stats_live_workers_and_pending(env, keys, tmp_path):
    """A worker busy with slow downloads: its heartbeat, its pending entries and their age."""
    urls = [f"{PICSUM}/{w}/{h}?fault=slow&delay_ms=8000&u={token()}" for w, h in sizes(3)]
    ingest(env, tmp_path, urls + [f"{PICSUM}/{w}/{h}" for w, h in sizes(2, 401, 450)])
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [str(BUILD_DIR / "bin" / "pixflow-consumer"), *FAST, "--heartbeat-every", "1s",
             "--max-inflight", "3", "--drain-timeout", "1s"],
            env=dict(env, PIXFLOW_CONSUMER="busy-1"), stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                s = json.loads(pixflow("stats", "--json", env=env, expect=0).out)
                if s["stream"]["pending"] == 3 and [w["in_flight"] for w in s["workers"]] == [3]:
                    break
                assert time.monotonic() < deadline, (s, log.read_text())
                time.sleep(0.2)
            assert s["stream"]["pending_by_consumer"] == {"busy-1": 3}
            assert s["stream"]["backlog"] == 2  # max-inflight 3 leaves 2 unread
            oldest = s["stream"]["oldest_pending"]
            assert oldest["consumer"] == "busy-1" and oldest["deliveries"] == 1
            assert oldest["id"] == keys.pending_ids()[0]
            assert 0 <= oldest["age_ms"] < 60000
            (w,) = s["workers"]
            assert w["name"] == "busy-1" and w["group"] == "pixflow" and w["pending"] == 3
            assert w["version"] and w["started_at"] and w["last_seen"]
            assert 0 < w["ttl_s"] <= 3 and w["in_flight"] == 3

            text = pixflow("stats", env=env, expect=0).out
            assert re.search(r"^workers 1 live$", text, re.M), text
            assert re.search(r"^\s+busy-1\s+pixflow\s+3\s+\d+\s+3\s", text, re.M), text
            assert re.search(r"^\s+oldest pending\s+\S+\s+\S+ by busy-1, idle ", text, re.M)
        finally:
            worker.terminate()
            worker.wait(timeout=60)


def test_stats_watch_redraws_on_a_terminal(env, keys):
    keys.xadd(f"{PICSUM}/200/300")
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(BUILD_DIR / "bin" / ADMIN), "stats", "--watch", "--count", "2",
                             "--interval", "200ms"], env=env, stdout=slave, stderr=slave)
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other side closed: the program has exited
                break
            if not chunk:
                break
            screen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(timeout=10) == 0
    text = screen.decode(errors="replace")
    assert text.count("\033[H") == 2, text  # drawn twice, each time from the top
    assert "\033[K" in text and "\033[J" in text and "Ctrl-C quits" in text
    assert re.search(r"length\s+1\s*\033\[K", text), text
    assert "rate" in text.split("\033[H")[2]  # the second screen has a rate column
    assert text.endswith("\033[?25h"), repr(text[-40:])  # cursor given back


# ---- verify ----


def flip(text, i):
    """Another base64 character at position i: still base64, different bytes."""
    return text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]


def test_verify_finds_exactly_the_corrupt_documents(env, keys, mongo_db, tmp_path):
    urls = store_valid(env, tmp_path, 6)
    docs = documents(mongo_db)
    assert set(docs) == set(urls)
    # Written seconds ago, but every entry is acked: the writes are finished, all is judged.
    p = pixflow("verify", env=env, expect=0)
    assert "checked 6 images (6 ok, 0 corrupt) and 6 sources; 0 layout problems" in p.out, p.out
    assert "not judged" not in p.out, p.out

    images = mongo_db["images"]
    d = [docs[u] for u in sorted(urls)]
    images.update_one({"_id": d[0]["_id"]}, {"$set": {"image": flip(d[0]["image"],
                                                                     len(d[0]["image"]) // 2)}})
    cut = len(d[1]["image"]) // 8 * 4  # half, still whole base64 groups
    images.update_one({"_id": d[1]["_id"]}, {"$set": {"image": d[1]["image"][:cut]}})
    images.update_one({"_id": d[2]["_id"]}, {"$set": {"width": d[2]["width"] + 1}})
    images.update_one({"_id": d[3]["_id"]}, {"$set": {"image": d[3]["image"][:-4] + "!!!!"}})
    w, h = sizes(1, 451, 499)[0]
    fake = dict(d[4], _id="0" * 64, source=f"{PICSUM}/{w}/{h}")  # _id != sha256
    images.insert_one(fake)

    p = pixflow("verify", "--json", env=env, expect=1)
    *problems, summary = json_lines(p.out)
    kinds = {}
    for pr in problems:
        kinds.setdefault(pr["id"], set()).add(pr["kind"])
        assert pr["detail"]
    assert kinds == {
        d[0]["_id"]: {"sha256_mismatch", "png_invalid"},
        d[1]["_id"]: {"sha256_mismatch", "bytes_mismatch", "png_invalid"},
        d[2]["_id"]: {"size_mismatch"},
        d[3]["_id"]: {"bad_base64"},
        "0" * 64: {"id_mismatch", "no_source"},  # its entry is acked: its layout is judged too
    }, problems
    # The stack keeps originals: each one's object is looked for, and all are there.
    assert [summary.pop(k) for k in ("originals_checked", "originals_missing",
                                     "originals_damaged")] == [6, 0, 0], summary
    # Each kept original's `default` rendition document, checked against images and originals.
    assert summary.pop("renditions_checked") == 6, summary
    assert summary == {"checked": 7, "ok": 2, "corrupt": 5, "sources_checked": 6, "layout": 0,
                       "kinds": {"id_mismatch": 1, "bad_base64": 1, "sha256_mismatch": 2,
                                 "bytes_mismatch": 1, "png_invalid": 2, "size_mismatch": 1,
                                 "no_source": 1},
                       "not_judged": {"images": 0, "sources": 0}}

    text = pixflow("verify", env=env, expect=1).out
    assert "checked 7 images (2 ok, 5 corrupt) and 6 sources" in text
    assert re.search(rf"^{d[2]['_id']} size_mismatch: recorded {d[2]['width'] + 1}x", text, re.M)
    # --since a future date checks nothing; the last hour checks everything.
    assert "checked 0 images" in pixflow("verify", "--since", "2999-01-01", env=env,
                                          expect=0).out
    assert "checked 7 images" in pixflow("verify", "--since", "1h", env=env, expect=1).out

    # --fix: moved whole to images_corrupt, URLs back in the stream, nothing deleted.
    def requeued_entries():
        return [e for e in keys.r.xrange(keys.stream) if e[1].get(b"source") == b"pixflow verify"]

    keys.r.sadd(env["PIXFLOW_PREFIX"] + "seen", fake["source"])  # as if the worker had seen it
    p = pixflow("verify", "--fix", env=env, expect=1)
    assert "fixed: 5 moved to images_corrupt, 5 URLs re-queued" in p.out, p.out
    bad_ids = {d[0]["_id"], d[1]["_id"], d[2]["_id"], d[3]["_id"], "0" * 64}
    moved = {m["_id"]: m for m in mongo_db["images_corrupt"].find({})}
    assert set(moved) == bad_ids
    assert moved[d[2]["_id"]]["verify_problems"] == ["size_mismatch"]
    assert moved[d[2]["_id"]]["image"] == d[2]["image"]  # the whole document
    assert all(m["verify_requeued"] is True for m in moved.values())
    assert {x["_id"] for x in images.find({})} == {d[4]["_id"], d[5]["_id"]}
    entries = requeued_entries()
    requeued = {e[1][b"url"].decode() for e in entries}
    assert requeued == {m["source"] for m in moved.values()}
    assert all(e[1][b"source"] == b"pixflow verify" for e in entries)
    seen = keys.r.smembers(env["PIXFLOW_PREFIX"] + "seen")
    assert not {u.encode() for u in requeued} & seen
    stats = keys.stats()
    assert stats["verify_moved"] == 5 and stats["verify_requeued"] == 5

    # Nothing left to fix: a second --fix changes nothing.
    p = pixflow("verify", "--fix", env=env, expect=0)
    assert "checked 2 images (2 ok, 0 corrupt)" in p.out
    assert len(requeued_entries()) == 5

    # The workers store the re-queued URLs again; everything is sound.
    consume(env)
    assert set(documents(mongo_db)) == set(urls) | {fake["source"]}
    assert "checked 7 images (7 ok, 0 corrupt)" in pixflow("verify", env=env, expect=0).out


def age(db, coll, seconds=600):
    """Makes every document of coll look older than a write in progress."""
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    db[coll].update_many({}, {"$set": {"inserted_at": past}})


def test_verify_checks_the_sources(env, keys, mongo_db, tmp_path):
    urls = store_valid(env, tmp_path, 4)
    docs = documents(mongo_db)
    a, b, c, d = (docs[u] for u in sorted(urls))
    alias = f"{PICSUM}/{a['width']}/{a['height']}?alias={token()}"
    mongo_db["sources"].insert_one({"_id": alias, "image": a["_id"], "role": "alias",
                                    "stream_id": "1-1", "consumer": "t"})
    age(mongo_db, "images")
    age(mongo_db, "sources")
    p = pixflow("verify", env=env, expect=0)
    assert "checked 4 images (4 ok, 0 corrupt) and 5 sources; 0 layout problems" in p.out, p.out

    dangling = f"{PICSUM}/9/9?gone={token()}"
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    mongo_db["sources"].insert_one({"_id": dangling, "image": "d" * 64, "role": "source",
                                    "stream_id": "1-2", "inserted_at": old})
    # Three recent writes naming a missing image. One by an entry a worker holds (pending: a
    # write in progress, left alone), one by an entry already acked (finished: judged, however
    # recent), one recording no entry (nothing to ask: left alone until it is two minutes old).
    now = datetime.datetime.now(datetime.timezone.utc)
    young, done, unknown = (f"{PICSUM}/9/8?{what}={token()}" for what in ("young", "done", "no"))
    for url in (young, done):
        keys.xadd(url)
        ((_, [(entry, _)]),) = keys.r.xreadgroup("pixflow", "t", {keys.stream: ">"}, count=1)
        if url == done:
            keys.r.xack(keys.stream, "pixflow", entry)
        mongo_db["sources"].insert_one({"_id": url, "image": "c" * 64, "role": "source",
                                        "stream_id": entry.decode(), "inserted_at": now})
    mongo_db["sources"].insert_one({"_id": unknown, "image": "c" * 64, "role": "source",
                                    "inserted_at": now})
    mongo_db["sources"].update_one({"_id": b["source"]}, {"$set": {"role": "alias"}})
    mongo_db["sources"].delete_one({"_id": c["source"]})
    p = pixflow("verify", "--json", env=env, expect=1)
    *problems, summary = json_lines(p.out)
    assert {(x["id"], x["kind"]) for x in problems} == {
        (dangling, "dangling_source"), (done, "dangling_source"), (b["source"], "role_mismatch"),
        (c["_id"], "no_source")}, problems
    assert summary["corrupt"] == 0 and summary["layout"] == 4 and summary["ok"] == 3
    assert summary["not_judged"] == {"images": 0, "sources": 2, "pending": 1, "no_stream_id": 1}
    text = pixflow("verify", env=env, expect=1).out
    assert "not judged yet: the links of 1 source, written by stream entries still pending in " \
           "group pixflow" in text, text
    assert "not judged yet: the links of 1 source, written in the last 120 s with no stream " \
           "entry recorded" in text, text

    # --fix: the role is set, the dangling URL is freed and re-queued; the image without a
    # source is only reported, and no image moves.
    keys.r.sadd(env["PIXFLOW_PREFIX"] + "seen", dangling)
    pixflow("verify", "--fix", env=env, expect=1)
    assert mongo_db["sources"].find_one({"_id": b["source"]})["role"] == "source"
    assert mongo_db["sources"].find_one({"_id": dangling}) is None
    assert mongo_db["sources"].find_one({"_id": young}) is not None
    assert mongo_db["sources"].find_one({"_id": unknown}) is not None
    assert mongo_db["sources"].find_one({"_id": done}) is None
    assert not keys.r.sismember(env["PIXFLOW_PREFIX"] + "seen", dangling)
    assert dangling in {e[1][b"url"].decode() for e in keys.r.xrange(keys.stream)}
    assert mongo_db["images"].count_documents({}) == 4
    kinds = {(x["id"], x["kind"]) for x in json_lines(
        pixflow("verify", "--json", env=env, expect=1).out)[:-1]}
    assert kinds == {(c["_id"], "no_source")}

    # Redis gone: whether the recent entry is still pending cannot be known, and the summary
    # says so; it waits, like the one without an entry.
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
        p = pixflow("verify", env=dict(env, PIXFLOW_REDIS_URL=url), expect=1)
    assert "not judged yet: the links of 1 source, written in the last 120 s: Redis could not " \
           "say whether their stream entries are acked (" in p.out, p.out
    assert "not judged yet: the links of 1 source, written in the last 120 s with no stream " \
           "entry recorded" in p.out, p.out


def to_gridfs(db, doc):
    """Moves a document's image to the GridFS bucket as the store does for large ones."""
    data = base64.b64decode(doc["image"])
    fid = gridfs.GridFSBucket(db, bucket_name="images").upload_from_stream(
        f"{doc['_id']}.png", data)
    db["images"].update_one({"_id": doc["_id"]}, {"$unset": {"image": ""},
                                                  "$set": {"storage": "gridfs",
                                                           "gridfs_id": fid}})
    return fid, data


def test_gridfs_documents(env, mongo_db, tmp_path):
    urls = store_valid(env, tmp_path, 2)
    a, b = (documents(mongo_db)[u] for u in sorted(urls))
    fid_a, data_a = to_gridfs(mongo_db, a)
    fid_b, _ = to_gridfs(mongo_db, b)
    assert "checked 2 images (2 ok" in pixflow("verify", env=env, expect=0).out
    out = tmp_path / "a.png"
    pixflow("get", a["_id"], "-o", out, env=env, expect=0)
    assert out.read_bytes() == data_a

    mongo_db["images.chunks"].delete_many({"files_id": fid_a})
    mongo_db["images.files"].delete_one({"_id": fid_b})
    kinds = {(pr["id"], pr["kind"]) for pr in json_lines(
        pixflow("verify", "--json", env=env, expect=1).out)[:-1]}
    assert kinds == {(a["_id"], "gridfs_corrupt"), (b["_id"], "gridfs_missing")}


# ---- get ----


def test_get_by_id_url_and_alias(env, mongo_db, tmp_path):
    urls = store_valid(env, tmp_path, 2)
    url = sorted(urls)[0]
    doc = documents(mongo_db)[url]
    png = base64.b64decode(doc["image"])
    assert hashlib.sha256(png).hexdigest() == doc["_id"]

    by_id = tmp_path / "by-id.png"
    pixflow("get", doc["_id"], "-o", by_id, env=env, expect=0)
    assert by_id.read_bytes() == png
    by_upper_id = tmp_path / "upper.png"
    pixflow("get", "--output", by_upper_id, doc["_id"].upper(), env=env, expect=0)
    assert by_upper_id.read_bytes() == png
    # -o replaces the target through a fresh temporary file in its folder (a link at the target
    # is replaced, not written through), with a new file's mode, and leaves nothing behind.
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    link = tmp_path / "link.png"
    link.symlink_to(victim)
    pixflow("get", doc["_id"], "-o", link, env=env, expect=0)
    assert link.read_bytes() == png and not link.is_symlink() and victim.read_bytes() == b"keep"
    umask = os.umask(0)
    os.umask(umask)
    assert link.stat().st_mode & 0o777 == 0o666 & ~umask
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".pixflow-get-")]
    p = pixflow("get", doc["_id"], env=env)  # stdout is a pipe here
    assert p.returncode == 0 and p.stdout == png

    by_url = tmp_path / "by-url.png"
    pixflow("get", url, "-o", by_url, env=env, expect=0)
    assert by_url.read_bytes() == png
    # The URL is normalized as the workers do: case, default port, trailing slash.
    w, h = urls[url]
    p = pixflow("get", f"HTTPS://Picsum.Photos:443/{w}/{h}/", env=env)
    assert p.returncode == 0 and p.stdout == png

    alias = f"{PICSUM}/{w}/{h}?alias={token()}"
    mongo_db["sources"].insert_one({"_id": alias, "image": doc["_id"], "role": "alias",
                                    "stream_id": "1-1", "consumer": "test",
                                    "inserted_at": datetime.datetime.now(datetime.timezone.utc)})
    p = pixflow("get", alias, env=env)
    assert p.returncode == 0 and p.stdout == png
    # A URL whose image is missing (removed by verify --fix since: a dangling source) says so.
    mongo_db["sources"].insert_one({"_id": alias + "x", "image": "e" * 64, "role": "alias",
                                    "stream_id": "1-2"})
    p = pixflow("get", alias + "x", env=env, expect=1)
    assert p.err.strip() == (f"pixflow get: no stored image with id {'e' * 64} "
                             "(the URL names it but it is gone)")

    meta = json.loads(pixflow("get", url, "--json", env=env, expect=0).out)
    assert "image" not in meta
    assert meta["_id"] == meta["sha256"] == doc["_id"]
    assert meta["source"] == url and "aliases" not in meta
    assert (meta["width"], meta["height"], meta["bytes"]) == (w, h, len(png))
    both = tmp_path / "both.png"
    assert json.loads(pixflow("get", doc["_id"], "--json", "-o", both, env=env,
                              expect=0).out)["_id"] == doc["_id"]
    assert both.read_bytes() == png


def test_get_unknown_and_corrupt(env, mongo_db, tmp_path):
    out = tmp_path / "none.png"
    p = pixflow("get", "f" * 64, "-o", out, env=env, expect=1)
    assert p.err.strip() == f"pixflow get: no stored image with id {'f' * 64}"
    assert not out.exists() and p.out == ""
    p = pixflow("get", f"{PICSUM}/17/17", env=env, expect=1)
    assert p.err.strip() == f"pixflow get: no stored image for URL {PICSUM}/17/17"
    assert p.out == ""

    urls = store_valid(env, tmp_path, 1)
    doc = documents(mongo_db)[next(iter(urls))]
    mongo_db["images"].update_one({"_id": doc["_id"]},
                                  {"$set": {"image": flip(doc["image"], 100)}})
    out = tmp_path / "corrupt.png"
    p = pixflow("get", doc["_id"], "-o", out, env=env, expect=1)
    assert "the stored image is corrupt" in p.err
    assert out.read_bytes() == base64.b64decode(flip(doc["image"], 100))  # kept as evidence


# ---- dead ----


def test_dead_list_and_replay_once(env, keys, mongo_db, tmp_path):
    t = token()
    (w1, h1), (w2, h2), (w3, h3) = sizes(3)
    ok = f"{PICSUM}/{w1}/{h1}"
    gone = f"{PICSUM}/{w2}/{h2}?fault=404&u={t}"
    flaky = f"{PICSUM}/{w3}/{h3}?fault=503&times=1&u={t}"
    catalog = ingest(env, tmp_path, [ok, gone, flaky])
    consume(env)
    assert set(documents(mongo_db)) == {ok}

    letters = json_lines(pixflow("dead", "--json", env=env, expect=0).out)
    assert [(x["url"], x["reason"], x["attempts"]) for x in letters] == \
        [(gone, "http_404", 1), (flaky, "http_5xx", 1)] or \
        [(x["url"], x["reason"], x["attempts"]) for x in letters] == \
        [(flaky, "http_5xx", 1), (gone, "http_404", 1)]
    by_url = {x["url"]: x for x in letters}
    assert by_url[gone]["error"] == "HTTP 404" and by_url[gone]["consumer"] == "w1"
    assert by_url[flaky]["source"] == str(catalog) and by_url[flaky]["line"] == "3"
    assert {x["id"] for x in letters} == {x["_id"] for x in keys.dead()}

    text = pixflow("dead", env=env, expect=0).out
    rows = [line.split() for line in text.splitlines()[1:-1]]
    assert sorted((r[1], r[2], r[3]) for r in rows) == sorted(
        [("http_404", "1", gone), ("http_5xx", "1", flaky)])
    assert text.splitlines()[-1] == f"2 dead letters shown (2 in {env['PIXFLOW_PREFIX']}dead)"
    only = json_lines(pixflow("dead", "--json", "--reason", "http_404", env=env, expect=0).out)
    assert [x["url"] for x in only] == [gone]
    assert len(json_lines(pixflow("dead", "--json", "--limit", "1", env=env, expect=0).out)) == 1

    # Replay the 503: its URL leaves the seen set, goes back into the stream, the letter goes.
    seen_key = env["PIXFLOW_PREFIX"] + "seen"
    assert keys.r.sismember(seen_key, flaky)
    length = keys.xlen()
    p = pixflow("dead", "--replay", "--reason", "failed:http_5xx", env=env, expect=0)
    assert p.out.splitlines()[-1] == "replayed 1 dead letter", p.out
    assert not keys.r.sismember(seen_key, flaky)
    assert keys.xlen() == length + 1
    (entry_id, fields), = keys.r.xrange(keys.stream, "-", "+")[-1:]
    assert fields[b"url"].decode() == flaky
    assert fields[b"replay_of"].decode() == by_url[flaky]["id"]
    assert fields[b"source"].decode() == str(catalog) and fields[b"line"] == b"3"
    assert entry_id.decode() in p.out
    assert [x["url"] for x in keys.dead()] == [gone]

    # Twice: nothing more.
    p = pixflow("dead", "--replay", "--reason", "http_5xx", env=env, expect=0)
    assert p.out.splitlines()[-1] == "replayed 0 dead letters"
    assert keys.xlen() == length + 1

    # The worker stores it now (the fault was for the first request only).
    consume(env)
    docs = documents(mongo_db)
    assert set(docs) == {ok, flaky}
    assert docs[flaky]["stream_id"] == entry_id.decode()
    stats = keys.stats()
    assert stats["replayed"] == 1 and stats["stored"] == 2
    assert reconcile(stats, 2) is None
    assert [x["url"] for x in keys.dead()] == [gone]

    # A replayed 404 fails again and comes back as a new letter, exactly one. The admin's own
    # allowed hosts do not matter: the URL is the letter's, as the worker accepted it.
    assert keys.r.sismember(seen_key, gone)
    summary = json_lines(pixflow("dead", "--replay", "--json",
                                 env=dict(env, PIXFLOW_ALLOWED_HOSTS="example.org"),
                                 expect=0).out)[-1]
    assert summary == {"replayed": 1, "skipped": 0}
    assert not keys.r.sismember(seen_key, gone)
    consume(env)
    assert [(x["url"], x["reason"]) for x in keys.dead()] == [(gone, "http_404")]
    assert "no dead letters with that reason" in pixflow("dead", "--reason", "timeout",
                                                          env=env, expect=0).out


# ---- plugins ----


def grayscale_version():
    source = (SOURCE_DIR / "plugins" / "grayscale" / "grayscale.c").read_text()
    return re.search(r'\.version\s*=\s*"([^"]+)"', source).group(1)


def test_plugins_lists_what_loads_and_why_not(env, tmp_path):
    version = grayscale_version()
    info = json.loads(pixflow("plugins", "--json", env=env, expect=0).out)
    (gray,) = [p for p in info["plugins"] if p["name"] == "grayscale"]
    assert gray["version"] == version and gray["abi"].startswith("1.")
    assert "thread-safe" in gray["flags"] and set(gray["inputs"]) <= {"gray", "rgb", "rgba"}
    so = Path(gray["path"])
    assert gray["sha256"] == hashlib.sha256(so.read_bytes()).hexdigest()
    assert info["rejected"] == [] and info["chain"] == {"transforms": "grayscale", "ok": True}

    folder = tmp_path / "plugins"
    folder.mkdir()
    shutil.copy(so, folder / "grayscale.so")
    (folder / "bad.so").write_text("this is not a shared object\n")
    broken = dict(env, PIXFLOW_PLUGIN_PATH=str(folder))
    info = json.loads(pixflow("plugins", "--json", env=broken, expect=1).out)
    assert [p["name"] for p in info["plugins"]] == ["grayscale"]
    (bad,) = info["rejected"]
    assert bad["path"] == str(folder / "bad.so") and bad["error"]
    assert info["chain"]["ok"] is True

    text = pixflow("plugins", env=broken, expect=1).out
    assert re.search(rf"^grayscale\s+{re.escape(version)}\s+1\.\d+\s", text, re.M), text
    assert f"rejected {folder / 'bad.so'}" in text
    assert "1 loaded, 1 rejected" in text

    missing = dict(env, PIXFLOW_TRANSFORMS="grayscale,nosuch")
    info = json.loads(pixflow("plugins", "--json", env=missing, expect=1).out)
    assert info["chain"]["ok"] is False and "nosuch" in info["chain"]["error"]
    empty = dict(env, PIXFLOW_PLUGIN_PATH=str(tmp_path / "absent"))
    info = json.loads(pixflow("plugins", "--json", env=empty, expect=1).out)
    assert info["plugins"] == [] and info["error"]


# ---- usage ----


@pytest.mark.parametrize("command", ["stats", "verify", "get", "dead", "plugins"])
def test_help_and_bad_flags(env, command):
    p = pixflow(command, "--help", env=env, expect=0)
    assert p.out.startswith(f"usage: pixflow {command}") and "--timeout TIME" in p.out
    assert ("--redis-url" in p.out) == (command in ("stats", "verify", "dead"))
    p = pixflow(command, "--no-such-flag", env=env, expect=2)
    assert p.err == f"pixflow {command}: --no-such-flag: unknown option (try --help)\n"
    assert p.out == ""


def test_usage_errors(env):
    assert pixflow("--help", env=env, expect=0).out.startswith("usage: pixflow COMMAND")
    p = pixflow("frobnicate", env=env, expect=2)
    assert p.err == "pixflow: frobnicate: unknown command (try pixflow --help)\n"
    assert pixflow(env=env, expect=2).out == ""
    assert pixflow("get", "a", "b", env=env, expect=2).err.count("\n") == 1
    assert "--limit" in pixflow("dead", "--limit", "x", env=env, expect=2).err
    assert "--since" in pixflow("verify", "--since", "soon", env=env, expect=2).err
    assert "--interval: only with --watch" in pixflow("stats", "--interval", "2s", env=env,
                                                      expect=2).err
    down = dict(env, PIXFLOW_REDIS_URL="redis://127.0.0.1:1/0")
    p = pixflow("stats", env=down, expect=1)
    assert p.err.startswith("pixflow stats: redis 127.0.0.1:1:") and p.err.count("\n") == 1


# ---- migrate ----


def old_layout(db, docs, aliases):
    """Rewrites stored images into the previous layout, as its store.c wrote them: `aliases` and
    `alias_from` arrays in each image, no `sources` collection, a lock collection and the unique
    `source` and plain `aliases` indexes. aliases: {image _id: [(url, stream_id or None)]}."""
    db["sources"].drop()
    for d in docs:
        pairs = aliases.get(d["_id"], [])
        db["images"].update_one({"_id": d["_id"]}, {"$set": {
            "aliases": [u for u, _ in pairs],
            "alias_from": [{"url": u, "stream_id": s} for u, s in pairs if s is not None]}})
    db["images.locks"].insert_one({"_id": docs[0]["_id"], "owner": "x", "expires": old_date()})
    db["images"].create_index("source", name="source_1", unique=True)
    db["images"].create_index("aliases", name="aliases_1")


def old_date(hours=1):
    return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=hours)


def test_migrate_from_the_previous_layout(env, mongo_db, tmp_path):
    urls = store_valid(env, tmp_path, 3)
    docs = sorted(documents(mongo_db).values(), key=lambda d: d["_id"])
    a, b, c = docs
    t = token()
    al = [f"{PICSUM}/1/{i}?m={t}" for i in range(4)]
    # al[2] sits in the aliases of two images (a race the old settle had not cleaned yet): the
    # smaller _id keeps it. c's source also sits in b's aliases: the source wins.
    old_layout(mongo_db, docs, {a["_id"]: [(al[0], "5-0"), (al[1], None), (al[2], "5-2")],
                                b["_id"]: [(al[2], "5-3"), (c["source"], "5-4")],
                                c["_id"]: [(al[3], "5-5")]})
    assert mongo_db["sources"].count_documents({}) == 0

    p = pixflow("migrate", "--json", env=env, expect=0)
    first = json.loads(p.out)
    assert first["images"] == 3 and first["sources"] == 3 and first["stripped"] == 3
    assert first["locks_dropped"] == 1 and first["indexes_dropped"] == 2
    src = {s["_id"]: s for s in mongo_db["sources"].find({})}
    assert set(src) == set(urls) | set(al)
    for d in docs:
        assert src[d["source"]]["image"] == d["_id"] and src[d["source"]]["role"] == "source"
        assert src[d["source"]]["stream_id"] == d["stream_id"]
    assert (src[al[0]]["image"], src[al[0]]["role"], src[al[0]]["stream_id"]) == \
        (a["_id"], "alias", "5-0")
    assert src[al[1]]["stream_id"] is None
    assert src[al[2]]["image"] == a["_id"]  # the smaller _id of the two holders
    assert src[al[3]]["image"] == c["_id"]
    assert src[c["source"]]["image"] == c["_id"]  # the source, not b's stray alias
    for d in mongo_db["images"].find({}):
        assert "aliases" not in d and "alias_from" not in d
    assert "images.locks" not in mongo_db.list_collection_names()
    names = {ix["name"] for ix in mongo_db["images"].list_indexes()}
    assert "source_1" not in names and "aliases_1" not in names
    assert "image_1" in {ix["name"] for ix in mongo_db["sources"].list_indexes()}

    # Twice: nothing changes.
    again = json.loads(pixflow("migrate", "--json", env=env, expect=0).out)
    assert again["sources"] == again["aliases"] == again["stripped"] == 0
    assert again["locks_dropped"] == again["indexes_dropped"] == 0
    assert {s["_id"]: s for s in mongo_db["sources"].find({})} == src

    # Interrupted: one image already stripped, one half done (some sources written, its arrays
    # still there), one untouched; the run finishes all three the same way.
    mongo_db["sources"].drop()
    old_layout(mongo_db, docs, {a["_id"]: [(al[0], "5-0"), (al[1], None), (al[2], "5-2")],
                                b["_id"]: [(al[2], "5-3"), (c["source"], "5-4")],
                                c["_id"]: [(al[3], "5-5")]})
    for s in (src[a["source"]], src[al[0]], src[al[3]]):
        mongo_db["sources"].insert_one(s)
    mongo_db["images"].update_one({"_id": c["_id"]}, {"$unset": {"aliases": "",
                                                                  "alias_from": ""}})
    mongo_db["sources"].insert_one(src[c["source"]])
    pixflow("migrate", env=env, expect=0)
    assert {s["_id"]: s for s in mongo_db["sources"].find({})} == src

    # The readers follow the new layout; verify finds it sound once nothing is in flight.
    p = pixflow("get", al[2], env=env)
    assert p.returncode == 0 and hashlib.sha256(p.stdout).hexdigest() == a["_id"]
    age(mongo_db, "images")
    age(mongo_db, "sources")
    p = pixflow("verify", env=env, expect=0)
    assert "checked 3 images (3 ok, 0 corrupt) and 7 sources; 0 layout problems" in p.out, p.out
