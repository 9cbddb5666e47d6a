"""An RTSP camera, for real: graphs/video_reid.yaml reads a GStreamer RTSP server on 127.0.0.1 (the shared clip at
its real rate), the server is killed mid-stream and started again; the source reconnects and reads on, and every
sequence the sequencer closed on either side of the cut is stored, decided, and stamped with wall-clock time. The
camera's password in its URL reaches neither the logs nor the store."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest

from bench.soak import RtspCamera, encode_ts
from tests.conftest import REPO, shared_path
from tests.faults.test_faults import env_for, export
from tests.faults.test_live_stream import metric

pytestmark = pytest.mark.integrations
PASSWORD = "s3cret-cam"


@pytest.fixture
def camera(tmp_path):
    encode_ts(shared_path("data", "videos", "friends_poker.mp4"), tmp_path / "camera.ts", 640, 20)
    cam = RtspCamera(tmp_path / "camera.ts", user=f"zdg:{PASSWORD}")  # the server asks none: the client never sends it
    yield cam
    cam.close()


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the graph exited while waiting for {what}: {proc.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, f"not in {timeout}s: {what}"
        time.sleep(0.2)


def test_an_rtsp_camera_cut_mid_stream_is_reconnected_and_no_sequence_is_lost(camera, tmp_path):
    env = env_for(tmp_path / "store")
    run_dir = tmp_path / "run"
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "zdg", "run", str(REPO / "graphs/video_reid.yaml"), "--no-progress",
                             "--run-dir", str(run_dir), "--set", f"source.path={camera.url}", "--set", "source.reconnect_s=0.5",
                             "--set", f"gallery.out_dir={tmp_path}/gallery"],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        source_out = lambda: metric(run_dir, "source.0", "out")  # noqa: E731
        wait_for(lambda: source_out() >= 80, 180, "80 frames from the camera", proc)
        camera.kill()  # the camera goes away mid-stream, sequences open
        cut = source_out()
        time.sleep(1.5)
        camera.start()
        wait_for(lambda: source_out() >= cut + 80, 180, "80 more frames after the restart", proc)
        camera.kill()
        settled, last = time.monotonic(), -1  # the graph has done all it can: nothing moves for 5 s
        while time.monotonic() - settled < 5:
            moved = sum(metric(run_dir, f"{n}.0", "out") for n in ("source", "sequencer", "db", "reid"))
            settled, last = (settled if moved == last else time.monotonic()), moved
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    finally:
        proc.kill()
    replicas = {f"{r['node']}.{r['replica']}": r for r in json.loads((run_dir / "metrics.json").read_text())["replicas"]}
    assert replicas["source.0"]["counters"]["reconnects"] >= 1 and replicas["source.0"]["out"] >= cut + 80
    assert all(r["dropped"] == 0 and r["errors"] == 0 and r["decode_errors"] == 0 for r in replicas.values()), replicas
    rows = export(env)
    closed = replicas["sequencer.0"]["counters"]["sequences"]
    assert closed == replicas["db.0"]["counters"]["sequences_written"] == len(rows) >= 4, "every closed sequence stored"
    assert all(r["cluster_id"] is not None or r["junk"] for r in rows), "and decided"
    cut_frame = 2 * cut  # the graph emits every second frame
    assert any(r["last_frame"] < cut_frame for r in rows) and any(r["first_frame"] > cut_frame for r in rows), \
        "sequences from before and after the cut"
    seen = [datetime.fromisoformat(r["seen_at"].replace("Z", "+00:00")).timestamp() for r in rows]
    assert all(started - 5 <= t <= time.time() for t in seen), "stamped with the stream's wall-clock time"
    assert rows[0]["source"].startswith("rtsp:__zdg@127.0.0.1:"), rows[0]["source"]
    assert PASSWORD not in json.dumps(rows) + err + (run_dir / "metrics.json").read_text(), "the password stays secret"
