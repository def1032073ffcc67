"""Integration test of pixflow-picsum, the local picsum.photos: starts the real server, talks to it
with the real curl over HTTPS (connect-to + the generated CA), and stops it with SIGTERM."""

import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("PIXFLOW_BUILD_DIR", REPO / "build"))
BINARY = BUILD / "bin" / "pixflow-picsum"
LOCATION_RE = re.compile(
    r"^https://fastly\.picsum\.photos/id/(\d+)/(\d+)/(\d+)\.jpg\?hmac=[0-9a-f]+(&.*)?$"
)


class Server:
    def __init__(self, tmp: Path, *args: str):
        self.tmp = tmp
        self.ready = tmp / "ready"
        self.log_path = tmp / "stderr.log"
        if not BINARY.exists():
            pytest.fail(f"{BINARY} is not built (set PIXFLOW_BUILD_DIR)")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(BINARY), "--state-dir", str(tmp), "--ready-file", str(self.ready), *args],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        info = self._wait_ready()
        self.http, self.https, self.ca = int(info["http"]), int(info["https"]), info["ca"]

    def _wait_ready(self, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}: {self.stderr()}")
            if self.ready.exists():
                lines = self.ready.read_text().splitlines()
                return dict(line.split("=", 1) for line in lines if "=" in line)
            time.sleep(0.02)
        pytest.fail("server did not write its ready file")

    def stderr(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.log.close()
        return rc

    def curl(self, url: str, *opts: str, timeout: float = 20.0):
        """Run curl; return (exit code, status, headers of the last response, body, elapsed s)."""
        name = uuid.uuid4().hex
        hdr, body = self.tmp / f"{name}.h", self.tmp / f"{name}.b"
        cmd = [
            "curl", "-sS", "--max-time", str(timeout),
            "--connect-to", f"picsum.photos:443:127.0.0.1:{self.https}",
            "--connect-to", f"fastly.picsum.photos:443:127.0.0.1:{self.https}",
            "--cacert", self.ca, "-D", str(hdr), "-o", str(body), "-w", "%{http_code}",
            *opts, url,
        ]
        start = time.monotonic()
        res = subprocess.run(cmd, capture_output=True, timeout=timeout + 10)
        elapsed = time.monotonic() - start
        status = int(res.stdout.decode() or 0)
        raw = hdr.read_bytes().decode(errors="replace") if hdr.exists() else ""
        blocks = raw.split("\r\n\r\n")
        blocks = [b for b in blocks if b.strip()] or [""]
        headers = {}
        for line in blocks[-1].split("\r\n")[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        data = body.read_bytes() if body.exists() else b""
        hdr.unlink(missing_ok=True)
        body.unlink(missing_ok=True)
        return res.returncode, status, headers, data, elapsed

    def get(self, path: str, *opts: str):
        return self.curl(f"https://picsum.photos{path}", *opts)


def _start(tmp_path_factory, name, *args):
    server = Server(tmp_path_factory.mktemp(name), *args)
    yield server
    rc = server.stop()
    log = server.stderr()
    assert rc == 0, f"server exit code {rc}: {log}"
    assert "Sanitizer" not in log and "runtime error" not in log, log


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from _start(tmp_path_factory, "picsum")


@pytest.fixture(scope="module")
def det_server(tmp_path_factory):
    yield from _start(tmp_path_factory, "picsum-det", "--deterministic", "--seed", "7")


def jpeg_frame(data: bytes):
    """(SOF marker, width, height, components) from a JPEG's frame header, or None."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, seglen = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            if i + 10 > len(data):
                return None
            h = int.from_bytes(data[i + 5:i + 7], "big")
            w = int.from_bytes(data[i + 7:i + 9], "big")
            return marker, w, h, data[i + 9]
        if marker == 0xDA:
            return None
        i += 2 + seglen
    return None


def unique(path: str) -> str:
    """A URL no other test has used, so per-URL fault budgets start fresh."""
    sep = "&" if "?" in path else "?"
    return f"{path}{sep}u={uuid.uuid4().hex[:8]}"


# ---- routes ----


def test_redirect_then_progressive_jpeg(server):
    rc, status, headers, _, _ = server.get("/640/480")
    assert (rc, status) == (0, 302)
    m = LOCATION_RE.match(headers["location"])
    assert m, headers["location"]
    assert 0 <= int(m.group(1)) <= 1084 and m.group(2, 3) == ("640", "480")

    rc, status, headers, body, _ = server.get("/640/480", "-L")
    assert (rc, status) == (0, 200)
    assert headers["content-type"] == "image/jpeg"
    assert int(headers["content-length"]) == len(body)
    assert 0 <= int(headers["picsum-id"]) <= 1084
    assert headers["cache-control"] == "public, max-age=2592000"
    assert b"\xff\xc2" in body
    assert jpeg_frame(body) == (0xC2, 640, 480, 3)
    assert len(body) > 5000  # a textured picture, not a flat fill


def test_square_and_jpg_suffix(server):
    rc, status, _, body, _ = server.get("/200", "-L")
    assert (rc, status) == (0, 200)
    assert jpeg_frame(body)[1:3] == (200, 200)
    rc, status, _, body, _ = server.get("/120/90.jpg", "-L")
    assert (rc, status) == (0, 200)
    assert jpeg_frame(body)[1:3] == (120, 90)


def test_picture_route_is_deterministic(server):
    a = server.get("/id/237/160/120.jpg")
    b = server.get("/id/237/160/120")
    c = server.get("/id/238/160/120.jpg")
    assert a[1] == b[1] == c[1] == 200
    assert a[2]["picsum-id"] == "237"
    assert a[3] == b[3] and a[3] != c[3]


@pytest.mark.parametrize(
    "path,status,body",
    [
        ("/6000/10", 400, b"Invalid size"),
        ("/0/10", 400, b"Invalid size"),
        ("/10/5001", 400, b"Invalid size"),
        ("/200/abc", 400, b"Invalid size"),
        ("/id/3/0/10.jpg", 400, b"Invalid size"),
        ("/abc", 404, None),
        ("/200/300/400", 404, None),
        ("/id/1085/10/10", 404, None),
    ],
)
def test_bad_paths(server, path, status, body):
    rc, got, _, data, _ = server.get(path)
    assert (rc, got) == (0, status)
    if body is not None:
        assert data == body


def test_http_listener_redirects_to_http(server):
    rc, status, headers, _, _ = server.curl(f"http://127.0.0.1:{server.http}/300/200")
    assert (rc, status) == (0, 302)
    assert headers["location"].startswith("http://fastly.picsum.photos/id/")


def test_query_kept_and_grayscale(server):
    rc, status, headers, _, _ = server.get("/64/48?grayscale&blur=2")
    assert (rc, status) == (0, 302)
    loc = headers["location"]
    assert "grayscale" in loc and "blur=2" in loc
    rc, status, _, body, _ = server.get("/64/48?grayscale", "-L")
    assert (rc, status) == (0, 200)
    assert jpeg_frame(body) == (0xC2, 64, 48, 1)


def test_head(server):
    rc, status, headers, out, _ = server.get("/id/9/100/80.jpg", "-I")
    assert (rc, status) == (0, 200)
    assert headers["content-type"] == "image/jpeg"
    assert int(headers["content-length"]) > 0
    assert out.endswith(b"\r\n\r\n") and b"\xff\xd8" not in out  # -I: headers, no body


def test_deterministic_mode(det_server):
    first = det_server.get("/200/300", "-L")
    again = det_server.get("/200/300", "-L")
    suffix = det_server.get("/200/300.jpg", "-L")
    _, status, headers, _, _ = det_server.get("/200/300")
    assert status == 302
    target = det_server.curl(headers["location"])
    assert first[1] == suffix[1] == target[1] == 200
    assert first[3] == again[3] == suffix[3] == target[3]
    assert first[2]["picsum-id"] == target[2]["picsum-id"]
    assert jpeg_frame(first[3])[1:3] == (200, 300)


# ---- faults ----


@pytest.mark.parametrize("code", [500, 502, 503, 404])
def test_fault_status(server, code):
    rc, status, _, _, _ = server.get(f"/100/100?fault={code}", "-L")
    assert (rc, status) == (0, code)


def test_fault_429_retry_after(server):
    rc, status, headers, _, _ = server.get("/100/100?fault=429&retry_after=7", "-L")
    assert (rc, status) == (0, 429)
    assert headers["retry-after"] == "7"


def test_fault_truncate(server):
    rc, status, headers, body, _ = server.get("/300/200?fault=truncate", "-L")
    assert rc == 18, f"curl exit {rc}"  # CURLE_PARTIAL_FILE
    assert status == 200
    assert 0 < len(body) < int(headers["content-length"])


def test_fault_slow(server):
    rc, status, headers, body, elapsed = server.get("/300/200?fault=slow&delay_ms=600", "-L")
    assert (rc, status) == (0, 200)
    assert elapsed >= 0.6
    assert len(body) == int(headers["content-length"])
    assert jpeg_frame(body)[1:3] == (300, 200)


def raw_picture(port: int, path: str) -> tuple:
    """GET path over a raw socket on the HTTP listener: (socket, Content-Length, body so far)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: fastly.picsum.photos\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before the headers: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 200"), lines[0]
    fields = dict(line.lower().split(": ", 1) for line in lines[1:])
    return sock, int(fields["content-length"]), body


def test_fault_slow_bytes_per_s(tmp_path):
    """bytes_per_s=1 is a true byte a second, with no time cap: headers (with the real length) at
    once, then a byte each second, the connection open; many at once, clients that leave free
    their replies, and a stop with replies still trickling exits cleanly (ASan-checked log)."""
    srv = Server(tmp_path)
    try:
        for bad in ("0", "-1", "x", "1.5", "", "100000001"):
            rc, status, _, body, _ = srv.get(f"/300/200?fault=slow&bytes_per_s={bad}")
            assert (rc, status) == (0, 400) and b"bytes_per_s" in body, (bad, body)
        rc, status, _, _, _ = srv.get("/300/200?fault=slow&bytes_per_s=1&delay_ms=10")
        assert (rc, status) == (0, 400)
        rc, status, headers, _, _ = srv.curl(
            f"http://127.0.0.1:{srv.http}/300/200?fault=slow&bytes_per_s=1&times=1")
        assert status == 302
        loc = headers["location"]
        assert "fault=slow&bytes_per_s=1" in loc and "delay_ms" not in loc and "times" not in loc
        path = loc.split("fastly.picsum.photos", 1)[1]

        started = time.monotonic()
        clients = [raw_picture(srv.http, path) for _ in range(20)]
        time.sleep(3)
        elapsed = time.monotonic() - started
        for sock, length, body in clients:
            assert length > 1000
            sock.setblocking(False)
            try:
                while chunk := sock.recv(4096):  # b"" would be the server closing
                    body += chunk
                pytest.fail("the server closed a trickling reply")
            except BlockingIOError:
                pass
            assert 1 <= len(body) <= int(elapsed) + 1, len(body)
        assert control(srv, "stats")[1]["trickling"] == 20

        for sock, _, _ in clients[:10]:
            sock.close()
        deadline = time.monotonic() + 10
        while control(srv, "stats")[1]["trickling"] != 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert control(srv, "stats")[1]["trickling"] == 10
    finally:
        rc = srv.stop()  # ten replies still trickling
    log = srv.stderr()
    assert rc == 0, log
    assert "Sanitizer" not in log and "runtime error" not in log, log


def test_fault_garbage(server):
    rc, status, headers, body, _ = server.get("/300/200?fault=garbage", "-L")
    assert (rc, status) == (0, 200)
    assert headers["content-type"] == "image/jpeg"
    assert len(body) >= 1024 and body[:2] != b"\xff\xd8"
    assert jpeg_frame(body) is None


def test_fault_loop(server):
    rc, status, _, _, _ = server.get("/100/100?fault=loop", "-L", "--max-redirs", "5")
    assert rc == 47  # CURLE_TOO_MANY_REDIRECTS
    assert status == 302
    seen = set()
    url = "https://picsum.photos/100/100?fault=loop"
    for _ in range(4):
        rc, status, headers, _, _ = server.curl(url)
        assert status == 302
        url = headers["location"]
        assert url not in seen
        seen.add(url)


def test_fault_bomb(server):
    rc, status, headers, body, _ = server.get("/300/200?fault=bomb", "-L")
    assert (rc, status) == (0, 200)
    assert headers["content-type"] == "image/jpeg"
    assert len(body) < 1024
    _, w, h, _ = jpeg_frame(body)
    assert w >= 60000 and h >= 60000


def test_fault_notimage(server):
    rc, status, headers, body, _ = server.get("/300/200?fault=notimage", "-L")
    assert (rc, status) == (0, 200)
    assert headers["content-type"].startswith("text/html")
    assert b"<html" in body


def test_fault_redirect_to(server):
    rc, status, headers, _, _ = server.get(
        "/100/100?fault=redirect&to=http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data"
    )
    assert (rc, status) == (0, 302)
    assert headers["location"] == "http://169.254.169.254/latest/meta-data"


def test_fault_carried_through_redirect(server):
    rc, status, headers, _, _ = server.get("/100/100?x=1&fault=slow&delay_ms=50&times=3")
    assert (rc, status) == (0, 302)
    loc = headers["location"]
    assert "x=1" in loc and "fault=slow" in loc and "delay_ms=50" in loc
    assert "times" not in loc


def test_fault_times_then_success(server):
    path = unique("/120/80?fault=503&times=2")
    got = [server.get(path, "-L")[1] for _ in range(4)]
    assert got == [503, 503, 200, 200]


def test_fault_times_on_picture_fault(server):
    path = unique("/120/80?fault=truncate&times=1")
    assert server.get(path, "-L")[0] == 18
    rc, status, _, body, _ = server.get(path, "-L")
    assert (rc, status) == (0, 200) and jpeg_frame(body)[1:3] == (120, 80)


def test_unknown_fault_is_bad_request(server):
    rc, status, _, _, _ = server.get("/100/100?fault=explode")
    assert (rc, status) == (0, 400)


# ---- control ----


def control(server, what):
    import json

    rc, status, _, body, _ = server.get(f"/__control/{what}")
    assert rc == 0
    return status, json.loads(body)


def test_control_stats_and_reset(server):
    assert control(server, "reset")[0] == 200
    server.get("/50/50", "-L")
    server.get("/50/50", "-L")
    server.get("/6000/1")
    status, stats = control(server, "stats")
    assert status == 200
    assert stats["requests"] == 5  # 2 redirects + 2 pictures + 1 bad size; control not counted
    assert stats["by_path"]["/50/50"] == 2
    assert stats["by_path"]["/6000/1"] == 1
    assert stats["by_status"] == {"302": 2, "200": 2, "400": 1}
    control(server, "reset")
    assert control(server, "stats")[1]["requests"] == 0


def test_control_global_fault(server):
    try:
        status, body = control(server, "fault?kind=500&rate=1")
        assert status == 200 and body["rates"] == {"500": 1}
        assert server.get("/60/60", "-L")[1] == 500
        control(server, "fault?kind=500&rate=0")
        control(server, "fault?kind=garbage&rate=1")
        rc, status, _, body, _ = server.get("/60/60", "-L")
        assert status == 200 and jpeg_frame(body) is None
        assert control(server, "fault?kind=nope&rate=1")[0] == 400
        assert control(server, "fault?kind=500&rate=2")[0] == 400
    finally:
        control(server, "fault?kind=all&rate=0")
    assert server.get("/60/60", "-L")[1] == 200


def test_global_fault_flag(tmp_path):
    srv = Server(tmp_path, "--fault", "503=1")
    try:
        assert srv.get("/60/60", "-L")[1] == 503
    finally:
        assert srv.stop() == 0


def test_bad_flag_exits_2(tmp_path):
    res = subprocess.run([str(BINARY), "--bogus"], capture_output=True, timeout=10)
    assert res.returncode == 2
    lines = res.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "--bogus" in lines[0]
    res = subprocess.run([str(BINARY), "--fault", "500=9"], capture_output=True, timeout=10)
    assert res.returncode == 2 and "--fault" in res.stderr.decode()
