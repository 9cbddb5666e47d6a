"""Set-to-set distances between face sequences/clusters, on L2-normalised vectors."""

from __future__ import annotations

from typing import Literal

import numpy as np

SetDistance = Literal["mean_min", "hausdorff", "modified_hausdorff", "centroid"]


def unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (float32)."""
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def set_distance(a: np.ndarray, b: np.ndarray, method: SetDistance, weights: np.ndarray | None = None) -> float:
    """Cosine-based distance between vector sets a (n,d) and b (m,d); `weights` (n,) weigh a's vectors
    (face quality) where the method averages over them (mean_min, modified_hausdorff, centroid). Never below 0:
    float rounding makes a vector's distance to itself about -4e-08."""
    return max(0.0, _set_distance(a, b, method, weights))


def _set_distance(a: np.ndarray, b: np.ndarray, method: SetDistance, weights: np.ndarray | None) -> float:
    w = None if weights is None or not np.any(weights > 0) else np.clip(weights, 0, None)
    if method == "centroid":
        return float(1 - unit(np.average(a, axis=0, weights=w)) @ unit(b.mean(axis=0)))
    d = 1 - a @ b.T
    if method == "mean_min":
        return float(np.average(d.min(axis=1), weights=w))
    if method == "hausdorff":
        return float(max(d.min(axis=1).max(), d.min(axis=0).max()))
    return float(max(np.average(d.min(axis=1), weights=w), d.min(axis=0).mean()))


def nearer_side_distance(a: np.ndarray, b: np.ndarray, method: SetDistance) -> float:
    """The set distance between two sets from whichever side it is smaller (a join or merge can go either way)."""
    return min(set_distance(a, b, method), set_distance(b, a, method))
