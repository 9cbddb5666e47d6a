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


PAD_FACTOR = 3  # a photo that is only a face is centred on a canvas this many times its size


def largest_face(detector: DetectorNode, embedder: EmbedderNode, image: np.ndarray,
                 label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """(embedding, box, keypoints, score) of the largest face in a photo, or None. A tight face crop, where
    the detector sees no face, is tried again padded, as the face would sit in a wider picture."""
    faces = detector.detect(Frame(label, label, 0, 0, 0.0, image))
    offset = np.zeros(2, np.float32)
    if not len(faces):
        h, w = image.shape[:2]
        side = PAD_FACTOR * max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        padded = np.full((side, side, 3), 127, np.uint8)
        padded[top:top + h, left:left + w] = image
        faces = detector.detect(Frame(label, label, 0, 0, 0.0, padded))
        offset = np.array([left, top], np.float32)
    if not len(faces):
        return None
    areas = (faces.boxes_xyxy[:, 2] - faces.boxes_xyxy[:, 0]) * (faces.boxes_xyxy[:, 3] - faces.boxes_xyxy[:, 1])
    i = int(areas.argmax())
    return (embedder.embed([faces.crops[i]])[0], faces.boxes_xyxy[i] - np.tile(offset, 2), faces.kps[i] - offset,
            float(faces.scores[i]))


def photo_faces(images: list[tuple[str, np.ndarray | None]], detector: DetectorNode,
                embedder: EmbedderNode) -> tuple[list[tuple[str, tuple]], list[str]]:
    """(label, largest face) of each (label, BGR image), and the labels of images that are unreadable (None) or
    have no face."""
    found, missing = [], []
    for label, image in images:
        face = largest_face(detector, embedder, image, label) if image is not None else None
        if face is None:
            missing.append(label)
        else:
            found.append((label, face))
    return found, missing


def enroll(store: FaceStore, name: str, photos: list[Path], detector: DetectorNode,
           embedder: EmbedderNode) -> tuple[int | None, list[str]]:
    """Add each photo's largest face to the named cluster; returns (cluster id, photos without a face).
    When no photo has a face, nothing is stored (no empty identity) and the id is None."""
    import cv2

    found, skipped = photo_faces([(str(photo), cv2.imread(str(photo))) for photo in photos], detector, embedder)
    faces = [(str(Path(label).resolve()), label, *face) for label, face in found]
    return (store.enroll(name, faces, embedder.recogniser.name) if faces else None), skipped
