"""Re-identification decisions against the stored face clusters, one transaction each."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import numpy as np
import psycopg
from pgvector import Vector
from pydantic import BaseModel, Field

from nodes.setdist import SetDistance, cluster_silhouette, set_distance, unit
from nodes.store.db import to_numpy

DECISION_LOCK = 7244


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


@dataclass
class Decision:
    cluster_id: int
    status: str  # "new" | "recognised" | "already_assigned"
    distance: float | None
    silhouette: float | None
    name: str | None


def sample(vectors: np.ndarray, n: int) -> np.ndarray:
    """n vectors spread evenly along the sequence."""
    if len(vectors) <= n:
        return vectors
    return vectors[np.linspace(0, len(vectors) - 1, n).round().astype(int)]


def candidates(conn: psycopg.Connection, vectors: np.ndarray, s: ReidSettings, exclude_sequence: int | None) -> list[int]:
    """Clusters voted for by the nearest stored faces of the sequence's vectors, plus the nearest centroids."""
    conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
    ranked: list[int] = []
    if s.query_vectors:
        conn.execute(f"SET LOCAL hnsw.ef_search = {int(s.ef_search)}")
        probes = [Vector(q) for q in sample(vectors, s.query_vectors)]
        rows = conn.execute(
            "SELECT f.cluster_id FROM unnest(%s::vector[]) AS q(v) CROSS JOIN LATERAL ("
            "SELECT cluster_id FROM faces WHERE cluster_id IS NOT NULL AND sequence_id IS DISTINCT FROM %s "
            "ORDER BY embedding <=> q.v LIMIT %s) f",
            # IS DISTINCT FROM NULL would mean IS NOT NULL and drop faces without a sequence: compare with -1
            (probes, -1 if exclude_sequence is None else exclude_sequence, s.neighbours)).fetchall()
        ranked = [c for c, _ in Counter(r[0] for r in rows).most_common(s.max_candidates)]
    if s.centroid_candidates:
        conn.execute(f"SET LOCAL hnsw.ef_search = {int(s.centroid_ef_search)}")
        centroid = unit(vectors.mean(axis=0)).astype(np.float32)
        for (cluster_id,) in conn.execute("SELECT id FROM clusters WHERE size > 0 ORDER BY centroid <=> %s LIMIT %s",
                                          (centroid, s.centroid_candidates)):
            if cluster_id not in ranked:
                ranked.append(cluster_id)
    return ranked


def nearest_clusters(conn: psycopg.Connection, vectors: np.ndarray, s: ReidSettings,
                     exclude_sequence: int | None) -> tuple[list[tuple[float, int]], dict[int, np.ndarray]]:
    """Candidate clusters as (set distance, cluster id), nearest first, and the stored vectors they were scored on."""
    ids = candidates(conn, vectors, s, exclude_sequence)
    stored = cluster_vectors(conn, ids, s.vectors_per_cluster) if ids else {}
    return sorted((set_distance(vectors, vecs, s.distance), c) for c, vecs in stored.items()), stored


def cluster_vectors(conn: psycopg.Connection, ids: list[int], per_cluster: int) -> dict[int, np.ndarray]:
    rows = conn.execute(
        "SELECT cluster_id, embedding FROM (SELECT cluster_id, embedding, row_number() OVER "
        "(PARTITION BY cluster_id ORDER BY quality DESC NULLS LAST, id) AS rn FROM faces WHERE cluster_id = ANY(%s)) t "
        "WHERE rn <= %s", (ids, per_cluster), binary=True).fetchall()  # binary: parsing text vectors dominated
    out: dict[int, list] = {}
    for cluster_id, emb in rows:
        out.setdefault(cluster_id, []).append(to_numpy(emb))
    return {c: np.stack(v) for c, v in out.items()}


def refresh_cluster(conn: psycopg.Connection, cluster_id: int, silhouette: float | None = None) -> None:
    conn.execute(
        "UPDATE clusters c SET size = s.n, centroid = s.centroid, cohesion = s.cohesion, updated_at = now(), "
        "silhouette = COALESCE(%s, c.silhouette) FROM (SELECT count(*) AS n, avg(embedding) AS centroid, "
        "1 - avg(embedding <=> (SELECT avg(embedding) FROM faces WHERE cluster_id = %s)) AS cohesion "
        "FROM faces WHERE cluster_id = %s) s WHERE c.id = %s",
        (silhouette, cluster_id, cluster_id, cluster_id))


def new_cluster(conn: psycopg.Connection, name: str | None = None) -> int:
    return conn.execute("INSERT INTO clusters (name) VALUES (%s) RETURNING id", (name,)).fetchone()[0]


def decide(conn: psycopg.Connection, sequence_db_id: int, vectors: np.ndarray, s: ReidSettings) -> Decision:
    """Assign a stored sequence to its best cluster, or a new one; one transaction."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (DECISION_LOCK,))
        row = conn.execute("SELECT s.cluster_id, s.distance, c.silhouette, c.name FROM sequences s "
                           "LEFT JOIN clusters c ON c.id = s.cluster_id WHERE s.id = %s", (sequence_db_id,)).fetchone()
        if row and row[0] is not None:
            return Decision(row[0], "already_assigned", row[1], row[2], row[3])
        scored, stored = nearest_clusters(conn, vectors, s, sequence_db_id)
        ids = list(stored)
        names = dict(conn.execute("SELECT id, name FROM clusters WHERE id = ANY(%s)", (ids,)).fetchall()) if ids else {}
        chosen, distance, silhouette = None, None, None
        if scored:
            distance, best = scored[0]
            limit = s.named_threshold if names.get(best) else s.threshold
            if distance < limit:
                merged = np.concatenate([stored[best], vectors])
                silhouette = cluster_silhouette(merged, [v for c, v in stored.items() if c != best])
                if silhouette is None or silhouette >= s.silhouette_floor:
                    chosen = best
        status = "recognised" if chosen is not None else "new"
        cluster_id = chosen if chosen is not None else new_cluster(conn)
        conn.execute("UPDATE faces SET cluster_id = %s WHERE sequence_id = %s", (cluster_id, sequence_db_id))
        conn.execute("UPDATE sequences SET cluster_id = %s, distance = %s WHERE id = %s", (cluster_id, distance, sequence_db_id))
        refresh_cluster(conn, cluster_id, silhouette)
        conn.execute("INSERT INTO cluster_events (kind, cluster_id, detail) VALUES (%s, %s, %s)",
                     (status, cluster_id, json.dumps({"sequence": sequence_db_id, "distance": distance})))
        return Decision(cluster_id, status, distance, silhouette, names.get(cluster_id))
