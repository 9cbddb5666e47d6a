"""Face model variants side by side on the same frames: speed and whether they find and describe the same faces.

  detector input  - the frame-following input (640x384 for 16:9) against the square one (640x640)
  detector packs  - a second pack (e.g. buffalo_sc_int8 from `zdg models quantize`) against the first
  recogniser packs - the same crops embedded by each pack: ms per face, cosine between their embeddings
For each clip, every `--stride`th frame, one onnxruntime thread. "finds" counts faces of one variant that the
other has at IoU >= 0.5, both ways (recall and precision against the first).
    python bench/face_models.py [--clip CLIP ...] [--detector-packs buffalo_sc buffalo_sc_int8]
                                [--recogniser-packs mfn128 mfn128_int8]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from pipeline import frames  # this folder's pipeline bench: every `stride`th frame of a clip

REPO = Path(__file__).resolve().parents[1]


def found(ours: list, theirs: list) -> int:
    """Faces of `ours` that `theirs` has too (IoU >= 0.5 in the same frame)."""
    from nodes.vision.tracking import iou_matrix

    return sum(int((iou_matrix(o.boxes_xyxy, t.boxes_xyxy).max(axis=1) >= 0.5).sum())
               for o, t in zip(ours, theirs, strict=True) if len(o) and len(t))


def detect_all(node, images: list[np.ndarray]) -> tuple[list, float]:
    from nodes.messages import Frame

    node.detect(Frame(video="v", video_path="", frame=0, seq=0, ts=0.0, image=images[0]))  # warm-up
    started = time.perf_counter()
    out = [node.detect(Frame(video="v", video_path="", frame=i, seq=i, ts=0.0, image=image)) for i, image in enumerate(images)]
    return out, (time.perf_counter() - started) / len(images) * 1000


def compare_detectors(images: list[np.ndarray], variants: dict[str, dict]) -> list:
    """Print ms/frame, faces and agreement with the first variant; returns the first variant's detections."""
    from nodes.detector import DetectorNode
    from zdg.testing import NodeHarness

    results = {name: detect_all(NodeHarness(DetectorNode, threads=1, **params).node, images) for name, params in variants.items()}
    (first_name, (first, first_ms)), *others = results.items()
    print(f"  detector {first_name:28s}: {first_ms:6.1f} ms/frame  {sum(len(f) for f in first)} faces")
    for name, (dets, ms) in others:
        print(f"  detector {name:28s}: {ms:6.1f} ms/frame  {sum(len(f) for f in dets)} faces; finds {found(first, dets)} "
              f"of the first's, {found(dets, first)} of its own are the first's ({first_ms / ms:.2f}x its speed)")
    return first


def compare_recognisers(crops: list[np.ndarray], packs: list[str]) -> None:
    from nodes.embedder import EmbedderNode
    from zdg.testing import NodeHarness

    vectors, times = {}, {}
    for pack in packs:
        node = NodeHarness(EmbedderNode, pack=pack, threads=1).node
        node.embed(crops[:1])
        started = time.perf_counter()
        vectors[pack] = node.embed(crops)
        times[pack] = (time.perf_counter() - started) / len(crops) * 1000
    first = packs[0]
    print(f"  recogniser {first:26s}: {times[first]:6.2f} ms/face over {len(crops)} crops")
    for pack in packs[1:]:
        cosine = (vectors[first] * vectors[pack]).sum(axis=1)
        print(f"  recogniser {pack:26s}: {times[pack]:6.2f} ms/face ({times[first] / times[pack]:.2f}x); cosine to the "
              f"first's embeddings: mean {cosine.mean():.3f}, lowest {cosine.min():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", action="append", help="video file (repeatable); default: the shared samples")
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--detector-packs", nargs="+", default=["buffalo_sc"])
    parser.add_argument("--recogniser-packs", nargs="+", default=["mfn128"])
    parser.add_argument("--model-root", default=os.environ.get("ZDG_MODEL_ROOT", str(REPO.parent / "shared/models")))
    args = parser.parse_args()
    os.environ["ZDG_MODEL_ROOT"] = args.model_root
    clips = args.clip or [str(REPO.parent / f"shared/data/videos/{n}") for n in ("short_hamilton_clip.mp4", "friends_poker.mp4")]
    first_pack = args.detector_packs[0]
    variants = {f"{first_pack}, input aspect": {"pack": first_pack, "input_shape": "aspect"},
                f"{first_pack}, input square": {"pack": first_pack, "input_shape": "square"},
                **{f"{pack}, input aspect": {"pack": pack} for pack in args.detector_packs[1:]}}
    for clip in clips:
        images = [image for _, image in frames(clip, args.stride)]
        print(f"{Path(clip).name}: {len(images)} frames")
        detections = compare_detectors(images, variants)
        compare_recognisers([crop for faces in detections for crop in faces.crops], args.recogniser_packs)


if __name__ == "__main__":
    main()
