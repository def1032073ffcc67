"""pixflow-web's JSON without a browser, against a real stack after a small run: the overview is
HGETALL pixflow:stats, a URL search tells every state, the gallery pages and serves the PNGs,
replay needs its CSRF token and re-queues through the same script as `pixflow dead --replay`,
the token is required when set, and catalog text comes back as the text it is."""
import hashlib
import json
import re
import subprocess
import urllib.parse

import pytest

from conftest import SOURCE_DIR, binary, run
from web_helpers import (ALIASED, DEAD, HOSTILE, HOSTILE_SOURCE, INVALID, OTHER, REPLAYABLE,
                         STORED, TOKEN, Console, pipeline, run_worker)  # noqa: F401 (fixture)


@pytest.fixture
def console(pipeline, tmp_path):
    c = Console(pipeline.env, log_dir=tmp_path)
    try:
        yield c
    finally:
        c.close()


def search(console, url):
    status, body = console.json("/api/search?url=" + urllib.parse.quote(url, safe=""))
    assert status == 200, body
    return body


def session(console, headers=None):
    """(cookie header, csrf token) of a fresh session."""
    status, h, body = console.request("/api/session", headers=headers)
    assert status == 200, body
    cookie = h["Set-Cookie"].split(";", 1)[0] if h.get("Set-Cookie") else None
    return cookie, json.loads(body)["csrf"]


def test_overview_is_hgetall_of_stats(pipeline, console):
    status, body = console.json("/api/overview")
    assert status == 200
    assert body["stats"]["counters"] == pipeline.stats()
    assert body["stats"]["counters"]["stored"] == 2 and body["stats"]["counters"]["aliased"] == 1
    assert body["stats"]["stream"]["pending"] == 0 and body["stats"]["stream"]["backlog"] == 0
    assert body["stats"]["dead"]["letters"] == 3
    history = body["history"]
    assert history["series"][0] == "stored" and history["points"], history
    assert history["points"][-1][1] == 2  # the sampler read the same counter


def test_search_tells_each_state(pipeline, console):
    stored = search(console, STORED)
    assert stored["status"] == "stored" and stored["stored"]["role"] == "source"
    image = stored["stored"]["image"]
    assert re.fullmatch(r"[0-9a-f]{64}", image) and stored["image"]["_id"] == image
    assert [e["event"] for e in stored["timeline"]] == ["queued", "stored"]

    aliased = search(console, ALIASED.replace("https://picsum.photos", "HTTPS://PICSUM.PHOTOS:443"))
    assert aliased["normalized"] == ALIASED
    assert aliased["status"] == "aliased" and aliased["stored"]["image"] == image
    assert aliased["image"]["source"] == STORED

    dead = search(console, DEAD)
    assert dead["status"] == "dead" and dead["dead"][0]["reason"] == "http_404"
    assert dead["stream"][0]["state"] == "acked" and dead["seen"] is True

    invalid = search(console, INVALID)
    assert invalid["status"] == "invalid" and invalid["invalid_reason"] == "bad_scheme"
    assert invalid["valid"] is False and invalid["normalized"] is None

    hostile = search(console, HOSTILE)
    assert hostile["status"] == "dead" and hostile["dead"][0]["reason"] == "bad_char"

    unknown = search(console, "https://picsum.photos/4999/1")
    assert unknown["status"] == "not_seen" and unknown["timeline"] == []

    status, body = console.json("/api/search")
    assert status == 400 and "url" in body["error"]


def test_search_sees_queued_and_pending_work(pipeline, console):
    queued_url = "https://picsum.photos/42/42"
    pending_url = "https://picsum.photos/43/43"
    queued = pipeline.keys.xadd(queued_url)
    entry = pipeline.keys.xadd(pending_url)
    try:
        assert search(console, queued_url)["status"] == "queued"
        assert search(console, queued_url)["stream"][0]["state"] == "unread"
        # A consumer that reads both and holds the second: it is pending there, the first acked.
        pipeline.redis.xreadgroup(pipeline.keys.group, "holder", {pipeline.keys.stream: ">"})
        pipeline.redis.xack(pipeline.keys.stream, pipeline.keys.group, queued)
        assert search(console, queued_url)["stream"][0]["state"] == "acked"
        found = search(console, pending_url)
        assert found["status"] == "pending", found
        assert found["stream"][0]["id"] == entry and found["stream"][0]["consumer"] == "holder"
        assert "pending at holder" in found["timeline"][-1]["detail"]
    finally:
        pipeline.redis.xack(pipeline.keys.stream, pipeline.keys.group, entry)
        pipeline.redis.xgroup_delconsumer(pipeline.keys.stream, pipeline.keys.group, "holder")


def test_dead_letters_listed_and_filtered(pipeline, console):
    status, body = console.json("/api/dead")
    assert status == 200
    assert body["total"] == len(pipeline.keys.dead())
    assert body["reasons"]["http_404"] >= 1 and body["reasons"]["bad_char"] == 1
    status, only = console.json("/api/dead?reason=bad_char")
    assert [l["reason"] for l in only["letters"]] == ["bad_char"]


def test_hostile_catalog_text_comes_back_as_text(pipeline, console, tmp_path):
    # Catalog text that would run as HTML, control characters and bytes that are not UTF-8.
    raw = b"https://picsum.photos/9/9?x=\xff\xfe<b>\x01\"\\"
    pipeline.redis.xadd(pipeline.keys.dead_key, {"url": raw, "reason": "<i>r</i>",
                                                 "error": "</script><script>alert(2)</script>",
                                                 "attempts": "1"})
    status, h, body = console.request("/api/dead")
    assert status == 200 and h["Content-Type"].startswith("application/json")
    assert h["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in h["Content-Security-Policy"]
    letters = json.loads(body)["letters"]  # valid JSON whatever the bytes
    by_reason = {l["reason"]: l for l in letters}
    assert by_reason["<i>r</i>"]["error"] == "</script><script>alert(2)</script>"
    assert by_reason["<i>r</i>"]["url"] == "https://picsum.photos/9/9?x=\ufffd\ufffd<b>\x01\"\\"
    assert b"\\u0001" in body and b"\xff" not in body
    hostile = [l for l in letters if l["reason"] == "bad_char"][0]
    assert hostile["url"] == HOSTILE and hostile["source"] == HOSTILE_SOURCE
    # A hostile sources document (written by hand) on the image page.
    image = search(console, STORED)["stored"]["image"]
    pipeline.db.sources.insert_one({"_id": "https://picsum.photos/1/1?<svg onload=alert(3)>",
                                    "image": image, "role": "<b>alias</b>", "stream_id": "0-1"})
    try:
        status, meta = console.json(f"/api/images/{image}")
        roles = {s["_id"]: s["role"] for s in meta["sources"]}
        assert roles["https://picsum.photos/1/1?<svg onload=alert(3)>"] == "<b>alias</b>"
    finally:
        pipeline.db.sources.delete_one({"_id": "https://picsum.photos/1/1?<svg onload=alert(3)>"})
    # The pages render text with textContent only.
    app = (SOURCE_DIR / "admin" / "web" / "static" / "app.js").read_text()
    assert "innerHTML" not in app and "insertAdjacentHTML" not in app and "eval(" not in app
    for letter in letters:
        if letter["reason"] == "<i>r</i>":
            pipeline.redis.xdel(pipeline.keys.dead_key, letter["id"])


def test_gallery_pages_and_pngs(pipeline, console):
    status, first = console.json("/api/images?limit=1")
    assert status == 200 and first["total"] == 2 and len(first["images"]) == 1
    status, second = console.json("/api/images?limit=1&offset=1")
    assert len(second["images"]) == 1
    newest, older = first["images"][0], second["images"][0]
    assert newest["inserted_at"] >= older["inserted_at"] and newest["_id"] != older["_id"]
    assert "image" not in newest  # no base64 in a listing
    assert {newest["source"], older["source"]} == {STORED, OTHER}

    image = search(console, STORED)["stored"]["image"]
    status, meta = console.json(f"/api/images/{image}")
    assert status == 200 and "image" not in meta["image"]
    assert [t["name"] for t in meta["image"]["transforms"]] == ["grayscale"]
    assert meta["image"]["encoder"] == "png:level=0"
    assert meta["image"]["decoder"]["path"] == "luma", meta["image"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", t["sha256"]) for t in meta["image"]["transforms"])
    assert meta["image"]["origin"]["content_type"].startswith("image/jpeg")
    assert {s["_id"]: s["role"] for s in meta["sources"]} == {STORED: "source", ALIASED: "alias"}

    status, h, png = console.request(f"/api/images/{image}.png")
    assert status == 200 and h["Content-Type"] == "image/png"
    assert hashlib.sha256(png).hexdigest() == image and png[:8] == b"\x89PNG\r\n\x1a\n"
    status, _, _ = console.request(f"/api/images/{image}.png", headers={"If-None-Match": h["ETag"]})
    assert status == 304
    assert console.json("/api/images/" + "0" * 64)[0] == 404
    assert console.json("/api/images/../../etc/passwd")[0] == 400
    assert console.json("/api/images?limit=0")[0] == 400

    # The original the picture came from: its document, and its bytes from the raw store.
    kept = meta["original"]
    assert kept["document"]["_id"] == meta["image"]["origin"]["sha256"]
    assert kept["document"]["bytes"] == meta["image"]["origin"]["bytes"]
    assert kept["document"]["content_type"].startswith("image/jpeg")
    status, h, original = console.request(kept["href"])
    assert status == 200 and h["Content-Type"].startswith("image/jpeg")
    assert hashlib.sha256(original).hexdigest() == kept["document"]["_id"]
    assert console.request("/api/originals/" + "0" * 64)[0] == 404
    assert console.request("/api/originals/nope")[0] == 400


def test_replay_needs_csrf_then_requeues(pipeline, console, tmp_path):
    letter = [l for l in pipeline.keys.dead() if l["url"] == REPLAYABLE][0]
    cookie, csrf = session(console)
    form = urllib.parse.urlencode({"id": letter["_id"]}).encode()
    # No token, a wrong one, another session's: refused, nothing moved.
    assert console.request("/api/dead/replay", data=form, headers={"Cookie": cookie})[0] == 403
    assert console.request("/api/dead/replay", data=form,
                           headers={"Cookie": cookie, "X-CSRF-Token": "0" * 64})[0] == 403
    other_cookie, _ = session(console)
    assert console.request("/api/dead/replay", data=form,
                           headers={"Cookie": other_cookie, "X-CSRF-Token": csrf})[0] == 403
    assert console.request("/api/dead/replay", headers={"Cookie": cookie})[0] == 405
    assert letter["_id"] in [l["_id"] for l in pipeline.keys.dead()]

    status, h, body = console.request("/api/dead/replay", data=form,
                                      headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    result = json.loads(body)
    assert status == 200 and result["replayed"] == 1, result
    assert letter["_id"] not in [l["_id"] for l in pipeline.keys.dead()]
    entry = result["results"][0]["replayed_as"]
    fields = pipeline.redis.xrange(pipeline.keys.stream, entry, entry)[0][1]
    assert fields[b"replay_of"].decode() == letter["_id"] and fields[b"url"].decode() == REPLAYABLE
    # The same script as the CLI: a second replay finds the letter gone.
    again = console.request("/api/dead/replay", data=form,
                            headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert again[0] == 404
    # The form field works as the header does.
    form2 = urllib.parse.urlencode({"reason": "no-such-reason", "csrf": csrf}).encode()
    assert console.json("/api/dead/replay", data=form2, headers={"Cookie": cookie})[0] == 200
    assert console.json("/api/dead/replay", data=b"", headers={"Cookie": cookie,
                                                                "X-CSRF-Token": csrf})[0] == 400

    # Every letter of a reason: the hostile one goes back, and fails again the same way.
    form3 = urllib.parse.urlencode({"reason": "bad_char"}).encode()
    status, h, body = console.request("/api/dead/replay", data=form3,
                                      headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert status == 200 and json.loads(body)["replayed"] == 1
    assert "bad_char" not in [l["reason"] for l in pipeline.keys.dead()]

    run_worker(pipeline.env, tmp_path, "w-replay")
    pipeline.refresh()
    assert search(console, REPLAYABLE)["status"] == "stored"
    assert pipeline.stats()["replayed"] == 2
    assert [l["url"] for l in pipeline.keys.dead() if l["reason"] == "bad_char"] == [HOSTILE]


def test_token_is_required_when_set(pipeline, tmp_path):
    c = Console(pipeline.env, token=TOKEN, log_dir=tmp_path)
    try:
        assert c.request("/api/overview")[0] == 401
        assert c.request("/api/overview", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert c.request("/api/overview", headers={"Authorization": "Basic " + TOKEN})[0] == 401
        status, h, _ = c.request("/")
        assert status == 303 and h["Location"] == "/login"
        assert c.request("/login")[0] == 200  # the form itself needs no token
        forged = "pixflow_session=" + "a" * 32 + "." + "b" * 64
        assert c.request("/api/overview", headers={"Cookie": forged})[0] == 401
        bearer = {"Authorization": "Bearer " + TOKEN}
        status, body = c.json("/api/overview", headers=bearer)
        assert status == 200 and body["stats"]["counters"] == pipeline.stats()
        # A script with the Bearer token needs no CSRF token: browsers never send it by themselves.
        form = urllib.parse.urlencode({"reason": "no-such-reason"}).encode()
        assert c.request("/api/dead/replay", data=form, headers=bearer)[0] == 200

        status, h, _ = c.request("/login", data=b"token=wrong")
        assert status == 303 and h["Location"] == "/login?failed=1" and "Set-Cookie" not in h
        status, h, _ = c.request("/login", data=urllib.parse.urlencode({"token": TOKEN}).encode())
        assert status == 303 and h["Location"] == "/"
        assert "HttpOnly" in h["Set-Cookie"] and "SameSite=Strict" in h["Set-Cookie"]
        cookie = h["Set-Cookie"].split(";", 1)[0]
        status, body = c.json("/api/session", headers={"Cookie": cookie})
        assert status == 200 and body["token_required"] is True and len(body["csrf"]) == 64
        # A cookie alone never replays.
        assert c.request("/api/dead/replay", data=form, headers={"Cookie": cookie})[0] == 403
        assert c.request("/api/dead/replay", data=form,
                         headers={"Cookie": cookie, "X-CSRF-Token": body["csrf"]})[0] == 200
    finally:
        c.close()


def test_listens_beyond_loopback_only_with_a_token(pipeline, tmp_path):
    r = subprocess.run([binary("pixflow-web"), "--listen", "0.0.0.0:0"], env=pipeline.env,
                       capture_output=True, timeout=30)
    lines = r.stderr.decode().strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "not a loopback address" in lines[0] and "PIXFLOW_WEB_TOKEN" in lines[0]
    r = subprocess.run([binary("pixflow-web"), "--listen", "nonsense"], env=pipeline.env,
                       capture_output=True, timeout=30)
    assert r.returncode == 2 and "HOST:PORT" in r.stderr.decode()
    short = dict(pipeline.env, PIXFLOW_WEB_TOKEN="short")
    r = subprocess.run([binary("pixflow-web"), "--listen", "127.0.0.1:0"], env=short,
                       capture_output=True, timeout=30)
    assert r.returncode == 1 and "PIXFLOW_WEB_TOKEN" in r.stderr.decode()
    # With a token it serves any address.
    c = Console(pipeline.env, token=TOKEN, log_dir=tmp_path)
    c.close()
    env = dict(pipeline.env, PIXFLOW_WEB_TOKEN=TOKEN)
    p = subprocess.Popen([binary("pixflow-web"), "--listen", "0.0.0.0:0"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert "listening on http://0.0.0.0:" in p.stdout.readline().decode()
    finally:
        p.terminate()
        assert p.wait(10) == 0


def test_without_token_only_loopback_host_names(console):
    assert console.request("/api/session", headers={"Host": "evil.example"})[0] == 403
    assert console.request("/api/session", headers={"Host": f"localhost:{console.port}"})[0] == 200


def test_pixflow_web_runs_the_console(pipeline):
    r = run("pixflow", "web", "--help", env=pipeline.env)
    assert r.returncode == 0 and b"pixflow web" in r.stdout and b"--listen" in r.stdout
    r = run("pixflow", "--help", env=pipeline.env)
    assert b"web" in r.stdout
