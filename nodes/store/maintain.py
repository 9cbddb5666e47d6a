"""Cluster maintenance: merge clusters that are one person (constrained agglomerative), forget vectors beyond a cap,
refresh silhouettes."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import psycopg

from nodes.decision import ReidSettings
from nodes.setdist import nearer_side_distance
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


def sampled_vectors(conn: psycopg.Connection) -> tuple[np.ndarray, np.ndarray, dict[int, str | None]]:
    """Up to SAMPLE_PER_CLUSTER best-quality vectors per cluster, their cluster ids, and cluster names."""
    rows = windowed_vectors(conn, SAMPLE_PER_CLUSTER)
    names = names_of(conn)
    if not rows:
        return np.zeros((0, 0), np.float32), np.zeros(0, int), names
    labels = np.array([r[0] for r in rows])
    return np.stack([to_numpy(r[1]) for r in rows]), labels, names


def silhouette_values(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """Per-vector cosine silhouette, or None with fewer than two clusters."""
    from sklearn.metrics import silhouette_samples  # here: every store user imports this module, few run maintenance

    if len(set(labels.tolist())) < 2 or len(vectors) <= len(set(labels.tolist())):
        return None
    return silhouette_samples(vectors, labels, metric="cosine")


def merge_close(conn: psycopg.Connection, s: ReidSettings, report: MaintenanceReport) -> None:
    """Constrained agglomerative clustering over the clusters: the closest pair within the join threshold
    (named: its own) merges first, unless the two were on screen together (cannot-link) or carry two names;
    repeated until no pair qualifies. Pairs a person marked as different people never merge (cannot-link), and
    sequences of one cluster stay together (must-link)."""
    vectors, labels, names = sampled_vectors(conn)
    sets = {int(c): vectors[labels == c] for c in np.unique(labels)}
    apart = {a: nearer_side_distance(sets[a[0]], sets[a[1]], s.distance) for a in combinations(sorted(sets), 2)}
    widest = max(s.threshold, s.named_threshold)
    while apart:
        (a, b), distance = min(apart.items(), key=lambda item: (item[1], item[0]))
        if distance >= widest:
            return
        del apart[(a, b)]
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
        apart = {pair: d for pair, d in apart.items() if weak not in pair and target not in pair}
        apart.update({tuple(sorted((target, c))): nearer_side_distance(sets[target], sets[c], s.distance)
                      for c in sets if c != target})


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
        conn.execute("UPDATE faces SET cluster_id = NULL WHERE id = ANY(%s)", (ids,))
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
    junk = delete_sequences(conn, "s.cluster_id IS NULL AND s.created_at < now() - make_interval(secs => %s)",
                            (hours * 3600,))
    if junk:
        record_event(conn, "purge", None, detail={"junk_sequences": len(junk)}, actor="retention")
    report.purged.sequences += junk


def maintain(conn: psycopg.Connection, s: ReidSettings, max_vectors: int = 500) -> MaintenanceReport:
    """One maintenance pass in one transaction; returns what changed."""
    report = MaintenanceReport()
    with conn.transaction():
        lock_decisions(conn)
        if s.retention_hours:
            purge_stale(conn, s.retention_hours, report)
        merge_close(conn, s, report)
        forget(conn, max_vectors, report)
        vectors, labels, _ = sampled_vectors(conn)
        scores = silhouette_values(vectors, labels)
        if scores is not None:
            report.silhouette = float(scores.mean())
            for c in np.unique(labels):
                conn.execute("UPDATE clusters SET silhouette = %s WHERE id = %s", (float(scores[labels == c].mean()), int(c)))
    return report
