"""`zdg ui` attacked as the security review did: cross-site writes, foreign Host headers, upload bombs, requests
that used to get a 500, and the live feed fed forged bytes. In process (Starlette's test client) over a real
store, and as a real `zdg ui` process whose memory is measured."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import zmq
from starlette.testclient import TestClient

from nodes.app.ui.app import Workbench, make_app
from nodes.app.ui.guard import GuardSettings
from tests.conftest import REPO, free_port, wait_until_serving
from tests.security.forged import FORGED, decision
from tests.test_client import run_publisher
from tests.test_ui import S, people, post

pytestmark = pytest.mark.security


def client(faces, tmp_path: Path, token: str | None = None, port: int = 8080) -> TestClient:
    guard = GuardSettings.listening_on("127.0.0.1", token=token)
    return TestClient(make_app(Workbench(faces, S, tmp_path, None, lambda: None), guard), follow_redirects=False,
                      base_url=f"http://127.0.0.1:{port}")


def names(faces) -> dict[int, str | None]:
    return {i.id: i.name for i in faces.identities()}


def test_a_cross_site_form_post_gets_403_and_changes_nothing(faces, tmp_path):
    web = client(faces, tmp_path)
    (_, a), (_, b) = people(faces, 0, 1)
    web.get("/")  # the victim's browser has a session with the workbench
    before = names(faces)
    attacks = {
        "a form on another site": {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        "a page on another port of the same host": {"Origin": "http://127.0.0.1:9999", "Sec-Fetch-Site": "same-site"},
        "a no-cors fetch whose browser sends no Origin": {},
        "an old browser: no Origin, no Sec-Fetch-Site, and no token": {"Referer": "http://evil.example/"},
    }
    for what, headers in attacks.items():
        renamed = web.post(f"/identity/{a}/rename", data={"name": "pwned"}, headers=headers)
        deleted = web.post(f"/identity/{b}/delete", headers=headers)
        assert renamed.status_code == deleted.status_code == 403, what
    assert names(faces) == before, "nothing changed"
    same_site = web.post(f"/identity/{a}/rename", data={"name": "Ann", "csrf": csrf_of(web)},
                         headers={"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"})
    assert same_site.status_code == 303 and names(faces)[a] == "Ann", "the workbench's own form still works"
    web.cookies.set("zdg_session", "planted-by-a-page-on-another-port")
    forged_cookie = web.post(f"/identity/{b}/delete", data={"csrf": "0" * 64})
    assert forged_cookie.status_code == 403 and b in names(faces), "a planted cookie cannot make a valid token"


def csrf_of(web: TestClient) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', web.get("/search").text).group(1)


def test_in_token_mode_a_cookie_is_not_enough_for_a_change_but_the_bearer_header_is(faces, tmp_path):
    web = client(faces, tmp_path, token="s3cret")
    ((_, a),) = people(faces, 0)
    assert web.get("/?token=s3cret").status_code == 200  # the cookie now carries the token
    assert web.post(f"/identity/{a}/rename", data={"name": "x"}).status_code == 403
    api = web.post(f"/identity/{a}/rename", data={"name": "Ann"}, headers={"Authorization": "Bearer s3cret"})
    assert api.status_code == 303 and names(faces)[a] == "Ann", "a script with the token needs no form token"
    assert web.get("/?token=caf\u00e9").status_code == 401, "a non-ASCII token is refused, not a 500"


def test_only_the_servers_own_host_names_are_answered(faces, tmp_path):
    web = client(faces, tmp_path)
    assert web.get("/", headers={"Host": "rebound.evil.example"}).status_code == 400, "DNS rebinding"
    assert web.get("/", headers={"Host": "localhost:8080"}).status_code == 200
    allowed = GuardSettings.listening_on("127.0.0.1", ["zdg.lan"])
    assert allowed.host_allowed("zdg.lan:8080") and not allowed.host_allowed("evil.lan")
    everywhere = GuardSettings.listening_on("0.0.0.0")
    assert everywhere.host_allowed("192.0.2.7:8080") and not everywhere.host_allowed("evil.example")


def test_every_answer_has_security_headers_and_faces_are_never_cached(faces, conn, tmp_path):
    web = client(faces, tmp_path)
    ((sequence_id, a),) = people(faces, 0)
    conn.execute("INSERT INTO crops VALUES (%s, 0, %s)", (sequence_id, b"\x89PNG fake"))
    for url in ("/", f"/identity/{a}", f"/crop/{sequence_id}/0.png", "/static/zdg.js"):
        answer = web.get(url)
        assert answer.status_code == 200, url
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store", url
    assert "<script>" not in web.get("/live").text and "onerror=" not in web.get("/").text, "no inline code for the CSP"


def test_bad_requests_get_a_4xx_with_a_reason(faces, conn, tmp_path):
    web = client(faces, tmp_path)
    ((sequence_id, a),) = people(faces, 0)
    (tmp_path / "v_annotated.mp4").write_bytes(b"mp4")
    assert web.get("/watch/v?t=abc").status_code == 400
    assert web.get("/watch/v?t=inf").status_code == 400
    assert web.get("/watch/v?t=1.5").status_code == 200
    assert web.get("/identity/99999999999999999999").status_code == 404
    assert web.get("/crop/1/99999999999999999999.png").status_code == 404
    empty = web.post("/search", data={"csrf": csrf_of(web)}, files={"photos": ("empty.jpg", b"", "image/jpeg")})
    assert empty.status_code == 400 and "no photo was uploaded" in empty.text
    many = web.post("/search", data={"csrf": csrf_of(web)},
                    files=[("photos", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(30)])
    assert many.status_code == 400
    identities = len(faces.identities())
    split = post(web, f"/identity/{a}/split", {})
    assert "not%20done" in split.headers["location"] and len(faces.identities()) == identities, "no empty identity"
    bad_number = post(web, f"/identity/{a}/merge", {"into": "abc"})
    assert "not%20done" in bad_number.headers["location"]


def bomb_png(side: int = 20000) -> bytes:
    """A 1-bit side x side PNG: tens of KB on the wire, gigabytes once decoded as colour."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG", optimize=True)
    return out.getvalue()


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = "zdgboundary7MA4YWxkTrZu0gW"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{n}"\r\nContent-Type: image/png\r\n\r\n'
              .encode() + data + b"\r\n" for k, n, data in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Browser:
    """A cookie-keeping client of a running `zdg ui`."""

    def __init__(self, base: str) -> None:
        import http.cookiejar

        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, str]:
        return self.open(urllib.request.Request(self.base + path))

    def open(self, request: urllib.request.Request, timeout: float = 30) -> tuple[int, str]:
        try:
            with self.opener.open(request, timeout=timeout) as answer:
                return answer.status, answer.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")
        except urllib.error.URLError as error:  # nothing answered (not started yet, or gone)
            return 0, str(error.reason)

    def upload(self, files: list[tuple[str, str, bytes]]) -> tuple[int, str]:
        token = re.search(r'name="csrf" value="([^"]+)"', self.get("/search")[1]).group(1)
        body, kind = multipart({"csrf": token}, files)
        return self.open(urllib.request.Request(self.base + "/search", data=body, headers={"Content-Type": kind}))


def status_before_body(base: str, path: str, length: int) -> int:
    """The status a POST announcing `length` bytes gets before it sends any (the server answers without reading)."""
    import http.client
    from urllib.parse import urlsplit

    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def running_ui(store_dsn, tmp_path):
    """A real `zdg ui` on a fresh store, with its live feed on a publisher this test controls; (base URL, process,
    the feed's PUB socket)."""
    pub = zmq.Context.instance().socket(zmq.PUB)
    feed = f"ipc://{tmp_path}/feed.sock"
    pub.bind(feed)
    port = free_port()
    env = {**os.environ, "ZDG_DSN": store_dsn}
    proc = subprocess.Popen([sys.executable, "-m", "zdg", "ui", "--port", str(port), "--feed", feed, "--videos",
                             str(tmp_path), "--max-upload-mb", "32"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(base, proc)
    yield base, proc, pub
    proc.terminate()
    proc.wait(timeout=10)
    pub.close()


def test_an_upload_bomb_is_refused_fast_with_bounded_memory_while_other_pages_answer(running_ui):
    base, proc, _ = running_ui
    browser = Browser(base)
    bomb = bomb_png()
    assert len(bomb) < 100_000
    answers: list[int] = []

    def keep_asking() -> None:
        while len(answers) < 20:
            answers.append(Browser(base).get("/")[0])

    others = threading.Thread(target=keep_asking)
    started = time.monotonic()
    others.start()
    status, text = browser.upload([("photos", "bomb.png", bomb)])
    took = time.monotonic() - started
    others.join(timeout=30)
    assert status == 413 and "20000x20000 pixels" in text, text[-500:]
    assert took < 2.0, f"refused in {took:.2f} s"
    assert answers and set(answers) == {200}, "other pages kept answering"
    assert status_before_body(base, "/search", 300 * 2**20) == 413, "a body over --max-upload-mb is refused unread"
    assert peak_rss_mb(proc.pid) < 1500, f"peak RSS {peak_rss_mb(proc.pid):.0f} MB"
    assert proc.poll() is None


def test_the_live_feed_skips_forged_messages_and_keeps_streaming(running_ui):
    base, proc, pub = running_ui
    thread, stop = run_publisher(pub, [*([b"reid", *f] for f in FORGED.values()), decision(7)])
    try:
        with urllib.request.urlopen(base + "/events", timeout=20) as stream:
            deadline = time.monotonic() + 15
            line = ""
            while not line.startswith("data:") and time.monotonic() < deadline:
                line = stream.readline().decode()
    finally:
        stop.set()
        thread.join()
    assert line.startswith("data:") and '"cluster_id": 7' in line
    assert proc.poll() is None and Browser(base).get("/")[0] == 200


def test_a_host_name_that_does_not_resolve_is_a_clear_error(store_dsn):
    done = subprocess.run([sys.executable, "-m", "zdg", "ui", "--host", "no-such-host.invalid"], cwd=REPO,
                          env={**os.environ, "ZDG_DSN": store_dsn}, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "cannot resolve" in done.stderr and "Traceback" not in done.stderr


def start_ui(store_dsn: str, *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "zdg", "ui", "--port", str(port), *args], cwd=REPO,
                            env={**os.environ, "ZDG_DSN": store_dsn, "ZDG_UI_TOKEN": "s3cret"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, port


def test_https_with_a_certificate_and_secure_cookies(store_dsn, tmp_path):
    import ssl

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")], check=True,
                   capture_output=True, timeout=60)
    proc, port = start_ui(store_dsn, "--certfile", str(tmp_path / "cert.pem"), "--keyfile", str(tmp_path / "key.pem"))
    trust = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    trust.check_hostname = False
    try:
        wait_until_serving(f"https://127.0.0.1:{port}/?token=s3cret", proc, context=trust)
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/?token=s3cret", timeout=10, context=trust) as answer:
            assert answer.status == 200 and all("Secure" in c for c in answer.headers.get_all("set-cookie"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_beyond_loopback_without_tls_the_token_is_required_and_its_exposure_said(store_dsn):
    proc, port = start_ui(store_dsn, "--host", "0.0.0.0")
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while (status := Browser(base).get("/")[0]) != 401:
            assert status == 0 and proc.poll() is None and time.monotonic() < deadline, status
            time.sleep(0.3)
        assert Browser(base).get("/?token=s3cret")[0] == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "travels in plain HTTP" in err


def test_the_api_refuses_hostile_bodies_with_a_reason_and_stores_nothing(faces, tmp_path):
    web = client(faces, tmp_path, token="t0k")
    bearer = {"Authorization": "Bearer t0k"}
    ((_, a),) = people(faces, 0)
    before = names(faces)
    for body in (b"\xff\xfe not json", b'{"name": {"$ne": 1}}', b'{"name": "x", "admin": true}', b"[" * 10_000):
        got = web.post(f"/api/identities/{a}/rename", headers={**bearer, "Content-Type": "application/json"}, content=body)
        assert got.status_code == 400 and "error" in got.json(), body[:20]
    assert web.post(f"/api/identities/{a}/merge", headers=bearer, json={"into": 10**30}).status_code == 400
    bomb = web.post("/api/search", headers=bearer, files={"photos": ("bomb.png", bomb_png(), "image/png")})
    assert bomb.status_code == 413 and "error" in bomb.json()
    enrolled = web.post("/api/enroll", headers=bearer, data={"name": "x" * 500},
                        files={"photos": ("p.jpg", b"x", "image/jpeg")})
    assert enrolled.status_code == 400 and "name" in enrolled.json()["error"]
    assert names(faces) == before and len(faces.identities()) == 1, "nothing changed"
