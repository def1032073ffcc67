"""The worker's HTTP listener: /healthz, /readyz (false while Redis is away, true again after),
/metrics (valid for promtool, and the figures of a scripted run), /images (stored pictures read
back by id, by URL and page by page)."""
import base64
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import conftest
from conftest import SOURCE_DIR, isolated_env
from pixflow_helpers import Keys, sizes, token, wait_for

PICSUM = "https://picsum.photos"
PROMTOOL = SOURCE_DIR / ".cache" / "bin" / "promtool"  # installed by scripts/setup.sh


def get(port, path):
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def http_port(worker):
    """The port the worker logged when it started listening."""
    wait_for("the HTTP listener", lambda: "event=http_listening" in worker.log(), 10)
    return int(re.search(r"event=http_listening addr=\S+ port=(\d+)", worker.log()).group(1))


def sample(metrics, name):
    match = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.M)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


def test_metrics_describe_a_run_and_pass_promtool(env, redis_client, fleet):
    keys = Keys(redis_client, env["PIXFLOW_PREFIX"])
    t = token()
    good = [f"{PICSUM}/{w}/{h}?m={t}" for w, h in sizes(3)]
    keys.xadd_all(good + [f"{PICSUM}/50/50?fault=404&m={t}", good[0]])
    worker = fleet.start(env, "w1", "--http", "127.0.0.1:0")
    port = http_port(worker)
    wait_for("the run", lambda: keys.stats().get("received", 0) == 5, 30)

    assert get(port, "/healthz") == (200, "ok\n")
    wait_for("readiness", lambda: get(port, "/readyz")[0] == 200, 10)
    status, text = get(port, "/metrics")
    assert status == 200
    check = subprocess.run([str(PROMTOOL), "check", "metrics"], input=text, text=True,
                           capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert sample(text, "pixflow_received_total") == 5
    assert sample(text, "pixflow_stored_total") == 3
    assert sample(text, "pixflow_duplicates_total") == 1
    assert sample(text, "pixflow_failed_total") == 1
    assert sample(text, 'pixflow_failed_reason_total{reason="http_404"}') == 1
    assert sample(text, 'pixflow_transform_ok_total{transform="grayscale"}') == 3
    assert sample(text, 'pixflow_stage_seconds_count{stage="download"}') == 4
    assert sample(text, 'pixflow_stage_seconds_count{stage="encode"}') == 3
    assert sample(text, 'pixflow_stage_seconds_count{stage="end_to_end"}') == 3
    assert sample(text, 'pixflow_stage_seconds_bucket{stage="store",le="+Inf"}') == 3
    assert sample(text, "pixflow_in_flight") == 0
    assert get(port, "/nothing")[0] == 404
    worker.signal(15)
    worker.assert_clean_exit(15)


def test_download_memory_bounds_bodies_in_flight(env, redis_client, fleet):
    """Eight ~45 KB bodies trickling over 2 s each through --download-memory 100K: never more
    than 100 KB held (two bodies), the others wait, and every picture is stored."""
    keys = Keys(redis_client, env["PIXFLOW_PREFIX"])
    t = token()
    urls = [f"{PICSUM}/{800 + i}/600?fault=slow&delay_ms=2000&m={t}" for i in range(8)]
    keys.xadd_all(urls)
    worker = fleet.start(env, "w1", "--http", "127.0.0.1:0", "--max-bytes", "100K",
                         "--download-memory", "100K", "--exit-when-idle", "2s")
    port = http_port(worker)
    held, waiting = [], []
    while worker.running():
        try:
            status, text = get(port, "/metrics")
        except OSError:  # refused or reset: it went idle and exited meanwhile
            break
        if status != 200:
            break
        held.append(sample(text, "pixflow_download_bytes"))
        waiting.append(sample(text, "pixflow_downloads_waiting"))
        time.sleep(0.05)
    worker.assert_clean_exit(5)
    assert keys.stats()["stored"] == len(urls)
    assert max(held) <= 100 * 1024, max(held)  # 300 KB and more without the budget
    assert max(held) >= 60 * 1024, max(held)  # two bodies at once, not one at a time
    assert max(waiting) >= 1, max(waiting)
    assert held[-1] == 0


def test_readyz_follows_redis(tmp_path, fleet):
    folder = tmp_path / "stack"
    try:
        penv = isolated_env(conftest.start_stack(folder))
        worker = fleet.start(penv, "w1", "--http", "127.0.0.1:0")
        port = http_port(worker)
        wait_for("ready", lambda: get(port, "/readyz")[0] == 200, 15)
        assert 'pixflow_redis_up 1' in get(port, "/metrics")[1]

        conftest.stop_stack(folder, "redis")
        wait_for("not ready", lambda: get(port, "/readyz")[0] == 503, 15)
        status, why = get(port, "/readyz")
        assert "Redis" in why, why
        assert get(port, "/healthz")[0] == 200, "alive, only not ready"
        assert 'pixflow_redis_up 0' in get(port, "/metrics")[1]

        conftest.restart_server(folder, "redis")
        wait_for("ready again", lambda: get(port, "/readyz")[0] == 200, 20)
        worker.signal(15)
        worker.assert_clean_exit(15)
    finally:
        conftest.stop_stack(folder)


def test_bad_http_address_stops_the_worker(env, fleet):
    worker = fleet.start(env, "w1", "--http", "nowhere")
    assert worker.wait(10) == 2
    assert "--http: 'nowhere' is not HOST:PORT" in worker.log()


def get_raw(port, path, headers=None):
    """(status, headers, body bytes) of GET http://127.0.0.1:port/path."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_images_are_read_back_by_id_url_and_page(env, redis_client, mongo_db, fleet):
    keys = Keys(redis_client, env["PIXFLOW_PREFIX"])
    t = token()
    urls = [f"{PICSUM}/{w}/{h}?i={t}" for w, h in sizes(3)]
    keys.xadd_all(urls)
    worker = fleet.start(env, "w1", "--http", "127.0.0.1:0")
    port = http_port(worker)
    wait_for("the pictures", lambda: keys.stats().get("stored", 0) == 3, 30)
    docs = {d["source"]: d for d in mongo_db["images"].find({})}

    doc = docs[urls[0]]
    status, headers, body = get_raw(port, f"/images/{doc['_id']}")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert body == base64.b64decode(doc["image"])
    assert headers["ETag"] == f'"{doc["_id"]}"'
    assert get_raw(port, f"/images/{doc['_id']}", {"If-None-Match": headers["ETag"]})[0] == 304

    status, headers, body = get_raw(port, f"/images/{doc['_id']}.json")
    meta = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert "image" not in meta
    assert (meta["_id"], meta["source"], meta["width"]) == (doc["_id"], urls[0], doc["width"])

    # The URL as a user might type it: normalized first.
    loose = urls[1].replace("https://picsum.photos", "HTTPS://PICSUM.PHOTOS:443")
    status, _, body = get_raw(port, "/images?source=" + urllib.parse.quote(loose, safe=""))
    assert status == 200 and json.loads(body)["_id"] == docs[urls[1]]["_id"]

    ids = sorted(d["_id"] for d in docs.values())
    first = json.loads(get_raw(port, "/images?limit=2")[2])["images"]
    rest = json.loads(get_raw(port, f"/images?limit=2&after={first[-1]['_id']}")[2])["images"]
    assert [d["_id"] for d in first + rest] == ids
    assert all("image" not in d for d in first + rest)

    zero = "0" * 64
    assert get_raw(port, f"/images/{zero}")[0] == 404
    assert get_raw(port, f"/images/{zero}.json")[0] == 404
    assert get_raw(port, "/images?source=" + urllib.parse.quote(f"{PICSUM}/9/9?i={t}"))[0] == 404
    assert get_raw(port, "/images/NOT-AN-ID")[0] == 400
    assert get_raw(port, f"/images/{doc['_id'].upper()}")[0] == 400
    assert get_raw(port, "/images?limit=101")[0] == 400
    assert get_raw(port, "/images?source=" + urllib.parse.quote("http://evil.example/1/1"))[0] == 400
    worker.signal(15)
    worker.assert_clean_exit(15)


def get_auth(port, path, auth):
    """(status, body) of GET with an Authorization header (None: no header)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if auth is not None:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_token_guards_images_and_metrics_not_probes(env, fleet):
    secret = "s3cret-" + token() + "-token"
    worker = fleet.start(dict(env, PIXFLOW_HTTP_TOKEN=secret), "w1", "--http", "127.0.0.1:0")
    port = http_port(worker)
    assert get(port, "/healthz") == (200, "ok\n")
    assert get(port, "/readyz")[0] in (200, 503)  # open either way: no 401
    for path in ("/metrics", "/images", "/images/" + "0" * 64):
        assert get_auth(port, path, None)[0] == 401, path
        assert get_auth(port, path, "Bearer " + secret[:-1])[0] == 401, path
        assert get_auth(port, path, "Bearer " + secret + "x")[0] == 401, path
        assert get_auth(port, path, "Basic " + secret)[0] == 401, path
    status, text = get_auth(port, "/metrics", "Bearer " + secret)
    assert status == 200 and "pixflow_received_total" in text
    assert get_auth(port, "/images/" + "0" * 64, "Bearer " + secret)[0] == 404
    assert secret not in worker.log()
    worker.signal(15)
    worker.assert_clean_exit(15)


def test_token_must_be_long_enough(env):
    r = conftest.run("pixflow-consumer", env=dict(env, PIXFLOW_HTTP_TOKEN="short"))
    assert r.returncode == 2
    assert b"PIXFLOW_HTTP_TOKEN" in r.stderr and b"16 to 512" in r.stderr
    assert b"short" not in r.stderr


def closed_within(sock, seconds):
    """True when the server closes sock (EOF or reset) within seconds."""
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_connection_cap_and_header_timeout(env, fleet):
    worker = fleet.start(env, "w1", "--http", "127.0.0.1:0", "--http-max-connections", "4",
                         "--http-header-timeout", "1500ms")
    port = http_port(worker)
    trickling = []
    for _ in range(4):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        trickling.append(s)
    time.sleep(0.3)
    extra = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert closed_within(extra, 1.0), "a connection over the cap was kept"
    started = time.monotonic()
    # A byte every 200 ms keeps evhttp's own idle timeout happy: only the head deadline ends it.
    while time.monotonic() - started < 4 and trickling:
        for s in list(trickling):
            try:
                s.sendall(b"X")
            except OSError:
                trickling.remove(s)
                s.close()
        time.sleep(0.2)
    assert not trickling, "a trickling client held its connection past the header timeout"
    assert time.monotonic() - started < 3
    assert "event=http_connections_full max=4" in worker.log()
    wait_for("the listener free again", lambda: get(port, "/healthz") == (200, "ok\n"), 5)
    # Closed connections stop counting at once and leave no socket behind: many short ones in a
    # row (far more than the cap) are all served.
    fds = len(os.listdir(f"/proc/{worker.pid}/fd"))
    for _ in range(100):
        assert get(port, "/healthz") == (200, "ok\n")
    assert len(os.listdir(f"/proc/{worker.pid}/fd")) <= fds + 2
    worker.signal(15)
    worker.assert_clean_exit(15)
