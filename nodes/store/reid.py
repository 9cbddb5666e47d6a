"""Re-identification against the stored face clusters: candidates from the ANN indexes, one transaction per decision."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import psycopg
from pgvector import Vector

from nodes.matching.decision import Candidate, Choice, ReidSettings, choose, sample
from nodes.matching.setdist import set_distance, unit
from nodes.store.apart import apart_of, cluster_sources, co_occurring_clusters, for_source, record
from nodes.store.checkpoints import advance
from nodes.store.clusters import names_of, new_cluster, record_event, refresh_cluster, windowed_sets
from nodes.store.db import set_configs
from nodes.store.dress import dressed_from

DECISION_LOCK = 7244


def lock_decisions(conn: psycopg.Connection) -> None:
    """Until this transaction ends, no other decision, maintenance or correction changes clusters."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (DECISION_LOCK,))


@dataclass
class Decision:
    cluster_id: int | None  # None: junk
    status: str  # "new" | "recognised" | "already_assigned" | "junk"
    distance: float | None
    silhouette: float | None
    name: str | None


def candidate_ids(conn: psycopg.Connection, embeddings: np.ndarray, s: ReidSettings, exclude_sequence: int | None) -> list[int]:
    """Every cluster while the store holds at most `exact_clusters` of them; past that, the clusters voted for by
    the stored sequences (their centroids) and enrolled photos nearest the sequence's embeddings, plus the clusters
    with the nearest centroids."""
    if s.exact_clusters:
        every = [r[0] for r in conn.execute("SELECT id FROM clusters ORDER BY id LIMIT %s", (s.exact_clusters + 1,))]
        if len(every) <= s.exact_clusters:
            return every
    scans = {"hnsw.iterative_scan": "relaxed_order", "ivfflat.iterative_scan": "relaxed_order"}
    ranked: list[int] = []
    if s.query_vectors:
        set_configs(conn, {**scans, "hnsw.ef_search": s.ef_search, "ivfflat.probes": s.probes}, local=True)
        probes = [Vector(q) for q in sample(embeddings, s.query_vectors)]
        rows = conn.execute(
            "SELECT v.cluster_id FROM unnest(%s::vector[]) AS q(v) CROSS JOIN LATERAL ("
            "(SELECT cluster_id FROM sequences WHERE cluster_id IS NOT NULL AND id <> %s "
            "ORDER BY centroid <=> q.v LIMIT %s) UNION ALL "
            "(SELECT cluster_id FROM faces WHERE sequence_id IS NULL AND cluster_id IS NOT NULL "
            "ORDER BY embedding <=> q.v LIMIT %s)) v",
            (probes, -1 if exclude_sequence is None else exclude_sequence, s.neighbours, s.neighbours)).fetchall()
        ranked = [c for c, _ in Counter(r[0] for r in rows).most_common(s.max_candidates)]
    if s.centroid_candidates:
        set_configs(conn, {**scans, "hnsw.ef_search": s.centroid_ef_search, "ivfflat.probes": s.centroid_probes},
                    local=True)
        centroid = unit(embeddings.mean(axis=0)).astype(np.float32)
        for (cluster_id,) in conn.execute("SELECT id FROM clusters WHERE size > 0 ORDER BY centroid <=> %s LIMIT %s",
                                          (centroid, s.centroid_candidates)):
            if cluster_id not in ranked:
                ranked.append(cluster_id)
    return ranked


def candidates(conn: psycopg.Connection, embeddings: np.ndarray, s: ReidSettings,
               exclude_sequence: int | None) -> list[Candidate]:
    """The candidate clusters with the stored embeddings the rule scores them on, their names, whether they
    hold someone on screen with the sequence (`exclude_sequence`, the one deciding) or dressed apart from it in the
    same visit, how differently they are dressed from it there, and which of them are known to be other people than
    each other."""
    ids = candidate_ids(conn, embeddings, s, exclude_sequence)
    if not ids:
        return []
    stored = windowed_sets(conn, s.vectors_per_cluster, ids)
    names = names_of(conn, list(stored))
    dressed = {} if exclude_sequence is None else dressed_from(conn, exclude_sequence, list(stored), s)
    others = set() if exclude_sequence is None else (
        co_occurring_clusters(conn, exclude_sequence) | {c for c, d in dressed.items() if d > s.torso_apart})
    apart = apart_of(conn, list(stored)) if s.margin else {}
    sources = cluster_sources(conn, list(stored)) if s.margin else {}
    return [Candidate(c, vecs, names.get(c), c in others, frozenset(apart.get(c, ())), frozenset(sources.get(c, ())),
                      dressed.get(c)) for c, vecs in stored.items()]


@dataclass(frozen=True)
class Query:
    """What the decision is about: a stored sequence, its embeddings, their weights (face quality), why it is
    junk (None: it may be a person), and the part of the same sequence before it, if any."""

    sequence_db_id: int
    embeddings: np.ndarray
    weights: np.ndarray | None = None
    junk: str | None = None
    continues: str | None = None  # the key of the part before it (a long sequence in parts): it joins that cluster


def decide(conn: psycopg.Connection, query: Query, s: ReidSettings, checkpoint: tuple[str, int] | None = None) -> Decision:
    """Assign a stored sequence to its best cluster, or a new one (junk: to none), and advance its source's
    checkpoint (source, resume frame) when given; one transaction."""
    with conn.transaction():
        lock_decisions(conn)
        decision = _assign(conn, query, s)
        if checkpoint is not None:
            advance(conn, *checkpoint)
        return decision


def continued(conn: psycopg.Connection, query: Query, s: ReidSettings) -> Choice | None:
    """A later part of a long sequence joins the cluster of the part before it (one person, one track)."""
    if query.continues is None:
        return None
    row = conn.execute("SELECT cluster_id FROM sequences WHERE seq_key = %s", (query.continues,)).fetchone()
    if row is None or row[0] is None:
        return None
    stored = windowed_sets(conn, s.vectors_per_cluster, [row[0]]).get(row[0])
    distance = None if stored is None else set_distance(query.embeddings, stored, s.distance, query.weights)
    return Choice(row[0], distance, None)


def _assign(conn: psycopg.Connection, query: Query, s: ReidSettings) -> Decision:
    """The decision for one stored sequence (inside the caller's transaction, under the decision lock)."""
    sequence_db_id, embeddings = query.sequence_db_id, query.embeddings
    row = conn.execute("SELECT s.cluster_id, s.distance, c.silhouette, c.name, s.junk, so.name FROM sequences s "
                       "JOIN sources so ON so.id = s.source_id LEFT JOIN clusters c ON c.id = s.cluster_id "
                       "WHERE s.id = %s", (sequence_db_id,)).fetchone()
    if row and row[0] is not None:
        return Decision(row[0], "already_assigned", row[1], row[2], row[3])
    stored_junk = row[4] if row else None
    if query.junk and not stored_junk:
        conn.execute("UPDATE sequences SET junk = %s WHERE id = %s", (query.junk, sequence_db_id))
        record_event(conn, "junk", None, detail={"sequence": sequence_db_id, "why": query.junk})
    if query.junk or stored_junk:
        return Decision(None, "junk", None, None, None)
    choice = continued(conn, query, s)
    if choice is None:
        found = candidates(conn, embeddings, s, sequence_db_id)
        record(conn, sequence_db_id, embeddings, query.weights, s)
        choice = choose(embeddings, found, for_source(conn, row[5], s) if row else s, query.weights,
                        row[5] if row else None)
    status = "recognised" if choice.cluster_id is not None else "new"
    cluster_id = choice.cluster_id if choice.cluster_id is not None else new_cluster(conn)
    conn.execute("UPDATE faces SET cluster_id = %s WHERE sequence_id = %s", (cluster_id, sequence_db_id))
    conn.execute("UPDATE sequences SET cluster_id = %s, distance = %s WHERE id = %s",
                 (cluster_id, choice.distance, sequence_db_id))
    refresh_cluster(conn, cluster_id)  # the decision's silhouette is the sequence's, not the cluster's
    name = names_of(conn, [cluster_id]).get(cluster_id)
    record_event(conn, status, cluster_id, detail={"sequence": sequence_db_id, "distance": choice.distance, "name": name})
    return Decision(cluster_id, status, choice.distance, choice.silhouette, name)
