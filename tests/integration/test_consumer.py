"""pixflow-consumer against real servers (SPEC §5, §7): end to end, dedup, aliases, crash
recovery, retries, dead letters, poison pills, SSRF, graceful stop, outages of MongoDB and Redis,
trimming and start-up errors. Workers run with --exit-when-idle, or are stopped by signal; every
spawned process is killed at the end of its test."""
import re
import signal
import subprocess
import time
from urllib.parse import quote

import pytest
import redis as redis_lib

import conftest
from conftest import binary, isolated_env
from pixflow_helpers import (CONSUMER, Keys, Trap, check_document, mongo_for,
                             port_open, reconcile, requests_for,
                             requests_matching, sizes, token, wait_for)

PICSUM = "https://picsum.photos"


@pytest.fixture
def keys(redis_client, env):
    return Keys(redis_client, env["PIXFLOW_PREFIX"])


def documents(db):
    return list(db["images"].find({}))


def by_source(db):
    docs = documents(db)
    out = {d["source"]: d for d in docs}
    assert len(out) == len(docs), "two documents share a source"
    return out


def assert_reconciled(keys, db):
    problem = reconcile(keys.stats(), db["images"].count_documents({}))
    assert problem is None, problem


def dead_by_url(keys):
    out = {}
    for d in keys.dead():
        assert d["url"] not in out, f"two dead letters for {d['url']}"
        out[d["url"]] = d
    return out


# ---- 1. end to end ----


def test_end_to_end_two_workers(env, keys, mongo_db, fleet):
    t = token()
    dims = sizes(16)
    big = (1000 + dims[0][0], 600 + dims[0][1])  # one larger picture among the small ones
    square = next(w for w in range(41, 400) if (w, w) not in dims)
    valid = {}  # normalized URL -> (width, height)
    for w, h in dims[:9]:
        valid[f"{PICSUM}/{w}/{h}"] = (w, h)
    valid[f"{PICSUM}/{big[0]}/{big[1]}"] = big
    valid[f"{PICSUM}/{square}"] = (square, square)
    w, h = dims[9]
    valid[f"{PICSUM}/{w}/{h}.jpg"] = (w, h)
    w, h = dims[10]
    valid[f"http://picsum.photos/{w}/{h}"] = (w, h)
    w, h = dims[11]
    flaky = f"{PICSUM}/{w}/{h}?fault=503&times=1&u={t}"
    valid[flaky] = (w, h)
    w, h = dims[12]
    not_found = f"{PICSUM}/{w}/{h}?fault=404&u={t}"
    w, h = dims[13]
    garbage = f"{PICSUM}/{w}/{h}?fault=garbage&u={t}"
    bad_host = "https://example.com/200/300"
    bad_size = f"{PICSUM}/6000/300"
    repeats = list(valid)[:2]
    urls = list(valid) + [not_found, bad_host] + repeats + [garbage, bad_size]
    ids = {}
    for url, entry in zip(urls, keys.xadd_all(urls)):
        ids.setdefault(url, []).append(entry)

    a = fleet.start(env, "w1", "--exit-when-idle", "1s", "--heartbeat-every", "1s")
    b = fleet.start(env, "w2", "--exit-when-idle", "1s", "--heartbeat-every", "1s")
    a.assert_clean_exit(60)
    b.assert_clean_exit(30)
    for name in ("w1", "w2"):  # heartbeats expire after 3 periods: read them first
        key = f"{env['PIXFLOW_PREFIX']}worker:{name}"
        beat = {k.decode(): v.decode() for k, v in keys.r.hgetall(key).items()}
        assert {"in_flight", "processed", "started_at", "last_seen", "version"} <= set(beat)
        assert 0 < keys.r.ttl(key) <= 3

    docs = by_source(mongo_db)
    assert set(docs) == set(valid), fleet.logs()
    for url, (w, h) in valid.items():
        check_document(docs[url], url, w, h)
        assert docs[url]["consumer"] in ("w1", "w2")
        assert docs[url]["attempts"] == (2 if url == flaky else 1), (url, docs[url]["attempts"])
        assert docs[url]["stream_id"] in ids[url]
    assert len({d["_id"] for d in docs.values()}) == len(valid)

    stats = keys.stats()
    n = len(valid)
    assert stats["received"] == len(urls)
    assert stats["stored"] == n
    assert stats["duplicates"] == 2
    assert stats["invalid"] == 2
    assert stats["invalid:bad_host"] == 1 and stats["invalid:bad_size"] == 1
    assert stats["failed"] == 2
    assert stats["failed:http_404"] == 1
    assert stats.get("failed:not_image", 0) + stats.get("failed:corrupt_image", 0) == 1, stats
    assert stats.get("aliased", 0) == 0 and stats.get("reclaimed", 0) == 0
    assert stats["retries"] >= 1
    # the decoder hands grayscale a JPEG's luma plane, which it gives back as it is: its time is
    # counted, and may round to 0 microseconds
    assert stats["transform:grayscale:ok"] == n and stats["transform:grayscale:usec"] >= 0
    assert stats["bytes_out"] == sum(d["bytes"] for d in docs.values())
    assert stats["bytes_in"] >= sum(d["origin"]["bytes"] for d in docs.values())
    assert_reconciled(keys, mongo_db)

    dead = dead_by_url(keys)
    assert set(dead) == {not_found, garbage, bad_host, bad_size}
    assert dead[not_found]["reason"] == "http_404"
    assert dead[garbage]["reason"] in ("not_image", "corrupt_image")
    assert dead[bad_host]["reason"] == "bad_host"
    assert dead[bad_size]["reason"] == "bad_size"
    for url, d in dead.items():
        assert [d["entry"]] == ids[url]
        assert d["consumer"] in ("w1", "w2")
        assert d["error"], f"dead letter of {url} has no error text: {d}"
    assert dead[not_found]["attempts"] == dead[garbage]["attempts"] == "1"

    assert keys.pending() == 0
    seen = {m.decode() for m in keys.r.smembers(env["PIXFLOW_PREFIX"] + "seen")}
    assert seen == set(valid) | {not_found, garbage}
    assert "event=stopped" in a.log() and "event=stopped" in b.log()


# ---- 2. dedup across tools ----


def test_dedup_of_urls_pushed_by_hand(env, keys, mongo_db, fleet):
    (w, h), = sizes(1)
    forms = [f"https://picsum.photos/{w}/{h}", f"https://PICSUM.Photos/{w}/{h}",
             f"HTTPS://picsum.photos/{w}/{h}/"]
    for url in forms:  # the way an operator pushes by hand
        subprocess.run(["redis-cli", "-u", env["PIXFLOW_REDIS_URL"], "XADD", keys.stream, "*",
                        "url", url], check=True, capture_output=True, timeout=10)
    fleet.start(env, "w1", "--exit-when-idle", "1s").assert_clean_exit(30)
    docs = documents(mongo_db)
    assert [d["source"] for d in docs] == [forms[0]]
    check_document(docs[0], forms[0], w, h)
    stats = keys.stats()
    assert (stats["received"], stats["stored"], stats["duplicates"]) == (3, 1, 2)
    assert keys.r.smembers(env["PIXFLOW_PREFIX"] + "seen") == {forms[0].encode()}
    assert keys.pending() == 0
    assert_reconciled(keys, mongo_db)


# ---- 3. aliases ----


def test_identical_pictures_become_an_alias(tmp_path, fleet):
    folder = tmp_path / "stack"
    try:
        penv = isolated_env(conftest.start_stack(folder, "--deterministic"))
        client = redis_lib.Redis.from_url(penv["PIXFLOW_REDIS_URL"])
        mclient, db = mongo_for(penv)
        keys = Keys(client, penv["PIXFLOW_PREFIX"])
        first, second = f"{PICSUM}/200/300", f"{PICSUM}/200/300.jpg"
        keys.xadd_all([first, second])
        # One at a time, so the URL pushed first is the one that stores the picture.
        fleet.start(penv, "w1", "--exit-when-idle", "1s", "--max-inflight", "1") \
            .assert_clean_exit(30)
        docs = documents(db)
        assert len(docs) == 1, docs
        check_document(docs[0], first, 200, 300)
        src = {s["_id"]: s for s in db["sources"].find({})}
        assert {u: (s["image"], s["role"]) for u, s in src.items()} == {
            first: (docs[0]["_id"], "source"), second: (docs[0]["_id"], "alias")}
        stats = keys.stats()
        assert (stats["received"], stats["stored"], stats["aliased"]) == (2, 1, 1)
        assert_reconciled(keys, db)
        assert keys.pending() == 0
        mclient.close()
        client.close()
    finally:
        conftest.stop_stack(folder)


# ---- 4. crash recovery ----


def test_kill_9_loses_nothing(env, keys, mongo_db, fleet):
    t = token()
    dims = sizes(30)
    urls = [f"{PICSUM}/{w}/{h}" + (f"?fault=slow&delay_ms=1500&u={t}" if i % 2 else "")
            for i, (w, h) in enumerate(dims)]
    keys.xadd_all(urls)
    a = fleet.start(env, "A", "--max-inflight", "30")
    wait_for("worker A to read the slow entries",
             lambda: keys.pending_by_consumer().get("A", 0) >= 15, 15)
    time.sleep(0.3)  # the quick ones are acked, the slow ones still downloading
    a.kill()
    assert keys.pending_by_consumer().get("A", 0) > 0, "A had nothing pending when killed"

    b = fleet.start(env, "B", "--entry-deadline", "2s", "--fetch-timeout", "3s",
                    "--reclaim-idle", "6s", "--reclaim-every", "500ms", "--exit-when-idle", "2s")
    b.assert_clean_exit(45)
    docs = by_source(mongo_db)
    assert set(docs) == set(urls), fleet.logs()
    assert len({d["_id"] for d in docs.values()}) == len(urls)
    for url, (w, h) in zip(urls, dims):
        check_document(docs[url], url, w, h)
    stats = keys.stats()
    assert stats["received"] == stats["stored"] == len(urls), stats
    assert stats["reclaimed"] > 0
    assert_reconciled(keys, mongo_db)
    assert keys.pending() == 0


def test_kill_9_entries_back_within_the_default_reclaim_idle(env, keys, fleet):
    """The default --reclaim-idle (30 s) with its leases: a dead worker's entries go to a live one
    no later than 30 s after its last lease (plus one --reclaim-every), and no sooner than 30 s
    after it: the lease, renewed every 7.5 s, is what kept them home."""
    t = token()
    urls = [f"{PICSUM}/{w}/{h}?fault=slow&delay_ms=60000&times=1&u={t}" for w, h in sizes(4)]
    keys.xadd_all(urls)
    a = fleet.start(env, "A")
    wait_for("A to hold the entries", lambda: keys.pending_by_consumer().get("A", 0) == 4, 15)
    time.sleep(8)  # one lease at least
    a.kill()
    killed = time.monotonic()
    b = fleet.start(env, "B", "--reclaim-every", "1s", "--exit-when-idle", "1s")
    wait_for("B to reclaim", lambda: "event=reclaimed" in b.log(), 45)
    took = time.monotonic() - killed
    assert 30 - 7.5 - 1 <= took <= 30 + 1 + 3, took
    b.assert_clean_exit(30)
    stats = keys.stats()
    assert (stats["stored"], stats["reclaimed"]) == (4, 4), stats
    assert keys.pending() == 0


@pytest.mark.parametrize("successor", ["B", "A"], ids=["reclaimed", "own-pending-list"])
def test_stored_but_unacked_entries_are_not_fetched_again(tmp_path, fleet, successor):
    """The worst instant for a crash: pictures stored, acks not yet in Redis. Worker A talks to
    Redis as a user denied XACK (its ack script fails at its first command, changing nothing,
    while everything else it does, the record that a store begins included, goes through), A is
    killed once the pictures are stored, and the next worker (another one reclaiming, or the same
    name restarted and re-reading its own pending list) must find the documents instead of
    downloading and storing new pictures."""
    folder = tmp_path / "stack"
    try:
        penv = isolated_env(conftest.start_stack(folder))
        client = redis_lib.Redis.from_url(penv["PIXFLOW_REDIS_URL"])
        keys = Keys(client, penv["PIXFLOW_PREFIX"])
        mclient, db = mongo_for(penv)
        t = token()
        dims = sizes(4)
        urls = [f"{PICSUM}/{w}/{h}?fault=slow&delay_ms=1000&u={t}" for w, h in dims]
        keys.xadd_all(urls)
        client.execute_command("ACL", "SETUSER", "noack", "on", ">noack-secret", "~*", "&*",
                               "+@all", "-xack")
        host = penv["PIXFLOW_REDIS_URL"].split("//", 1)[1]
        a = fleet.start(dict(penv, PIXFLOW_REDIS_URL=f"redis://noack:noack-secret@{host}"), "A")
        wait_for("the documents", lambda: db["images"].count_documents({}) == len(urls), 30)
        wait_for("a failed ack", lambda: "event=ack_failed" in a.log(), 10)
        a.kill()
        assert keys.stats().get("stored", 0) == 0, "the acks were to be held back"
        assert keys.pending_by_consumer() == {"A": len(urls)}
        assert client.hlen(penv["PIXFLOW_PREFIX"] + "storing") == len(urls)
        before = {p: requests_for(penv, p) for p in (f"/{w}/{h}" for w, h in dims)}
        assert set(before.values()) == {1}

        b = fleet.start(penv, successor, "--entry-deadline", "1s", "--fetch-timeout", "1500ms",
                        "--reclaim-idle", "2600ms", "--reclaim-every", "200ms",
                        "--exit-when-idle", "1s")
        b.assert_clean_exit(30)
        assert {p: requests_for(penv, p) for p in before} == before, "fetched again"
        docs = by_source(db)
        assert set(docs) == set(urls)
        assert {d["consumer"] for d in docs.values()} == {"A"}
        stats = keys.stats()
        assert (stats["received"], stats["stored"]) == (4, 4), stats
        if successor == "B":
            assert stats["reclaimed"] == 4, stats
        assert keys.pending() == 0
        assert client.hlen(penv["PIXFLOW_PREFIX"] + "storing") == 0  # cleared with the acks
        assert_reconciled(keys, db)
        mclient.close()
        client.close()
    finally:
        conftest.stop_stack(folder)


# ---- 5. transient failures, then success ----


def test_transient_failures_are_retried(env, keys, mongo_db, fleet):
    t = token()
    (w1, h1), (w2, h2), (w3, h3) = sizes(3)
    twice_503 = f"{PICSUM}/{w1}/{h1}?fault=503&times=2&u={t}"
    once_429 = f"{PICSUM}/{w2}/{h2}?fault=429&retry_after=1&times=1&u={t}"
    truncated = f"{PICSUM}/{w3}/{h3}?fault=truncate&times=1&u={t}"
    keys.xadd_all([twice_503, once_429, truncated])
    w = fleet.start(env, "w1", "--exit-when-idle", "1s", "--log-level", "debug")
    w.assert_clean_exit(30)
    docs = by_source(mongo_db)
    assert set(docs) == {twice_503, once_429, truncated}, keys.dead()
    check_document(docs[twice_503], twice_503, w1, h1)
    check_document(docs[once_429], once_429, w2, h2)
    check_document(docs[truncated], truncated, w3, h3)
    assert docs[twice_503]["attempts"] == 3
    # A 429 is no failure: the host says to wait (SPEC §5.8), the request waits for its
    # Retry-After (1 s, although --retry-base asks for 0.1 s) and goes again, no attempt spent.
    assert docs[once_429]["attempts"] == 1
    assert docs[truncated]["attempts"] == 2
    delays = {}
    for m in re.finditer(r"event=retry .*url=(\S+) reason=(\S+) .*delay_ms=(\d+)", w.log()):
        delays.setdefault(m.group(2), []).append(int(m.group(3)))
    assert "http_429" not in delays, delays
    # a 503 pauses the host too: its retries wait for Retry-After (1 s)
    assert delays.get("http_5xx") and min(delays["http_5xx"]) >= 1000, delays
    assert len(delays.get("truncated", [])) == 1 and delays["truncated"][0] < 1000, delays
    stats = keys.stats()
    assert stats["retries"] == 3, stats  # 2 + 1
    assert stats["host_waits"] >= 1, stats
    assert stats["stored"] == 3 and stats.get("failed", 0) == 0
    assert keys.dead() == []
    assert_reconciled(keys, mongo_db)


# ---- 6. retries exhausted ----


def test_retries_exhausted_dead_letter(env, keys, mongo_db, fleet):
    (w, h), = sizes(1, 401, 999)
    url = f"{PICSUM}/{w}/{h}?fault=503&u={token()}"
    entry = keys.xadd(url, source="catalog.txt", line="7")
    fleet.start(env, "w1", "--exit-when-idle", "1s", "--max-attempts", "3") \
        .assert_clean_exit(30)
    (d,) = keys.dead()
    assert (d["url"], d["reason"], d["attempts"], d["entry"]) == (url, "http_5xx", "3", entry)
    assert (d["source"], d["line"], d["consumer"]) == ("catalog.txt", "7", "w1")
    assert requests_for(env, f"/{w}/{h}") == 3
    stats = keys.stats()
    assert (stats["failed"], stats["failed:http_5xx"], stats["retries"]) == (1, 1, 2)
    assert documents(mongo_db) == []
    assert_reconciled(keys, mongo_db)
    assert keys.pending() == 0


def test_dead_letter_carries_the_normalized_url(env, keys, mongo_db, fleet):
    """The dead letter names the URL the entry was accepted under, so a replay re-queues exactly
    that, whatever URL rules the replaying tool has; the field as pushed is kept only for an
    entry that never was a valid URL."""
    (w, h), = sizes(1, 401, 999)
    t = token()
    pushed = f"  HTTPS://Picsum.PHOTOS:443/{w}/{h}?fault=404&u={t}#frag\r"
    keys.xadd(pushed)
    keys.xadd("ftp://example.com/1/1")
    fleet.start(env, "w1", "--exit-when-idle", "1s").assert_clean_exit(30)
    dead = {d["reason"]: d for d in keys.dead()}
    assert set(dead) == {"http_404", "bad_scheme"}, dead
    assert dead["http_404"]["url"] == f"{PICSUM}/{w}/{h}?fault=404&u={t}"
    assert dead["bad_scheme"]["url"] == "ftp://example.com/1/1"
    assert_reconciled(keys, mongo_db)


# ---- 7. permanent failures, dead-lettered at once ----


def test_permanent_failures_dead_letter_at_once(env, keys, mongo_db, fleet):
    t = token()
    dims = sizes(5, 401, 999)
    cases = {  # fault -> accepted reasons, requests for its path (loop: 1 + 3 redirects)
        "404": ({"http_404"}, 1),
        "notimage": ({"not_image_type"}, 1),
        "loop": ({"too_many_redirects"}, 4),
        "bomb": ({"too_many_pixels"}, 1),
        "garbage": ({"not_image", "corrupt_image"}, 1),
    }
    urls = {f"{PICSUM}/{w}/{h}?fault={fault}&u={t}": (fault, (w, h))
            for fault, (w, h) in zip(cases, dims)}
    keys.xadd_all(list(urls))
    fleet.start(env, "w1", "--exit-when-idle", "1s").assert_clean_exit(30)
    dead = dead_by_url(keys)
    assert set(dead) == set(urls)
    for url, (fault, (w, h)) in urls.items():
        d = dead[url]
        reasons, requests = cases[fault]
        assert d["reason"] in reasons, (fault, d)
        assert d["attempts"] == "1", (fault, d)
        assert d["error"], (fault, d)
        assert requests_for(env, f"/{w}/{h}") == requests, fault
    w, h = next(size for fault, size in urls.values() if fault == "bomb")
    # The bomb's picture was downloaded (its header read), never decoded.
    assert requests_matching(env, lambda p: re.fullmatch(rf"/id/\d+/{w}/{h}\.jpg", p)) == 1
    stats = keys.stats()
    assert stats["failed"] == 5 and stats.get("retries", 0) == 0, stats
    assert stats.get("transform:grayscale:ok", 0) == 0
    assert documents(mongo_db) == []
    assert_reconciled(keys, mongo_db)


def test_size_caps_refuse_before_decoding(env, keys, mongo_db, fleet):
    (w, h), = sizes(1, 20, 40)
    small = f"{PICSUM}/{w}/{h}"
    heavy = f"{PICSUM}/900/{900 + w}"  # well over 20 KiB of JPEG
    wide = f"{PICSUM}/150/{150 + h}"  # a few KiB, but over 10000 pixels
    keys.xadd_all([small, heavy, wide])
    fleet.start(env, "w1", "--exit-when-idle", "1s", "--max-bytes", "20K",
                "--max-pixels", "10000").assert_clean_exit(30)
    dead = dead_by_url(keys)
    assert {u: d["reason"] for u, d in dead.items()} == \
        {heavy: "too_large", wide: "too_many_pixels"}
    assert all(d["attempts"] == "1" for d in dead.values())
    (doc,) = documents(mongo_db)
    check_document(doc, small, w, h)
    stats = keys.stats()
    assert stats["transform:grayscale:ok"] == 1 and stats.get("retries", 0) == 0
    assert_reconciled(keys, mongo_db)


def test_entries_that_are_not_urls(env, keys, mongo_db, fleet):
    no_url = keys.r.xadd(keys.stream, {"link": f"{PICSUM}/10/10", "source": "a.txt"}).decode()
    binary_url = keys.r.xadd(keys.stream, {"url": b"https://picsum.photos/10/\xff\xfe",
                                           "source": "b.txt", "line": "3"}).decode()
    bad_path = keys.xadd(f"{PICSUM}/10/10/10", source="c.txt", line="9")
    fleet.start(env, "w1", "--exit-when-idle", "1s").assert_clean_exit(30)
    dead = {d["entry"]: d for d in keys.dead()}
    assert set(dead) == {no_url, binary_url, bad_path}
    assert dead[no_url]["reason"] == "missing_url" and dead[no_url]["source"] == "a.txt"
    assert dead[binary_url]["reason"] == "not_utf8"
    assert (dead[binary_url]["source"], dead[binary_url]["line"]) == ("b.txt", "3")
    assert (dead[bad_path]["reason"], dead[bad_path]["line"]) == ("bad_path", "9")
    stats = keys.stats()
    assert (stats["received"], stats["invalid"]) == (3, 3)
    assert keys.r.scard(env["PIXFLOW_PREFIX"] + "seen") == 0
    assert keys.pending() == 0
    assert_reconciled(keys, mongo_db)


def test_in_flight_entries_are_capped(env, keys, mongo_db, fleet):
    t = token()
    urls = [f"{PICSUM}/{w}/{h}?fault=slow&delay_ms=400&u={t}" for w, h in sizes(8)]
    keys.xadd_all(urls)
    w = fleet.start(env, "w1", "--exit-when-idle", "1s", "--max-inflight", "2")
    most = 0
    while w.running():
        most = max(most, keys.pending())
        time.sleep(0.02)
    w.assert_clean_exit(1)
    assert most == 2, most
    assert keys.stats()["stored"] == len(urls)
    assert_reconciled(keys, mongo_db)


# ---- 8. poison pill ----


def test_poison_pill_is_dead_lettered_before_any_download(env, keys, mongo_db, fleet):
    (w, h), = sizes(1, 401, 999)
    url = f"{PICSUM}/{w}/{h}"
    entry = keys.xadd(url)
    keys.r.xgroup_create(keys.stream, "pixflow", id="0")
    keys.r.xreadgroup("pixflow", "ghost", {keys.stream: ">"}, count=1)
    for _ in range(5):  # each XCLAIM counts one more delivery: 6 in all
        keys.r.xclaim(keys.stream, "pixflow", "ghost", 0, [entry])
    (row,) = keys.r.xpending_range(keys.stream, "pixflow", "-", "+", 10)
    assert row["times_delivered"] == 6
    fleet.start(env, "w1", "--entry-deadline", "1s", "--fetch-timeout", "1s",
                "--reclaim-idle", "2500ms", "--reclaim-every", "200ms",
                "--exit-when-idle", "1s").assert_clean_exit(30)
    (d,) = keys.dead()
    assert (d["url"], d["reason"], d["entry"]) == (url, "poison", entry)
    assert requests_for(env, f"/{w}/{h}") == 0
    stats = keys.stats()
    assert (stats["received"], stats["failed"], stats["failed:poison"]) == (1, 1, 1)
    assert stats["reclaimed"] == 1
    assert keys.pending() == 0
    assert_reconciled(keys, mongo_db)


def test_poison_pill_in_own_pending_list(env, keys, mongo_db, fleet):
    """A worker that crashes on an entry and comes back under the same name (a container
    restarted in its pod keeps hostname and pid) re-reads its own pending list: the delivery
    count Redis keeps must stop the loop there too."""
    (w, h), = sizes(1, 401, 999)
    url = f"{PICSUM}/{w}/{h}"
    entry = keys.xadd(url)
    keys.r.xgroup_create(keys.stream, "pixflow", id="0")
    keys.r.xreadgroup("pixflow", "w1", {keys.stream: ">"}, count=1)
    for _ in range(5):
        keys.r.xclaim(keys.stream, "pixflow", "w1", 0, [entry])
    (row,) = keys.r.xpending_range(keys.stream, "pixflow", "-", "+", 10)
    assert row["times_delivered"] == 6 and row["consumer"] == b"w1"
    fleet.start(env, "w1", "--exit-when-idle", "1s").assert_clean_exit(30)
    dead = keys.dead()
    assert [(d["url"], d["reason"], d["entry"]) for d in dead] == [(url, "poison", entry)], \
        (dead, documents(mongo_db))
    assert requests_for(env, f"/{w}/{h}") == 0
    assert keys.pending() == 0
    assert_reconciled(keys, mongo_db)


# ---- 9. SSRF ----


def test_no_connection_to_private_addresses(env, keys, mongo_db, fleet):
    direct, hop, hop_local = Trap("127.0.0.1"), Trap("127.0.0.2"), Trap("127.0.0.1")
    try:
        (w1, h1), (w2, h2), (w3, h3) = sizes(3)
        local = f"http://localhost:{direct.port}/{w1}/{h1}"
        to_ip = f"{PICSUM}/{w2}/{h2}?fault=redirect&to=" + \
            quote(f"http://127.0.0.2:{hop.port}/x", safe="")
        to_local = f"{PICSUM}/{w3}/{h3}?fault=redirect&to=" + \
            quote(f"http://localhost:{hop_local.port}/10/10", safe="")
        keys.xadd_all([local, to_ip, to_local])
        wenv = dict(env, PIXFLOW_ALLOWED_HOSTS="picsum.photos,fastly.picsum.photos,localhost")
        fleet.start(wenv, "w1", "--exit-when-idle", "1s").assert_clean_exit(30)
        dead = dead_by_url(keys)
        assert set(dead) == {local, to_ip, to_local}, keys.stats()
        assert dead[local]["reason"] == "blocked_address", dead[local]
        assert dead[to_ip]["reason"] == "redirect_host", dead[to_ip]
        assert dead[to_local]["reason"] == "blocked_address", dead[to_local]
        assert all(d["attempts"] == "1" for d in dead.values()), dead
        assert (direct.connections(), hop.connections(), hop_local.connections()) == (0, 0, 0)
        assert documents(mongo_db) == []
        assert_reconciled(keys, mongo_db)
    finally:
        for trap in (direct, hop, hop_local):
            trap.close()


# ---- 10. graceful stop ----


def test_sigterm_drains_then_leaves_the_rest_pending(env, keys, mongo_db, fleet):
    t = token()
    dims = sizes(8)
    normal = [f"{PICSUM}/{w}/{h}" for w, h in dims[:2]]
    short = [f"{PICSUM}/{w}/{h}?fault=slow&delay_ms=1500&u={t}" for w, h in dims[2:4]]
    # Slow only the first time: the worker that reclaims them gets the picture at once.
    long = [f"{PICSUM}/{w}/{h}?fault=slow&delay_ms=8000&times=1&u={t}" for w, h in dims[4:]]
    ids = dict(zip(normal + short + long, keys.xadd_all(normal + short + long)))
    drain = 2.5
    a = fleet.start(env, "A", "--drain-timeout", f"{int(drain * 1000)}ms")
    wait_for("the quick entries", lambda: keys.stats().get("stored", 0) >= 2, 15)
    assert keys.pending_by_consumer() == {"A": 6}
    a.signal(signal.SIGTERM)
    stopped = time.monotonic()
    a.assert_clean_exit(drain + 5)
    took = time.monotonic() - stopped
    # The long downloads keep it busy: it must use the whole drain time, and not much more.
    assert drain - 0.2 <= took <= drain + 3, took
    assert keys.stats()["stored"] == 4, "the short downloads finish within the drain time"
    assert keys.pending_by_consumer() == {"A": 4}
    assert sorted(keys.pending_ids()) == sorted(ids[u] for u in long)

    b = fleet.start(env, "B", "--entry-deadline", "1s", "--fetch-timeout", "2s",
                    "--reclaim-idle", "3500ms", "--reclaim-every", "300ms",
                    "--exit-when-idle", "1s")
    b.assert_clean_exit(30)
    docs = by_source(mongo_db)
    assert set(docs) == set(ids)
    assert {docs[u]["consumer"] for u in long} == {"B"}
    assert {docs[u]["consumer"] for u in normal + short} == {"A"}
    stats = keys.stats()
    assert (stats["stored"], stats["reclaimed"]) == (8, 4), stats
    assert keys.pending() == 0
    assert_reconciled(keys, mongo_db)


def test_sigterm_hands_back_the_unfinished_at_once(env, keys, mongo_db, fleet):
    """A stopping worker hands back what it could not finish: a live worker takes it over within
    one --reclaim-every, not --reclaim-idle (12 s here) later. The downloads hang for 20 s, longer
    than anything in the test waits: a worker aborts a reply that sends nothing for 15 s (its
    low-speed limit), so the slow ones must still be hanging when A stops."""
    t = token()
    urls = [f"{PICSUM}/{w}/{h}?fault=slow&delay_ms=20000&times=1&u={t}" for w, h in sizes(5)]
    ids = keys.xadd_all(urls)
    a = fleet.start(env, "A", "--drain-timeout", "1s", "--reclaim-idle", "12s")
    wait_for("A to hold the entries", lambda: keys.pending_by_consumer().get("A", 0) == 5, 15)
    b = fleet.start(env, "B", "--reclaim-every", "300ms", "--reclaim-idle", "12s")
    # A worker reclaims nothing for two lease periods after it connects (6 s here), the time
    # the others need to renew their leases after a Redis restart; then A's lease still holds.
    time.sleep(7)
    assert "event=reclaimed" not in b.log()
    assert keys.pending_by_consumer() == {"A": 5}
    a.signal(signal.SIGTERM)
    a.assert_clean_exit(8)
    stopped = time.monotonic()
    assert "event=handed_back entries=5" in a.log(), a.log()[-3000:]
    wait_for("B to take them over", lambda: "event=reclaimed" in b.log(), 10)
    assert time.monotonic() - stopped < 3
    wait_for("the pictures", lambda: keys.stats().get("stored", 0) == 5, 30)
    b.signal(signal.SIGTERM)
    b.assert_clean_exit(10)
    docs = by_source(mongo_db)
    assert set(docs) == set(urls)
    assert {d["consumer"] for d in docs.values()} == {"B"}
    assert {d["stream_id"] for d in docs.values()} == set(ids)
    stats = keys.stats()
    assert (stats["stored"], stats["reclaimed"]) == (5, 5), stats
    assert keys.pending() == 0
    assert_reconciled(keys, mongo_db)


# ---- 11. outages ----


def test_mongodb_outage_holds_acks_until_it_returns(tmp_path, fleet):
    folder = tmp_path / "stack"
    try:
        penv = isolated_env(conftest.start_stack(folder))
        client = redis_lib.Redis.from_url(penv["PIXFLOW_REDIS_URL"])
        keys = Keys(client, penv["PIXFLOW_PREFIX"])
        conftest.stop_stack(folder, "ferretdb")

        dims = sizes(5)
        urls = [f"{PICSUM}/{w}/{h}" for w, h in dims]
        keys.xadd_all(urls)
        w = fleet.start(penv, "w1", "--exit-when-idle", "1s", "--retry-max", "2s")
        wait_for("the entries to be read", lambda: keys.pending() == len(urls), 15)
        time.sleep(4)
        assert w.running(), w.log()
        assert keys.pending() == len(urls), "nothing may be acked while MongoDB is down"
        stats = keys.stats()
        assert stats.get("stored", 0) == 0 and stats.get("received", 0) == 0, stats
        assert keys.dead() == []

        conftest.restart_server(folder, "ferretdb")
        w.assert_clean_exit(60)

        mclient, db = mongo_for(penv)
        docs = by_source(db)
        assert set(docs) == set(urls)
        for url, (width, height) in zip(urls, dims):
            check_document(docs[url], url, width, height)
        assert keys.stats()["stored"] == len(urls)
        assert keys.pending() == 0
        assert_reconciled(keys, db)
        mclient.close()
        client.close()
    finally:
        conftest.stop_stack(folder)


def test_redis_restart_mid_run_loses_nothing(tmp_path, fleet):
    folder = tmp_path / "stack"
    try:
        penv = isolated_env(conftest.start_stack(folder))
        port = int(penv["PIXFLOW_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
        client = redis_lib.Redis.from_url(penv["PIXFLOW_REDIS_URL"])
        keys = Keys(client, penv["PIXFLOW_PREFIX"])
        t = token()
        dims = sizes(10)
        urls = [f"{PICSUM}/{w}/{h}" + (f"?fault=slow&delay_ms=1500&u={t}" if i < 6 else "")
                for i, (w, h) in enumerate(dims)]
        keys.xadd_all(urls)
        w = fleet.start(penv, "w1", "--exit-when-idle", "2s")
        wait_for("the slow entries to be read", lambda: keys.pending() >= 6, 15)
        conftest.stop_stack(folder, "redis")
        wait_for("Redis to stop", lambda: not port_open(port), 10)
        time.sleep(2)  # the slow downloads end while Redis is away: their acks must wait
        assert w.running(), w.log()
        conftest.restart_server(folder, "redis")
        w.assert_clean_exit(60)
        assert "event=redis_down" in w.log()

        mclient, db = mongo_for(penv)
        docs = by_source(db)
        assert set(docs) == set(urls)
        for url, (width, height) in zip(urls, dims):
            check_document(docs[url], url, width, height)
        stats = keys.stats()
        assert stats["received"] == stats["stored"] == len(urls), stats
        assert keys.pending() == 0
        assert_reconciled(keys, db)
        mclient.close()
        client.close()
    finally:
        conftest.stop_stack(folder)


# ---- 12. trimming ----


def test_trim_drops_what_every_group_is_done_with(env, keys, mongo_db, fleet):
    urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(20)]
    keys.xadd_all(urls)
    fleet.start(env, "w1", "--exit-when-idle", "1s", "--trim-every", "500ms") \
        .assert_clean_exit(30)
    assert keys.stats()["stored"] == 20
    assert keys.pending() == 0
    assert keys.xlen() <= 2, keys.xlen()


def test_trim_keeps_what_another_group_still_needs(env, keys, mongo_db, fleet):
    urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(20)]
    ids = keys.xadd_all(urls)
    keys.r.xgroup_create(keys.stream, "never-read", id="0")
    fleet.start(env, "w1", "--exit-when-idle", "1s", "--trim-every", "500ms") \
        .assert_clean_exit(30)
    assert keys.stats()["stored"] == 20
    assert keys.xlen() == 20

    # Another group has read everything but still holds entries 5..20 pending.
    keys.r.xgroup_destroy(keys.stream, "never-read")
    keys.r.xgroup_create(keys.stream, "slow-reader", id="0")
    keys.r.xreadgroup("slow-reader", "r1", {keys.stream: ">"}, count=100)
    keys.r.xack(keys.stream, "slow-reader", *ids[:4])
    more = [f"{PICSUM}/{w}/{h}" for w, h in sizes(3, 401, 999)]
    keys.xadd_all(more)  # a second worker run, so trimming runs again
    fleet.start(env, "w2", "--exit-when-idle", "1s", "--trim-every", "500ms") \
        .assert_clean_exit(30)
    assert keys.stats()["stored"] == 23
    left = [i.decode() for i, _ in keys.r.xrange(keys.stream)]
    assert left[0] == ids[4], (left[:3], ids[:6])
    assert len(left) == 16 + 3


# ---- 13. start-up errors ----


def test_bad_settings_exit_2_naming_them(env):
    cases = [
        (["--max-inflight", "0"], {}, "--max-inflight"),
        ([], {"PIXFLOW_REDIS_URL": "http://x"}, "PIXFLOW_REDIS_URL"),
        (["--reclaim-idle", "500ms"], {}, "--reclaim-idle"),  # under 1 s
        (["--fetch-timeout", "soon"], {}, "--fetch-timeout"),
        (["--download-memory", "1M"], {}, "--download-memory"),  # under --max-bytes 20M
        (["--bogus"], {}, "--bogus"),
    ]
    for args, extra, name in cases:
        res = subprocess.run([binary(CONSUMER), *args], env=dict(env, **extra),
                             capture_output=True, timeout=10)
        err = res.stderr.decode()
        assert res.returncode == 2, (args, extra, res.returncode, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and name in lines[0], (args, extra, err)
        assert res.stdout == b""


def test_unknown_transform_fails_at_start(env):
    res = subprocess.run([binary(CONSUMER)], env=dict(env, PIXFLOW_TRANSFORMS="nosuch"),
                         capture_output=True, timeout=20)
    assert res.returncode != 0
    assert "nosuch" in res.stderr.decode()


def test_png_checker_rejects_broken_files():
    """The PNG checks above must be able to fail: a cut file or a renamed chunk is refused."""
    from pixflow_helpers import png_info
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + \
            struct.pack(">I", zlib.crc32(kind + body))
    raw = b"".join(b"\x00" + bytes([x * 10 for x in range(3)]) for _ in range(2))
    good = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 3, 2, 8, 0, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    assert png_info(good) == (3, 2, 8, 0)
    with pytest.raises(AssertionError):
        png_info(good[:-1])
    with pytest.raises(AssertionError):
        png_info(good.replace(b"IDAT", b"IDAt"))
