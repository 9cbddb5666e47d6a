"""Synthetic people's sequences written to and decided in a real store (the `faces` fixture of conftest)."""

from __future__ import annotations

import numpy as np

from nodes.matching.decision import ReidSettings
from nodes.messages import Sequence
from nodes.store.pg import PgFaceStore
from nodes.store.reid import Query
from tests.vectors import People

DIM = 32
person = People(dim=DIM, count=6, seed=1)

_next_frame = iter(range(0, 10**6, 1000))


def sequence(key: str, vectors: np.ndarray, video: str = "v", torso: np.ndarray | None = None,
             ts: float = 0.0) -> Sequence:
    """A closed sequence on frames of its own (natural keys must not collide across sequences), at stream time
    `ts`, its person dressed in `torso` (None: not seen)."""
    n = len(vectors)
    first = next(_next_frame)
    return Sequence(
        sequence_id=f"{video}:{key}", video=video, video_path="", first_ts=ts, last_ts=ts + 1.0, embeddings=vectors,
        frames=np.arange(first, first + n, dtype=np.int32), face_index=np.zeros(n, np.int32),
        boxes_xyxy=np.tile([0, 0, 10, 10], (n, 1)).astype(np.float32), kps=np.zeros((n, 5, 2), np.float32),
        scores=np.ones(n, np.float32), quality=np.ones(n, np.float32), crops=np.zeros((0, 112, 112, 3), np.uint8),
        crop_frames=np.zeros(0, np.int32), torso=np.zeros(0, np.float32) if torso is None else torso)


def store(faces: PgFaceStore, seq: Sequence) -> int:
    return faces.write_sequences([seq])[0][0]


def decide(faces: PgFaceStore, sequence_db_id: int, vectors: np.ndarray, s: ReidSettings):
    return faces.decide(Query(sequence_db_id, vectors), s)
