"""The workbench's JSON API over a real store: every operation in /api/openapi.json answers as the document says,
paging, corrections with their refusals, the token, and search and enrolment with the real models and photos."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from starlette.testclient import TestClient

from nodes.app.ui.app import Workbench, make_app
from nodes.app.ui.guard import GuardSettings
from tests.conftest import REPO, fresh_database, shared_path
from tests.stored import decide, person, sequence, store
from tests.test_ui import S, people

BEARER = {"Authorization": "Bearer s3cret"}


def api(faces, tmp_path: Path, load_models=lambda: None, bearer: bool = False) -> TestClient:
    """The workbench over `faces`, asking for a token; with `bearer`, the client sends it with every call."""
    guard = GuardSettings.listening_on("0.0.0.0", ["testserver"], token="s3cret")
    return TestClient(make_app(Workbench(faces, S, tmp_path, None, load_models), guard), follow_redirects=False,
                      headers=BEARER if bearer else None)


def conforms(doc: dict, path: str, method: str, status: int, body) -> None:
    """`body` is what the document says `method path` answers with `status`."""
    answer = doc["paths"][path][method]["responses"][str(status)]
    schema = answer["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**schema, "components": doc["components"]})


@pytest.fixture(scope="module")
def models():
    from nodes.app.service import load_models
    from zdg.config import load_graph

    return load_models(load_graph(REPO / "graphs" / "video_reid.yaml"))


@pytest.fixture
def photo_store(pg_server):
    """A store of the real recogniser's embeddings (the synthetic people's have another dimension)."""
    from nodes.store.pg import PgFaceStore

    with fresh_database(pg_server) as dsn:
        store = PgFaceStore.open(dsn)
        yield store
        store.close()


def every_operation(web, photos, a: int, b: int, photo: Path) -> None:
    """Call each operation /api/openapi.json documents, on identities `a` (it has a crop) and `b` (renamed "Bo"),
    search and enrolment (of "Ross") with `photo` on `photos`; each answer has its documented status and schema."""
    doc = web.get("/api/openapi.json").json()
    cropped = next(r for r in web.get(f"/api/identities/{a}/sequences").json()["items"] if r["crop_frames"])
    assert {"/api/identities", "/api/identities/{id}/sequences", "/api/search"} <= set(doc["paths"])
    upload = {"photos": (photo.name, photo.read_bytes(), "image/jpeg")}
    calls = {("/api/identities", "get"): lambda: web.get("/api/identities?limit=1"),
             ("/api/identities/{id}", "get"): lambda: web.get(f"/api/identities/{a}"),
             ("/api/identities/{id}/sequences", "get"): lambda: web.get(f"/api/identities/{a}/sequences"),
             ("/api/identities/{id}/events", "get"): lambda: web.get(f"/api/identities/{a}/events"),
             ("/api/identities/{id}/face.png", "get"): lambda: web.get(f"/api/identities/{a}/face.png"),
             ("/api/identities/{id}/{action}", "post"): lambda: web.post(f"/api/identities/{b}/rename", json={"name": "Bo"}),
             ("/api/enroll", "post"): lambda: photos.post("/api/enroll", data={"name": "Ross"}, files=upload),
             ("/api/search", "post"): lambda: photos.post("/api/search", files=upload),
             ("/api/events", "get"): lambda: web.get("/api/events"),
             ("/api/decisions", "get"): lambda: web.get("/api/decisions?limit=2"),
             ("/api/sequences/{sequence}/crops/{frame}.png", "get"):
                 lambda: web.get(f"/api/sequences/{cropped['id']}/crops/{cropped['crop_frames'][0]}.png")}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert documented == set(calls), "every documented operation is called here, and nothing else"
    for (path, method), call in calls.items():
        got = call()
        status = next(int(code) for code in doc["paths"][path][method]["responses"] if code.startswith("2"))
        assert got.status_code == status, (path, got.status_code, got.text[:300])
        if got.headers["content-type"].startswith("application/json"):
            conforms(doc, path, method, status, got.json())
        else:
            assert got.headers["content-type"] == "image/png" and got.content.startswith(b"\x89PNG"), path
    assert web.get(f"/api/identities/{b}").json()["name"] == "Bo"
    found = photos.post("/api/search", files=upload).json()["matches"]
    assert found[0]["name"] == "Ross", "the enrolled name is found first"
    docs = web.get("/api/docs")
    assert docs.status_code == 200 and '<a href="/api/identities">' in docs.text


def test_every_operation_answers_as_the_openapi_document_says(faces, photo_store, tmp_path, models):
    vectors = person(0)
    with_crop = replace(sequence("p0_crop", vectors), crops=np.full((1, 112, 112, 3), 120, np.uint8),
                        crop_frames=np.array([0], np.int32))
    a = decide(faces, store(faces, with_crop), vectors, S).cluster_id
    (_, b), = people(faces, 1)
    photo = sorted(shared_path("data", "faces", "friends_ref", "Ross").iterdir())[0]
    every_operation(api(faces, tmp_path, bearer=True), api(photo_store, tmp_path, lambda: models, bearer=True), a, b, photo)


def test_identities_come_a_page_at_a_time(faces, tmp_path):
    web = api(faces, tmp_path)
    ids = sorted(c for _, c in people(faces, 0, 1, 2))
    first = web.get("/api/identities?limit=2", headers=BEARER).json()
    assert [i["id"] for i in first["items"]] == ids[:2] and first["total"] == 3 and first["next_after"] == ids[1]
    rest = web.get(f"/api/identities?limit=2&after={first['next_after']}", headers=BEARER).json()
    assert [i["id"] for i in rest["items"]] == ids[2:] and rest["next_after"] is None
    for bad in ("limit=0", "limit=501", "after=x", "limit=-1"):
        got = web.get(f"/api/identities?{bad}", headers=BEARER)
        assert got.status_code == 400 and bad.split("=")[0] in got.json()["error"]


def test_an_identitys_sequences_come_a_page_at_a_time(faces, tmp_path):
    web = api(faces, tmp_path)
    made = people(faces, 0, 0, 0)
    cluster = made[0][1]
    assert {c for _, c in made} == {cluster}
    first = web.get(f"/api/identities/{cluster}/sequences?limit=2", headers=BEARER).json()
    rest = web.get(f"/api/identities/{cluster}/sequences?limit=2&after={first['next_after']}", headers=BEARER).json()
    assert [r["id"] for r in first["items"] + rest["items"]] == sorted(s for s, _ in made) and rest["next_after"] is None


def test_the_newest_decisions_come_first_a_page_at_a_time(faces, tmp_path):
    web = api(faces, tmp_path, bearer=True)
    made = people(faces, 0, 1, 2)
    first = web.get("/api/decisions?limit=2").json()
    assert [(r["id"], r["cluster_id"]) for r in first["items"]] == made[::-1][:2]
    rest = web.get(f"/api/decisions?limit=2&before={first['next_before']}").json()
    assert [(r["id"], r["cluster_id"]) for r in rest["items"]] == made[:1] and rest["next_before"] is None
    assert web.get("/api/decisions?before=x").status_code == 400


def test_corrections_answer_with_what_happened_or_why_not(faces, tmp_path):
    web = api(faces, tmp_path)
    (s1, a), (s2, b), (_, c) = people(faces, 0, 1, 2)
    different = web.post(f"/api/identities/{a}/different", headers=BEARER, json={"other": b})
    assert different.status_code == 200 and different.json()["identity"] == a
    refused = web.post(f"/api/identities/{a}/merge", headers=BEARER, json={"into": b})
    assert refused.status_code == 409 and faces.resolve(a) == a, "marked different: not merged"
    merged = web.post(f"/api/identities/{c}/merge", headers=BEARER, json={"into": a})
    assert merged.status_code == 200 and merged.json()["identity"] == a
    moved = web.get(f"/api/identities/{c}/sequences", headers=BEARER)
    assert moved.status_code == 308 and moved.headers["location"] == f"/api/identities/{a}/sequences"
    assert web.post(f"/api/identities/{a}/rename", headers=BEARER, json={"name": ""}).status_code == 400
    assert web.post(f"/api/identities/{a}/rename", headers=BEARER, content=b"[1]").status_code == 400
    assert web.post(f"/api/identities/{a}/explode", headers=BEARER, json={}).status_code == 404
    assert web.get("/api/identities/999999", headers=BEARER).status_code == 404
    gone = web.post(f"/api/identities/{b}/delete", headers=BEARER, json={})
    assert gone.status_code == 200 and gone.json()["identity"] is None
    assert web.get(f"/api/identities/{b}", headers=BEARER).status_code == 404


def test_an_empty_store_answers_in_json(store_dsn, tmp_path):
    from nodes.store.pg import PgFaceStore

    web = api(PgFaceStore.open(store_dsn), tmp_path)
    got = web.get("/api/identities", headers=BEARER)
    assert got.status_code == 404 and "holds nothing yet" in got.json()["error"]
    assert "holds no identity yet" in web.get("/", headers=BEARER).text, "the page says so in its own words"


def test_the_api_needs_the_token_and_refuses_writes_from_other_sites(faces, tmp_path):
    web = api(faces, tmp_path)
    (_, a), = people(faces, 0)
    assert web.get("/api/identities").status_code == 401
    assert web.get("/api/openapi.json").status_code == 401
    cross = web.post(f"/api/identities/{a}/rename", headers={**BEARER, "Origin": "https://evil.example"},
                     json={"name": "pwned"})
    assert cross.status_code == 403
    cookie_only = api(faces, tmp_path)
    cookie_only.get("/?token=s3cret")  # a browser session: the cookie carries the token, not a Bearer header
    assert cookie_only.post(f"/api/identities/{a}/rename", json={"name": "pwned"}).status_code == 403, "no CSRF token"
    assert faces.identities([a])[0].name is None
