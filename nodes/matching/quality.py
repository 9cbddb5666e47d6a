"""Which stored sequences are junk (not a person's face, or too poor to tell who): they stay in the store
but never join or start a person's cluster."""

from __future__ import annotations

import numpy as np

from nodes.matching.decision import ReidSettings
from nodes.messages import Sequence

EDGE_MARGIN = 2.0  # pixels: a box this close to the frame edge is cut off by it


def cut_off(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Per face: does its box touch the frame edge (part of the face outside the picture)?"""
    return ((boxes[:, 0] <= EDGE_MARGIN) | (boxes[:, 1] <= EDGE_MARGIN)
            | (boxes[:, 2] >= width - EDGE_MARGIN) | (boxes[:, 3] >= height - EDGE_MARGIN))


def spread(embeddings: np.ndarray) -> float | None:
    """How far apart a set's faces are: the mean cosine distance over its pairs (None for one face)."""
    n = len(embeddings)
    if n < 2:
        return None
    d = 1 - embeddings @ embeddings.T
    return float((d.sum() - np.trace(d)) / (n * (n - 1)))


def junk_reason(seq: Sequence, s: ReidSettings) -> str | None:
    """Why the sequence is junk, or None when it may be a person. `s` has its thresholds resolved."""
    score = float(np.median(seq.scores))
    if score < s.junk_score:
        return f"median detector score {score:.2f} < junk_score {s.junk_score:g}"
    if seq.width and seq.height:
        edge = float(cut_off(seq.boxes_xyxy, seq.width, seq.height).mean())
        if edge >= s.junk_edge:
            return f"{edge:.0%} of its faces cut off by the frame edge (junk_edge {s.junk_edge:g})"
    apart = spread(seq.embeddings)
    if apart is not None and apart >= s.threshold:
        return f"incoherent: its faces are {apart:.2f} apart on average, beyond the join threshold {s.threshold:.2f}"
    return None
