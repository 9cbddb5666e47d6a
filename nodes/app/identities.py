"""Named identities from photos: the largest face of each photo, embedded, added to a named cluster."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nodes.vision.photos import photo_faces

if TYPE_CHECKING:
    from nodes.detector import DetectorNode
    from nodes.embedder import EmbedderNode
    from nodes.store.face_store import FaceStore


def enroll(store: FaceStore, name: str, photos: list[Path], detector: DetectorNode,
           embedder: EmbedderNode) -> tuple[int | None, list[str]]:
    """Add each photo's largest face to the named cluster; returns (cluster id, photos without a face).
    When no photo has a face, nothing is stored (no empty identity) and the id is None."""
    import cv2

    found, skipped = photo_faces([(str(photo), cv2.imread(str(photo))) for photo in photos], detector, embedder)
    faces = [(str(Path(label).resolve()), label, *face) for label, face in found]
    return (store.enroll(name, faces, embedder.recogniser.name) if faces else None), skipped
