"""The store on a PostgreSQL server an operator started (tests/external/operator_server.py), reached only through
ZDG_DSN over TCP with a password: migrations by a role that is no superuser, the main job, a second visit with
the server restarted in the middle of it, corrections, deletion with --erase, and retention."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from nodes.store.schema import MIGRATIONS
from tests.conftest import REPO, shared_path
from tests.external.operator_server import OperatorServer

pytestmark = pytest.mark.external_db
GRAPH = str(REPO / "graphs" / "video_reid.yaml")
TRUTH = REPO / "tests" / "data" / "friends_poker_truth.json"
SPLIT_S = "13.2"  # friends_poker's second scene: the same people after a cut


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = OperatorServer(tmp_path_factory.mktemp("operator"))
    started.init()
    yield started
    started.stop()


@pytest.fixture
def env(server):
    models = os.environ.get("ZDG_MODEL_ROOT") or str(shared_path("models"))
    kept = {k: v for k, v in os.environ.items() if k not in ("ZDG_DSN", "ZDG_STORE_DIR")}
    return {**kept, "ZDG_DSN": server.dsn(), "ZDG_MODEL_ROOT": models}


def zdg(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "zdg", *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def visit(video_id: str, out: Path, *overrides: str) -> list[str]:
    clip = shared_path("data", "videos", "friends_poker.mp4")
    return [sys.executable, "-m", "zdg", "run", GRAPH, "--no-progress", "--run-dir", str(out / "run"), "--set",
            f"source.path={clip}", "--set", f"source.video_id={video_id}", "--set", f"gallery.out_dir={out}",
            "--set", "gallery.annotate_video=false", *overrides]


def count(server: OperatorServer, sql: str, *args: object) -> int:
    with psycopg.connect(server.dsn()) as conn:
        return conn.execute(sql, args).fetchone()[0]


def test_the_store_on_an_operators_server_through_zdg_dsn(server, env, tmp_path):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.dsn(password="not-the-password"))
    printed = []

    first = subprocess.run(visit("first", tmp_path / "a", "--set", f"source.end_s={SPLIT_S}"), env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    printed.append(first.stdout + first.stderr)
    assert count(server, "SELECT value::int FROM zdg_meta WHERE key = 'schema_version'") == len(MIGRATIONS)
    assert not count(server, "SELECT rolsuper::int FROM pg_roles WHERE rolname = current_user"), \
        "the schema was made by the plain role that owns the database"

    second = subprocess.Popen(visit("second", tmp_path / "b", "--set", f"source.start_s={SPLIT_S}"), env=env,
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not count(
            server, "SELECT count(*) FROM sequences s JOIN sources so ON so.id = s.source_id WHERE so.name = 'second'"):
        time.sleep(0.2)
    server.restart()  # the operator restarts the server while the second visit is being stored
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    printed.append(out + err)
    assert "store unreachable" in err, "the restart was waited out"
    stored, decided = (count(server, "SELECT count(*) FROM sequences s JOIN sources so ON so.id = s.source_id "
                                     f"WHERE so.name = 'second' {extra}")
                       for extra in ("", "AND (s.cluster_id IS NOT NULL OR s.junk IS NOT NULL)"))
    assert stored >= 4 and decided == stored, "every sequence of the second visit is stored and decided"

    scored = zdg(env, "eval", "video", str(shared_path("data", "videos", "friends_poker.mp4")), str(TRUTH),
                 "--video-id", "second", "--first-visit", "first")
    printed.append(scored.stdout + scored.stderr)
    again = json.loads(scored.stdout)["second_visit"]
    assert again["joined_someone_else"] == 0 and again["joined_same_person_from_first_visit"] >= 3, again

    with psycopg.connect(server.dsn()) as conn:
        biggest, other = (r[0] for r in conn.execute("SELECT id FROM clusters WHERE size > 0 ORDER BY size DESC, id "
                                                     "LIMIT 2"))
    zdg(env, "identities", "rename", str(biggest), "Alice")
    zdg(env, "identities", "different", str(biggest), str(other))
    listed = zdg(env, "identities", "list").stdout
    assert "Alice" in listed
    assert count(server, "SELECT count(*) FROM cannot_links WHERE a = least(%s, %s)", biggest, other) == 1
    zdg(env, "identities", "delete", str(other), "--erase", "--report", str(tmp_path / "report"))
    assert count(server, "SELECT count(*) FROM faces WHERE cluster_id = %s", other) == 0

    time.sleep(2)
    purged = zdg(env, "maintain", "--set", "reid.retention_hours=0.0003", "--report", str(tmp_path / "report"))
    printed.append(purged.stdout + purged.stderr)
    assert count(server, "SELECT count(*) FROM clusters WHERE size > 0 AND name IS NULL") == 0, "unnamed ones purged"
    assert count(server, "SELECT count(*) FROM faces WHERE cluster_id = %s", biggest) > 0, "the named one stays"
    assert server.password not in "".join(printed), "the password is never printed"


def test_a_store_connection_notices_a_vanished_peer_on_both_ends_and_the_dsns_own_settings_win(server):
    from nodes.store.db import open_connection

    with open_connection(server.dsn()) as conn:
        server_side = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                       for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count",
                                    "tcp_user_timeout")}
        client_side = conn.info.get_parameters()
    assert server_side == {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3",
                           "tcp_user_timeout": "30000"}
    assert {k: client_side.get(k) for k in ("keepalives", "keepalives_idle", "tcp_user_timeout")} == {
        "keepalives": "1", "keepalives_idle": "10", "tcp_user_timeout": "30000"}
    with open_connection(server.dsn() + "&keepalives_idle=60&options=-c%20tcp_keepalives_idle%3D60") as conn:
        assert conn.info.get_parameters()["keepalives_idle"] == "60"
        assert conn.execute("SHOW tcp_keepalives_idle").fetchone()[0] == "60"
        assert conn.execute("SHOW tcp_keepalives_count").fetchone()[0] == "3"
