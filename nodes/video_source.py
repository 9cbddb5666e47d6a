"""Video source: a file, a folder of images, an RTSP/HTTP URL or a webcam index, through OpenCV."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from nodes.environment import FaceEnvironment, StoreParams
from nodes.messages import Frame
from nodes.vision.replay_buffer import ReplayBuffer
from nodes.vision.source_paths import is_stream, redacted
from zdg.node import Deploy, FatalNodeError, SourceNode


class VideoSourceParams(StoreParams):
    path: str | None = Field(None, description="file, image folder, rtsp/http URL, or webcam index "
                                               "(default: the shared sample clip under $ZDG_DATA_ROOT)")
    video_id: str | None = Field(None, description="name stored with results (default: file stem, after `camera-` "
                                 "when a camera is named; a named camera's stream: the camera); a new name is a new "
                                 "visit of the same footage. Streams add @<start time> per visit")
    stride: int = Field(1, ge=1, description="emit every Nth frame")
    max_fps: float = Field(0, ge=0, description="cap on emitted frames per second (0 = no cap)")
    start_s: float = Field(0, ge=0, description="skip to this time")
    end_s: float | None = Field(None, gt=0, description="stop at this time")
    skip_similar: float = Field(0, ge=0, le=1, description="skip frames whose colour histogram differs less (0 = off)")
    cut_distance: float = Field(0.2, ge=0, le=1, description="a frame whose colour histogram differs this much from the "
                                "last one is a cut (another shot): the sequencer ends every track there, so one "
                                "sequence never holds the people of two shots (0 = off; bench/RESULTS.md)")
    reconnect_s: float = Field(2.0, gt=0, description="first backoff when a stream drops (doubles to 30 s)")
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="how an rtsp:// camera sends: tcp (nothing lost "
                                                  "while the graph is busy or restarting) or udp (late packets lost)")
    checkpoint: bool = Field(False, description="resume a file where the store's checkpoint says its effects are "
                                                "durable, and do nothing for one finished before (needs the store)")
    camera: str | None = Field(None, description="the camera's name, stored with its sequences (default: the node's name)")
    location: str | None = Field(None, description="where the camera is, stored with its sequences")
    start_time: datetime | None = Field(None, description="wall-clock time of a file's first frame (ISO 8601; default: "
                                        "the file's creation_time tag where it has one); streams use the time they start")
    replay_s: float = Field(60, ge=0, description="a stream under graph recovery (on_crash: restart_graph) keeps the "
                            "frames since the store's checkpoint, up to this many seconds, to replay after a crash")
    replay_mb: int = Field(512, ge=0, description="and up to this many MiB of decoded frames")


class VideoSourceNode(SourceNode):
    """Emits a Frame per decoded (and not skipped) frame."""

    TYPE = "video_source"
    Params = VideoSourceParams
    outputs = {"out": Frame}
    deploy = Deploy(image="zdg-faces", models=True)
    preload = ("nodes.vision.video_reader",)

    @classmethod
    def deployment(cls, params: VideoSourceParams) -> Deploy:
        return Deploy(image="zdg-faces", models=True, store=params.checkpoint)

    @property
    def replays(self) -> bool:
        """A live stream under graph recovery: frames since the checkpoint are kept to replay."""
        return self.stream and self.context.graph_recovery and self.params.replay_s > 0

    @property
    def replays_after_own_crash(self) -> bool:
        return not self.stream  # a camera's past died with this process's replay buffer

    def setup(self) -> None:
        from nodes.vision import video_reader

        self.reader = video_reader
        self.path = self.params.path or FaceEnvironment.of(self.context.env).default_clip
        self.stream = is_stream(self.path)
        self.shown = redacted(self.path)  # the path everywhere but the reader: no camera password
        if not self.stream and not Path(self.path).exists():
            raise FatalNodeError(f"video source: {self.path}: no such file or folder")
        named = Path(self.path).stem if not self.stream else self.shown.replace("/", "_")
        if self.params.camera:  # a named camera's stream is the camera; a file it plays is camera-<file>
            named = self.params.camera if self.stream else f"{self.params.camera}-{named}"
        self.video_id = self.params.video_id or named
        if self.stream:  # frame numbers restart with the process: each start is a visit of its own
            self.start_time = time.time()
            self.video_id += time.strftime("@%Y%m%dT%H%M%S", time.gmtime(self.start_time))
            self.video_id += f".{int(self.start_time * 1000) % 1000:03d}Z"
        else:
            given = self.params.start_time
            self.start_time = given.timestamp() if given else video_reader.creation_time(self.path)
        self.camera = {"camera": self.params.camera or self.context.name, "location": self.params.location or "",
                       "start_time": self.start_time}
        self.emitted = 0
        self.last_hist: np.ndarray | None = None
        self.shot = 0
        self.client = None
        self.resume_frame, self.finished = 0, False
        self.live: Iterator[Frame] | None = None  # a stream, read on across rewinds
        self.buffer: ReplayBuffer | None = None
        self.replay_from: int | None = None
        self.checkpoint_at, self.checkpoint_read = 0, 0.0
        if (self.params.checkpoint and not self.stream) or self.replays:
            from nodes.store.handle import StoreClient

            self.client = StoreClient(self.params, self.context.env, self.log, self.context.count)
        if self.replays:
            self.buffer = ReplayBuffer(self.params.replay_s, self.params.replay_mb << 20, self.context.count)
        elif self.client is not None:
            self._resume()

    def _resume(self) -> None:
        """Where the store's checkpoint says this file's effects are durable (a finished file: nothing to do)."""
        assert self.client is not None
        self.resume_frame, end_frame = self.client.call(None, lambda store: store.checkpoint(self.video_id))
        self.finished = end_frame is not None and self.resume_frame >= end_frame
        if self.finished:
            self.log.warning("%s: finished before (video_id %s is in the store up to its end): nothing to do; "
                             "a new video_id processes it as a new visit", self.path, self.video_id)
        elif self.resume_frame:
            self.log.info("%s: resuming at frame %d (the store's checkpoint)", self.shown, self.resume_frame)

    def rewind(self) -> None:
        """The graph restarted: a file resumes at its checkpoint; a stream replays its buffer from there."""
        self.emitted = 0
        self.last_hist = None
        if self.buffer is not None:
            self.replay_from = self._checkpoint(force=True)
            self.log.warning("%s: replaying from frame %d (the store's checkpoint)", self.shown, self.replay_from)
        elif self.client is not None:
            self._resume()

    def _checkpoint(self, force: bool = False) -> int:
        """The stream's checkpoint, read from the store at most once a second; the last one read while it is down."""
        assert self.client is not None
        if force or time.monotonic() - self.checkpoint_read > 1.0:
            self.checkpoint_read = time.monotonic()
            try:
                self.checkpoint_at = self.client.connected(None).checkpoint(self.video_id)[0]
            except self.client.unreachable:
                self.client.lost()
        return self.checkpoint_at

    def _change(self, image: np.ndarray) -> bool:
        """Is the frame to be emitted (not too like the last one, skip_similar)? Counts a cut when it is another shot."""
        p = self.params
        hist = self.reader.histogram(image)
        distance = 1.0 if self.last_hist is None else self.reader.histogram_distance(self.last_hist, hist)
        if distance < p.skip_similar:
            self.context.count("skipped_similar")
            return False
        if p.cut_distance and self.last_hist is not None and distance >= p.cut_distance:
            self.shot += 1
            self.context.count("cuts")
        self.last_hist = hist
        return True

    def generate(self) -> Iterator[Frame]:
        if self.finished:
            return
        last = None
        frames = self._stream_frames() if self.stream else self._frames()
        try:
            for frame in frames:
                yield replace(frame, seq=self.emitted)
                self.emitted += 1
                last = frame.frame
        except self.reader.VideoEndedEarly as exc:
            self.context.fail_input(str(exc))
            return
        if self.client is not None and not self.stream and last is not None:
            self.client.call(None, lambda store: store.mark_end(self.video_id, last + 1))

    def _stream_frames(self) -> Iterator[Frame]:
        """A stream's frames: first those replayed after a rewind, then live ones, read on across rewinds."""
        if self.buffer is not None and self.replay_from is not None:
            replay = self.buffer.since(self.replay_from)
            self.context.count("frames_replayed", len(replay))
            yield from replay
        if self.live is None:
            self.live = self._frames()
        for frame in self.live:  # not `yield from`: closing this generator on a rewind leaves the stream open
            if self.buffer is not None:
                self.buffer.add(frame, self._checkpoint())
            yield frame

    def _wanted(self, index: int) -> bool:
        """Whether frame `index` is emitted: every `stride`th, from the resume frame on."""
        return index % self.params.stride == 0 and index >= self.resume_frame

    def _frames(self) -> Iterator[Frame]:
        p = self.params
        if Path(self.path).is_dir():
            frames = self.reader.frames_from_folder(self.path, self.set_progress, self.context.count)
        else:
            frames = self.reader.frames_from_video(self.path, p.start_s, p.end_s, p.reconnect_s, self.set_progress,
                                                   self.context.count, self.start_time, self._wanted, p.rtsp_transport)
        started, paced = time.monotonic(), 0
        for index, ts, image in frames:
            if not self._wanted(index):
                continue
            if (p.skip_similar or p.cut_distance) and not self._change(image):
                continue
            if p.max_fps:
                delay = started + paced / p.max_fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                paced += 1
            yield Frame(video=self.video_id, video_path=self.shown, frame=index, seq=0, ts=float(ts), shot=self.shot,
                        image=image, **self.camera)  # seq: generate() numbers them

    def teardown(self) -> None:
        if self.client is not None:
            self.client.close()
