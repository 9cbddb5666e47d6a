"""Cluster maintenance: merge clusters that are one person (constrained agglomerative), forget vectors beyond a cap,
refresh silhouettes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import psycopg

from nodes.matching.appearance import dress_factor
from nodes.matching.clustering import (
    NEIGHBOURS,
    CandidatePairs,
    by_cluster,
    cluster_silhouettes,
    contested_merge,
    nearest_clusters,
    silhouettes,
)
from nodes.matching.decision import ReidSettings
from nodes.matching.setdist import l2_normalise, nearer_side_distance
from nodes.store.apart import apart_of, cluster_factors, cluster_sources
from nodes.store.centroid_index import refresh_centroid_indexes
from nodes.store.clusters import (
    Deleted,
    delete_clusters,
    delete_sequences,
    merge_clusters,
    moved_sequences,
    names_of,
    record_event,
    refresh_cluster,
    windowed_sets,
)
from nodes.store.dress import clusters_dressed
from nodes.store.reid import lock_decisions

SAMPLE_PER_CLUSTER = 50


@dataclass
class MaintenanceReport:
    merges: list[tuple[int, int]] = field(default_factory=list)
    moved: list[MovedSequence] = field(default_factory=list)
    forgotten: int = 0
    silhouette: float | None = None
    purged: Deleted = field(default_factory=Deleted)  # by retention: identities' and junk sequences' (source, key)
    reindexed: list[str] = field(default_factory=list)  # centroid indexes the store outgrew (or shrank past), rebuilt


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
    sets = windowed_sets(conn, SAMPLE_PER_CLUSTER, ids)
    if not sets:
        return np.zeros((0, 0), np.float32), np.zeros(0, int)
    return (l2_normalise(np.concatenate(list(sets.values()))),
            np.concatenate([np.full(len(v), c) for c, v in sets.items()]))


def sampled_vectors(conn: psycopg.Connection) -> tuple[np.ndarray, np.ndarray, dict[int, str | None]]:
    """`sampled` of every cluster, and the clusters' names."""
    return *sampled(conn), names_of(conn)


def changed_since(conn: psycopg.Connection, since: str) -> list[int]:
    """Clusters a decision, correction or rename touched after `since` (a timestamp of the store's clock)."""
    return [r[0] for r in conn.execute("SELECT id FROM clusters WHERE updated_at > %s::timestamptz ORDER BY id",
                                       (since,))]


def nearest_in_store(conn: psycopg.Connection, cluster_ids: list[int], k: int) -> dict[int, list[int]]:
    """Each cluster's `k` nearest other clusters by stored centroid (the clusters' ANN index; at scale IVFFlat,
    probed as nodes.store.db.NEIGHBOUR_PROBES says)."""
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

    def widen(self, conn: psycopg.Connection, cluster_id: int) -> list[int]:
        """Load the NEIGHBOURS nearest of a cluster whose own were not looked at (it did not change, a changed one
        has it as a neighbour); the clusters new to the pass."""
        if cluster_id in self.near:
            return []
        self.near[cluster_id] = nearest_in_store(conn, [cluster_id], NEIGHBOURS)[cluster_id]
        new = [c for c in self.near[cluster_id] if c not in self.sets]
        self.sets.update(by_cluster(*sampled(conn, new)) if new else {})
        self.near[cluster_id] = [c for c in self.near[cluster_id] if c in self.sets]
        return [c for c in new if c in self.sets]


def merge_close(conn: psycopg.Connection, s: ReidSettings, report: MaintenanceReport,
                changed: list[int] | None = None) -> None:
    """Constrained agglomerative clustering over the clusters: the closest pair within the join threshold
    (named: its own; both tightened by their sources, nodes/store/apart.py) merges first, unless the two were on
    screen together or marked different (cannot-link), carry two names, someone known to be another person is
    within the margin of either (`contested_merge`), or they were dressed too differently in one visit for how near
    their faces are (`dress_factor`); repeated until no pair qualifies. Two unnamed clusters of
    different sources (another scene, other light) merge instead under the cross threshold when each is the
    other's nearest by the margin among the clusters of other scenes than its own (`clear_across`: one scene's
    people sit closer together, so they are no rivals across scenes). Sequences of one cluster
    stay together (must-link). Each cluster is compared with its NEIGHBOURS nearest clusters by centroid (a merged
    cluster with both sides' neighbours), so a pass grows with the clusters, not with their square; with
    `changed`, only those clusters and their neighbours (pairs of two clusters that did not change were looked at
    by an earlier pass)."""
    hood = Neighbourhood.load(conn, changed)
    sets, names = hood.sets, hood.names
    apart = apart_of(conn, list(sets))  # on screen together or marked different: never merged, and rivals
    sources = cluster_sources(conn, list(sets))
    factors = cluster_factors(conn, sources, s)
    pairs = CandidatePairs()
    for a, near in hood.near.items():
        for b in near:
            if (a, b) not in pairs:
                pairs.add(a, b, nearer_side_distance(sets[a], sets[b], s.distance))
    cross = s.cross_threshold or s.threshold

    def other_scene(x: int, other: int) -> bool:
        """Is `other` from other sources than x? Faces of one scene are nearer each other than across scenes."""
        return not sources.get(x, set()) & sources.get(other, set())

    def clear_across(a: int, b: int, distance: float) -> bool:
        """Are a and b each other's nearest by the margin among the clusters of other scenes than each one's own,
        with both one's nearest clusters measured (a pass over what changed measured only the changed one's)?"""
        for x in (a, b):
            new = hood.widen(conn, x)
            sources.update(cluster_sources(conn, new) if new else {})
            for other in hood.near[x]:
                if other in sets and other not in (a, b) and other not in pairs.measured.get(x, {}):
                    pairs.measure(x, other, nearer_side_distance(sets[x], sets[other], s.distance))
        return pairs.clear_match(a, b, distance, s.margin, other_scene)

    widest = max(s.threshold, s.named_threshold, cross if s.margin else 0)
    while (closest := pairs.pop()) is not None:
        (a, b), distance = closest
        if distance >= widest:
            return
        within = bool(names.get(a) or names.get(b) or not s.margin or not other_scene(a, b))
        limit = (s.named_threshold if names.get(a) or names.get(b) else s.threshold) if within else cross
        if within:
            if distance >= limit:
                continue
            if distance >= limit * min(factors.get(a, 1.0), factors.get(b, 1.0)) and not (
                    s.margin and other_scene(a, b) and pairs.clear_match(a, b, distance, s.margin)):
                continue
            if s.margin and contested_merge(a, b, distance, sets, apart, s):
                continue
        elif distance >= limit or not clear_across(a, b, distance):
            continue
        if ((names.get(a) and names.get(b)) or b in apart.get(a, ())
                or distance >= limit * dress_factor(clusters_dressed(conn, a, b, s), s.torso_apart)):
            continue
        weak, target = (a, b) if names.get(b) or (not names.get(a) and a > b) else (b, a)
        report.moved += [MovedSequence(*row, target, weak, names.get(weak) or names.get(target))
                         for row in moved_sequences(conn, weak)]
        merge_clusters(conn, weak, target, {"distance": distance})
        report.merges.append((weak, target))
        sets[target] = np.concatenate([sets[target], sets.pop(weak)])
        names[target] = names.get(target) or names.get(weak)
        factors[target] = min(factors.pop(weak, 1.0), factors.get(target, 1.0))
        sources[target] = sources.get(target, set()) | sources.pop(weak, set())
        for other in apart.pop(weak, set()):
            apart[other] = (apart[other] - {weak}) | {target}
            apart.setdefault(target, set()).add(other)
        queued = (pairs.drop(weak) | pairs.drop(target)) - {weak, target}
        for other in (pairs.forget(weak) | pairs.forget(target)) - {weak, target}:
            measure = pairs.add if other in queued else pairs.measure
            measure(target, other, nearer_side_distance(sets[target], sets[other], s.distance))


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
    if stale:
        report.purged = delete_clusters(conn, stale, "retention", kind="purge")
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
        report.reindexed = refresh_centroid_indexes(conn)
    return report
