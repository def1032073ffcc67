"""The raw zone (SPEC §5.9, §6 `originals`) against the real S3 server of the stack and a
directory: every stored picture's original is kept byte for byte as the image server sent it,
once per distinct original; a worker killed between its PUT and its MongoDB write, and an S3
outage longer than --reclaim-idle, lose and double nothing; bad configuration stops a worker at
start with one line; a full disk (file backend) holds entries pending, never acked without their
original."""
import hashlib
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_lib

import conftest
from conftest import isolated_env, run
from pixflow_helpers import Keys, mongo_for, reconcile, sizes, wait_for

PICSUM = "https://picsum.photos"


def s3_get(env, key):
    """An object's bytes, read with curl's own SigV4 (not pixflow's code): None when missing."""
    url = f"{env['PIXFLOW_S3_ENDPOINT']}/{key}"
    out = subprocess.run(
        ["curl", "-sS", "--aws-sigv4", f"aws:amz:{env.get('PIXFLOW_S3_REGION', 'us-east-1')}:s3",
         "--user", f"{env['AWS_ACCESS_KEY_ID']}:{env['AWS_SECRET_ACCESS_KEY']}",
         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-o", "-", "-w", "\n%{http_code}", url], capture_output=True, timeout=30, check=True)
    body, _, code = out.stdout.rpartition(b"\n")
    if code == b"404":
        return None
    assert code == b"200", (url, code, body[:300])
    return body


def raw_key(env, sha):
    """bucket/prefix/xx/sha of an original under env's PIXFLOW_RAW_URL (s3://)."""
    return f"{env['PIXFLOW_RAW_URL'][len('s3://'):]}/{sha[:2]}/{sha}"


def picsum_bytes(env, final_url):
    """What the image server sends for a picture hop, asked again over plain HTTP."""
    import urllib.request
    path = final_url.split("fastly.picsum.photos", 1)[1]
    req = urllib.request.Request(f"http://{env['PIXFLOW_PICSUM_HTTP']}{path}",
                                 headers={"Host": "fastly.picsum.photos"})
    with urllib.request.urlopen(req, timeout=30) as reply:
        return reply.read()


def check_originals(env, db, keys, urls, read):
    """Every URL's `sources` document names an original whose document and object match what
    the image server sent; returns the originals by _id."""
    originals = {o["_id"]: o for o in db["originals"].find({})}
    images = {d["_id"]: d for d in db["images"].find({}, {"image": 0})}
    for url in urls:
        src = db["sources"].find_one({"_id": url})
        assert src is not None, url
        sha = src["origin"]
        assert sha in originals, (url, sha)
        o = originals[sha]
        image = images[src["image"]]
        if src["role"] == "source":
            assert image["origin"]["sha256"] == sha
        kept = read(sha)
        assert kept is not None, f"{url}: original {sha} is not in the raw store"
        assert hashlib.sha256(kept).hexdigest() == sha
        assert len(kept) == o["bytes"] == image["origin"]["bytes"]
        assert kept == picsum_bytes(env, image["origin"]["final_url"]), url
        assert o["content_type"].startswith("image/jpeg") and o["format"] == "jpeg", o
        assert (o["width"], o["height"]) == (image["origin"]["width"], image["origin"]["height"])
        assert o["source"] in urls
    stats = keys.stats()
    assert stats.get("raw_put", 0) + stats.get("raw_existing", 0) == \
        stats.get("stored", 0) + stats.get("aliased", 0), stats
    return originals


def assert_reconciled(keys, db):
    problem = reconcile(keys.stats(), db["images"].count_documents({}))
    assert problem is None, problem


@pytest.fixture
def keys(redis_client, env):
    return Keys(redis_client, env["PIXFLOW_PREFIX"])


def test_originals_kept_in_s3(env, keys, mongo_db, fleet, tmp_path):
    assert env["PIXFLOW_RAW_URL"].startswith("s3://"), "the stack keeps originals in S3"
    urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(10)]
    keys.xadd_all(urls + urls[:2])  # two duplicates: acked, never kept again
    a = fleet.start(env, "w1", "--exit-when-idle", "1s")
    b = fleet.start(env, "w2", "--exit-when-idle", "1s")
    a.assert_clean_exit(60)
    b.assert_clean_exit(30)

    originals = check_originals(env, mongo_db, keys, urls, lambda sha: s3_get(env, raw_key(env, sha)))
    for sha, o in originals.items():
        assert o["raw"] == f"s3://{raw_key(env, sha)}"
    stats = keys.stats()
    assert stats["stored"] + stats.get("aliased", 0) == len(urls)
    assert stats["duplicates"] == 2
    assert stats["raw_put"] == len(originals), stats  # distinct bytes: written once each
    assert stats["raw_bytes"] == sum(o["bytes"] for o in originals.values())
    assert stats["raw_usec"] > 0
    assert_reconciled(keys, mongo_db)

    # The operator's side: the raw store's counters, an original written back, and verify
    # re-hashing the raw zone.
    shown = run("pixflow", "stats", env=env).stdout.decode()
    assert "raw store (originals)" in shown and "time per original" in shown, shown
    assert re.search(rf"^  raw_put +{len(originals)}\b", shown, re.M), shown
    url = urls[0]
    sha = mongo_db["sources"].find_one({"_id": url})["origin"]
    out = tmp_path / "original.jpg"
    got = run("pixflow", "get", url, "--original", "-o", out, env=env)
    assert got.returncode == 0, got.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha
    checked = run("pixflow", "verify", "--raw", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"originals: {len(originals)} re-hashed, 0 missing, 0 damaged" in checked.stdout.decode()


def test_kill_between_put_and_store_loses_and_doubles_nothing(tmp_path, fleet):
    """A worker writes originals while MongoDB is down (so every entry stops between its PUT
    and its store), is killed, and another worker takes its entries over: the redelivery
    downloads the same bytes (deterministic image server) and finds each object already kept."""
    folder = tmp_path / "stack"
    try:
        penv = isolated_env(conftest.start_stack(folder, "--deterministic"))
        client = redis_lib.Redis.from_url(penv["PIXFLOW_REDIS_URL"])
        keys = Keys(client, penv["PIXFLOW_PREFIX"])
        conftest.stop_stack(folder, "ferretdb")
        urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(6)]
        keys.xadd_all(urls)
        timing = ["--entry-deadline", "1s", "--fetch-timeout", "2s", "--reclaim-idle", "4s",
                  "--reclaim-every", "500ms"]
        a = fleet.start(penv, "A", *timing)
        bucket_dir = folder / "s3" / penv["PIXFLOW_RAW_URL"][len("s3://"):]
        wait_for("every original to be kept", lambda: len(kept_files(bucket_dir)) == len(urls), 30)
        time.sleep(0.5)
        a.kill()
        assert keys.pending() == len(urls) and keys.stats().get("received", 0) == 0

        conftest.restart_server(folder, "ferretdb")
        b = fleet.start(penv, "B", "--exit-when-idle", "2s", *timing)
        b.assert_clean_exit(90)
        mclient, db = mongo_for(penv)
        originals = check_originals(penv, db, keys, urls,
                                    lambda sha: s3_get(penv, raw_key(penv, sha)))
        stats = keys.stats()
        assert stats["stored"] + stats.get("aliased", 0) == len(urls), stats
        assert stats["reclaimed"] == len(urls), stats
        assert stats.get("raw_put", 0) == 0 and stats["raw_existing"] == len(urls), stats
        assert len(kept_files(bucket_dir)) == len(originals) == len(urls)  # nothing doubled
        assert db["images"].count_documents({}) == stats["stored"]
        assert keys.pending() == 0
        assert_reconciled(keys, db)
        mclient.close()
        client.close()
    finally:
        conftest.stop_stack(folder)


def kept_files(folder):
    """Objects the S3 server keeps under a prefix, from its own folder (its posix backend)."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return [p for p in folder.rglob("*") if p.is_file() and len(p.name) == 64]


def test_s3_outage_longer_than_reclaim_idle(tmp_path, fleet):
    folder = tmp_path / "stack"
    try:
        penv = isolated_env(conftest.start_stack(folder))
        client = redis_lib.Redis.from_url(penv["PIXFLOW_REDIS_URL"])
        keys = Keys(client, penv["PIXFLOW_PREFIX"])
        urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(6)]
        timing = ["--entry-deadline", "1s", "--fetch-timeout", "2s", "--reclaim-idle", "4s",
                  "--reclaim-every", "500ms", "--retry-max", "500ms"]
        # Long enough an idle time that they wait for the URLs queued once S3 is stopped.
        a = fleet.start(penv, "A", "--exit-when-idle", "8s", *timing)
        b = fleet.start(penv, "B", "--exit-when-idle", "8s", *timing)
        wait_for("both workers", lambda: "event=start " in a.log() and "event=start " in b.log(), 15)
        conftest.stop_stack(folder, "s3")
        keys.xadd_all(urls)
        wait_for("the entries to be read", lambda: keys.pending() == len(urls), 15)
        time.sleep(10)  # over twice --reclaim-idle
        assert a.running() and b.running(), fleet.logs()
        assert keys.pending() == len(urls), "nothing may be acked without its original"
        stats = keys.stats()
        assert stats.get("received", 0) == 0 and keys.dead() == [], stats

        conftest.restart_server(folder, "s3")
        a.assert_clean_exit(90)
        b.assert_clean_exit(30)
        mclient, db = mongo_for(penv)
        check_originals(penv, db, keys, urls, lambda sha: s3_get(penv, raw_key(penv, sha)))
        stats = keys.stats()
        assert stats["stored"] + stats.get("aliased", 0) == len(urls), stats
        assert stats.get("reclaimed", 0) == 0, "live workers lease what they hold"
        assert keys.dead() == [] and keys.pending() == 0
        assert_reconciled(keys, db)
        mclient.close()
        client.close()
    finally:
        conftest.stop_stack(folder)


@pytest.mark.parametrize("change, says", [
    ({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "credentials"),
    ({"PIXFLOW_RAW_URL": "s3://no-such-bucket-here/x"}, "no-such-bucket-here"),
    ({"PIXFLOW_S3_ENDPOINT": "http://127.0.0.1:1"}, "127.0.0.1:1"),
    ({"PIXFLOW_RAW_URL": "s3://pixflow/Upper"}, "PIXFLOW_RAW_URL"),
    ({"PIXFLOW_RAW_URL": "ftp://x"}, "PIXFLOW_RAW_URL"),
    ({"AWS_ACCESS_KEY_ID": ""}, "AWS_SECRET_ACCESS_KEY"),
])
def test_bad_raw_configuration_stops_the_worker_at_start(env, change, says, fleet):
    w = fleet.start(dict(env, **change), "w1")
    rc = w.wait(30)
    log = w.log()
    assert rc != 0, log
    lines = [line for line in log.splitlines() if line.startswith("pixflow-consumer:")]
    assert len(lines) == 1 and says in lines[0], log


def test_file_backend_keeps_originals(env, keys, mongo_db, fleet, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    fenv = dict(env, PIXFLOW_RAW_URL=f"file://{raw}")
    urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(6)]
    keys.xadd_all(urls)
    fleet.start(fenv, "w1", "--exit-when-idle", "1s").assert_clean_exit(60)

    def read(sha):
        path = raw / sha[:2] / sha
        return path.read_bytes() if path.exists() else None

    originals = check_originals(fenv, mongo_db, keys, urls, read)
    for sha, o in originals.items():
        assert o["raw"] == f"file://{raw}/{sha[:2]}/{sha}"
    files = [p for p in raw.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == sorted(originals), "no temporary file left behind"
    assert keys.stats()["raw_put"] == len(originals)
    assert_reconciled(keys, mongo_db)
    checked = run("pixflow", "verify", "--raw", env=fenv)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # A damaged and a missing original are reported with their URLs, and never deleted.
    shas = sorted(originals)
    (raw / shas[0][:2] / shas[0]).write_bytes(b"not the original")
    (raw / shas[1][:2] / shas[1]).unlink()
    checked = run("pixflow", "verify", "--raw", "--fix", env=fenv)
    text = checked.stdout.decode()
    assert checked.returncode == 1, text
    assert f"{shas[0]} original_damaged" in text and originals[shas[0]]["source"] in text, text
    assert f"{shas[1]} original_missing" in text and originals[shas[1]]["source"] in text, text
    assert (raw / shas[0][:2] / shas[0]).exists()
    assert mongo_db["originals"].count_documents({}) == len(originals)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_holds_entries_until_there_is_room(env, keys, mongo_db, fleet, tmp_path):
    raw = tmp_path / "small"
    raw.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(raw)], check=True)
    try:
        fenv = dict(env, PIXFLOW_RAW_URL=f"file://{raw}")
        w = fleet.start(fenv, "w1", "--exit-when-idle", "8s", "--entry-deadline", "1s",
                        "--retry-max", "300ms")
        wait_for("the worker", lambda: "event=start " in w.log(), 15)  # it checked the folder
        # Then filled to its last block: no original fits, nor a check's block.
        filler = raw / "filler"
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        urls = [f"{PICSUM}/{x}/{y}" for x, y in sizes(3, 200, 400)]
        keys.xadd_all(urls)
        wait_for("the entries to be read", lambda: keys.pending() == len(urls), 15)
        time.sleep(4)
        assert w.running(), w.log()
        assert keys.pending() == len(urls) and keys.stats().get("received", 0) == 0
        assert mongo_db["sources"].count_documents({}) == 0
        assert "no_space" in w.log(), w.log()[-3000:]
        assert not [p for p in raw.rglob("*") if p.is_file() and p != filler], \
            "no half object may be left"

        subprocess.run(["mount", "-o", "remount,size=16m", str(raw)], check=True)
        w.assert_clean_exit(60)
        stats = keys.stats()
        assert stats["stored"] + stats.get("aliased", 0) == len(urls), stats
        assert stats["raw_put"] == len(urls) and keys.dead() == []
        assert_reconciled(keys, mongo_db)
    finally:
        subprocess.run(["umount", "-l", str(raw)], check=False)
