"""`zdg eval faces DIR`: single-image vs set-to-set identification on a labelled folder.

Each identity (a folder of photos) gets a gallery set from its first photo and a probe set from
its last photo (the same photo when there is only one), each made of small variations (shifts,
flips, brightness) as a sequence of video frames would be. Probes can be degraded (downscaled,
blurred). Single-image top-1: each probe vector alone against the gallery; set-to-set top-1: the
whole probe set against each gallery set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from nodes.identities import largest_face
from nodes.photos import IMAGE_SUFFIXES
from nodes.setdist import SetDistance, set_distance

if TYPE_CHECKING:
    from nodes.detector import DetectorNode
    from nodes.embedder import EmbedderNode

VARIANTS = 8


@dataclass
class EvalRow:
    degradation: str
    identities: int
    no_face: int
    single_top1: float
    set_top1: float


def identity_folders(root: Path) -> dict[str, list[Path]]:
    """Leaf folders holding images, named by their path under root."""
    out = {}
    for folder in sorted(p for p in [root, *root.rglob("*")] if p.is_dir()):
        images = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            out[str(folder.relative_to(root))] = images
    return out


def variations(image: np.ndarray, seed: int) -> list[np.ndarray]:
    """Frame-like variants: small shifts and scale changes, mirror, brightness."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    out = []
    for i in range(VARIANTS):
        scale = rng.uniform(0.95, 1.05)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-5, 5), scale)
        m[:, 2] += rng.uniform(-0.03, 0.03, 2) * (w, h)
        variant = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        variant = cv2.convertScaleAbs(variant, alpha=rng.uniform(0.85, 1.15), beta=rng.uniform(-15, 15))
        out.append(variant[:, ::-1].copy() if i % 2 else variant)
    return out


def degrade(image: np.ndarray, downscale: float, blur: float) -> np.ndarray:
    h, w = image.shape[:2]
    if downscale > 1:
        small = cv2.resize(image, (max(1, int(w / downscale)), max(1, int(h / downscale))), interpolation=cv2.INTER_AREA)
        image = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    return image


def embed_set(detector: DetectorNode, embedder: EmbedderNode, images: list[np.ndarray]) -> np.ndarray:
    found = [largest_face(detector, embedder, im, "eval") for im in images]
    vectors = [f[0] for f in found if f is not None]
    return np.stack(vectors) if vectors else np.zeros((0, embedder.recogniser.dim), np.float32)


def evaluate(root: Path, detector: DetectorNode, embedder: EmbedderNode, levels: list[tuple[float, float]],
             method: SetDistance) -> list[EvalRow]:
    people = identity_folders(root)
    galleries = {}
    for i, (name, photos) in enumerate(people.items()):
        vectors = embed_set(detector, embedder, variations(cv2.imread(str(photos[0])), i))
        if len(vectors):
            galleries[name] = vectors
    rows = []
    for downscale, blur in levels:
        single_hits = single_total = set_hits = probed = no_face = 0
        for i, (name, photos) in enumerate(people.items()):
            if name not in galleries:
                continue
            probe = embed_set(detector, embedder, [degrade(v, downscale, blur) for v in
                                                   variations(cv2.imread(str(photos[-1])), 1000 + i)])
            if not len(probe):
                no_face += 1
                continue
            probed += 1
            names = list(galleries)
            nearest = np.stack([(probe @ galleries[n].T).max(axis=1) for n in names], axis=1)
            single_hits += int(sum(names[j] == name for j in nearest.argmax(axis=1)))
            single_total += len(probe)
            best = min(names, key=lambda n: set_distance(probe, galleries[n], method))
            set_hits += int(best == name)
        label = "clean" if downscale <= 1 and blur <= 0 else f"downscale {downscale:g}x, blur {blur:g}"
        rows.append(EvalRow(label, probed, no_face, single_hits / max(single_total, 1), set_hits / max(probed, 1)))
    return rows
