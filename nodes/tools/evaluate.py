"""`zdg eval faces DIR`: identification on a labelled photo folder, closed and open set.

Every photo is a probe in turn (leave one out): the gallery of each identity is the sets of its other photos,
each set made of small variations (shifts, flips, brightness) as a sequence of video frames would be. Probes
can be degraded (downscaled, blurred). Closed set: rank-1 for probes whose identity has another photo, one
face vector at a time (single-image) and the whole probe set at once (set-to-set). Open set: every probe
against every other identity gives the different-person distances; the threshold accepting `far` of them
gives the true accept rate (TAR) of the same-person ones. A photo where no face is found is a miss, listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from nodes.matching.setdist import SetDistance, set_distance
from nodes.vision.photos import IMAGE_SUFFIXES, largest_face
from zdg.node import CommandError

if TYPE_CHECKING:
    from nodes.detector import DetectorNode
    from nodes.embedder import EmbedderNode

VARIANTS = 8


@dataclass
class EvalRow:
    degradation: str
    identities: int
    probes: int  # probe photos whose identity has another photo in the gallery
    no_face: list[str]  # photos where the detector found no face (misses)
    single_top1: float
    set_top1: float
    far: float
    threshold: float | None  # set distance accepting `far` of the different-person pairs
    tar: float | None  # same-person probes accepted at that threshold


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
             method: SetDistance, far: float = 0.01) -> list[EvalRow]:
    photos = [(name, path) for name, paths in identity_folders(root).items() for path in paths]
    images = {path: cv2.imread(str(path)) for _, path in photos}
    unreadable = [str(p) for p, image in images.items() if image is None]
    if unreadable:
        raise CommandError(f"not an image: {', '.join(unreadable)}")
    gallery = {path: embed_set(detector, embedder, variations(images[path], i)) for i, (_, path) in enumerate(photos)}
    rows = []
    for downscale, blur in levels:
        label = "clean" if downscale <= 1 and blur <= 0 else f"downscale {downscale:g}x, blur {blur:g}"
        rows.append(_score(photos, images, gallery, detector, embedder, downscale, blur, method, far, label))
    return rows


def _score(photos: list[tuple[str, Path]], images: dict, gallery: dict, detector: DetectorNode, embedder: EmbedderNode,
           downscale: float, blur: float, method: SetDistance, far: float, label: str) -> EvalRow:
    no_face = sorted({str(p) for p, vectors in gallery.items() if not len(vectors)})
    same, different = [], []
    single_hits = single_total = set_hits = probes = 0
    for i, (name, path) in enumerate(photos):
        others = {}
        for other_name, other_path in photos:
            if other_path != path and len(gallery[other_path]):
                others.setdefault(other_name, []).append(gallery[other_path])
        sets = {n: np.concatenate(v) for n, v in others.items()}
        has_gallery = name in sets or any(n == name and p != path for n, p in photos)
        probes += has_gallery
        probe = embed_set(detector, embedder, [degrade(v, downscale, blur) for v in variations(images[path], 1000 + i)])
        if not len(probe):
            no_face.append(f"{path} ({label})")
            same += [np.inf] if has_gallery else []
            continue
        distances = {n: set_distance(probe, g, method) for n, g in sets.items()}
        different += [d for n, d in distances.items() if n != name]
        if not has_gallery:
            continue
        same.append(distances.get(name, np.inf))
        set_hits += int(min(distances, key=distances.get) == name)
        names = list(sets)
        nearest = np.stack([(probe @ sets[n].T).max(axis=1) for n in names], axis=1)
        single_hits += int(sum(names[j] == name for j in nearest.argmax(axis=1)))
        single_total += len(probe)
    threshold = float(np.quantile(different, far)) if different else None
    tar = float(np.mean(np.asarray(same) < threshold)) if same and threshold is not None else None
    return EvalRow(label, len({n for n, _ in photos}), probes, sorted(set(no_face)), single_hits / max(single_total, 1),
                   set_hits / max(probes, 1), far, threshold, tar)
