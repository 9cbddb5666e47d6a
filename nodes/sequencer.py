"""Sequencer: links faces across frames into face sequences (one person while on screen).

Assignment is by IoU and embedding cosine together (Hungarian, scipy). A sequence closes after
`max_gap` frames without a match, and at a cut (the source numbers its shots: a new camera angle may
put someone else where a face was); sequences shorter than `min_length` are dropped (counted); a
match whose embedding jumps below `split_cosine` starts a new sequence; both cosines come from the
embedding model's calibration (`zdg calibrate`) unless the graph sets them. Frames may arrive out of
order from replicated upstream nodes and are put back in order first. When the graph recovers through
its epoch (`on_crash: restart_graph`), a missing frame is waited for (`missing_wait_s`) rather than skipped
once the reorder window is full: a node that died with it is restarted and the graph rewinds, so nothing
lacking it is decided in the meantime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pydantic import Field

from nodes.messages import Faces, Sequence
from nodes.vision.source_paths import is_stream
from zdg.message import Message
from zdg.node import Deploy, Node, Params

if TYPE_CHECKING:
    from nodes.vision.tracking import LinkRule, Track


class SequencerParams(Params):
    max_gap: int = Field(8, ge=0, description="frames (as emitted) without a match before a sequence closes")
    min_length: int = Field(3, ge=1, description="shorter sequences are dropped")
    iou_weight: float = Field(0.5, ge=0, le=1, description="weight of 1-IoU in the cost; the rest is 1-cosine")
    min_iou: float = Field(0.05, ge=0, le=1, description="pairs below this IoU need min_cosine to link")
    min_cosine: float | None = Field(None, ge=-1, le=1, description="appearance alone links pairs at or above this "
                                     "(default: the embedding model's calibrated link_cosine)")
    split_cosine: float | None = Field(None, ge=-1, le=1, description="a match below this cosine starts a new sequence "
                                       "(default: the model's calibrated split_cosine)")
    calibration: str | None = Field(None, description="calibration file (default: the one shipped for the model)")
    max_cost: float = Field(0.8, gt=0, description="assignments above this cost are refused")
    best_crops: int = Field(4, ge=0, le=32, description="crops kept per sequence (highest quality)")
    update_every: int = Field(0, ge=0, description="emit an open sequence on port `update` every N faces (0 = never)")
    max_faces: int = Field(500, ge=0, description="a sequence this long is emitted and goes on as a new part linked "
                           "to it (its decision joins the same identity): memory stays bounded (0 = no cap)")
    update_after_s: float = Field(0, ge=0, description="and when it has been open this many seconds since its start or "
                                  "last update (0 = never): reid publishes a provisional decision for it")
    reorder_window: int = Field(64, ge=1, description="frames held while waiting for a missing one")
    missing_wait_s: float = Field(120, ge=0, description="with graph recovery: seconds a missing frame is waited for "
                                  "once the reorder window is full, while its node restarts (then it is skipped)")
    idle_close_s: float = Field(60, gt=0, description="a stream's visit that sends no frame for this long has its open "
                                "sequences closed: a camera whose source crashed, or that is gone (files end with "
                                "their end of stream)")


@dataclass
class VideoState:
    next_seq: int = 0
    pending: dict[int, Faces] = field(default_factory=dict)
    tracks: list[Track] = field(default_factory=list)
    next_frame: int = 0  # the frame after the last one processed
    missing_since: float | None = None  # when the reorder window filled while next_seq was missing
    last_frame_at: float = field(default_factory=time.monotonic)  # when its last frame arrived
    stream: bool = False  # a live stream's visit: it has no end of stream of its own when its source dies

    def resume_frame(self) -> int:
        """Where a rerun must start to rebuild every open track: the first frame of the oldest one."""
        return min([t.frames[0] for t in self.tracks if t.frames] + [self.next_frame])


def with_resume_frames(out: list[Sequence | Message], resume: int) -> list[Sequence | Message]:
    """Each closed sequence gets the resume frame that holds once it and those before it are stored:
    `resume`, lowered to the first frame of any sequence emitted after it."""
    later = resume
    marked: list[Sequence | Message] = []
    for item in reversed(out):
        if isinstance(item, Sequence):
            marked.append(replace(item, resume_frame=later))
            later = min(later, item.first_frame)
        else:
            marked.append(item)
    return marked[::-1]


class SequencerNode(Node):
    """Faces (with embeddings) in; closed sequences on port `out`, open ones on port `update`."""

    TYPE = "sequencer"
    Params = SequencerParams
    inputs = {"in": Faces}
    outputs = {"out": Sequence, "update": Sequence}
    deploy = Deploy(image="zdg-faces")
    preload = ("nodes.vision.tracking",)

    def setup(self) -> None:
        from nodes.vision import tracking

        self.tracking = tracking
        self.rules: dict[str, LinkRule] = {}
        self.videos: dict[str, VideoState] = {}

    def rule(self, model: str) -> LinkRule:
        """The link rule for faces embedded by `model`: thresholds set in the graph, else its calibration."""
        if model not in self.rules:
            p = self.params
            link, split = p.min_cosine, p.split_cosine
            if link is None or split is None:
                from nodes.matching.thresholds import load_thresholds

                calibrated = load_thresholds(model, p.calibration)
                link = calibrated.link_cosine if link is None else link
                split = calibrated.split_cosine if split is None else split
            self.rules[model] = self.tracking.LinkRule(p.iou_weight, p.min_iou, link, split, p.max_cost)
        return self.rules[model]

    def process(self, faces: Faces) -> list[Sequence | Message]:
        state = self.videos.get(faces.video)
        if state is None:
            state = self.videos[faces.video] = VideoState(stream=is_stream(faces.video_path))
        state.pending[faces.seq] = faces
        state.last_frame_at = time.monotonic()
        idle = self._close_idle()  # other sources': already marked with their own resume frames
        out: list[Sequence | Message] = []
        if len(state.pending) > self.params.reorder_window and state.next_seq not in state.pending \
                and self._gave_up_waiting(state):
            skipped_to = min(state.pending)
            self.context.count("missing_frames", skipped_to - state.next_seq)
            state.next_seq = skipped_to
        while state.next_seq in state.pending:
            out += self._step(state, state.pending.pop(state.next_seq))
            state.next_seq += 1
            state.missing_since = None
        return idle + with_resume_frames(out, state.resume_frame())

    def idle(self) -> list[Sequence | Message]:
        return self._close_idle()

    def _close_idle(self) -> list[Sequence | Message]:
        """Close every open sequence of the streams that have sent nothing for `idle_close_s` (they are forgotten)."""
        now = time.monotonic()
        idle = [video for video, state in self.videos.items()
                if state.stream and now - state.last_frame_at > self.params.idle_close_s]
        out: list[Sequence | Message] = []
        for video in idle:
            self.context.count("idle_sources_closed")
            out += self._close_all(self.videos.pop(video))
        return out

    def _close_all(self, state: VideoState) -> list[Sequence | Message]:
        """Held frames in order, then every open sequence closed: the source's end."""
        closed: list[Sequence | Message] = []
        for seq in sorted(state.pending):
            closed += self._step(state, state.pending.pop(seq))
        for track in state.tracks:
            closed += self._close(track)
        state.tracks = []
        return with_resume_frames(closed, state.next_frame)

    def _gave_up_waiting(self, state: VideoState) -> bool:
        """Whether to skip the missing frame now: at once, unless the graph recovers through its epoch; then
        after `missing_wait_s` (the frame's node is being restarted and the graph will rewind to it)."""
        if not self.context.graph_recovery:
            return True
        now = time.monotonic()
        if state.missing_since is None:
            state.missing_since = now
            self.context.count("waits_for_missing_frames")
        if now - state.missing_since < self.params.missing_wait_s:
            return False
        state.missing_since = None
        return True

    def _close(self, track: Track) -> list[Sequence]:
        if not len(track):  # a part that never got a face: the sequence ended with the part before
            return []
        if len(track) < self.params.min_length and track.continues is None:
            self.context.count("short_sequences_dropped")
            return []
        self.context.count("sequences")
        return [track.sequence(closed=True)]

    def _step(self, state: VideoState, faces: Faces) -> list[Sequence | Message]:
        p = self.params
        out: list[Sequence | Message] = []
        state.next_frame = faces.frame + 1
        alive = []
        for track in state.tracks:
            if track.shot != faces.shot:
                self.context.count("sequences_ended_by_cuts")
                out += self._close(track)
            elif faces.seq - track.last_seq > p.max_gap:
                out += self._close(track)
            else:
                alive.append(track)
        matched, split = self.tracking.link(alive, faces, self.rule(faces.model), self.context.count) if len(faces) \
            else ({}, [])
        for track in split:
            out += self._close(track)
        state.tracks = [t for t in alive if not any(t is s for s in split)]
        for i in range(len(faces)):
            track = matched.get(i)
            if track is None:
                track = self.tracking.Track(faces.video, faces.video_path)
                state.tracks.append(track)
            track.add(faces, i, p.best_crops)
            if p.max_faces and len(track) >= p.max_faces:
                self.context.count("long_sequence_parts")
                out += self._close(track)
                state.tracks[next(k for k, t in enumerate(state.tracks) if t is track)] = track.continuation()
                continue
            by_count = p.update_every and len(track) % p.update_every == 0
            by_time = p.update_after_s and faces.ts - track.updated_ts >= p.update_after_s
            if by_count or by_time:
                track.updated_ts = faces.ts
                out.append(track.sequence(closed=False).to_message("update"))
        return out

    def finish(self) -> list[Sequence | Message]:
        """End of stream: process held frames in order and close every open sequence. When a source was
        stopped before its end (Ctrl-C), open sequences are not cut short: a rerun resumes before them."""
        out: list[Sequence | Message] = []
        if not self.context.stream_complete:
            self.context.count("open_sequences_left_for_resume", sum(len(s.tracks) for s in self.videos.values()))
            return out
        for state in self.videos.values():
            out += self._close_all(state)
        return out
