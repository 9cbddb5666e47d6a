"""Synthetic embeddings for store and decision tests: people as orthonormal centres plus noise."""

from __future__ import annotations

import numpy as np


class People:
    def __init__(self, dim: int, count: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.centres = np.linalg.qr(self.rng.normal(size=(dim, dim)))[0][:count]

    def __call__(self, i: int, n: int = 12, noise: float = 0.12) -> np.ndarray:
        """n unit embeddings of person i."""
        v = self.centres[i] + self.rng.normal(scale=noise, size=(n, self.centres.shape[1]))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
