"""Cluster maintenance: merge clusters that are one person (constrained agglomerative), forget vectors beyond a cap,
refresh silhouettes."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
import psycopg

from nodes.decision import ReidSettings
from nodes.setdist import l2_normalise, nearer_side_distance
from nodes.store import links
from nodes.store.clusters import (
    Deleted,
    delete_cluster,
    delete_sequences,
    merge_clusters,
    moved_sequences,
    names_of,
    record_event,
    refresh_cluster,
    windowed_vectors,
)
from nodes.store.db import to_numpy
from nodes.store.reid import lock_decisions

SAMPLE_PER_CLUSTER = 50
NEIGHBOURS = 10  # clusters a pass compares each cluster with: its nearest by centroid


@dataclass
class MaintenanceReport:
    merges: list[tuple[int, int]] = field(default_factory=list)
    moved: list[MovedSequence] = field(default_factory=list)
    forgotten: int = 0
    silhouette: float | None = None
    purged: Deleted = field(default_factory=Deleted)  # by retention: identities' and junk sequences' (source, key)


@dataclass(frozen=True)
class MovedSequence:
    """A sequence whose cluster was merged into another: subscribers are told (status `merged`)."""

    sequence_db_id: int
    sequence_key: str
    source: str
    first_frame: int
    last_frame: int
    cluster_id: int
    merged_from: int
    name: str | None


def sampled(conn: psycopg.Connection, ids: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Up to SAMPLE_PER_CLUSTER best-quality vectors of each cluster (of `ids`, or of all), unit length and ordered
    by cluster, and their cluster ids."""
    rows = windowed_vectors(conn, SAMPLE_PER_CLUSTER, ids)
    if not rows:
        return np.zeros((0, 0), np.float32), np.zeros(0, int)
    return l2_normalise(np.stack([to_numpy(r[1]) for r in rows])), np.array([r[0] for r in rows])


def sampled_vectors(conn: psycopg.Connection) -> tuple[np.ndarray, np.ndarray, dict[int, str | None]]:
    """`sampled` of every cluster, and the clusters' names."""
    return *sampled(conn), names_of(conn)


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
    dropped or re-measured are skipped when they come up)."""

    distance: dict[tuple[int, int], float] = field(default_factory=dict)
    of_cluster: dict[int, set[tuple[int, int]]] = field(default_factory=dict)
    heap: list[tuple[float, tuple[int, int]]] = field(default_factory=list)

    def add(self, a: int, b: int, distance: float) -> None:
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


def changed_since(conn: psycopg.Connection, since: str) -> list[int]:
    """Clusters a decision, correction or rename touched after `since` (a timestamp of the store's clock)."""
    return [r[0] for r in conn.execute("SELECT id FROM clusters WHERE updated_at > %s::timestamptz ORDER BY id",
                                       (since,))]


def nearest_in_store(conn: psycopg.Connection, cluster_ids: list[int], k: int) -> dict[int, list[int]]:
    """Each cluster's `k` nearest other clusters by stored centroid (the clusters' HNSW index)."""
    out = {}
    for cluster_id in cluster_ids:
        centroid = conn.execute("SELECT centroid FROM clusters WHERE id = %s", (cluster_id,)).fetchone()
        out[cluster_id] = [] if centroid is None or centroid[0] is None else [r[0] for r in conn.execute(
            "SELECT id FROM clusters WHERE id <> %s AND centroid IS NOT NULL ORDER BY centroid <=> %s LIMIT %s",
            (cluster_id, centroid[0], k))]
    return out


@dataclass
class Neighbourhood:
    """The clusters a pass looks at: each one's sampled (unit) vectors, nearest clusters and name."""

    sets: dict[int, np.ndarray]
    near: dict[int, list[int]]
    names: dict[int, str | None]

    @classmethod
    def load(cls, conn: psycopg.Connection, changed: list[int] | None) -> Neighbourhood:
        """Every cluster (`changed` None: a full pass), or the changed ones with their NEIGHBOURS nearest."""
        if changed is None:
            sets = by_cluster(*sampled(conn))
            return cls(sets, nearest_clusters(sets, NEIGHBOURS), names_of(conn))
        near = nearest_in_store(conn, changed, NEIGHBOURS)
        sets = by_cluster(*sampled(conn, sorted(set(changed) | {c for cs in near.values() for c in cs})))
        return cls(sets, {c: [n for n in cs if n in sets] for c, cs in near.items() if c in sets}, names_of(conn))


def merge_close(conn: psycopg.Connection, s: ReidSettings, report: MaintenanceReport,
                changed: list[int] | None = None) -> None:
    """Constrained agglomerative clustering over the clusters: the closest pair within the join threshold
    (named: its own) merges first, unless the two were on screen together (cannot-link) or carry two names;
    repeated until no pair qualifies. Pairs a person marked as different people never merge (cannot-link), and
    sequences of one cluster stay together (must-link). Each cluster is compared with its NEIGHBOURS nearest
    clusters by centroid (a merged cluster with both sides' neighbours), so a pass grows with the clusters, not
    with their square; with `changed`, only those clusters and their neighbours (pairs of two clusters that did
    not change were looked at by an earlier pass)."""
    hood = Neighbourhood.load(conn, changed)
    sets, names = hood.sets, hood.names
    pairs = CandidatePairs()
    for a, near in hood.near.items():
        for b in near:
            if (a, b) not in pairs:
                pairs.add(a, b, nearer_side_distance(sets[a], sets[b], s.distance))
    widest = max(s.threshold, s.named_threshold)
    while (closest := pairs.pop()) is not None:
        (a, b), distance = closest
        if distance >= widest:
            return
        if distance >= (s.named_threshold if names.get(a) or names.get(b) else s.threshold):
            continue
        if (names.get(a) and names.get(b)) or co_occur(conn, a, b) or links.linked(conn, a, b):
            continue
        weak, target = (a, b) if names.get(b) or (not names.get(a) and a > b) else (b, a)
        report.moved += [MovedSequence(*row, target, weak, names.get(weak) or names.get(target))
                         for row in moved_sequences(conn, weak)]
        merge_clusters(conn, weak, target, {"distance": distance})
        report.merges.append((weak, target))
        sets[target] = np.concatenate([sets[target], sets.pop(weak)])
        names[target] = names.get(target) or names.get(weak)
        for other in (pairs.drop(weak) | pairs.drop(target)) - {weak, target}:
            pairs.add(target, other, nearer_side_distance(sets[target], sets[other], s.distance))


def co_occur(conn: psycopg.Connection, a: int, b: int) -> bool:
    """Do clusters a and b hold sequences of one source in overlapping frame ranges?"""
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM sequences x JOIN sequences y ON x.source_id = y.source_id "
        "AND x.first_frame <= y.last_frame AND y.first_frame <= x.last_frame "
        "WHERE x.cluster_id = %s AND y.cluster_id = %s)", (a, b)).fetchone()[0]


def forget(conn: psycopg.Connection, max_vectors: int, report: MaintenanceReport) -> None:
    """Clusters over the cap lose the vectors least similar to their centroid (those that lower cohesion most)."""
    big = conn.execute("SELECT id, size FROM clusters WHERE size > %s", (max_vectors,)).fetchall()
    for cluster_id, size in big:
        ids = [r[0] for r in conn.execute(
            "SELECT f.id FROM faces f, clusters c WHERE f.cluster_id = c.id AND c.id = %s "
            "ORDER BY f.embedding <=> c.centroid DESC LIMIT %s", (cluster_id, size - max_vectors))]
        conn.execute("UPDATE faces SET forgotten_from = cluster_id, cluster_id = NULL WHERE id = ANY(%s)", (ids,))
        record_event(conn, "forget", cluster_id, detail={"vectors": len(ids)})
        refresh_cluster(conn, cluster_id)
        report.forgotten += len(ids)


def purge_stale(conn: psycopg.Connection, hours: float, report: MaintenanceReport) -> None:
    """Retention: unnamed identities whose last sequence is older than `hours`, and junk as old, are deleted."""
    stale = [r[0] for r in conn.execute(
        "SELECT c.id FROM clusters c WHERE c.name IS NULL AND coalesce((SELECT max(s.created_at) FROM sequences s "
        "WHERE s.cluster_id = c.id), c.updated_at) < now() - make_interval(secs => %s) ORDER BY c.id", (hours * 3600,))]
    for cluster_id in stale:
        gone = delete_cluster(conn, cluster_id, "retention", kind="purge")
        report.purged.faces += gone.faces
        report.purged.sequences += gone.sequences
        report.purged.ids += gone.ids
    junk = delete_sequences(conn, "s.cluster_id IS NULL AND s.created_at < now() - make_interval(secs => %s)",
                            (hours * 3600,))
    if junk:
        record_event(conn, "purge", None, detail={"junk_sequences": len(junk)}, actor="retention")
    report.purged.sequences += junk


def refresh_silhouettes(conn: psycopg.Connection, changed: list[int] | None, report: MaintenanceReport) -> None:
    """Silhouettes of every cluster (`changed` None) or of the changed ones still there; the store's mean over its
    clusters' sampled vectors goes in the report."""
    if changed is None:
        scores = silhouettes(by_cluster(*sampled(conn)))
    else:
        hood = Neighbourhood.load(conn, [c for c, in conn.execute("SELECT id FROM clusters WHERE id = ANY(%s)",
                                                                  (changed,))])
        scores = cluster_silhouettes(hood.sets, hood.near) if len(hood.sets) > 1 else None
    if scores:
        with conn.cursor() as cur:
            cur.executemany("UPDATE clusters SET silhouette = %s WHERE id = %s",
                            [(float(values.mean()), c) for c, values in scores.items()])
    report.silhouette = conn.execute(
        "SELECT sum(silhouette * least(size, %s)) / nullif(sum(least(size, %s)), 0) FROM clusters "
        "WHERE silhouette IS NOT NULL", (SAMPLE_PER_CLUSTER, SAMPLE_PER_CLUSTER)).fetchone()[0]


def maintain(conn: psycopg.Connection, s: ReidSettings, max_vectors: int = 500, full: bool = False) -> MaintenanceReport:
    """One maintenance pass in one transaction; returns what changed. A pass looks at the clusters changed since
    the last one and their neighbours; the first pass, and a `full` one, at every cluster."""
    report = MaintenanceReport()
    with conn.transaction():
        lock_decisions(conn)
        since = None if full else conn.execute("SELECT value FROM zdg_meta WHERE key = 'maintained_at'").fetchone()
        if s.retention_hours:
            purge_stale(conn, s.retention_hours, report)
        changed = None if since is None else changed_since(conn, since[0])
        merge_close(conn, s, report, changed)
        forget(conn, max_vectors, report)
        targets = sorted({target for _, target in report.merges})
        if changed is not None:  # what merged away is gone, what it went into changed
            changed = sorted(set(changed) | set(targets))
        refresh_silhouettes(conn, changed, report)
        # a merged cluster has a new centroid, so new nearest clusters: the next pass looks at it again
        conn.execute("UPDATE clusters SET updated_at = clock_timestamp() WHERE id = ANY(%s)", (targets,))
        conn.execute("INSERT INTO zdg_meta VALUES ('maintained_at', now()::text) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
    return report
