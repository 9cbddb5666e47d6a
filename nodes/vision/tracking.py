"""Tracks: faces linked across frames by IoU and embedding cosine together (Hungarian, scipy)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from nodes.matching.setdist import unit
from nodes.messages import CROP_SIZE, Faces, Sequence

INFEASIBLE = 1e6


@dataclass(frozen=True)
class LinkRule:
    """When a face continues a track (the sequencer's params)."""

    iou_weight: float
    min_iou: float
    min_cosine: float
    split_cosine: float
    max_cost: float


@dataclass
class Track:
    video: str
    video_path: str
    embeddings: list[np.ndarray] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    face_index: list[int] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    kps: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    quality: list[float] = field(default_factory=list)
    crops: list[tuple[float, int, np.ndarray]] = field(default_factory=list)
    last_seq: int = 0
    width: int = 0
    height: int = 0
    model: str = ""
    source: dict[str, Any] = field(default_factory=dict)  # its frames' source fields (FromSource)
    updated_ts: float | None = None  # when it was last emitted open (None: since its start)
    continues: str | None = None  # key of the part before it, when a long sequence is emitted in parts
    carried: tuple[np.ndarray, np.ndarray] | None = None  # (last box, recent embedding) of that part, for linking
    torso_sum: np.ndarray | None = None  # of its faces' measured clothing histograms
    torso_seen: int = 0
    shot: int = 0  # of its last face: a cut ends it

    def __len__(self) -> int:
        return len(self.embeddings)

    def recent(self, n: int = 5) -> np.ndarray:
        if not self.embeddings and self.carried is not None:
            return self.carried[1]
        return unit(np.mean(self.embeddings[-n:], axis=0))

    def last_box(self) -> np.ndarray:
        return self.boxes[-1] if self.boxes or self.carried is None else self.carried[0]

    def continuation(self) -> Track:
        """An empty track that goes on where this one stops (a part of a long sequence): linked to it by key,
        and matched to the next faces by this one's last box and recent embeddings."""
        key = sequence_key(self.video, self.frames[0], self.face_index[0])
        return Track(self.video, self.video_path, last_seq=self.last_seq, continues=key,
                     carried=(self.boxes[-1], self.recent()), shot=self.shot)

    def add(self, faces: Faces, i: int, keep_crops: int) -> None:
        self.embeddings.append(faces.embeddings[i])
        self.frames.append(faces.frame)
        self.face_index.append(i)
        self.timestamps.append(faces.ts)
        self.boxes.append(faces.boxes_xyxy[i])
        self.kps.append(faces.kps[i])
        self.scores.append(float(faces.scores[i]))
        self.quality.append(float(faces.quality[i]))
        if len(faces.torso) and np.isfinite(faces.torso[i]).all() and faces.torso[i].sum() > 0:
            self.torso_sum = faces.torso[i].copy() if self.torso_sum is None else self.torso_sum + faces.torso[i]
            self.torso_seen += 1
        self.last_seq = faces.seq
        self.shot = faces.shot
        self.width, self.height, self.model = faces.width, faces.height, faces.model
        if self.updated_ts is None:
            self.updated_ts = faces.ts
        self.source = faces.source_fields()
        if keep_crops:
            self.crops.append((float(faces.quality[i]), faces.frame, faces.crops[i]))
            self.crops.sort(key=lambda c: -c[0])
            del self.crops[keep_crops:]

    def sequence(self, closed: bool) -> Sequence:
        crops = np.stack([c[2] for c in self.crops]) if self.crops else np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)
        return Sequence(
            **self.source, sequence_id=sequence_key(self.video, self.frames[0], self.face_index[0]),
            first_ts=float(self.timestamps[0]), last_ts=float(self.timestamps[-1]),
            embeddings=np.stack(self.embeddings).astype(np.float32), frames=np.asarray(self.frames, np.int32),
            face_index=np.asarray(self.face_index, np.int32), boxes_xyxy=np.stack(self.boxes).astype(np.float32),
            kps=np.stack(self.kps).astype(np.float32), scores=np.asarray(self.scores, np.float32),
            quality=np.asarray(self.quality, np.float32), crops=crops,
            crop_frames=np.asarray([c[1] for c in self.crops], np.int32), closed=closed, width=self.width,
            height=self.height, model=self.model, continues=self.continues,
            torso=(self.torso_sum / self.torso_seen).astype(np.float32) if self.torso_seen else np.zeros(0, np.float32))


def sequence_key(video: str, first_frame: int, first_face: int) -> str:
    """Where a sequence is: its source (a visit of it), first frame and first face there. Never a counter,
    so a rerun, a restarted sequencer or a replay gives the same key to the same sequence."""
    return f"{video}:{first_frame}:{first_face}"


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


def link(tracks: list[Track], faces: Faces, rule: LinkRule,
         count: Callable[[str], None]) -> tuple[dict[int, Track], list[Track]]:
    """Which open track each face continues ({face index: track}), and the tracks split off by an identity jump."""
    if not tracks or not len(faces):
        return {}, []
    ious = iou_matrix(np.stack([t.last_box() for t in tracks]), faces.boxes_xyxy)
    cos = np.stack([t.recent() for t in tracks]) @ faces.embeddings.T
    cost = rule.iou_weight * (1 - ious) + (1 - rule.iou_weight) * np.clip(1 - cos, 0, 1)
    cost[(ious < rule.min_iou) & (cos < rule.min_cosine)] = INFEASIBLE
    matched: dict[int, Track] = {}
    split: list[Track] = []
    for r, c in zip(*linear_sum_assignment(cost), strict=True):
        if cost[r, c] > rule.max_cost:
            continue
        if cos[r, c] < rule.split_cosine:
            count("splits")
            split.append(tracks[r])
            continue
        matched[c] = tracks[r]
    return matched, split
