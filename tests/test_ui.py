"""The workbench's pages and forms over a real store (synthetic people), without a browser: the token gate,
an empty store, corrections and their refusals."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from starlette.testclient import TestClient

from nodes.app.ui.app import Workbench, make_app
from nodes.app.ui.guard import GuardSettings, token_for
from nodes.matching.decision import ReidSettings
from nodes.store.pg import PgFaceStore
from tests.stored import decide, person, sequence, store

S = ReidSettings(threshold=0.45, named_threshold=0.6)


def client(faces, videos: Path, token: str | None = None) -> TestClient:
    guard = GuardSettings.listening_on("127.0.0.1", ["testserver"], token=token)
    return TestClient(make_app(Workbench(faces, S, videos, None, lambda: None), guard), follow_redirects=False)


def post(web: TestClient, url: str, data: dict | None = None):
    """A form posted as the workbench's own page does: with the session's CSRF token from a page it served."""
    token = re.search(r'name="csrf" value="([^"]+)"', web.get("/search").text).group(1)
    return web.post(url, data={**(data or {}), "csrf": token})


def people(faces, *who: int) -> list[tuple[int, int]]:
    """(sequence id, cluster id) of a new sequence of each person, decided."""
    out = []
    for i, w in enumerate(who):
        vectors = person(w)
        sequence_id = store(faces, sequence(f"p{w}_{i}", vectors))
        out.append((sequence_id, decide(faces, sequence_id, vectors, S).cluster_id))
    return out


@pytest.mark.parametrize(("host", "needs"), [("127.0.0.1", False), ("localhost", False), ("::1", False),
                                              ("0.0.0.0", True), ("192.0.2.7", True)])
def test_only_loopback_goes_without_a_token(host, needs):
    assert (token_for(host, None) is not None) == needs
    assert token_for(host, "given") == "given", "a token set is asked for everywhere (API clients send it as Bearer)"


def test_beyond_localhost_every_request_needs_the_token(faces, tmp_path):
    web = client(faces, tmp_path, token="s3cret")
    assert web.get("/").status_code == 401
    assert web.get("/?token=wrong").status_code == 401
    assert web.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    first = web.get("/?token=s3cret")
    assert first.status_code == 200 and "zdg_token" in first.cookies
    assert web.get("/search").status_code == 200, "the cookie carries the token on"


def test_an_empty_database_shows_an_empty_store(store_dsn, tmp_path):
    empty = PgFaceStore.open(store_dsn)
    page = client(empty, tmp_path).get("/")
    assert page.status_code == 200 and "holds no identity yet" in page.text


def test_forms_split_mark_refuse_and_delete_with_who_did_it(faces, conn, tmp_path):
    web = client(faces, tmp_path)
    (a1, a), (a2, _), (b1, b) = people(faces, 0, 0, 1)
    page = web.get(f"/identity/{a}")
    assert page.text.count('class="sequence"') == 2 and "2 sequences" in page.text
    split = post(web, f"/identity/{a}/split", {"sequence": [str(a2)]})
    new = int(split.headers["location"].split("/identity/")[1].split("?")[0])
    assert conn.execute("SELECT cluster_id FROM sequences WHERE id = %s", (a2,)).fetchone()[0] == new != a
    refused = post(web, f"/identity/{new}/merge", {"into": str(a)})
    assert "not%20done" in refused.headers["location"] and faces.resolve(new) == new, "a split is not merged back"
    assert "marked as different people" in web.get(refused.headers["location"]).text
    post(web, f"/identity/{b}/different", {"other": str(a)})
    strip = tmp_path / "v" / "v_p1_2.png"
    strip.parent.mkdir()
    strip.write_bytes(b"png")
    gone = post(web, f"/identity/{b}/delete")
    assert gone.headers["location"].startswith("/?msg=") and not strip.exists()
    assert [i.id for i in faces.identities()] == [a, new]
    actors = conn.execute("SELECT kind, cluster_id, actor FROM cluster_events WHERE actor IS NOT NULL ORDER BY id").fetchall()
    # b's own history (the "different" it was marked with) goes with b; one delete event, without detail, stays
    assert actors == [("split", new, "ui:testclient"), ("delete", b, "ui:testclient")]
    with psycopg.connect(faces.conn.info.dsn) as other:
        assert other.execute("SELECT count(*) FROM sequences WHERE id = %s", (b1,)).fetchone()[0] == 0
    assert web.get(f"/identity/{b}").status_code == 404


def test_the_identities_list_pages_by_id_and_the_merge_choices_are_the_nearest_and_the_named(faces, tmp_path,
                                                                                               monkeypatch):
    import nodes.app.ui.app as app

    monkeypatch.setattr(app, "PAGE_SIZE", 2)
    web = client(faces, tmp_path)
    ids = sorted({cluster for _, cluster in people(faces, 0, 1, 2, 3, 4)})
    assert len(ids) == 5
    first = web.get("/").text
    assert "5 identities" in first and all(f'data-id="{i}"' in first for i in ids[:2])
    assert f'data-id="{ids[2]}"' not in first and f'href="/?after={ids[1]}"' in first
    last = web.get(f"/?after={ids[3]}").text
    assert f'data-id="{ids[4]}"' in last and f'data-id="{ids[3]}"' not in last and 'id="next"' not in last
    assert faces.likely_targets(ids[0], k=2) == sorted(faces.likely_targets(ids[0], k=2))
    assert len(faces.likely_targets(ids[0], k=2)) == 2 and ids[0] not in faces.likely_targets(ids[0], k=2)
    faces.rename(ids[4], "Zoe")
    assert ids[4] in faces.likely_targets(ids[0], k=1), "named identities are always offered"
