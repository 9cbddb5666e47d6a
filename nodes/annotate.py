"""Pictures of results: a PNG strip of crops, and a copy of a video with labelled boxes drawn."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

HOLD_FRAMES = 6  # a box stays up this many frames (covers the source's frame stride)


def colour(key: str) -> tuple[int, int, int]:
    rng = np.random.default_rng(abs(hash(key)) % (2**32))
    return tuple(int(v) for v in rng.integers(64, 256, 3))


def write_strip(crops: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(list(crops), axis=1))


def annotate_video(video_path: str, boxes: dict[int, list[tuple[np.ndarray, str]]], out_path: Path) -> int:
    """Copy the video with labelled boxes drawn; returns frames written."""
    cap = cv2.VideoCapture(video_path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    index, written, current, shown_at = 0, 0, [], -HOLD_FRAMES
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index in boxes:
            current, shown_at = boxes[index], index
        elif index - shown_at > HOLD_FRAMES:
            current = []
        for box, label in current:
            x1, y1, x2, y2 = (int(v) for v in box)
            cv2.rectangle(frame, (x1, y1), (x2, y2), colour(label), 2)
            cv2.putText(frame, label, (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour(label), 1, cv2.LINE_AA)
        writer.write(frame)
        written += 1
        index += 1
    writer.release()
    cap.release()
    return written
