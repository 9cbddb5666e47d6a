"""What measuring clothing costs the detector: the same frames detected with and without the torso histogram
(nodes/vision/torso.py), interleaved so both see the same machine, and the ratio.
    python bench/clothing_cost.py [--clip CLIP] [--frames N]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

import nodes.detector as detector
from nodes.messages import Frame
from nodes.vision.torso import TORSO_BINS
from zdg.testing import NodeHarness

DATA = Path(os.environ.get("ZDG_DATA_ROOT", Path(__file__).resolve().parents[2] / "shared" / "data"))


def unmeasured(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    return np.zeros(TORSO_BINS, np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=DATA / "videos" / "friends_poker.mp4")
    ap.add_argument("--frames", type=int, default=120)
    args = ap.parse_args()
    cap = cv2.VideoCapture(str(args.clip))
    images = []
    while len(images) < args.frames and (read := cap.read())[0]:
        images.append(read[1])
    measured = detector.torso_histogram
    spent = {"with": 0.0, "without": 0.0}
    faces = 0
    with NodeHarness(detector.DetectorNode) as harness:
        for rounds in range(2):
            for i, image in enumerate(images):
                frame = Frame(video="bench", video_path=str(args.clip), frame=i, seq=i, ts=i / 24, image=image)
                order = [("with", measured), ("without", unmeasured)]
                for label, histogram in order if (i + rounds) % 2 else order[::-1]:
                    detector.torso_histogram = histogram
                    start = time.perf_counter()
                    found = harness.node.detect(frame)
                    spent[label] += time.perf_counter() - start
                    faces += len(found) if label == "with" else 0
    detector.torso_histogram = measured
    n = 2 * len(images)
    print(f"{args.clip.name}: {n} frames, {faces} faces; detector {spent['with'] / n * 1000:.2f} ms/frame with the "
          f"clothing histogram, {spent['without'] / n * 1000:.2f} without: ratio {spent['with'] / spent['without']:.3f}")


if __name__ == "__main__":
    main()
