"""Named identities from photos: the largest face of each photo, embedded, added to a named cluster."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nodes.messages import Frame

if TYPE_CHECKING:
    from nodes.detector import DetectorNode
    from nodes.embedder import EmbedderNode
    from nodes.store.face_store import FaceStore


def largest_face(detector: DetectorNode, embedder: EmbedderNode, image: np.ndarray,
                 label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """(embedding, box, keypoints, score) of the largest face in a photo, or None."""
    faces = detector.detect(Frame(label, label, 0, 0, 0.0, image))
    if not len(faces):
        return None
    areas = (faces.boxes_xyxy[:, 2] - faces.boxes_xyxy[:, 0]) * (faces.boxes_xyxy[:, 3] - faces.boxes_xyxy[:, 1])
    i = int(areas.argmax())
    return embedder.embed([faces.crops[i]])[0], faces.boxes_xyxy[i], faces.kps[i], float(faces.scores[i])


def enroll(store: FaceStore, name: str, photos: list[Path], detector: DetectorNode,
           embedder: EmbedderNode) -> tuple[int, list[str]]:
    """Add each photo's largest face to the named cluster; returns (cluster id, photos without a face)."""
    import cv2

    found, skipped = [], []
    for photo in photos:
        image = cv2.imread(str(photo))
        face = largest_face(detector, embedder, image, str(photo)) if image is not None else None
        if face is None:
            skipped.append(str(photo))
            continue
        found.append((str(photo.resolve()), str(photo), *face))
    return store.enroll(name, found), skipped
