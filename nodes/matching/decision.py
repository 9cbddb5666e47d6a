"""The re-identification rule, pure: which candidate cluster a sequence joins, if any.

No database here: the store fetches candidates (clusters with their stored embeddings and
names), this decides, the store records the decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from nodes.matching.appearance import dress_factor
from nodes.matching.setdist import SetDistance, nearer_side_distance, set_distance


class ReidSettings(BaseModel):
    distance: SetDistance = Field("mean_min", description="set-to-set distance")
    threshold: float | None = Field(None, gt=0, le=2, description="join a cluster below this set distance "
                                    "(default: the embedding model's calibrated `join`)")
    named_threshold: float | None = Field(None, gt=0, le=2, description="tolerance for named (enrolled) clusters "
                                          "(default: the model's calibrated `named_join`)")
    cross_threshold: float | None = Field(None, gt=0, le=2, description="across sources (another scene, other "
                                          "light), maintenance merges two unnamed clusters under this set distance "
                                          "when each is the other's nearest by the margin among the clusters of "
                                          "sources other than its own (margin 0: off; default: the model's calibrated "
                                          "`cross_join`, or `join` where it has none; `threshold` where that is set)")
    calibration: str | None = Field(None, description="calibration file (default: the one shipped for the model)")
    margin: float = Field(0.1, ge=0, lt=1, description="a join needs its cluster nearer than (1 - margin) x the "
                          "distance to anyone known to be someone else (on screen with the sequence or with that "
                          "cluster, or marked different); maintenance merges likewise (0: off)")
    adapt_rate: float = Field(0.01, ge=0, lt=0.5, description="each source tightens its join thresholds to this "
                              "quantile of its own different-person distances (sequences to the people on screen "
                              "with them) when that is below the calibrated join (0: the calibration alone)")
    torso_apart: float = Field(0.5, ge=0, le=1, description="within one visit of one source, a sequence dressed this "
                               "differently (Hellinger distance of the colours below the face) from every sequence "
                               "of a cluster in that visit is someone else: it does not join that cluster, and two "
                               "clusters so dressed are not merged; dressed over half as differently, the join "
                               "threshold shrinks in proportion, to 0 at this distance (0: off)")
    visit_s: float = Field(300, gt=0, description="sequences of one source this close in time (seconds) are one "
                           "visit, where clothing tells people apart; never across visits (clothes stay the same "
                           "within a scene: a short window keeps a change of clothes between scenes from splitting "
                           "one person)")
    junk_score: float = Field(0.6, ge=0, le=1, description="a sequence whose median detector score is below this is junk")
    junk_edge: float = Field(0.5, gt=0, le=1, description="a sequence with at least this share of faces cut off by "
                             "the frame edge is junk")
    exact_clusters: int = Field(50, ge=0, le=10_000, description="while the store holds at most this many identities, "
                                "a decision scores every one of them, not only the ANN's candidates: a sequence's set "
                                "distance to a cluster of many poses can be far nearer than their centroids are, so an "
                                "ANN on centroids can miss the runner-up the margins need (0: always the ANN)")
    query_vectors: int = Field(4, ge=0, le=64, description="sequence vectors sent to the stored sequences' ANN index (0: none)")
    neighbours: int = Field(20, ge=1, le=1000, description="nearest stored sequences, and enrolled photos, per query vector")
    ef_search: int = Field(40, ge=10, le=1000, description="hnsw.ef_search for the sequences ANN while it is HNSW "
                           "(under 100,000 stored sequences; bench/RESULTS.md)")
    probes: int = Field(5, ge=1, le=10_000, description="ivfflat.probes for the sequences ANN once it is IVFFlat "
                        "(from 100,000 stored sequences on; lists: a thousandth of them, or their square root past a "
                        "million): raise it with the lists (bench/RESULTS.md)")
    max_candidates: int = Field(5, ge=1, le=50, description="clusters voted for by the sequences ANN that are scored")
    centroid_candidates: int = Field(5, ge=0, le=100, description="clusters with the nearest centroids that are scored")
    centroid_ef_search: int = Field(100, ge=10, le=1000, description="hnsw.ef_search for the centroids ANN while "
                                    "it is HNSW (under 100,000 identities)")
    centroid_probes: int = Field(20, ge=1, le=10_000, description="ivfflat.probes for the centroids ANN once it is "
                                 "IVFFlat (from 100,000 identities on), as `probes` for the sequences")
    vectors_per_cluster: int = Field(200, ge=1, description="vectors fetched per candidate cluster")
    retention_hours: float | None = Field(None, gt=0, description="maintenance purges unnamed identities not seen for "
                                          "this long, and junk as old (faces, sequences, crops; `zdg maintain` also "
                                          "their crop strips); named ones stay until deleted; unset: keep everything")


def for_model(s: ReidSettings, model: str) -> ReidSettings:
    """The settings with every threshold a number: those the graph leaves out come from the model's calibration."""
    if s.threshold is not None and s.named_threshold is not None:
        return s.model_copy(update={"cross_threshold": s.cross_threshold or s.threshold})
    from nodes.matching.thresholds import load_thresholds

    calibrated = load_thresholds(model, s.calibration)
    cross = calibrated.cross_join or calibrated.join if s.threshold is None else s.threshold
    return s.model_copy(update={"threshold": s.threshold or calibrated.join,
                                "named_threshold": s.named_threshold or calibrated.named_join,
                                "cross_threshold": s.cross_threshold or cross})


@dataclass(frozen=True)
class Candidate:
    """A stored cluster as the rule sees it: some of its embeddings, its name (enrolled) or None, whether it is
    someone else than the one deciding (it holds a sequence on screen at the same time, or everyone in it was
    dressed differently in the same visit), the other candidates known to be other people than it (on screen
    with it, or marked different), the sources it holds sequences of, and how differently its nearest-dressed
    sequence of the same visit is dressed from the one deciding (torso distance; None: none, or unseen)."""

    cluster_id: int
    embeddings: np.ndarray
    name: str | None = None
    co_occurs: bool = False
    apart: frozenset[int] = frozenset()
    sources: frozenset[str] = frozenset()
    dressed: float | None = None


@dataclass(frozen=True)
class Choice:
    """The cluster to join (None: start a new one), the best set distance, and the joined cluster's silhouette."""

    cluster_id: int | None
    distance: float | None
    silhouette: float | None


def ranked(embeddings: np.ndarray, candidates: list[Candidate], s: ReidSettings,
           weights: np.ndarray | None = None) -> list[tuple[float, Candidate]]:
    """Candidates by set distance to the sequence (its faces weighted by `weights`), nearest first."""
    scored = [(set_distance(embeddings, c.embeddings, s.distance, weights), c) for c in candidates]
    return sorted(scored, key=lambda pair: (pair[0], pair[1].cluster_id))


def limit_for(candidate: Candidate, s: ReidSettings) -> float:
    """The distance a sequence must stay under to join: the named tolerance for an enrolled identity, less as
    the clothes of the same visit differ (`dress_factor`)."""
    return (s.named_threshold if candidate.name else s.threshold) * dress_factor(candidate.dressed, s.torso_apart)


def contested(distance: float, best: Candidate, scored: list[tuple[float, Candidate]], margin: float) -> bool:
    """Is someone known to be another person than the sequence or than `best` nearly as near as `best`? Then the
    sequence sits among lookalikes (a family, a team), and a join could make two people one. Margin 0: never."""
    return margin > 0 and any(distance >= (1 - margin) * d for d, c in scored
               if c is not best and (c.co_occurs or c.cluster_id in best.apart or best.cluster_id in c.apart))


def unclear_across(distance: float, best: Candidate, scored: list[tuple[float, Candidate]], s: ReidSettings,
                   source: str | None) -> bool:
    """Would the sequence join an unnamed cluster of other sources (another scene) while another cluster of other
    scenes is nearly as near the sequence, or someone of its own source's scene is nearly as near that cluster?
    Across scenes everyone of a scene's light looks alike, so a join needs each to be the other's clear nearest,
    as maintenance's merges do."""
    if not s.margin or source is None or best.name or not best.sources or source in best.sources:
        return False
    if any(distance >= (1 - s.margin) * d for d, c in scored if c is not best and source not in c.sources):
        return True
    return any(distance >= (1 - s.margin) * nearer_side_distance(best.embeddings, c.embeddings, s.distance)
               for _, c in scored if c is not best and source in c.sources)


def choose(embeddings: np.ndarray, candidates: list[Candidate], s: ReidSettings,
           weights: np.ndarray | None = None, source: str | None = None) -> Choice:
    """Join the nearest cluster that holds nobody on screen at the same time (that would make two people one),
    when it is clearly within its threshold (by the margin: a closer call waits for maintenance, which knows
    more by then), no one known to be someone else is within the margin (`contested`) and, for a cluster of
    other sources than the sequence's `source`, no one of its own scene is nearly as near it (`unclear_across`).
    `silhouette` is the sequence's own: (runner-up - nearest) / runner-up over the other candidates, reported
    with the decision."""
    scored = ranked(embeddings, candidates, s, weights)
    joinable = [(d, c) for d, c in scored if not c.co_occurs]
    if not joinable:
        return Choice(None, scored[0][0] if scored else None, None)
    distance, best = joinable[0]
    others = [d for d, c in scored if c is not best]
    silhouette = (others[0] - distance) / max(others[0], 1e-12) if others else None
    if (distance >= (1 - s.margin) * limit_for(best, s) or contested(distance, best, scored, s.margin)
            or unclear_across(distance, best, scored, s, source)):
        return Choice(None, distance, silhouette)
    return Choice(best.cluster_id, distance, silhouette)


def sample(embeddings: np.ndarray, n: int) -> np.ndarray:
    """n embeddings spread evenly along the sequence."""
    if len(embeddings) <= n:
        return embeddings
    return embeddings[np.linspace(0, len(embeddings) - 1, n).round().astype(int)]
