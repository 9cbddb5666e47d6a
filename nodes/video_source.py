"""Video source: a file, a folder of images, an RTSP/HTTP URL or a webcam index, through OpenCV."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydantic import Field

from nodes.environment import FaceEnvironment
from nodes.messages import Frame
from zdg.node import Deploy, FatalNodeError, Params, SourceNode


class VideoSourceParams(Params):
    path: str | None = Field(None, description="file, image folder, rtsp/http URL, or webcam index "
                                               "(default: the shared sample clip under $ZDG_DATA_ROOT)")
    video_id: str | None = Field(None, description="name stored with results (default: file stem)")
    stride: int = Field(1, ge=1, description="emit every Nth frame")
    max_fps: float = Field(0, ge=0, description="cap on emitted frames per second (0 = no cap)")
    start_s: float = Field(0, ge=0, description="skip to this time")
    end_s: float | None = Field(None, gt=0, description="stop at this time")
    skip_similar: float = Field(0, ge=0, le=1, description="skip frames whose colour histogram differs less (0 = off)")
    reconnect_s: float = Field(2.0, gt=0, description="first backoff when a stream drops (doubles to 30 s)")


class VideoSourceNode(SourceNode):
    """Emits a Frame per decoded (and not skipped) frame."""

    TYPE = "video_source"
    Params = VideoSourceParams
    outputs = {"out": Frame}
    deploy = Deploy(image="zdg-faces", models=True)

    def setup(self) -> None:
        from nodes import video_reader

        self.reader = video_reader
        self.path = self.params.path or FaceEnvironment.of(self.context.env).default_clip
        self.stream = video_reader.is_stream(self.path)
        if not self.stream and not Path(self.path).exists():
            raise FatalNodeError(f"video source: {self.path}: no such file or folder")
        self.video_id = self.params.video_id or (Path(self.path).stem if not self.stream else self.path.replace("/", "_"))
        self.emitted = 0
        self.last_hist: np.ndarray | None = None

    def _similar_to_last(self, image: np.ndarray) -> bool:
        hist = self.reader.histogram(image)
        distance = 1.0 if self.last_hist is None else self.reader.histogram_distance(self.last_hist, hist)
        if distance < self.params.skip_similar:
            return True
        self.last_hist = hist
        return False

    def generate(self) -> Iterator[Frame]:
        p = self.params
        if Path(self.path).is_dir():
            frames = self.reader.frames_from_folder(self.path, self.set_progress, self.context.count)
        else:
            frames = self.reader.frames_from_video(self.path, p.start_s, p.end_s, p.reconnect_s, self.set_progress,
                                                   self.context.count)
        started = time.monotonic()
        for index, ts, image in frames:
            if index % p.stride:
                continue
            if p.skip_similar and self._similar_to_last(image):
                self.context.count("skipped_similar")
                continue
            if p.max_fps:
                delay = started + self.emitted / p.max_fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield Frame(self.video_id, self.path, index, self.emitted, float(ts), image)
            self.emitted += 1
