"""The clustering maths of maintenance and the report, numpy only: clusters' nearest clusters, silhouettes, and the
candidate merges of constrained agglomerative clustering with the rules that keep lookalikes apart."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nodes.matching.decision import ReidSettings
from nodes.matching.setdist import l2_normalise, nearer_side_distance

NEIGHBOURS = 10  # clusters a pass compares each cluster with: its nearest by centroid


def by_cluster(vectors: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """The rows of each cluster, for labels in runs (as `sampled` orders them)."""
    if not len(labels):
        return {}
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    ends = np.r_[starts[1:], len(labels)]
    return {int(labels[a]): vectors[a:b] for a, b in zip(starts, ends, strict=True)}


def nearest_clusters(sets: dict[int, np.ndarray], k: int, chunk: int = 1024) -> dict[int, list[int]]:
    """Each cluster's `k` nearest other clusters by centroid (cosine), in chunks of rows: O(clusters^2) dot
    products but O(chunk x clusters) memory."""
    ids = list(sets)
    k = min(k, len(ids) - 1)
    if k < 1:
        return {c: [] for c in ids}
    centroids = l2_normalise(np.stack([v.mean(axis=0) for v in sets.values()]))
    out: dict[int, list[int]] = {}
    for start in range(0, len(ids), chunk):
        similar = centroids[start:start + chunk] @ centroids.T
        rows = np.arange(len(similar))
        similar[rows, rows + start] = -np.inf  # not itself
        for row, nearest in enumerate(np.argpartition(-similar, k - 1, axis=1)[:, :k]):
            out[ids[start + row]] = [ids[j] for j in nearest]
    return out


def silhouettes(sets: dict[int, np.ndarray], k: int = NEIGHBOURS) -> dict[int, np.ndarray] | None:
    """Per-vector cosine silhouette of each cluster's (unit) vectors in O(clusters x k) instead of O(vectors^2):
    b is taken over the cluster's `k` nearest clusters by centroid, so it is never below sklearn's
    silhouette_samples' and equal to it when the nearest cluster by mean distance is among them (always when k
    covers every other cluster). None with fewer than two clusters or no more vectors than clusters (undefined)."""
    if len(sets) < 2 or sum(len(v) for v in sets.values()) <= len(sets):
        return None
    return cluster_silhouettes(sets, nearest_clusters(sets, k))


def cluster_silhouettes(sets: dict[int, np.ndarray], near: dict[int, list[int]]) -> dict[int, np.ndarray]:
    """Per-vector silhouettes of the clusters that `near` maps to their neighbours, b over those neighbours."""
    out = {}
    for c, others in near.items():
        vectors = sets[c]
        if len(vectors) == 1 or not others:
            out[c] = np.zeros(len(vectors))  # sklearn's convention for a cluster of one
            continue
        within = 1 - vectors @ vectors.T
        a = (within.sum(axis=1) - np.diag(within)) / (len(vectors) - 1)
        b = np.min([(1 - vectors @ sets[other].T).mean(axis=1) for other in others], axis=0)
        out[c] = (b - a) / np.maximum(np.maximum(a, b), 1e-12)
    return out


@dataclass
class CandidatePairs:
    """Set distances of the cluster pairs a pass may merge, closest first (a heap; entries of pairs that were
    dropped or re-measured are skipped when they come up), and every distance measured, taken or not."""

    distance: dict[tuple[int, int], float] = field(default_factory=dict)
    of_cluster: dict[int, set[tuple[int, int]]] = field(default_factory=dict)
    heap: list[tuple[float, tuple[int, int]]] = field(default_factory=list)
    measured: dict[int, dict[int, float]] = field(default_factory=dict)

    def measure(self, a: int, b: int, distance: float) -> None:
        """Remember a distance without queueing the pair."""
        self.measured.setdefault(a, {})[b] = distance
        self.measured.setdefault(b, {})[a] = distance

    def add(self, a: int, b: int, distance: float) -> None:
        self.measure(a, b, distance)
        pair = (min(a, b), max(a, b))
        self.distance[pair] = distance
        for c in pair:
            self.of_cluster.setdefault(c, set()).add(pair)
        heapq.heappush(self.heap, (distance, pair))

    def __contains__(self, pair: tuple[int, int]) -> bool:
        return (min(pair), max(pair)) in self.distance

    def pop(self) -> tuple[tuple[int, int], float] | None:
        """The closest pair left (removed), or None."""
        while self.heap:
            distance, pair = heapq.heappop(self.heap)
            if self.distance.get(pair) == distance:
                self.remove(pair)
                return pair, distance
        return None

    def remove(self, pair: tuple[int, int]) -> None:
        del self.distance[pair]
        for c in pair:
            self.of_cluster[c].discard(pair)

    def drop(self, cluster: int) -> set[int]:
        """Remove every pair of `cluster`; the clusters it was paired with."""
        others = set()
        for a, b in self.of_cluster.pop(cluster, set()):
            other = a if b == cluster else b
            del self.distance[(a, b)]
            self.of_cluster[other].discard((a, b))
            others.add(other)
        return others

    def forget(self, cluster: int) -> set[int]:
        """Forget every distance measured with `cluster`; the clusters it was measured against."""
        others = set(self.measured.pop(cluster, {}))
        for other in others:
            self.measured[other].pop(cluster, None)
        return others

    def clear_match(self, a: int, b: int, distance: float, margin: float,
                    rival: Callable[[int, int], bool] = lambda x, other: True) -> bool:
        """Are a and b each other's nearest by the margin: every other cluster measured against either (x), for
        which `rival(x, other)` holds, farther than distance / (1 - margin)?"""
        return all(distance <= (1 - margin) * d for x, y in ((a, b), (b, a))
                   for other, d in self.measured.get(x, {}).items() if other != y and rival(x, other))


def contested_merge(a: int, b: int, distance: float, sets: dict[int, np.ndarray], apart: dict[int, set[int]],
                    s: ReidSettings) -> bool:
    """Is someone known to be another person than a or b (on screen with it, or marked different) nearly as near
    to it as a and b are to each other? Then the two sit among lookalikes and are not merged on distance alone."""
    return any(distance >= (1 - s.margin) * nearer_side_distance(sets[x], sets[c], s.distance)
               for x in (a, b) for c in apart.get(x, ()) if c in sets and c not in (a, b))
