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


def run_camera(stream: tuple[bytes, int], work: Path, kill_after: int | None = None, kill: str = "sequencer",
               *settings: str) -> tuple[list[dict], str, dict]:
    """The graph on the camera until its second loop is over, node `kill` killed after `kill_after` frames: the
    export, what the run printed, and the counters of every replica (node.replica: counters)."""
    data, frames = stream
    camera = Camera(data, CLIP_S, loops=2)
    env = env_for(work / "store")
    run_dir = work / "run"
    cmd = [sys.executable, "-m", "zdg", "run", str(REPO / "graphs/video_reid.yaml"), "--no-progress", "--run-dir",
           str(run_dir), "--set", f"source.path={camera.url}", "--set", f"gallery.out_dir={work}/gallery",
           "--set", "gallery.annotate_video=false", *settings]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if kill_after is not None:
            deadline = time.monotonic() + 120
            while metric(run_dir, "source.0", "out") < kill_after or pid_of(run_dir, f"{kill}.0") is None:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
            os.kill(pid_of(run_dir, f"{kill}.0"), signal.SIGKILL)
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
        replicas = json.loads((run_dir / "metrics.json").read_text())["replicas"]
        return export(env), err, {f"{r['node']}.{r['replica']}": r["counters"] for r in replicas}
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
    source = counters["source.0"]
    print(f"frames replayed {source.get('frames_replayed')}, lost {source.get('replay_frames_lost', 0)}")
    assert source.get("frames_replayed", 0) > 0 and not source.get("replay_frames_lost")
    assert first_loop(rows, stream[1]) == expected


def visits(rows: list[dict]) -> list[dict[str, tuple]]:
    """The rows of each visit (a start of the source), in the order they started, by where they are in it."""
    by_visit: dict[str, dict[str, tuple]] = {}
    for r in rows:
        visit, first, face = r["sequence_key"].rsplit(":", 2)
        by_visit.setdefault(visit, {})[f"{first}:{face}"] = (r["first_frame"], r["last_frame"], r["faces"],
                                                              r["cluster_id"] is not None or bool(r["junk"]))
    return [by_visit[v] for v in sorted(by_visit)]


def test_the_source_killed_on_a_live_stream_loses_only_the_time_it_was_down(stream, tmp_path):
    """A camera's past cannot be read again: the graph goes on as it is (no restart), the restarted source starts a
    new visit, and the open sequences of the first visit are closed once it has been silent, not dropped."""
    fast = ("--set", "sequencer.idle_close_s=5")
    clean = visits(run_camera(stream, tmp_path / "clean", None, "source", *fast)[0])[0]
    rows, err, counters = run_camera(stream, tmp_path / "killed", 100, "source", *fast)
    assert "node source.0 killed by SIGKILL" in err and "the time it was down is lost" in err
    assert "graph moved to epoch" not in err, "nothing else restarted"
    first, second = visits(rows)
    assert counters["sequencer.0"].get("idle_sources_closed", 0) >= 1 and second, "the first visit closed; the second went on"
    assert all(decided for *_, decided in first.values()) and all(decided for *_, decided in second.values())
    kill_frame = 2 * 100  # at least this far (stride 2) when it was killed
    ended_before = {k: v for k, v in clean.items() if v[1] < kill_frame - 40}
    assert ended_before and all(first.get(k) == v for k, v in ended_before.items()), "what ended before is as clean"
    open_at_kill = {k for k, v in clean.items() if v[0] < kill_frame <= v[1]}
    assert open_at_kill and open_at_kill <= set(first), "a sequence on screen at the crash is stored, cut where it was"
