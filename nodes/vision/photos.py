"""Photos: which suffixes count, the photos under a list of files and folders, and the largest face of each."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nodes.messages import Frame

if TYPE_CHECKING:
    from nodes.detector import DetectorNode
    from nodes.embedder import EmbedderNode

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def photo_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(f for f in path.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


PAD_FACTOR = 3  # a photo that is only a face is centred on a canvas this many times its size


def largest_face(detector: DetectorNode, embedder: EmbedderNode, image: np.ndarray,
                 label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """(embedding, box, keypoints, score) of the largest face in a photo, or None. A tight face crop, where
    the detector sees no face, is tried again padded, as the face would sit in a wider picture."""
    faces = detector.detect(Frame(video=label, video_path=label, frame=0, seq=0, ts=0.0, image=image))
    offset = np.zeros(2, np.float32)
    if not len(faces):
        h, w = image.shape[:2]
        side = PAD_FACTOR * max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        padded = np.full((side, side, 3), 127, np.uint8)
        padded[top:top + h, left:left + w] = image
        faces = detector.detect(Frame(video=label, video_path=label, frame=0, seq=0, ts=0.0, image=padded))
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
