"""Decode frames from a file, a folder of images, or a stream (URL or webcam index) with OpenCV."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from nodes.vision.photos import IMAGE_SUFFIXES
from nodes.vision.source_paths import is_stream, redacted
from zdg.node import FatalNodeError
from zdg.retry import Backoff

log = logging.getLogger("zdg.video")


class VideoEndedEarly(Exception):
    """Decoding a file stopped before the frame count its header declares (truncated or corrupt)."""
RECONNECT_CAP_S = 30.0
Progress = Callable[[int, int | None], None]
Count = Callable[[str], None]


def histogram(image: np.ndarray) -> np.ndarray:
    hist = cv2.calcHist([cv2.resize(image, (64, 36))], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3)
    return cv2.normalize(hist, hist).flatten()


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


def frames_from_folder(folder: str, progress: Progress, count: Count) -> Iterator[tuple[int, float, np.ndarray]]:
    files = sorted(f for f in Path(folder).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FatalNodeError(f"video source: {folder}: folder holds no images ({sorted(IMAGE_SUFFIXES)})")
    progress(0, len(files))
    for index, file in enumerate(files):
        image = cv2.imread(str(file))
        if image is None:
            count("unreadable_images")
            log.warning("%s: not a readable image; skipped", file)
            continue
        yield index, float(index), image


def _open(path: str, stream: bool, rtsp_transport: str = "tcp") -> cv2.VideoCapture:
    if path.lower().startswith("rtsp"):  # read by OpenCV's FFmpeg backend at each open
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{rtsp_transport}"
    cap = cv2.VideoCapture(int(path) if path.isdigit() else path)
    if not cap.isOpened():
        cap.release()
        if stream:
            return cap
        raise FatalNodeError(f"video source: {path}: cannot open as video (corrupt or unsupported format)")
    return cap


def frames_from_video(path: str, start_s: float, end_s: float | None, reconnect_s: float, progress: Progress,
                      count: Count, origin: float = 0.0,
                      wanted: Callable[[int], bool] = lambda index: True,
                      rtsp_transport: str = "tcp") -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, seconds, image) of a file from start_s to end_s, or of a stream for ever (reconnecting); a stream's
    seconds count from the wall-clock time `origin`. Frames not `wanted` are decoded (later ones need them) but not
    converted to images, and not yielded."""
    stream = is_stream(path)
    cap = _open(path, stream, rtsp_transport)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not stream else None
    if start_s and not stream:
        cap.set(cv2.CAP_PROP_POS_MSEC, start_s * 1000)
    index = int(round(start_s * fps)) if not stream else 0
    progress(index, total)
    backoff = Backoff(first=reconnect_s, cap=RECONNECT_CAP_S)
    decoded_any = False
    while True:
        skip = not wanted(index)
        ok, image = (cap.grab(), None) if skip else cap.read() if cap.isOpened() else (False, None)
        if not ok:
            if not stream:
                if not decoded_any:
                    raise FatalNodeError(f"video source: {path}: no frame could be decoded (corrupt or unsupported)")
                if total and index < total - 1:
                    cap.release()
                    raise VideoEndedEarly(f"video source: {path}: decoding stopped at frame {index} of {total} "
                                          "(truncated or corrupt); the frames before it were processed")
                break
            count("reconnects")
            delay = backoff.next()
            log.warning("stream %s dropped; reconnecting in %.1fs", redacted(path), delay)
            cap.release()
            time.sleep(delay)
            cap = _open(path, stream, rtsp_transport)
            continue
        decoded_any = True
        backoff.reset()
        ts = index / fps if not stream else time.time() - origin
        if end_s is not None and not stream and ts > end_s:
            break
        if not skip:
            yield index, ts, image
        index += 1
        progress(index, total)
    cap.release()


def creation_time(path: str) -> float:
    """Wall-clock time (epoch seconds) of a video file's first frame from its creation_time tag; 0 if none."""
    import av

    try:
        with av.open(path) as container:
            tag = container.metadata.get("creation_time") or container.streams.video[0].metadata.get("creation_time")
    except (av.error.FFmpegError, IndexError, OSError):
        return 0.0
    try:
        return datetime.fromisoformat(tag.replace("Z", "+00:00")).timestamp() if tag else 0.0
    except ValueError:
        return 0.0
