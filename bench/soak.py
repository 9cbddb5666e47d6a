"""Soak: two looping camera streams through graphs/cameras.yaml into one store, for minutes.

Each camera is a clip encoded once to H.264 in MPEG-TS and served in a loop at its real rate over HTTP on
127.0.0.1 (no other address is used), or with --rtsp by GStreamer's RTSP server (Debian's packages). Every
node's resident memory is sampled every --sample-s; one stream is cut once half way (the source must
reconnect); the decisions on topic `reid` are timed against when the person was last on screen. At the end
(Ctrl-C drain): what flowed between nodes, memory growth after warm-up, decision delay, and whether each
identity was seen by both cameras. Writes OUT/soak.json and OUT/soak_memory.png; exits 1 with --check when
an invariant fails.

    python bench/soak.py --minutes 20 --out bench/soak        # the figures in bench/RESULTS.md
    python bench/soak.py --minutes 2 --check                  # what .ci/run runs
    python bench/soak.py --minutes 2 --check --rtsp           # the same with RTSP cameras
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
GRAPH = REPO / "graphs" / "cameras.yaml"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi for GStreamer's RTSP server (--rtsp)
CHUNK = 188 * 64  # MPEG-TS packets per write


def encode_ts(clip: Path, out: Path, width: int, seconds: float | None = None, loops: int = 1) -> tuple[bytes, float]:
    """The clip (its first `seconds`, or all of it; `loops` times over, as one continuous stream) as H.264 in
    MPEG-TS at `width` (bytes) and its duration in seconds."""
    import av
    import cv2

    with av.open(str(out), "w", format="mpegts") as target:
        stream, frames = None, 0
        for _ in range(loops):
            with av.open(str(clip)) as source:
                video = source.streams.video[0]
                rate = video.average_rate or 25
                for count, frame in enumerate(source.decode(video)):
                    if seconds is not None and count >= seconds * rate:
                        break
                    image = frame.to_ndarray(format="bgr24")
                    height = int(image.shape[0] * width / image.shape[1]) // 2 * 2
                    if stream is None:
                        stream = target.add_stream("libx264", rate=rate)
                        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                        stream.options = {"preset": "veryfast", "g": str(int(rate))}
                    target.mux(stream.encode(av.VideoFrame.from_ndarray(cv2.resize(image, (width, height)), format="bgr24")))
                    frames += 1
        target.mux(stream.encode())
    return out.read_bytes(), frames / float(rate)


class CameraServer:
    """Serves one looping TS stream at its real rate to whoever connects; `cut()` drops the connections once."""

    def __init__(self, data: bytes, duration_s: float) -> None:
        self.data, self.pause = data, duration_s * CHUNK / len(data)
        self.generation = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                mine = server.generation
                while mine == server.generation:
                    for start in range(0, len(server.data), CHUNK):
                        if mine != server.generation:
                            return
                        try:
                            self.wfile.write(server.data[start:start + CHUNK])
                        except (BrokenPipeError, ConnectionResetError):
                            return
                        time.sleep(server.pause)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/camera.ts"

    def cut(self) -> None:
        self.generation += 1

    def close(self) -> None:
        self.httpd.shutdown()


class RtspCamera:
    """GStreamer's RTSP server (bench/rtsp_camera.py, under Debian's python3) playing a TS file once at its real
    rate on rtsp://127.0.0.1:PORT/camera; `cut()` kills it and starts it again (the stream drops, then plays from
    the start)."""

    def __init__(self, clip_ts: Path, user: str = "") -> None:
        self.clip_ts, self.port, self.proc = clip_ts, free_port(), None
        self.url = f"rtsp://{user}{'@' if user else ''}127.0.0.1:{self.port}/camera"
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(REPO / "bench" / "rtsp_camera.py"), str(self.port),
                                      str(self.clip_ts)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "serving":
            raise RuntimeError(f"the RTSP server did not start: {line}{self.proc.stderr.read()[-2000:]}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def cut(self, away_s: float = 1.5) -> None:
        self.kill()
        time.sleep(away_s)
        self.start()

    def close(self) -> None:
        self.kill()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def sample_memory(metrics_dir: Path, runner: subprocess.Popen, every_s: float, stop: threading.Event,
                  samples: list[dict]) -> None:
    """Every `every_s`: the resident memory of each replica (pids from its metrics file) and of the runner."""
    started = time.monotonic()
    while not stop.wait(every_s):
        row = {"t": round(time.monotonic() - started, 1), "runner": rss_mb(runner.pid)}
        for path in metrics_dir.glob("*.json"):
            try:
                snap = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            row[f"{snap['node']}.{snap['replica']}"] = rss_mb(snap["pid"])
        samples.append(row)


def listen(endpoint: str, stop: threading.Event, decisions: list[tuple[float, dict]]) -> None:
    import zdg

    for _, msg in zdg.subscribe(endpoint, "reid", until_eos=False, timeout_s=None):
        if not msg.eos:
            decisions.append((time.time(), dict(msg.fields)))
        if stop.is_set():
            return


def growth(samples: list[dict], warm_up_s: float) -> dict[str, float]:
    """Per process: RSS at the end over RSS just after warm-up (medians of three samples), minus one."""
    later = [s for s in samples if s["t"] >= warm_up_s]
    if len(later) < 6:
        return {}
    keys = {k for s in later for k in s if k != "t"}
    out = {}
    for key in sorted(keys):
        values = [s[key] for s in later if s.get(key)]
        if len(values) >= 6:
            first, last = sorted(values[:3])[1], sorted(values[-3:])[1]
            out[key] = round(last / first - 1, 4)
    return out


def flow(metrics: dict) -> dict[str, int]:
    by_node: dict[str, dict[str, int]] = {}
    for rep in metrics["replicas"]:
        node = by_node.setdefault(rep["node"], {"in": 0, "out": 0})
        node["in"] += rep["in"]
        node["out"] += rep["out"]
        for key, value in rep["counters"].items():
            node[key] = node.get(key, 0) + value
    return by_node


def decision_delays(dsn: str, decisions: list[tuple[float, dict]]) -> list[float]:
    """Seconds from a sequence's last face on screen to its (final) decision arriving at a subscriber."""
    import psycopg

    final = [(t, f) for t, f in decisions if f.get("status") in ("new", "recognised", "junk") and f.get("sequence_db_id")]
    with psycopg.connect(dsn) as conn:
        seen = dict(conn.execute(
            "SELECT s.id, extract(epoch FROM so.start_time) + s.last_ts FROM sequences s JOIN sources so "
            "ON so.id = s.source_id WHERE s.id = ANY(%s) AND so.start_time IS NOT NULL",
            ([f["sequence_db_id"] for _, f in final],)).fetchall())
    return sorted(t - float(seen[f["sequence_db_id"]]) for t, f in final if f["sequence_db_id"] in seen)


def cameras_per_identity(dsn: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT s.cluster_id, count(DISTINCT so.camera) FROM sequences s JOIN sources so "
                            "ON so.id = s.source_id WHERE s.cluster_id IS NOT NULL GROUP BY s.cluster_id").fetchall()
    return {"identities": len(rows), "seen_by_both_cameras": sum(1 for _, n in rows if n == 2)}


def plot(samples: list[dict], path: Path, minutes: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for key in sorted({k for s in samples for k in s if k != "t"}):
        points = [(s["t"] / 60, s[key]) for s in samples if s.get(key)]
        if points:
            ax.plot(*zip(*points, strict=True), label=key, lw=1.2)
    ax.set_xlabel("minutes")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_title(f"zdg soak: two looping cameras, graphs/cameras.yaml, {minutes:g} min")
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace, work: Path) -> tuple[int, str, list[dict], list[tuple[float, dict]], dict]:
    """Serve the cameras, run the graph on them for the minutes asked (one stream cut half way), then drain it;
    (exit code, store DSN, memory samples, decisions heard, the run's metrics)."""
    from nodes.store.embedded import embedded_dsn
    from zdg.config import load_graph
    from zdg.wiring import Transport, compile_plan

    if args.rtsp:  # the server plays a file once: it holds the clip looped for the whole run
        import cv2

        clip = cv2.VideoCapture(str(args.clip))
        loop_s = clip.get(cv2.CAP_PROP_FRAME_COUNT) / (clip.get(cv2.CAP_PROP_FPS) or 25)
        _, duration = encode_ts(args.clip, work / "camera.ts", args.width, loops=int(args.minutes * 60 / loop_s) + 2)
        cameras = {name: RtspCamera(work / "camera.ts") for name in ("door", "hall")}
    else:
        data, duration = encode_ts(args.clip, work / "camera.ts", args.width)
        cameras = {name: CameraServer(data, duration) for name in ("door", "hall")}
    dsn = embedded_dsn(work / "store")
    run_dir = work / "run"
    link = next(link for link in compile_plan(load_graph(GRAPH)).external_topics() if link.topic == "reid")
    command = [sys.executable, "-m", "zdg", "run", str(GRAPH), "--no-progress", "--run-dir", str(run_dir),
               "--set", f"gallery.out_dir={work / 'gallery'}",
               *(arg for name, cam in cameras.items() for arg in ("--set", f"{name}.path={cam.url}"))]
    print(f"soak: {args.minutes:g} min, cameras {', '.join(c.url for c in cameras.values())} ({duration:.1f} s loop)",
          file=sys.stderr)
    stop, samples, decisions = threading.Event(), [], []
    with open(work / "run.log", "w") as log:
        runner = subprocess.Popen(command, env={**os.environ, "ZDG_DSN": dsn}, cwd=REPO, stderr=log)
        while not (run_dir / "metrics").is_dir():
            time.sleep(0.2)
        sampler = threading.Thread(target=sample_memory, args=(run_dir / "metrics", runner, args.sample_s, stop, samples))
        sampler.start()
        threading.Thread(target=listen, args=(Transport("ipc", run_dir).bind_address(link), stop, decisions),
                         daemon=True).start()
        deadline = time.monotonic() + args.minutes * 60
        time.sleep(args.minutes * 30)
        cameras["hall"].cut()  # the stream drops: the source must reconnect
        while time.monotonic() < deadline and runner.poll() is None:
            time.sleep(1)
        runner.send_signal(signal.SIGINT)
        code = runner.wait(timeout=120)
    stop.set()
    sampler.join()
    for camera in cameras.values():
        camera.close()
    return code, dsn, samples, decisions, json.loads((run_dir / "metrics.json").read_text())


def summarise(args: argparse.Namespace, code: int, dsn: str, samples: list[dict], decisions: list[tuple[float, dict]],
              metrics: dict) -> dict:
    moved = flow(metrics)
    delays = decision_delays(dsn, decisions)
    result = {
        "minutes": args.minutes, "exit_code": code, "flow": moved,
        "frames_read": moved["door"]["out"] + moved["hall"]["out"],
        "reconnects": moved["door"].get("reconnects", 0) + moved["hall"].get("reconnects", 0),
        "decisions": {s: sum(1 for _, f in decisions if f.get("status") == s)
                      for s in sorted({f.get("status") for _, f in decisions})},
        "decision_delay_s": {"p50": round(delays[len(delays) // 2], 2), "p95": round(delays[int(len(delays) * 0.95)], 2),
                             "max": round(delays[-1], 2)} if delays else None,
        "rss_growth_after_warm_up": growth(samples, args.minutes * 60 * args.warm_up),
        "rss_mb_last": {k: round(v, 1) for k, v in (samples[-1] if samples else {}).items() if k != "t" and v},
        **cameras_per_identity(dsn),
    }
    closed = moved["reid"]["in"] - moved["reid"].get("provisional", 0) - moved["reid"].get("provisional_junk_skipped", 0)
    result["checks"] = {
        "exit 0": code == 0,
        "every frame read was detected, embedded and tracked": moved["detector"]["in"] == result["frames_read"]
        == moved["embedder"]["in"] == moved["sequencer"]["in"],
        "every sequence closed was stored and decided": moved["sequencer"]["sequences"] == moved["db"]["in"] == closed,
        "the cut stream was reconnected": result["reconnects"] >= 1,
        "every identity seen by both cameras": result["identities"] > 0
        and result["seen_by_both_cameras"] == result["identities"],
    }
    if args.minutes >= 10:
        result["checks"]["no process grew more than 10 % after warm-up"] = all(
            g < 0.10 for g in result["rss_growth_after_warm_up"].values())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--clip", type=Path, default=REPO.parent / "shared/data/videos/friends_poker.mp4",
                        help="what both cameras play (in a loop)")
    parser.add_argument("--width", type=int, default=640, help="stream width in pixels")
    parser.add_argument("--sample-s", type=float, default=30, help="memory sampling interval")
    parser.add_argument("--warm-up", type=float, default=0.25, help="share of the run before memory is compared")
    parser.add_argument("--out", type=Path, default=Path("out/soak"))
    parser.add_argument("--check", action="store_true", help="exit 1 when an invariant fails")
    parser.add_argument("--rtsp", action="store_true", help="serve the cameras over RTSP (GStreamer's RTSP server; "
                        "the cut kills and restarts it) instead of HTTP")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="zdg-soak-"))
    try:
        code, dsn, samples, decisions, metrics = run(args, work)
        result = summarise(args, code, dsn, samples, decisions, metrics)
    finally:  # the store and gallery hold faces: nothing of the run stays in /tmp but its log, kept in --out
        from nodes.store import embedded

        if (work / "run.log").exists():
            shutil.copyfile(work / "run.log", args.out / "run.log")
        embedded.stop(work / "store", force=True)
        shutil.rmtree(work)
    (args.out / "soak.json").write_text(json.dumps(result, indent=1))
    plot(samples, args.out / "soak_memory.png", args.minutes)
    print(json.dumps(result, indent=1))
    print(f"wrote {args.out / 'soak.json'}, {args.out / 'soak_memory.png'} and {args.out / 'run.log'}", file=sys.stderr)
    failed = [name for name, ok in result["checks"].items() if not ok]
    for name in failed:
        print(f"soak: FAILED: {name}", file=sys.stderr)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
