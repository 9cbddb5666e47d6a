"""Search the store by photo: the photos' faces as one set, ranked against the stored identities by the
re-identification rule's own set distance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nodes.matching.decision import ReidSettings, limit_for, ranked
from nodes.vision.photos import photo_faces

if TYPE_CHECKING:
    from nodes.detector import DetectorNode
    from nodes.embedder import EmbedderNode
    from nodes.store.face_store import FaceStore


@dataclass(frozen=True)
class Match:
    cluster_id: int
    name: str | None
    distance: float
    joins: bool  # within the threshold a sequence needs to join it: the store would say "seen before"


def photo_embeddings(images: list[tuple[str, np.ndarray]], detector: DetectorNode,
                     embedder: EmbedderNode) -> tuple[np.ndarray, list[str]]:
    """The largest face's embedding of each (label, BGR image), and the labels of images without a face."""
    found, missing = photo_faces(images, detector, embedder)
    return np.stack([face[0] for _, face in found]) if found else np.zeros((0, 0), np.float32), missing


def search(store: FaceStore, embeddings: np.ndarray, s: ReidSettings, top: int = 5) -> list[Match]:
    """The `top` nearest identities to a set of face embeddings, nearest first."""
    if not len(embeddings):
        return []
    wide = s.model_copy(update={"max_candidates": max(top, s.max_candidates),
                                "centroid_candidates": max(top, s.centroid_candidates)})
    found = store.candidates(embeddings, wide, None)
    return [Match(c.cluster_id, c.name, d, d < limit_for(c, s)) for d, c in ranked(embeddings, found, s)[:top]]
