"""The typed messages of the face graphs: one type per edge, one name per quantity end to end.

    video_source --Frame--> detector --Faces--> embedder --Faces(+embeddings)--> sequencer
    --Sequence--> db_writer --Sequence(+sequence_db_id)--> reid --ReidDecision--> topic "reid"

Shapes use letters for sizes shared inside a message: n faces, d the model's embedding
dimension (never assumed), k kept crops, h x w the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from dataclasses import fields as fields_of
from typing import Any, ClassVar

import numpy as np

from zdg.typed import TypedMessage

CROP_SIZE = 112


@dataclass(frozen=True, eq=False, kw_only=True)
class FromSource(TypedMessage):
    """Where a message's content comes from: the source, and the camera's name, place and clock as the graph gives
    them, carried from its frames to its sequences and stored with them."""

    video: str  # the source's name (video_id)
    video_path: str
    camera: str = ""
    location: str = ""
    start_time: float = 0.0  # wall-clock time (epoch seconds) of the source's time 0, 0: unknown

    def source_fields(self) -> dict[str, Any]:
        """The source's fields, to pass on to the next message."""
        return {f.name: getattr(self, f.name) for f in fields_of(FromSource)}


@dataclass(frozen=True, eq=False, kw_only=True)
class FromFrame(FromSource):
    """From one frame of a source."""

    frame: int  # index in the source
    seq: int  # index among emitted frames (the order the sequencer restores)
    ts: float  # seconds into the clip, or wall-clock time for streams
    shot: int = 0  # the source's cuts (camera changes) before this frame: no track crosses one

    def frame_fields(self) -> dict[str, Any]:
        """The source's and the frame's fields, to pass on to the next message."""
        return {f.name: getattr(self, f.name) for f in fields_of(FromFrame)}


@dataclass(frozen=True, eq=False, kw_only=True)
class Frame(FromFrame):
    """One decoded frame of a source (BGR)."""

    KIND: ClassVar[str] = "frame"
    ARRAYS: ClassVar[dict] = {"image": (("h", "w", 3), "uint8")}

    image: np.ndarray

    def fields(self) -> dict[str, Any]:
        h, w = self.image.shape[:2]
        return {**super().fields(), "width": w, "height": h}


@dataclass(frozen=True, eq=False, kw_only=True)
class Faces(FromFrame):
    """Faces found in one frame, as parallel arrays; `embeddings` stays (0, 0) until embedded."""

    KIND: ClassVar[str] = "faces"
    ARRAYS: ClassVar[dict] = {
        "boxes_xyxy": (("n", 4), "float32"), "kps": (("n", 5, 2), "float32"), "scores": (("n",), "float32"),
        "quality": (("n",), "float32"), "crops": (("n", CROP_SIZE, CROP_SIZE, 3), "uint8"),
        "embeddings": (("e", "d"), "float32"), "torso": (("m", "t"), "float32"),
    }

    boxes_xyxy: np.ndarray
    kps: np.ndarray
    scores: np.ndarray
    quality: np.ndarray
    crops: np.ndarray
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    torso: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # per face (0, 0): not measured
    width: int = 0  # of the frame, in pixels (0: unknown)
    height: int = 0
    model: str = ""  # the recogniser that made `embeddings` (its calibration names it): set by the embedder

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("embeddings", "torso"):
            if len(getattr(self, name)) not in (0, len(self.boxes_xyxy)):
                raise ValueError(f"Faces.{name}: expected {len(self.boxes_xyxy)} rows, got {len(getattr(self, name))}")

    def __len__(self) -> int:
        return len(self.boxes_xyxy)

    @classmethod
    def empty(cls, frame: Frame) -> Faces:
        return cls(**frame.frame_fields(), boxes_xyxy=np.zeros((0, 4), np.float32), kps=np.zeros((0, 5, 2), np.float32),
                   scores=np.zeros(0, np.float32), quality=np.zeros(0, np.float32),
                   crops=np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8), width=frame.image.shape[1],
                   height=frame.image.shape[0])

    def embedded(self, embeddings: np.ndarray, model: str) -> Faces:
        return replace(self, embeddings=embeddings, model=model)


@dataclass(frozen=True, eq=False, kw_only=True)
class Sequence(FromSource):
    """One person while on screen: every face of a track, its best crops, and (once stored) its store id."""

    KIND: ClassVar[str] = "sequence"
    ARRAYS: ClassVar[dict] = {
        "embeddings": (("n", "d"), "float32"), "frames": (("n",), "int32"), "face_index": (("n",), "int32"),
        "boxes_xyxy": (("n", 4), "float32"), "kps": (("n", 5, 2), "float32"), "scores": (("n",), "float32"),
        "quality": (("n",), "float32"), "crops": (("k", CROP_SIZE, CROP_SIZE, 3), "uint8"),
        "crop_frames": (("k",), "int32"), "torso": (("t",), "float32"),
    }

    sequence_id: str
    first_ts: float
    last_ts: float
    embeddings: np.ndarray
    frames: np.ndarray
    face_index: np.ndarray
    boxes_xyxy: np.ndarray
    kps: np.ndarray
    scores: np.ndarray
    quality: np.ndarray
    crops: np.ndarray
    crop_frames: np.ndarray
    closed: bool = True  # False: an update of a sequence still open (sequencer port `update`)
    sequence_db_id: int | None = None  # set by the db writer
    resume_frame: int | None = None  # once this and every earlier sequence are durable, the source may resume here
    width: int = 0  # frame size (0: unknown), to tell faces cut off by the frame edge
    height: int = 0
    model: str = ""  # the recogniser that made `embeddings`
    continues: str | None = None  # a part of a long sequence: the key of the part before (it joins that one's cluster)
    torso: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # mean clothing colours (empty: unseen)

    @property
    def size(self) -> int:
        return len(self.embeddings)

    @property
    def first_frame(self) -> int:
        return int(self.frames[0])

    @property
    def last_frame(self) -> int:
        return int(self.frames[-1])

    @property
    def centroid(self) -> np.ndarray:
        mean = self.embeddings.mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)

    def fields(self) -> dict[str, Any]:
        return {**super().fields(), "first_frame": self.first_frame, "last_frame": self.last_frame, "size": self.size,
                "mean_score": float(self.scores.mean())}

    def stored_as(self, sequence_db_id: int) -> Sequence:
        return replace(self, sequence_db_id=sequence_db_id)


@dataclass(frozen=True, eq=False, kw_only=True)
class ReidDecision(TypedMessage):
    """Which face cluster a stored sequence joined. `status`: new, recognised, already_assigned, junk (not a
    person's face: no cluster), merged (maintenance moved the sequence from cluster `merged_from`, which stays
    reachable as an alias of `cluster_id`) or provisional (a sequence still on screen: the cluster it would join
    now, None for nobody yet; nothing is stored, and its decision follows when it closes)."""

    KIND: ClassVar[str] = "reid"
    ARRAYS: ClassVar[dict] = {"frames": (("n",), "int32"), "boxes_xyxy": (("n", 4), "float32"),
                              "crops": (("k", CROP_SIZE, CROP_SIZE, 3), "uint8"), "crop_frames": (("k",), "int32")}

    sequence_id: str
    sequence_db_id: int | None  # None: provisional (not stored yet)
    video: str
    video_path: str
    first_frame: int
    last_frame: int
    cluster_id: int | None
    status: str
    distance: float | None  # an int on the wire is taken as a float
    silhouette: float | None
    name: str | None
    frames: np.ndarray
    boxes_xyxy: np.ndarray
    crops: np.ndarray
    crop_frames: np.ndarray
    merged_from: int | None = None

    @property
    def label(self) -> str:
        """What a person sees: the enrolled name, else "face <cluster id>" ("junk" for a non-face)."""
        if self.cluster_id is None:
            return "?" if self.status == "provisional" else "junk"
        return self.name or f"face {self.cluster_id}"

    def fields(self) -> dict[str, Any]:
        return {**super().fields(), "label": self.label}
