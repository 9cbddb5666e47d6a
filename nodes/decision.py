"""The re-identification rule, pure: which candidate cluster a sequence joins, if any.

No database here: the store fetches candidates (clusters with their stored embeddings and
names), this decides, the store records the decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from nodes.setdist import SetDistance, cluster_silhouette, set_distance


class ReidSettings(BaseModel):
    distance: SetDistance = Field("mean_min", description="set-to-set distance")
    threshold: float = Field(0.45, gt=0, le=2, description="accept below this distance")
    named_threshold: float = Field(0.6, gt=0, le=2, description="tolerance for named (enrolled) clusters")
    silhouette_floor: float = Field(0.25, ge=-1, le=1, description="0.25 weak, 0.5 reasonable, 0.7 strong")
    query_vectors: int = Field(4, ge=0, le=64, description="sequence vectors sent to the faces ANN index (0: none)")
    neighbours: int = Field(20, ge=1, le=1000, description="nearest stored faces per query vector")
    ef_search: int = Field(40, ge=10, le=1000, description="hnsw.ef_search for the faces ANN (bench/RESULTS.md)")
    max_candidates: int = Field(5, ge=1, le=50, description="clusters voted for by the faces ANN that are scored")
    centroid_candidates: int = Field(5, ge=0, le=100, description="clusters with the nearest centroids that are scored")
    centroid_ef_search: int = Field(100, ge=10, le=1000, description="hnsw.ef_search for the centroids ANN")
    vectors_per_cluster: int = Field(200, ge=1, description="vectors fetched per candidate cluster")


@dataclass(frozen=True)
class Candidate:
    """A stored cluster as the rule sees it: some of its embeddings, its name (enrolled) or None, and
    whether it holds a sequence on screen at the same time as the one deciding (then it is someone else)."""

    cluster_id: int
    embeddings: np.ndarray
    name: str | None = None
    co_occurs: bool = False


@dataclass(frozen=True)
class Choice:
    """The cluster to join (None: start a new one), the best set distance, and the joined cluster's silhouette."""

    cluster_id: int | None
    distance: float | None
    silhouette: float | None


def ranked(embeddings: np.ndarray, candidates: list[Candidate], s: ReidSettings) -> list[tuple[float, Candidate]]:
    """Candidates by set distance to the sequence, nearest first."""
    scored = [(set_distance(embeddings, c.embeddings, s.distance), c) for c in candidates]
    return sorted(scored, key=lambda pair: (pair[0], pair[1].cluster_id))


def member_distance(embeddings: np.ndarray) -> float | None:
    """How close a cluster's members are to one another: each one's cosine distance to its nearest other
    member, averaged (None for a single vector)."""
    if len(embeddings) < 2:
        return None
    d = 1 - embeddings @ embeddings.T
    np.fill_diagonal(d, np.inf)
    return float(d.min(axis=1).mean())


def choose(embeddings: np.ndarray, candidates: list[Candidate], s: ReidSettings) -> Choice:
    """Join the nearest cluster that holds nobody on screen at the same time, when it is within the
    threshold (named clusters: their own). A sequence as close to the cluster as its own members are
    joins it; otherwise the join must keep the cluster separated from the other candidates (silhouette floor)."""
    scored = ranked(embeddings, candidates, s)
    joinable = [(d, c) for d, c in scored if not c.co_occurs]
    if not joinable:
        return Choice(None, scored[0][0] if scored else None, None)
    distance, best = joinable[0]
    limit = s.named_threshold if best.name else s.threshold
    if distance >= limit:
        return Choice(None, distance, None)
    merged = np.concatenate([best.embeddings, embeddings])
    silhouette = cluster_silhouette(merged, [c.embeddings for _, c in scored if c is not best])
    own = member_distance(best.embeddings)
    if own is not None and set_distance(embeddings, best.embeddings, "mean_min") <= own:
        return Choice(best.cluster_id, distance, silhouette)
    if silhouette is not None and silhouette < s.silhouette_floor:
        return Choice(None, distance, silhouette)
    return Choice(best.cluster_id, distance, silhouette)


def sample(embeddings: np.ndarray, n: int) -> np.ndarray:
    """n embeddings spread evenly along the sequence."""
    if len(embeddings) <= n:
        return embeddings
    return embeddings[np.linspace(0, len(embeddings) - 1, n).round().astype(int)]
