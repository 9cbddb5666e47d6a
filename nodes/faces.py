"""The message currency for faces: parallel arrays that validate their shapes on creation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zdg.message import Message

CROP_SIZE = 112


@dataclass
class FrameInfo:
    video: str
    video_path: str
    frame: int
    seq: int
    ts: float

    def fields(self) -> dict[str, Any]:
        return {"video": self.video, "video_path": self.video_path, "frame": self.frame, "seq": self.seq, "ts": self.ts}

    @classmethod
    def of(cls, msg: Message) -> FrameInfo:
        f = msg.fields
        return cls(f["video"], f.get("video_path", ""), int(f["frame"]), int(f["seq"]), float(f["ts"]))


@dataclass
class Faces:
    """Faces found in one frame. `boxes_xyxy` (n,4), `kps` (n,5,2), `scores` (n,), `quality` (n,),
    `crops` (n,112,112,3) aligned BGR, `embeddings` (n,d) L2-normalised (empty until embedded)."""

    info: FrameInfo
    boxes_xyxy: np.ndarray
    kps: np.ndarray
    scores: np.ndarray
    quality: np.ndarray
    crops: np.ndarray
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def __post_init__(self) -> None:
        n = len(self.boxes_xyxy)
        expect = {
            "boxes_xyxy": (n, 4), "kps": (n, 5, 2), "scores": (n,), "quality": (n,),
            "crops": (n, CROP_SIZE, CROP_SIZE, 3),
        }
        for name, shape in expect.items():
            actual = getattr(self, name).shape
            if actual != shape:
                raise ValueError(f"Faces.{name}: expected shape {shape}, got {actual}")
        if self.embeddings.size and self.embeddings.shape[0] != n:
            raise ValueError(f"Faces.embeddings: expected {n} rows, got {self.embeddings.shape[0]}")

    def __len__(self) -> int:
        return len(self.boxes_xyxy)

    @classmethod
    def empty(cls, info: FrameInfo) -> Faces:
        return cls(info, np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros(0, np.float32),
                   np.zeros(0, np.float32), np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8))

    def to_message(self) -> Message:
        arrays = {"boxes_xyxy": self.boxes_xyxy, "kps": self.kps, "scores": self.scores, "quality": self.quality,
                  "crops": self.crops}
        if self.embeddings.size:
            arrays["embeddings"] = self.embeddings
        return Message(fields={"kind": "faces", **self.info.fields()}, arrays=arrays)

    @classmethod
    def from_message(cls, msg: Message) -> Faces:
        a = msg.arrays
        return cls(FrameInfo.of(msg), a["boxes_xyxy"], a["kps"], a["scores"], a["quality"], a["crops"],
                   a.get("embeddings", np.zeros((0, 0), np.float32)))
