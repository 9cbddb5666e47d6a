"""Detection around known faces: between full-frame detections a detector looks again only where each face was."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nodes.tracking import iou_matrix

REGION_MARGIN = 2.0  # a region's side over the face's longer side: room for the face to move between frames
REGION_MAX_INPUT = 128  # a larger face is searched for smaller: SCRFD finds and places a 64 px face as well
DUPLICATE_IOU = 0.5  # two regions that found the same face keep the higher score
NO_KEYPOINTS = np.zeros((0, 5, 2), np.float32)

# (image, (width, height) of the detector input, max faces or 0) -> (n, 5) boxes with score, (n, 5, 2) keypoints
Detect = Callable[[np.ndarray, tuple[int, int], int], tuple[np.ndarray, np.ndarray]]


def region_around(box: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the square around `box` (xyxy), REGION_MARGIN times its longer side,
    clipped to a frame of `shape`."""
    height, width = shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * REGION_MARGIN / 2
    return (int(max(0, cx - half)), int(max(0, cy - half)), int(min(width, cx + half)), int(min(height, cy + half)))


def region_input(width: int, height: int, scale: float) -> tuple[int, int]:
    """Square detector input for a region: its longer side at the full detection's `scale`, rounded up to SCRFD's
    stride of 32, so a face is searched for at the size the full detection saw it (same scores, same keypoints).
    Square, so that few input shapes occur (onnxruntime's first run of a shape is 10x slower)."""
    side = min(REGION_MAX_INPUT, 32 * max(1, math.ceil(max(width, height) * scale / 32)))
    return side, side


def distinct(boxes: np.ndarray, kps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop a face that another region found too (IoU above DUPLICATE_IOU), keeping the higher score."""
    order = np.argsort(-boxes[:, 4])
    overlap = iou_matrix(boxes[order, :4], boxes[order, :4])
    keep: list[int] = []
    for i in range(len(order)):
        if not any(overlap[i, j] > DUPLICATE_IOU for j in keep):
            keep.append(i)
    chosen = order[keep]
    return boxes[chosen], kps[chosen]


def average(previous: float | None, value: float, weight: float = 0.2) -> float:
    """Exponential moving average; the first value stands alone."""
    return value if previous is None else previous + weight * (value - previous)


@dataclass
class RegionSchedule:
    """When a detector replica searches the whole frame and when only around the faces it found last.

    Per stream: a full detection on every `every`th frame the replica handles, and whenever a known face is not
    found again (it left, or the scene cut); new faces appear at the next full one. Regions are tried only while
    their measured cost (faces x time per region, plus the full detections they fall back to) stays under a full
    detection's, so a crowd costs no more than searching every frame."""

    every: int
    known: dict[str, np.ndarray] = field(default_factory=dict)
    since_full: dict[str, int] = field(default_factory=dict)
    full_ms: float | None = None
    region_ms: float | None = None
    fallback_rate: float = 0.0
    shapes: set[tuple[int, int]] = field(default_factory=set)  # input shapes run once (the first run is not timed)

    def find(self, stream: str, image: np.ndarray, size: tuple[int, int], detect: Detect,
             max_faces: int = 0) -> tuple[np.ndarray, np.ndarray, bool]:
        """(boxes with score, keypoints, whether this was a full-frame detection); `size` is the full detection's
        input, which SCRFD fits the frame into."""
        since = self.since_full.get(stream)
        if since is not None and since + 1 < self.every:
            known = self.known[stream]
            if not len(known):
                self.since_full[stream] = since + 1
                return known, NO_KEYPOINTS, False
            if self.worth_regions(len(known)):
                scale = min(size[0] / image.shape[1], size[1] / image.shape[0])
                found = self.redetect(image, known, scale, detect)
                self.fallback_rate = average(self.fallback_rate, float(found is None))
                if found is not None:
                    self.known[stream], self.since_full[stream] = found[0], since + 1
                    return *found, False
        boxes, kps = self.timed(detect, image, size, max_faces, "full_ms")
        self.known[stream], self.since_full[stream] = boxes, 0
        return boxes, kps, True

    def worth_regions(self, faces: int) -> bool:
        if self.full_ms is None or self.region_ms is None:
            return True
        if faces * self.region_ms + self.fallback_rate * self.full_ms < self.full_ms:
            return True
        self.fallback_rate *= 0.9  # estimates drift back while regions are not tried, so they are tried again
        self.region_ms *= 0.95
        return False

    def redetect(self, image: np.ndarray, known: np.ndarray, scale: float,
                 detect: Detect) -> tuple[np.ndarray, np.ndarray] | None:
        """Each known face (xyxy rows) found again in its region, searched at `scale` (detector input pixels per
        frame pixel): (boxes with score, keypoints) in frame coordinates, or None when any of them is not found."""
        boxes, kps = [], []
        for box in known:
            left, top, right, bottom = region_around(box, image.shape)
            if right - left < 2 or bottom - top < 2:
                return None
            size = region_input(right - left, bottom - top, scale)
            found, points = self.timed(detect, image[top:bottom, left:right], size, 0, "region_ms")
            if not len(found):
                return None
            found = found + np.array([left, top, left, top, 0], np.float32)
            points = points + np.array([left, top], np.float32)
            best = int(np.argmax(iou_matrix(box[None, :4], found[:, :4])[0] + 1e-3 * found[:, 4]))
            boxes.append(found[best])
            kps.append(points[best])
        return distinct(np.stack(boxes), np.stack(kps))

    def timed(self, detect: Detect, image: np.ndarray, size: tuple[int, int], max_faces: int,
              estimate: str) -> tuple[np.ndarray, np.ndarray]:
        """`detect`, its time folded into the `estimate` attribute unless it is the first run of this input shape."""
        started = time.perf_counter()
        result = detect(image, size, max_faces)
        if size in self.shapes:
            setattr(self, estimate, average(getattr(self, estimate), (time.perf_counter() - started) * 1000))
        self.shapes.add(size)
        return result
