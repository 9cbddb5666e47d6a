"""Cluster maintenance: refresh silhouettes, merge weak clusters, forget vectors beyond a cap."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import psycopg
from sklearn.metrics import silhouette_samples

from nodes.decision import ReidSettings
from nodes.setdist import set_distance
from nodes.store.clusters import merge_clusters, names_of, record_event, refresh_cluster, windowed_vectors
from nodes.store.db import to_numpy
from nodes.store.reid import DECISION_LOCK

SAMPLE_PER_CLUSTER = 50


@dataclass
class MaintenanceReport:
    merges: list[tuple[int, int]] = field(default_factory=list)
    forgotten: int = 0
    silhouette: float | None = None


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
    if len(set(labels.tolist())) < 2 or len(vectors) <= len(set(labels.tolist())):
        return None
    return silhouette_samples(vectors, labels, metric="cosine")


def _second_choice(vectors: np.ndarray, labels: np.ndarray, weak: int) -> int | None:
    """The cluster that the weak cluster's vectors most often rank second (nearest other cluster)."""
    others = [c for c in np.unique(labels) if c != weak]
    if not others:
        return None
    mine = vectors[labels == weak]
    dist = np.stack([(1 - mine @ vectors[labels == c].T).mean(axis=1) for c in others], axis=1)
    votes = np.bincount(dist.argmin(axis=1), minlength=len(others))
    return int(others[int(votes.argmax())])


def merge_weak(conn: psycopg.Connection, s: ReidSettings, report: MaintenanceReport) -> None:
    vectors, labels, names = sampled_vectors(conn)
    scores = silhouette_values(vectors, labels)
    if scores is None:
        return
    per_cluster = {int(c): float(scores[labels == c].mean()) for c in np.unique(labels)}
    for weak in sorted(per_cluster, key=per_cluster.get):
        if per_cluster[weak] >= s.silhouette_floor or weak not in labels:
            continue
        target = _second_choice(vectors, labels, weak)
        if target is None or (names.get(weak) and names.get(target) and names[weak] != names[target]):
            continue
        if co_occur(conn, weak, target):  # on screen together: two people, whatever the vectors say
            continue
        if set_distance(vectors[labels == weak], vectors[labels == target], s.distance) >= s.threshold:
            continue
        merged = np.where(labels == weak, target, labels)
        after = silhouette_values(vectors, merged)
        before = float(scores.mean())
        if after is not None and float(after.mean()) <= before:
            continue
        merge_clusters(conn, weak, target, {"silhouette_before": before,
                                            "silhouette_after": None if after is None else float(after.mean())})
        report.merges.append((weak, target))
        labels = merged
        scores = after if after is not None else scores


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


def maintain(conn: psycopg.Connection, s: ReidSettings, max_vectors: int = 500) -> MaintenanceReport:
    """One maintenance pass in one transaction; returns what changed."""
    report = MaintenanceReport()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (DECISION_LOCK,))
        merge_weak(conn, s, report)
        forget(conn, max_vectors, report)
        vectors, labels, _ = sampled_vectors(conn)
        scores = silhouette_values(vectors, labels)
        if scores is not None:
            report.silhouette = float(scores.mean())
            for c in np.unique(labels):
                conn.execute("UPDATE clusters SET silhouette = %s WHERE id = %s", (float(scores[labels == c].mean()), int(c)))
    return report
