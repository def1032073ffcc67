"""Renditions (SPEC §3 `renditions`, `reprocess`; §5.9; §6 `renditions`) on the real S3 server of
the stack: a rendition added later is made for every kept original from the raw store, never
the web, exactly once, while new URLs get every rendition from one download; a plugin upgrade
makes exactly the renditions it touched stale; kill -9 during a reprocess loses and doubles
nothing; a rendition naming a missing plugin is refused by `renditions add` and, on a worker
that lacks the plugin, waits for one that has it."""
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import binary, run
from pixflow_helpers import Keys, png_info, reconcile, requests_matching, sizes, wait_for

PICSUM = "https://picsum.photos"
THUMB = "grayscale,thumbnail:size=64"


@pytest.fixture
def keys(redis_client, env):
    return Keys(redis_client, env["PIXFLOW_PREFIX"])


def default_images(db):
    return db["images"].count_documents({"$or": [{"rendition": "default"},
                                                  {"rendition": {"$exists": False}}]})


def assert_reconciled(keys, db):
    stats = keys.stats()
    assert reconcile(stats, default_images(db)) is None, reconcile(stats, default_images(db))
    assert stats.get("reprocess_queued", 0) == \
        stats.get("reprocessed", 0) + stats.get("reprocess_failed", 0), stats


def thumbs(db, name="thumb"):
    return {d["original"]: d for d in db["renditions"].find({"rendition": name})}


def check_thumbs(db, originals, name="thumb"):
    """Each original has exactly one rendition `name`, a gray PNG of 64 pixels at most."""
    got = thumbs(db, name)
    assert set(got) == set(originals), (len(got), len(originals))
    for orig, r in got.items():
        assert r["_id"] == f"{orig}/{name}"
        assert [link["name"] for link in r["chain"]] == ["grayscale", "thumbnail"]
        image = db["images"].find_one({"_id": r["image"]})
        assert image is not None, r
        # A picture already 64 pixels or less is its default picture again: the same bytes,
        # stored once, under the rendition that made them first.
        small = max(image["origin"]["width"], image["origin"]["height"]) <= 64
        assert image["rendition"] in ((name, "default") if small else (name,)), image
        assert max(image["width"], image["height"]) == min(
            64, max(image["origin"]["width"], image["origin"]["height"])), image
        import base64
        w, h, depth, color = png_info(base64.b64decode(image["image"]))
        assert (w, h, depth, color) == (image["width"], image["height"], 8, 0)
    return got


def workers(fleet, env, n, *args):
    return [fleet.start(env, f"w{i}-{time.monotonic_ns()}", *args) for i in range(n)]


def test_reprocess_from_raw_store_and_new_urls_get_both(env, keys, mongo_db, fleet, tmp_path):
    # Stored before originals were kept: it stays its default rendition only.
    unkept = f"{PICSUM}/999/777"
    keys.xadd_all([unkept])
    fleet.start(dict(env, PIXFLOW_RAW_URL=""), "no-raw", "--exit-when-idle", "1s") \
        .assert_clean_exit(60)
    assert mongo_db["originals"].count_documents({}) == 0
    dims = sizes(8)
    urls = [f"{PICSUM}/{w}/{h}" for w, h in dims]
    keys.xadd_all(urls)
    for w in workers(fleet, env, 2, "--exit-when-idle", "1s"):
        w.assert_clean_exit(60)
    originals = {d["_id"] for d in mongo_db["originals"].find({}, {"_id": 1})}
    assert len(originals) == len(urls)
    assert set(thumbs(mongo_db, "default")) == originals  # the default rendition, recorded

    refused = run("pixflow", "renditions", "add", "bad", "grayscale,nosuchplugin", env=env)
    assert refused.returncode == 1 and b"nosuchplugin" in refused.stderr, refused
    assert run("pixflow", "renditions", "add", "default", THUMB, env=env).returncode == 2
    added = run("pixflow", "renditions", "add", "thumb", THUMB, env=env)
    assert added.returncode == 0, added.stderr
    listed = run("pixflow", "renditions", env=env).stdout.decode()
    assert f"thumb            0/{len(urls)}" in listed and "default" in listed, listed
    assert "bad" not in listed

    # The image server is shared with other tests: only this test's sizes are counted, both hops
    # of a download (/W/H, then /id/N/W/H.jpg).
    def of(sizes_):
        return lambda p: any(p.endswith((f"/{w}/{h}", f"/{w}/{h}.jpg")) for w, h in sizes_)
    ours = of(dims)
    before = requests_matching(env, ours)
    fresh_dims = [(700 + i, 300 + i) for i in range(3)]  # sizes no other URL of a test has
    fresh = [f"{PICSUM}/{w}/{h}" for w, h in fresh_dims]
    fresh_before = requests_matching(env, of(fresh_dims))  # an earlier run of this test's
    ws = workers(fleet, env, 2, "--exit-when-idle", "5s", "--heartbeat-every", "500ms")
    wait_for("the workers to load thumb", lambda: all(
        "event=rendition_loaded rendition=thumb" in w.log() for w in ws), 20)
    proc = subprocess.Popen([binary("pixflow"), "reprocess", "thumb", "--wait"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    keys.xadd_all(fresh)  # new URLs while the reprocess runs
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, (out, err)
    out = out.decode()
    assert f"reprocess thumb: {len(urls)} queued" in out, out
    assert "skipped 1 stored pictures whose original was not kept" in out, out
    assert f"done: {len(urls)} of thumb" in out and "0 failed" in out, out
    assert b"/s" in err and b"left" in err, err  # the progress bar
    wait_for("the heartbeats to list thumb", lambda: all(b"thumb" in (keys.r.hget(
        f"{env['PIXFLOW_PREFIX']}worker:{w.name}", "renditions") or b"") for w in ws), 5)
    for w in ws:
        w.assert_clean_exit(60)
    assert requests_matching(env, ours) == before, "the reprocess asked the image server"
    assert requests_matching(env, of(fresh_dims)) - fresh_before == 2 * len(fresh), \
        "only the new URLs were downloaded, once each"

    every = {d["_id"] for d in mongo_db["originals"].find({}, {"_id": 1})}
    assert len(every) == len(urls) + len(fresh)  # the unkept URL has no original
    check_thumbs(mongo_db, every)
    assert set(thumbs(mongo_db, "default")) == every
    for url in fresh:  # both renditions from the one download
        origin = mongo_db["sources"].find_one({"_id": url})["origin"]
        assert mongo_db["renditions"].find_one({"_id": f"{origin}/thumb"}) is not None
    stats = keys.stats()
    assert stats["reprocessed"] == stats["reprocess_queued"] == len(urls), stats
    assert stats.get("renditions", 0) == len(fresh), stats
    assert_reconciled(keys, mongo_db)
    assert keys.r.scard(f"{env['PIXFLOW_PREFIX']}reprocess:queued") == 0

    # Reading a rendition: the CLI and the worker's /images.
    one = fresh[0]
    png = tmp_path / "thumb.png"
    got = run("pixflow", "get", one, "--rendition", "thumb", "-o", png, env=env)
    assert got.returncode == 0, got.stderr
    assert max(png_info(png.read_bytes())[:2]) == 64
    own = run("pixflow", "get", one, "--json", env=env).stdout
    assert b'"rendition" : "default"' in own or b'"rendition": "default"' in own, own
    missing = run("pixflow", "get", unkept, "--rendition", "thumb", env=env)
    assert missing.returncode == 1 and b"was not kept" in missing.stderr, missing
    web = fleet.start(env, "web", "--http", "127.0.0.1:0")
    wait_for("the listener", lambda: "event=http_listening" in web.log(), 20)
    port = int(web.log().split("event=http_listening")[1].split("port=")[1].split()[0])
    base = f"http://127.0.0.1:{port}/images?source={one}"
    import json
    with urllib.request.urlopen(base + "&rendition=thumb", timeout=10) as reply:
        doc = json.loads(reply.read())
    assert doc["rendition"] == "thumb" and max(doc["width"], doc["height"]) == 64, doc
    with urllib.request.urlopen(base, timeout=10) as reply:
        assert json.loads(reply.read())["rendition"] == "default"
    try:
        urllib.request.urlopen(base + "&rendition=nosuch", timeout=10)
        pytest.fail("an unknown rendition is a 404")
    except urllib.error.HTTPError as e:
        assert e.code == 404
    web.signal(signal.SIGTERM)
    web.assert_clean_exit(30)

    checked = run("pixflow", "verify", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"renditions: {2 * len(every)} checked" in checked.stdout.decode(), checked.stdout
    # A rendition whose image went away is reported, with its kind.
    victim = thumbs(mongo_db)[next(iter(every))]
    mongo_db["renditions"].insert_one({"_id": "f" * 64 + "/thumb", "image": victim["image"],
                                       "original": "f" * 64, "rendition": "thumb"})
    bad = run("pixflow", "verify", env=env)
    assert bad.returncode == 1 and b"rendition_no_original" in bad.stdout, bad.stdout
    mongo_db["renditions"].delete_one({"_id": "f" * 64 + "/thumb"})

    again = run("pixflow", "reprocess", "thumb", env=env)
    assert again.returncode == 0 and b"thumb: 0 queued" in again.stdout, again
    listed = run("pixflow", "renditions", env=env).stdout.decode()
    assert f"thumb            {len(every)}/{len(every)}" in listed, listed
    removed = run("pixflow", "renditions", "remove", "thumb", env=env)
    assert removed.returncode == 0 and keys.r.hlen(f"{env['PIXFLOW_PREFIX']}renditions") == 0


def plugin_copy(env, tmp_path, without=()):
    folder = tmp_path / ("plugins-" + "-".join(without) if without else "plugins")
    shutil.copytree(env["PIXFLOW_PLUGIN_PATH"], folder)
    for name in without:
        (folder / f"{name}.so").unlink()
    return folder


def test_plugin_upgrade_then_stale_redoes_exactly_those(env, keys, mongo_db, fleet, tmp_path):
    env = dict(env, PIXFLOW_PLUGIN_PATH=str(plugin_copy(env, tmp_path)))
    assert run("pixflow", "renditions", "add", "thumb", THUMB, env=env).returncode == 0
    old = [f"{PICSUM}/{w}/{h}" for w, h in sizes(4)]
    keys.xadd_all(old)
    for w in workers(fleet, env, 1, "--exit-when-idle", "1s"):
        w.assert_clean_exit(60)
    first = check_thumbs(mongo_db, {d["_id"] for d in mongo_db["originals"].find({})})
    old_sha = {r["chain"][1]["sha256"] for r in first.values()}
    assert len(old_sha) == 1

    # The upgrade: another thumbnail.so (same code, another file), then new URLs with it.
    so = tmp_path / "plugins" / "thumbnail.so"
    so.write_bytes(so.read_bytes() + b"\0upgraded")
    new = [f"{PICSUM}/{w}/{h}" for w, h in sizes(2, 401, 600)]
    keys.xadd_all(new)
    for w in workers(fleet, env, 1, "--exit-when-idle", "1s"):
        w.assert_clean_exit(60)
    every = {d["_id"] for d in mongo_db["originals"].find({})}
    after = check_thumbs(mongo_db, every)
    assert sum(r["chain"][1]["sha256"] in old_sha for r in after.values()) == len(first)

    plain = run("pixflow", "reprocess", "thumb", env=env)
    assert b"thumb: 0 queued" in plain.stdout and b"4 from another chain" in plain.stdout, plain
    ws = workers(fleet, env, 2, "--exit-when-idle", "2s")
    stale = run("pixflow", "reprocess", "thumb", "--stale", "--wait", env=env)
    assert stale.returncode == 0, stale
    assert f"thumb: {len(first)} queued".encode() in stale.stdout, stale.stdout
    for w in ws:
        w.assert_clean_exit(60)
    redone = check_thumbs(mongo_db, every)
    assert not any(r["chain"][1]["sha256"] in old_sha for r in redone.values())
    named = {r["image"] for r in redone.values()}
    made = {d["_id"] for d in mongo_db["images"].find({"rendition": "thumb"}, {"_id": 1})}
    assert made <= named, "a stale picture left behind"
    for orig in set(every) - set(first):  # the new ones were left alone
        assert redone[orig]["inserted_at"] == after[orig]["inserted_at"]
    stats = keys.stats()
    assert stats["reprocessed"] == len(first), stats
    assert_reconciled(keys, mongo_db)


def test_kill_during_reprocess_loses_and_doubles_nothing(env, keys, mongo_db, fleet):
    urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(24, 300, 900)]
    keys.xadd_all(urls)
    for w in workers(fleet, env, 2, "--exit-when-idle", "1s"):
        w.assert_clean_exit(90)
    assert run("pixflow", "renditions", "add", "thumb", THUMB, env=env).returncode == 0
    queued = run("pixflow", "reprocess", "thumb", env=env)
    assert f"thumb: {len(urls)} queued".encode() in queued.stdout, queued
    timing = ["--reclaim-idle", "3s", "--reclaim-every", "500ms", "--entry-deadline", "1s",
              "--fetch-timeout", "1s"]
    a, b = (fleet.start(env, name, "--max-inflight", "4", *timing) for name in ("A", "B"))
    wait_for("some thumbnails", lambda: mongo_db["renditions"].count_documents(
        {"rendition": "thumb"}) >= 3, 60)
    a.kill()  # kill -9 mid-way: its pending entries are reclaimed by the others
    b.kill()
    c = fleet.start(env, "C", "--exit-when-idle", "3s", *timing)
    d = fleet.start(env, "D", "--exit-when-idle", "3s", *timing)
    c.assert_clean_exit(120)
    d.assert_clean_exit(60)
    check_thumbs(mongo_db, {o["_id"] for o in mongo_db["originals"].find({})})
    images = [d["_id"] for d in mongo_db["images"].find({"rendition": "thumb"}, {"_id": 1})]
    named = {r["image"] for r in mongo_db["renditions"].find({"rendition": "thumb"})}
    assert set(images) == named, "an image no rendition names, or the reverse"
    stats = keys.stats()
    assert stats["reprocessed"] == len(urls) and stats.get("reprocess_failed", 0) == 0, stats
    assert keys.dead() == []
    assert keys.r.scard(f"{env['PIXFLOW_PREFIX']}reprocess:queued") == 0
    assert_reconciled(keys, mongo_db)


def test_worker_without_the_plugin_waits_for_one_that_has_it(env, keys, mongo_db, fleet,
                                                              tmp_path):
    urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(4)]
    keys.xadd_all(urls)
    for w in workers(fleet, env, 1, "--exit-when-idle", "1s"):
        w.assert_clean_exit(60)
    assert run("pixflow", "renditions", "add", "thumb", THUMB, env=env).returncode == 0
    lacking = dict(env, PIXFLOW_PLUGIN_PATH=str(plugin_copy(env, tmp_path, ["thumbnail"])))
    w1 = fleet.start(lacking, "lacking", "--http", "127.0.0.1:0")
    assert run("pixflow", "reprocess", "thumb", env=env).returncode == 0
    beat = f"{env['PIXFLOW_PREFIX']}worker:lacking"
    wait_for("the heartbeat to say so", lambda: b"thumb" in (
        keys.r.hget(beat, "renditions_failed") or b""), 20)
    fresh = [f"{PICSUM}/{900 + i}/{450 + i}" for i in range(2)]
    keys.xadd_all(fresh)  # new URLs on the worker that cannot make thumb: queued for another
    wait_for("the new URLs", lambda: keys.stats().get("stored", 0) + keys.stats().get(
        "aliased", 0) == len(urls) + len(fresh), 30)
    time.sleep(6)  # longer than a hand-back
    stats = keys.stats()
    assert stats.get("reprocess_failed", 0) == 0 and stats.get("reprocessed", 0) == 0, stats
    assert stats["reprocess_queued"] == len(urls) + len(fresh), stats
    assert "event=rendition_queued rendition=thumb" in w1.log()
    assert "event=rendition_unavailable rendition=thumb" in w1.log()
    port = int(w1.log().split("event=http_listening")[1].split("port=")[1].split()[0])
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
        pytest.fail("/readyz should say the rendition cannot be made here")
    except urllib.error.HTTPError as e:
        assert e.code == 503 and b"thumb" in e.read()
    w2 = fleet.start(env, "able")
    wait_for("the able worker to make them", lambda: keys.stats().get("reprocessed", 0) ==
             len(urls) + len(fresh), 60)
    w1.signal(signal.SIGTERM)
    w2.signal(signal.SIGTERM)
    w1.assert_clean_exit(30)
    w2.assert_clean_exit(30)
    check_thumbs(mongo_db, {o["_id"] for o in mongo_db["originals"].find({})})
    assert_reconciled(keys, mongo_db)


def test_console_lists_renditions_and_queues_one(env, keys, mongo_db, fleet, tmp_path):
    from web_helpers import TOKEN, Console
    url = f"{PICSUM}/640/480"
    keys.xadd_all([url])
    fleet.start(env, "w", "--exit-when-idle", "1s").assert_clean_exit(60)
    assert run("pixflow", "renditions", "add", "thumb", THUMB, env=env).returncode == 0
    image = mongo_db["sources"].find_one({"_id": url})["image"]
    origin = mongo_db["sources"].find_one({"_id": url})["origin"]
    console = Console(env, token=TOKEN, log_dir=tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        status, page = console.json(f"/api/images/{image}", headers=auth)
        assert status == 200, page
        assert page["defined"] == {"default": "grayscale", "thumb": THUMB}
        assert [r["rendition"] for r in page["renditions"]] == ["default"]
        form = f"original={origin}&rendition=thumb".encode()
        status, got = console.json("/api/reprocess", data=form, headers=auth, method="POST")
        assert status == 200 and got["queued"] is True, got
        status, got = console.json("/api/reprocess", data=form, headers=auth, method="POST")
        assert status == 200 and got["queued"] is False, got  # queued once
        status, _ = console.json("/api/reprocess", data=b"original=x&rendition=thumb",
                                 headers=auth, method="POST")
        assert status == 400
        assert console.request("/api/reprocess", headers=auth)[0] == 405
        fleet.start(env, "w2", "--exit-when-idle", "2s").assert_clean_exit(60)
        status, page = console.json(f"/api/images/{image}", headers=auth)
        assert sorted(r["rendition"] for r in page["renditions"]) == ["default", "thumb"]
        status, overview = console.json("/api/overview", headers=auth)
        counters = overview["stats"]["counters"]
        assert counters["reprocess_queued"] == counters["reprocessed"] == 1, counters
    finally:
        console.close()


def test_reprocess_never_takes_more_than_half_the_slots(env, keys, mongo_db, fleet):
    urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(16, 600, 1200)]
    keys.xadd_all(urls)
    fleet.start(env, "first", "--exit-when-idle", "1s").assert_clean_exit(90)
    assert run("pixflow", "renditions", "add", "thumb", THUMB, env=env).returncode == 0
    assert run("pixflow", "reprocess", "thumb", env=env).returncode == 0
    live = [f"{PICSUM}/{800 + i}/{500 + i}" for i in range(8)]
    keys.xadd_all(live)  # both streams busy from the start
    w = fleet.start(env, "busy", "--max-inflight", "4", "--threads", "1", "--exit-when-idle", "2s")
    prefix = env["PIXFLOW_PREFIX"]
    most_reprocess = most_live = 0
    while w.running():
        try:
            rp = keys.r.xpending(f"{prefix}reprocess", "pixflow")["pending"]
            lv = keys.r.xpending(f"{prefix}urls", "pixflow")["pending"]
        except Exception:  # the group is made by the worker
            rp = lv = 0
        most_reprocess, most_live = max(most_reprocess, rp), max(most_live, lv)
        assert rp <= 2, f"{rp} reprocess entries held out of 4 slots"
        time.sleep(0.02)
    assert w.wait(5) == 0
    assert most_live >= 2 and most_reprocess >= 1, (most_live, most_reprocess)
    stats = keys.stats()
    assert stats["reprocessed"] == len(urls) and stats["stored"] + stats.get("aliased", 0) == \
        len(urls) + len(live), stats
    assert_reconciled(keys, mongo_db)


def test_removed_rendition_is_a_dead_letter_with_its_reason(env, keys, mongo_db, fleet):
    urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(3)]
    keys.xadd_all(urls)
    fleet.start(env, "first", "--exit-when-idle", "1s").assert_clean_exit(60)
    assert run("pixflow", "renditions", "add", "gone", THUMB, env=env).returncode == 0
    assert b"gone: 3 queued" in run("pixflow", "reprocess", "gone", env=env).stdout
    assert run("pixflow", "renditions", "remove", "gone", env=env).returncode == 0
    fleet.start(env, "second", "--exit-when-idle", "2s").assert_clean_exit(60)
    stats = keys.stats()
    assert stats["reprocess_failed"] == stats["reprocess_failed:unknown_rendition"] == 3, stats
    letters = keys.dead()
    assert len(letters) == 3 and {d["reason"] for d in letters} == {"unknown_rendition"}
    assert {d["rendition"] for d in letters} == {"gone"}
    originals = {o["_id"] for o in mongo_db["originals"].find({})}
    assert {d["original"] for d in letters} == originals
    assert keys.r.scard(f"{env['PIXFLOW_PREFIX']}reprocess:queued") == 0
    assert_reconciled(keys, mongo_db)


def test_a_rendition_added_while_workers_run_is_reprocessed_not_dead_lettered(env, keys, mongo_db,
                                                                              fleet):
    # A running worker reads the renditions hash every few seconds. Entries that `pixflow
    # reprocess` queues right after `renditions add` can reach it before its next read: they
    # wait for a fresh read of the hash and are made, never dead-lettered as unknown.
    urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(4)]
    keys.xadd_all(urls)
    live = fleet.start(env, "live")
    wait_for("the URLs stored", lambda: mongo_db["originals"].count_documents({}) == len(urls), 60)
    originals = {o["_id"] for o in mongo_db["originals"].find({})}
    for n in range(3):
        name = f"late{n}"
        assert run("pixflow", "renditions", "add", name, THUMB, env=env).returncode == 0
        queued = run("pixflow", "reprocess", name, env=env)
        assert f"{name}: {len(urls)} queued".encode() in queued.stdout, queued
        wait_for(f"rendition {name} made", lambda: len(thumbs(mongo_db, name)) == len(urls), 60)
        # The same chain under each name: the same pictures, stored once, by the first name.
        assert {r["image"] for r in thumbs(mongo_db, name).values()} == \
            {r["image"] for r in check_thumbs(mongo_db, originals, "late0").values()}
    assert keys.dead() == [], keys.dead()
    live.signal(signal.SIGTERM)
    live.assert_clean_exit(30)
    stats = keys.stats()
    assert stats["reprocessed"] == 3 * len(urls) and stats.get("reprocess_failed", 0) == 0, stats
    assert_reconciled(keys, mongo_db)


def test_rendition_images_record_their_format_and_lineage(env, keys, mongo_db, fleet):
    """A rendition whose chain names another format is stored in it, and its image names that
    format, the encoder's settings and the decoder's path, whether made from the URL's download
    or later from the raw store; verify calls none of them corrupt."""
    small = "grayscale,thumbnail:size=64,jpeg:quality=70"
    assert run("pixflow", "renditions", "add", "small", small, env=env).returncode == 0
    urls = [f"{PICSUM}/{w}/{h}" for w, h in sizes(2, 300, 640)]
    keys.xadd_all(urls)
    fleet.start(env, "w1", "--exit-when-idle", "1s").assert_clean_exit(60)
    assert run("pixflow", "renditions", "add", "lossless", "grayscale,webp", env=env) \
        .returncode == 0
    queued = run("pixflow", "reprocess", "lossless", env=env)
    assert queued.returncode == 0, queued.stderr
    fleet.start(env, "w2", "--exit-when-idle", "2s").assert_clean_exit(60)
    want = {"default": ("png", "png:level=0"), "small": ("jpeg", "jpeg:quality=70"),
            "lossless": ("webp", "webp:lossless")}
    for url in urls:
        origin = mongo_db["sources"].find_one({"_id": url})["origin"]
        for name, (fmt, encoder) in want.items():
            r = mongo_db["renditions"].find_one({"_id": f"{origin}/{name}"})
            assert r is not None, (url, name)
            image = mongo_db["images"].find_one({"_id": r["image"]})
            assert (image["format"], image["encoder"]) == (fmt, encoder), (name, image)
            dec = image["decoder"]
            assert dec["library"] == "libjpeg-turbo" and dec["path"] == "luma", (name, dec)
            # only the thumbnail begins by shrinking, so only it is decoded smaller
            assert (dec["scale"] > 1) == (name == "small"), (name, dec)
    checked = run("pixflow", "verify", "--json", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
