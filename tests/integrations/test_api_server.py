"""The JSON API of a real `zdg ui` process over HTTP on 127.0.0.1, as a script would use it: people enrolled with
`zdg enroll`, then every GET in /api/openapi.json answers per its schema, a photo is searched, a correction made,
and nothing is answered without the token."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx2
import jsonschema
import pytest

from tests.conftest import REPO, free_port, fresh_database, shared_path, wait_until_serving

pytestmark = pytest.mark.integrations
TOKEN = "api-test-token"
GRAPH = str(REPO / "graphs" / "video_reid.yaml")


@pytest.fixture
def server(pg_server, tmp_path):
    with fresh_database(pg_server) as dsn:
        env = {**os.environ, "ZDG_DSN": dsn, "ZDG_UI_TOKEN": TOKEN}
        env.setdefault("ZDG_MODEL_ROOT", str(shared_path("models")))
        for name in ("Ross", "Joey"):
            done = subprocess.run([sys.executable, "-m", "zdg", "enroll", "--name", name, "--graph", GRAPH,
                                   str(shared_path("data", "faces", "friends_ref", name))],
                                  env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stderr
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
    doc = web.get("/api/openapi.json").json()

    def conforms(path: str, got) -> dict:
        assert got.status_code == 200, (path, got.text[:300])
        schema = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        jsonschema.validate(got.json(), {**schema, "components": doc["components"]})
        return got.json()

    people = conforms("/api/identities", web.get("/api/identities"))
    named = {p["name"]: p["id"] for p in people["items"]}
    assert set(named) == {"Ross", "Joey"} and people["total"] == 2 and people["next_after"] is None
    ross = named["Ross"]
    assert conforms("/api/identities/{id}", web.get(f"/api/identities/{ross}"))["name"] == "Ross"
    conforms("/api/identities/{id}/sequences", web.get(f"/api/identities/{ross}/sequences"))
    conforms("/api/events", web.get("/api/events"))
    photo = sorted(shared_path("data", "faces", "friends_ref", "Ross").iterdir())[-1]
    found = web.post("/api/search", files={"photos": (photo.name, photo.read_bytes(), "image/jpeg")}).json()
    assert found["matches"][0]["name"] == "Ross" and found["photos"] == 1
    renamed = web.post(f"/api/identities/{named['Joey']}/rename", json={"name": "Joseph"})
    assert renamed.status_code == 200 and renamed.json()["identity"] == named["Joey"]
    history = conforms("/api/identities/{id}/events", web.get(f"/api/identities/{named['Joey']}/events")).get("items")
    assert history[0]["kind"] == "rename" and history[0]["actor"].startswith("api:127.0.0.1")
