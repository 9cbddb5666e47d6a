"""Sequencer: links faces across frames into face sequences (one person while on screen).

Assignment is by IoU and embedding cosine together (Hungarian, scipy). A sequence closes after
`max_gap` frames without a match; sequences shorter than `min_length` are dropped (counted); a
match whose embedding jumps below `split_cosine` starts a new sequence. Frames may arrive out of
order from replicated upstream nodes and are put back in order first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import Field
from scipy.optimize import linear_sum_assignment

from nodes.faces import Faces
from nodes.setdist import unit
from zdg.message import Message
from zdg.node import Node, Params

INFEASIBLE = 1e6


class SequencerParams(Params):
    max_gap: int = Field(8, ge=0, description="frames (as emitted) without a match before a sequence closes")
    min_length: int = Field(3, ge=1, description="shorter sequences are dropped")
    iou_weight: float = Field(0.5, ge=0, le=1, description="weight of 1-IoU in the cost; the rest is 1-cosine")
    min_iou: float = Field(0.05, ge=0, le=1, description="pairs below this IoU need min_cosine to link")
    min_cosine: float = Field(0.5, ge=-1, le=1, description="appearance alone links pairs at or above this")
    split_cosine: float = Field(0.35, ge=-1, le=1, description="a match below this cosine starts a new sequence")
    max_cost: float = Field(0.8, gt=0, description="assignments above this cost are refused")
    best_crops: int = Field(4, ge=0, le=32, description="crops kept per sequence (highest quality)")
    update_every: int = Field(0, ge=0, description="emit sequence.update on port `update` every N faces (0 = never)")
    reorder_window: int = Field(64, ge=1, description="frames held while waiting for a missing one")


@dataclass
class Track:
    number: int
    video: str
    video_path: str
    vectors: list[np.ndarray] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    face_index: list[int] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    kps: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    quality: list[float] = field(default_factory=list)
    crops: list[tuple[float, int, np.ndarray]] = field(default_factory=list)
    last_seq: int = 0

    def recent(self, n: int = 5) -> np.ndarray:
        return unit(np.mean(self.vectors[-n:], axis=0))

    def add(self, faces: Faces, i: int, keep_crops: int) -> None:
        self.vectors.append(faces.embeddings[i])
        self.frames.append(faces.info.frame)
        self.face_index.append(i)
        self.timestamps.append(faces.info.ts)
        self.boxes.append(faces.boxes_xyxy[i])
        self.kps.append(faces.kps[i])
        self.scores.append(float(faces.scores[i]))
        self.quality.append(float(faces.quality[i]))
        self.last_seq = faces.info.seq
        if keep_crops:
            self.crops.append((float(faces.quality[i]), faces.info.frame, faces.crops[i]))
            self.crops.sort(key=lambda c: -c[0])
            del self.crops[keep_crops:]

    def message(self, kind: str, port: str) -> Message:
        vectors = np.stack(self.vectors).astype(np.float32)
        centroid = unit(vectors.mean(axis=0))
        crops = np.stack([c[2] for c in self.crops]) if self.crops else np.zeros((0, 112, 112, 3), np.uint8)
        return Message(
            port=port,
            fields={"kind": kind, "sequence_id": f"{self.video}:{self.number}", "video": self.video,
                    "video_path": self.video_path, "first_frame": self.frames[0], "last_frame": self.frames[-1],
                    "first_ts": self.timestamps[0], "last_ts": self.timestamps[-1], "size": len(self.vectors),
                    "mean_score": float(np.mean(self.scores))},
            arrays={"vectors": vectors, "centroid": centroid.astype(np.float32),
                    "frames": np.asarray(self.frames, np.int32), "face_index": np.asarray(self.face_index, np.int32),
                    "boxes_xyxy": np.stack(self.boxes).astype(np.float32),
                    "kps": np.stack(self.kps).astype(np.float32), "scores": np.asarray(self.scores, np.float32),
                    "quality": np.asarray(self.quality, np.float32), "crops": crops,
                    "crop_frames": np.asarray([c[1] for c in self.crops], np.int32)},
        )


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between (n,4) and (m,4) xyxy boxes."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass
class VideoState:
    next_seq: int = 0
    pending: dict[int, Faces] = field(default_factory=dict)
    tracks: list[Track] = field(default_factory=list)


class SequencerNode(Node):
    """Faces (with embeddings) in; `sequence.closed` on port `out`, `sequence.update` on port `update`."""

    Params = SequencerParams
    outputs = ("out", "update")

    def setup(self) -> None:
        self.videos: dict[str, VideoState] = {}
        self.numbers = 0

    def process(self, msg: Message) -> list[Message]:
        faces = Faces.from_message(msg)
        state = self.videos.setdefault(faces.info.video, VideoState())
        state.pending[faces.info.seq] = faces
        out: list[Message] = []
        if len(state.pending) > self.params.reorder_window and state.next_seq not in state.pending:
            skipped_to = min(state.pending)
            self.context.count("missing_frames", skipped_to - state.next_seq)
            state.next_seq = skipped_to
        while state.next_seq in state.pending:
            out += self._step(state, state.pending.pop(state.next_seq))
            state.next_seq += 1
        return out

    def _close(self, track: Track) -> list[Message]:
        if len(track.vectors) < self.params.min_length:
            self.context.count("short_sequences_dropped")
            return []
        self.context.count("sequences")
        return [track.message("sequence.closed", "out")]

    def _step(self, state: VideoState, faces: Faces) -> list[Message]:
        p = self.params
        out: list[Message] = []
        seq = faces.info.seq
        alive = []
        for track in state.tracks:
            if seq - track.last_seq > p.max_gap:
                out += self._close(track)
            else:
                alive.append(track)
        state.tracks = alive
        if not len(faces):
            return out
        matched: dict[int, Track] = {}
        split: list[Track] = []
        if alive:
            ious = iou_matrix(np.stack([t.boxes[-1] for t in alive]), faces.boxes_xyxy)
            cos = np.stack([t.recent() for t in alive]) @ faces.embeddings.T
            cost = p.iou_weight * (1 - ious) + (1 - p.iou_weight) * np.clip(1 - cos, 0, 1)
            cost[(ious < p.min_iou) & (cos < p.min_cosine)] = INFEASIBLE
            for r, c in zip(*linear_sum_assignment(cost), strict=True):
                if cost[r, c] > p.max_cost:
                    continue
                if cos[r, c] < p.split_cosine:
                    self.context.count("splits")
                    out += self._close(alive[r])
                    split.append(alive[r])
                    continue
                matched[c] = alive[r]
            state.tracks = [t for t in alive if not any(t is s for s in split)]
        for i in range(len(faces)):
            track = matched.get(i)
            if track is None:
                self.numbers += 1
                track = Track(self.numbers, faces.info.video, faces.info.video_path)
                state.tracks.append(track)
            track.add(faces, i, p.best_crops)
            if p.update_every and len(track.vectors) % p.update_every == 0:
                out.append(track.message("sequence.update", "update"))
        return out

    def finish(self) -> list[Message]:
        """End of stream: process held frames in order and close every open sequence."""
        out: list[Message] = []
        for state in self.videos.values():
            for seq in sorted(state.pending):
                out += self._step(state, state.pending.pop(seq))
            for track in state.tracks:
                out += self._close(track)
            state.tracks = []
        return out
