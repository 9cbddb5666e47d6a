"""The cross-site attack in a real browser (Debian's Chromium): a page on another port of the same host, which the
operator visits while the workbench is open, submits a form and a no-cors fetch to it; nothing changes."""

from __future__ import annotations

import http.server
import threading
import time
from functools import partial

import pytest

from nodes.store.pg import PgFaceStore
from tests.browser.test_workbench import browser  # noqa: F401 - the Chromium fixture
from tests.security.test_web import running_ui  # noqa: F401 - a real `zdg ui` on a fresh store
from tests.stored import DIM, decide, person, sequence, store
from tests.test_ui import S

pytestmark = pytest.mark.security

ATTACK = """<!doctype html><form id="f" method="post" action="{ui}/identity/{victim}/rename">
<input name="name" value="renamed by evil"></form>
<script>
fetch("{ui}/identity/{other}/delete", {{method: "POST", mode: "no-cors"}}).finally(() => document.getElementById("f").submit());
</script>"""


def test_a_page_on_another_port_cannot_rename_or_delete(running_ui, browser, store_dsn, tmp_path):  # noqa: F811
    base, _, _ = running_ui
    faces = PgFaceStore.open(store_dsn, DIM)
    ids = []
    for i in (0, 1):
        seq = sequence(f"p{i}", person(i, 5))
        ids.append(decide(faces, store(faces, seq), seq.embeddings, S).cluster_id)
    faces.rename(ids[0], "Ann")
    (tmp_path / "evil.html").write_text(ATTACK.format(ui=base, victim=ids[0], other=ids[1]))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(http.server.SimpleHTTPRequestHandler,
                                                                      directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"{base}/identity/{ids[0]}")  # the operator's session with the workbench
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/evil.html")
        deadline = time.monotonic() + 10
        while "refused" not in browser.page_source and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "refused" in browser.page_source, browser.page_source[-500:]
    finally:
        server.shutdown()
    assert {i.id: i.name for i in faces.identities()} == {ids[0]: "Ann", ids[1]: None}, "nothing changed"
    faces.close()
