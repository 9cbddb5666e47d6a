"""The JSON API of a real `zdg ui` process over HTTP on 127.0.0.1, as a script would use it, over a store the main
job filled from the shared clip: every operation /api/openapi.json documents answers per its schema, a correction
is recorded as the API's, and nothing is answered without the token."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx2
import pytest

from tests.conftest import REPO, free_port, fresh_database, shared_path, wait_until_serving
from tests.test_api import every_operation

pytestmark = pytest.mark.integrations
TOKEN = "api-test-token"
GRAPH = str(REPO / "graphs" / "video_reid.yaml")


@pytest.fixture
def server(pg_server, tmp_path):
    with fresh_database(pg_server) as dsn:
        env = {**os.environ, "ZDG_DSN": dsn, "ZDG_UI_TOKEN": TOKEN}
        env.setdefault("ZDG_MODEL_ROOT", str(shared_path("models")))
        clip = shared_path("data", "videos", "friends_poker.mp4")
        done = subprocess.run([sys.executable, "-m", "zdg", "run", GRAPH, "--no-progress", "--run-dir", str(tmp_path / "run"),
                               "--set", f"source.path={clip}", "--set", "source.end_s=14", "--set",
                               f"gallery.out_dir={tmp_path / 'gallery'}", "--set", "gallery.annotate_video=false"],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "zdg", "ui", "--graph", GRAPH, "--port", str(port)], env=env,
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(f"{base}/api/openapi.json?token={TOKEN}", proc)
            yield base
        finally:
            proc.terminate()
            proc.wait(20)


def test_a_script_reads_searches_and_corrects_through_the_api(server):
    web = httpx2.Client(base_url=server, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    assert httpx2.get(f"{server}/api/identities").status_code == 401, "the token is asked for, on loopback too"
    first, second = [p["id"] for p in web.get("/api/identities?limit=2").json()["items"]]
    photo = sorted(shared_path("data", "faces", "friends_ref", "Ross").iterdir())[-1]
    every_operation(web, web, first, second, photo)
    history = web.get(f"/api/identities/{second}/events").json()["items"]
    assert history[0]["kind"] == "rename" and history[0]["actor"].startswith("api:127.0.0.1")
