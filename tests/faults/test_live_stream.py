"""A live camera keeps what was in flight: graphs/video_reid.yaml on an HTTP stream served at its real rate on
127.0.0.1, the sequencer killed mid-stream. The graph recovers through the store's epoch; the source cannot read
the stream again, so it replays its buffer from the checkpoint. Every sequence a clean run of the same stream
stores is stored, with the same frames and faces, and decided.

The stream is the first seconds of the shared clip, looped twice: the first loop is compared, and the second
keeps the camera live until every sequence of the first one has closed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_path
from tests.faults.test_faults import env_for, export, pid_of

pytestmark = pytest.mark.faults
CLIP_S = 10
CHUNK = 188 * 64  # MPEG-TS packets per write


class Camera:
    """Serves the stream `loops` times at its real rate to the first client, then holds the line silent."""

    def __init__(self, data: bytes, seconds: float, loops: int) -> None:
        pause = seconds * CHUNK / len(data)
        self.sent = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler) -> None:  # noqa: N805 - the camera is `self` of the closure
                handler.send_response(200)
                handler.send_header("Content-Type", "video/mp2t")
                handler.end_headers()
                if self.sent.is_set():
                    return
                for _ in range(loops):
                    for start in range(0, len(data), CHUNK):
                        handler.wfile.write(data[start:start + CHUNK])
                        time.sleep(pause)
                self.sent.set()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/camera.ts"

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> tuple[bytes, int]:
    """The stream's bytes, and how many frames one loop holds."""
    import cv2

    from bench.soak import encode_ts

    clip = shared_path("data", "videos", "friends_poker.mp4")
    data, seconds = encode_ts(clip, tmp_path_factory.mktemp("ts") / "camera.ts", 640, CLIP_S)
    return data, round(seconds * cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FPS))


def metric(run_dir: Path, label: str, key: str) -> int:
    try:
        return json.loads((run_dir / "metrics" / f"{label}.json").read_text()).get(key, 0)
    except (OSError, ValueError):
        return 0


def run_camera(stream: tuple[bytes, int], work: Path, kill_after: int | None = None) -> tuple[list[dict], str, dict]:
    """The graph on the camera until its second loop is over, the sequencer killed after `kill_after` frames: the
    export, what the run printed, and the source's counters."""
    data, frames = stream
    camera = Camera(data, CLIP_S, loops=2)
    env = env_for(work / "store")
    run_dir = work / "run"
    cmd = [sys.executable, "-m", "zdg", "run", str(REPO / "graphs/video_reid.yaml"), "--no-progress", "--run-dir",
           str(run_dir), "--set", f"source.path={camera.url}", "--set", f"gallery.out_dir={work}/gallery",
           "--set", "gallery.annotate_video=false"]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if kill_after is not None:
            deadline = time.monotonic() + 120
            while metric(run_dir, "source.0", "out") < kill_after or pid_of(run_dir, "sequencer.0") is None:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
            os.kill(pid_of(run_dir, "sequencer.0"), signal.SIGKILL)
        assert camera.sent.wait(180), "the camera never finished sending"
        settled, last = time.monotonic(), -1  # the graph has done all it can: nothing moves for 5 s
        while time.monotonic() - settled < 5:
            moved = sum(metric(run_dir, f"{n}.0", "out") for n in ("source", "sequencer", "db", "reid"))
            settled = settled if moved == last else time.monotonic()
            last = moved
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        source = next(r for r in json.loads((run_dir / "metrics.json").read_text())["replicas"] if r["node"] == "source")
        return export(env), err, source["counters"]
    finally:
        proc.kill()
        camera.close()


def first_loop(rows: list[dict], frames: int) -> dict[str, tuple]:
    """Sequences closed within the first loop, by where they are (the key without the visit's name)."""
    return {":".join(r["sequence_key"].rsplit(":", 2)[1:]): (r["first_frame"], r["last_frame"], r["faces"],
                                                            r["cluster_id"] is not None or bool(r["junk"]))
            for r in rows if r["last_frame"] < frames - 1}


def test_the_sequencer_killed_on_a_live_stream_loses_no_sequence(stream, tmp_path):
    clean, _, _ = run_camera(stream, tmp_path / "clean")
    expected = first_loop(clean, stream[1])
    assert len(expected) >= 3 and all(decided for *_, decided in expected.values())
    rows, err, counters = run_camera(stream, tmp_path / "killed", kill_after=50)
    assert "node sequencer.0 killed by SIGKILL" in err and "replaying from frame" in err
    print(f"frames replayed {counters.get('frames_replayed')}, lost {counters.get('replay_frames_lost', 0)}")
    assert counters.get("frames_replayed", 0) > 0 and not counters.get("replay_frames_lost")
    assert first_loop(rows, stream[1]) == expected
