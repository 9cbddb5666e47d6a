"""Pictures of results: a PNG strip of crops, and a copy of a video with labelled boxes drawn."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

HOLD_FRAMES = 6  # a box stays up this many frames (covers the source's frame stride)


def colour(key: str) -> tuple[int, int, int]:
    rng = np.random.default_rng(abs(hash(key)) % (2**32))
    return tuple(int(v) for v in rng.integers(64, 256, 3))


def strip_name(sequence_key: str) -> str:
    """The file name (no suffix) of a sequence's crop strip: its key made safe for a path."""
    return sequence_key.replace(":", "_").replace("/", "_")


def remove_strips(folder: Path, sequences: list[tuple[str, str]]) -> int:
    """Delete the crop strips of these (source, key) sequences under a gallery folder; returns how many were there."""
    removed = 0
    for source, key in sequences:
        strip = folder / source / f"{strip_name(key)}.png"
        removed += strip.exists()
        strip.unlink(missing_ok=True)
    return removed


def write_strip(crops: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(list(crops), axis=1))


def crop_jpeg(crop: np.ndarray) -> bytes:
    """One face crop (BGR, as detectors cut them) as JPEG bytes."""
    return cv2.imencode(".jpg", crop)[1].tobytes()


def label_style(height: int) -> tuple[float, int]:
    """(font scale, stroke) so labels stand about 3 % of the frame high (22 px at 720p), readable when scaled down."""
    return height / 720 * 0.9, max(1, round(height / 360))


def annotate_video(video_path: str, boxes: dict[int, list[tuple[np.ndarray, str]]], out_path: Path) -> int:
    """Copy the video with labelled boxes drawn, as H.264 MP4 (browsers play it); returns frames written."""
    import av

    cap = cv2.VideoCapture(video_path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    scale, stroke = label_style(h)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    container = av.open(str(out_path), "w")
    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"  # 4:2:0 needs even sides
    stream.options = {"preset": "veryfast", "crf": "23", "movflags": "+faststart"}
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
            cv2.rectangle(frame, (x1, y1), (x2, y2), colour(label), stroke + 1)
            cv2.putText(frame, label, (x1, max(int(26 * scale), y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour(label),
                        stroke, cv2.LINE_AA)
        image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:stream.height, :stream.width]), format="bgr24")
        container.mux(stream.encode(image))
        written += 1
        index += 1
    container.mux(stream.encode())
    container.close()
    cap.release()
    return written
