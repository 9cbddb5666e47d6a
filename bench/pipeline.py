"""Pipeline benchmark: the same face work three ways, in one invocation, on the same clip and models.

(1) insightface FaceAnalysis with its defaults, one process (what users write today), in a fresh interpreter:
    its frame loop, and its whole run from launch (imports, model loading and the loop, as a user waits for it)
(2) the same work single-threaded in one process (zdg's detector + embedder + sequencer classes)
(3) graphs/video_sequences.yaml under `zdg run` (detector replicas, pipelined nodes)

All three read every `--stride`th frame and use the same detector size. Prints fps and ratios, the
graph's start-up (seconds from launching `zdg run` to the first frame at the sequencer) and the sequences (2)
and (3) found, which must be the same.
    python bench/pipeline.py --clip ../shared/data/videos/short_hamilton_clip.mp4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
GRAPH = "graphs/video_sequences.yaml"
PACK_NAME = "zdg_bench_pack"  # FaceAnalysis takes a folder of this name in the cwd first: keep it unusual


def frames(clip: str, stride: int):
    cap = cv2.VideoCapture(clip)
    index = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        if index % stride == 0:
            yield index, image
        index += 1


def make_pack(model_root: Path, det: str, rec: str) -> Path:
    """A FaceAnalysis pack (<root>/models/<name>/) of symlinks to the detector and recogniser files."""
    root = Path(tempfile.mkdtemp(prefix="zdg-pack-"))
    pack = root / "models" / PACK_NAME
    pack.mkdir(parents=True)
    for src in (model_root / det, model_root / rec):
        (pack / src.name).symlink_to(src.resolve())
    return root


def face_analysis(clip: str, stride: int, size: int, pack_root: Path) -> tuple[int, float, float]:
    """Frames, seconds of the frame loop and seconds from launching a fresh interpreter to its exit."""
    launched = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--face-analysis", clip, "--stride", str(stride), "--size", str(size),
                          "--pack-root", str(pack_root)], check=True, capture_output=True, text=True, cwd=REPO)
    whole = time.perf_counter() - launched
    n, loop = json.loads(out.stdout.splitlines()[-1])
    return n, loop, whole


def face_analysis_loop(clip: str, stride: int, size: int, pack_root: Path) -> tuple[int, float]:
    """What a user's script does: FaceAnalysis on every `stride`th frame; frames and seconds of the loop."""
    from insightface.app import FaceAnalysis

    app = FaceAnalysis(name=PACK_NAME, root=str(pack_root), providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=-1, det_size=(size, size))
    started, n = time.perf_counter(), 0
    for _, image in frames(clip, stride):
        app.get(image)
        n += 1
    return n, time.perf_counter() - started


def single_threaded(clip: str, stride: int, size: int, overrides: list[str]) -> tuple[int, float, int]:
    """Frames, seconds and closed sequences: the graph's detector, embedder and sequencer, with the graph's params."""
    from nodes.messages import Frame, Sequence
    from zdg.config import load_graph
    from zdg.testing import NodeHarness

    nodes = load_graph(REPO / GRAPH, [f"detector.input_size={size}", *overrides]).nodes
    det, emb, seq = (NodeHarness(nodes[name].cls, nodes[name].params).node for name in ("detector", "embedder", "sequencer"))
    started, n, closed = time.perf_counter(), 0, 0
    for index, image in frames(clip, stride):
        faces = emb.process(det.detect(Frame(video="v", video_path=clip, frame=index, seq=n, ts=0.0, image=image)))
        closed += sum(isinstance(m, Sequence) for m in seq.process(faces))
        n += 1
    closed += sum(isinstance(m, Sequence) for m in seq.finish())
    return n, time.perf_counter() - started, closed


def graph(clip: str, stride: int, size: int, overrides: list[str]) -> tuple[float, float, float, int]:
    """Wall seconds including start-up, steady-state fps (first to last frame at the sequencer), seconds from
    launching `zdg run` to the first frame at the sequencer, and the sequences written."""
    out = Path(tempfile.mkdtemp(prefix="zdg-bench-"))
    cmd = [sys.executable, "-m", "zdg", "run", str(REPO / GRAPH), "--no-progress",
           "--run-dir", str(out / "run"), "--set", f"source.path={clip}", "--set", f"source.stride={stride}",
           "--set", f"detector.input_size={size}", "--set", f"jsonl.path={out / 's.jsonl'}",
           "--set", f"gallery.out_dir={out / 'g'}", "--set", "gallery.annotate_video=false"]
    for item in overrides:
        cmd += ["--set", item]
    launched, started = time.time(), time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    total = time.perf_counter() - started
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    seq = next(r for r in metrics["replicas"] if r["node"] == "sequencer")
    steady = (seq["in"] - 1) / (seq["last_in_at"] - seq["first_in_at"])
    sequences = len((out / "s.jsonl").read_text().splitlines())
    return total, steady, seq["first_in_at"] - launched, sequences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", action="append", help="video file (repeatable); default: the shared samples")
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--size", type=int, default=640, help="detector input size, same for all three")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE",
                        help="change a param of the graph for (2) and (3), e.g. embedder.pack=mfn128_int8")
    parser.add_argument("--model-root", default=os.environ.get("ZDG_MODEL_ROOT", str(REPO.parent / "shared/models")))
    parser.add_argument("--face-analysis", metavar="CLIP", help=argparse.SUPPRESS)  # (1) in its own interpreter
    parser.add_argument("--pack-root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.face_analysis:
        print(json.dumps(face_analysis_loop(args.face_analysis, args.stride, args.size, Path(args.pack_root))))
        return
    os.environ["ZDG_MODEL_ROOT"] = args.model_root
    clips = args.clip or [str(REPO.parent / f"shared/data/videos/{n}") for n in ("short_hamilton_clip.mp4", "friends_poker.mp4")]
    pack_root = make_pack(Path(args.model_root), "buffalo_sc/det_500m.onnx", "mfn128/mobilefacenet_128.onnx")
    print(f"cores: {os.cpu_count()}  stride: {args.stride}  detector size: {args.size}  "
          f"graph changes: {' '.join(args.overrides) or 'none'}")
    for clip in clips:
        fa_n, fa_t, fa_whole = face_analysis(clip, args.stride, args.size, pack_root)
        st_n, st_t, st_sequences = single_threaded(clip, args.stride, args.size, args.overrides)
        gr_t, steady, startup, gr_sequences = graph(clip, args.stride, args.size, args.overrides)
        fa, fa_w, st, gr = fa_n / fa_t, fa_n / fa_whole, st_n / st_t, st_n / gr_t
        print(f"{Path(clip).name}: {st_n} frames; sequences: {st_sequences} single-threaded, {gr_sequences} graph")
        print(f"  (1) FaceAnalysis default, one process : {fa:6.1f} fps   (whole run from launch: {fa_w:.1f} fps, "
              f"{fa_whole:.2f} s)")
        print(f"  (2) same work, single-threaded        : {st:6.1f} fps   ({st / fa:.2f}x of 1)")
        print(f"  (3) zdg graph, whole run incl. start-up: {gr:6.1f} fps   ({gr / fa:.2f}x of 1, {gr / st:.2f}x of 2, "
              f"{gr / fa_w:.2f}x of 1's whole run)")
        print(f"  (3) zdg graph, steady state           : {steady:6.1f} fps   ({steady / fa:.2f}x of 1, {steady / st:.2f}x of 2)")
        print(f"  (3) zdg graph, start-up               : {startup:6.2f} s to the first frame at the sequencer")


if __name__ == "__main__":
    main()
