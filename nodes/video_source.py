"""Video source: a file, a folder of images, an RTSP/HTTP URL or a webcam index, through OpenCV."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

from nodes.faces import FrameInfo
from zdg.message import Message
from zdg.node import FatalNodeError, Params, SourceNode

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
DEFAULT_CLIP = "videos/friends_poker.mp4"


def default_clip() -> str:
    """The shared sample clip ($ZDG_DATA_ROOT, else ../shared/data beside the repo)."""
    root = os.environ.get("ZDG_DATA_ROOT") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    return str(Path(root) / DEFAULT_CLIP)


class VideoSourceParams(Params):
    path: str = Field(default_factory=default_clip, description="file, image folder, rtsp/http URL, or webcam index")
    video_id: str | None = Field(None, description="name stored with results (default: file stem)")
    stride: int = Field(1, ge=1, description="emit every Nth frame")
    max_fps: float = Field(0, ge=0, description="cap on emitted frames per second (0 = no cap)")
    start_s: float = Field(0, ge=0, description="skip to this time")
    end_s: float | None = Field(None, gt=0, description="stop at this time")
    skip_similar: float = Field(0, ge=0, le=1, description="skip frames whose colour histogram differs less (0 = off)")
    reconnect_s: float = Field(2.0, gt=0, description="first backoff when a stream drops (doubles to 30 s)")


def _is_stream(path: str) -> bool:
    return path.isdigit() or "://" in path


def _histogram(image: np.ndarray) -> np.ndarray:
    hist = cv2.calcHist([cv2.resize(image, (64, 36))], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3)
    return cv2.normalize(hist, hist).flatten()


class VideoSourceNode(SourceNode):
    """Emits {video, video_path, frame, seq, ts} with array `image` (HxWx3 BGR uint8)."""

    Params = VideoSourceParams

    def setup(self) -> None:
        p = self.params
        self.stream = _is_stream(p.path)
        if not self.stream and not Path(p.path).exists():
            raise FatalNodeError(f"video source: {p.path}: no such file or folder")
        self.video_id = p.video_id or (Path(p.path).stem if not self.stream else p.path.replace("/", "_"))
        self.emitted = 0
        self.last_hist: np.ndarray | None = None

    def _frames_from_folder(self) -> Iterator[tuple[int, float, np.ndarray]]:
        files = sorted(f for f in Path(self.params.path).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FatalNodeError(f"video source: {self.params.path}: folder holds no images ({sorted(IMAGE_SUFFIXES)})")
        self.set_progress(0, len(files))
        for index, file in enumerate(files):
            image = cv2.imread(str(file))
            if image is None:
                self.context.count("unreadable_images")
                self.log.warning("%s: not a readable image; skipped", file)
                continue
            yield index, float(index), image

    def _open(self) -> cv2.VideoCapture:
        path = self.params.path
        cap = cv2.VideoCapture(int(path) if path.isdigit() else path)
        if not cap.isOpened():
            cap.release()
            if self.stream:
                return cap
            raise FatalNodeError(f"video source: {path}: cannot open as video (corrupt or unsupported format)")
        return cap

    def _frames_from_video(self) -> Iterator[tuple[int, float, np.ndarray]]:
        p = self.params
        cap = self._open()
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not self.stream else None
        if p.start_s and not self.stream:
            cap.set(cv2.CAP_PROP_POS_MSEC, p.start_s * 1000)
        index = int(round(p.start_s * fps)) if not self.stream else 0
        self.set_progress(index, total)
        backoff = p.reconnect_s
        decoded_any = False
        while True:
            ok, image = cap.read() if cap.isOpened() else (False, None)
            if not ok:
                if not self.stream:
                    if not decoded_any:
                        raise FatalNodeError(f"video source: {p.path}: no frame could be decoded (corrupt or unsupported)")
                    break
                self.context.count("reconnects")
                self.log.warning("stream %s dropped; reconnecting in %.1fs", p.path, backoff)
                cap.release()
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                cap = self._open()
                continue
            decoded_any = True
            backoff = p.reconnect_s
            ts = index / fps if not self.stream else time.time()
            if p.end_s is not None and not self.stream and ts > p.end_s:
                break
            yield index, ts, image
            index += 1
            self.set_progress(index, total)
        cap.release()

    def generate(self) -> Iterator[Message]:
        p = self.params
        frames = self._frames_from_folder() if Path(p.path).is_dir() else self._frames_from_video()
        started = time.monotonic()
        for index, ts, image in frames:
            if index % p.stride:
                continue
            if p.skip_similar:
                hist = _histogram(image)
                distance = 1.0 if self.last_hist is None else cv2.compareHist(self.last_hist, hist, cv2.HISTCMP_BHATTACHARYYA)
                if distance < p.skip_similar:
                    self.context.count("skipped_similar")
                    continue
                self.last_hist = hist
            if p.max_fps:
                delay = started + self.emitted / p.max_fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            info = FrameInfo(self.video_id, p.path, index, self.emitted, ts)
            h, w = image.shape[:2]
            yield Message(fields={"kind": "frame", **info.fields(), "width": w, "height": h}, arrays={"image": image})
            self.emitted += 1
