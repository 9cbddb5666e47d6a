"""What the store knows of different people: clusters on screen together or marked different, and each source's
own different-person distances, which tighten its join threshold where lookalikes are dense (a family, a team).

People on screen together are different people, so every decision measures how near the sequence is to the
sequences of the people beside it. A source's join threshold is the calibrated one (the prior) or, when lower,
the margin under the `adapt_rate` quantile of the latest `WINDOW` such distances in that source.
"""

from __future__ import annotations

import heapq

import numpy as np
import psycopg

from nodes.matching.decision import ReidSettings
from nodes.matching.setdist import l2_normalise, set_distance
from nodes.store.db import to_numpy

WINDOW = 2000  # the latest different-person distances of a source that set its threshold
DUPLICATE = 0.5  # two tracks at once nearer than this share of the join are one face seen twice (a double
# detection, a reflection, their photo on the wall), not two people: not recorded


def apart_pairs(conn: psycopg.Connection, ids: list[int]) -> set[tuple[int, int]]:
    """The pairs (a < b) of these clusters known to be two people: on screen together in one source (a sweep over
    their sequences in time order, so a pass over every cluster is not a join of every sequence with every
    other), or marked as different people."""
    pairs: set[tuple[int, int]] = set()
    active: list[tuple[int, int]] = []  # (last frame, cluster) of the current source's sequences still on screen
    source = None
    for cluster, source_id, first, last in conn.execute(
            "SELECT cluster_id, source_id, first_frame, last_frame FROM sequences WHERE cluster_id = ANY(%s) "
            "ORDER BY source_id, first_frame", (ids,)):
        if source_id != source:
            active, source = [], source_id
        while active and active[0][0] < first:
            heapq.heappop(active)
        pairs |= {(min(cluster, other), max(cluster, other)) for _, other in active if other != cluster}
        heapq.heappush(active, (last, cluster))
    marked = conn.execute("SELECT a, b FROM cannot_links WHERE a = ANY(%s) AND b = ANY(%s)", (ids, ids)).fetchall()
    return pairs | {(a, b) for a, b in marked}


def apart_of(conn: psycopg.Connection, ids: list[int]) -> dict[int, set[int]]:
    """For each of these clusters, the others of them known to be someone else."""
    apart: dict[int, set[int]] = {c: set() for c in ids}
    for a, b in apart_pairs(conn, ids):
        apart[a].add(b)
        apart[b].add(a)
    return apart


def co_occurring_clusters(conn: psycopg.Connection, sequence_db_id: int) -> set[int]:
    """Clusters holding a sequence of the same source on screen in an overlapping frame range: other people."""
    row = conn.execute("SELECT source_id, first_frame, last_frame FROM sequences WHERE id = %s", (sequence_db_id,)).fetchone()
    return on_screen(conn, *row) if row else set()  # the sequence itself has no cluster yet


def clusters_on_screen(conn: psycopg.Connection, source: str, first_frame: int, last_frame: int) -> set[int]:
    """Clusters holding a stored sequence of this source in an overlapping frame range (someone else than a
    sequence on screen then)."""
    row = conn.execute("SELECT id FROM sources WHERE name = %s", (source,)).fetchone()
    return on_screen(conn, row[0], first_frame, last_frame) if row else set()


def on_screen(conn: psycopg.Connection, source_id: int, first_frame: int, last_frame: int) -> set[int]:
    # the source id as a value lets the planner see how few sequences of it end after first_frame
    rows = conn.execute("SELECT DISTINCT cluster_id FROM sequences WHERE source_id = %s AND last_frame >= %s "
                        "AND first_frame <= %s AND cluster_id IS NOT NULL", (source_id, first_frame, last_frame)).fetchall()
    return {r[0] for r in rows}


def record(conn: psycopg.Connection, sequence_db_id: int, embeddings: np.ndarray, weights: np.ndarray | None,
           s: ReidSettings) -> None:
    """Store the sequence's set distances to the sequences decided before it that were on screen with it (two
    tracks at once are two people; junk is no one; nearer than DUPLICATE is one face twice): its source's
    different-person distances, each pair once, at the later decision of the two, so a rerun records the same
    whatever the writer had stored by then."""
    row = conn.execute("SELECT source_id, first_frame, last_frame FROM sequences WHERE id = %s",
                       (sequence_db_id,)).fetchone()
    ids = [] if row is None else [r[0] for r in conn.execute(  # values, as in on_screen
        "SELECT id FROM sequences WHERE source_id = %s AND last_frame >= %s AND first_frame <= %s AND id <> %s "
        "AND cluster_id IS NOT NULL", (*row, sequence_db_id))]
    if not ids:
        return
    faces: dict[int, list[np.ndarray]] = {}
    for sequence_id, embedding in conn.execute(
            "SELECT sequence_id, embedding FROM (SELECT sequence_id, embedding, row_number() OVER (PARTITION BY "
            "sequence_id ORDER BY quality DESC NULLS LAST, id) AS r FROM faces WHERE sequence_id = ANY(%s)) f "
            "WHERE r <= %s", (ids, s.vectors_per_cluster), binary=True):
        faces.setdefault(sequence_id, []).append(to_numpy(embedding))
    distances = {other: set_distance(embeddings, l2_normalise(np.stack(vectors)), s.distance, weights)
                 for other, vectors in faces.items()}
    rows = [(min(sequence_db_id, other), max(sequence_db_id, other), d, sequence_db_id)
            for other, d in distances.items() if d >= DUPLICATE * s.threshold]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO apart_distances (source_id, a, b, distance) SELECT source_id, %s, %s, %s "
                        "FROM sequences WHERE id = %s ON CONFLICT (a, b) DO NOTHING", rows)


def source_limit(conn: psycopg.Connection, source: str, rate: float) -> float | None:
    """The `rate` quantile of the source's latest different-person distances (None: none recorded yet)."""
    row = conn.execute(
        "SELECT percentile_disc(%s) WITHIN GROUP (ORDER BY distance) FROM (SELECT a.distance FROM apart_distances a "
        "JOIN sources so ON so.id = a.source_id WHERE so.name = %s ORDER BY a.id DESC LIMIT %s) latest",
        (rate, source, WINDOW)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def for_source(conn: psycopg.Connection, source: str, s: ReidSettings) -> ReidSettings:
    """The settings a decision or merge on this source uses: both join thresholds scaled down by the same factor
    when the margin under the source's own different-person distances is below the calibrated join."""
    if not s.adapt_rate:
        return s
    apart = source_limit(conn, source, s.adapt_rate)
    limit = None if apart is None else (1 - s.margin) * apart
    if limit is None or limit >= s.threshold:
        return s
    factor = limit / s.threshold
    return s.model_copy(update={"threshold": limit, "named_threshold": s.named_threshold * factor})


def cluster_sources(conn: psycopg.Connection, ids: list[int]) -> dict[int, set[str]]:
    """The sources each of these clusters holds sequences of."""
    found: dict[int, set[str]] = {}
    for cluster_id, name in conn.execute("SELECT DISTINCT s.cluster_id, so.name FROM sequences s JOIN sources so "
                                         "ON so.id = s.source_id WHERE s.cluster_id = ANY(%s)", (ids,)):
        found.setdefault(cluster_id, set()).add(name)
    return found


def cluster_factors(conn: psycopg.Connection, sources: dict[int, set[str]], s: ReidSettings) -> dict[int, float]:
    """For each cluster (with its sources), the factor (at most 1) its strictest source scales the join
    thresholds by."""
    if not s.adapt_rate:
        return {}
    by_source = {name: for_source(conn, name, s).threshold / s.threshold for name in set().union(*sources.values())}
    return {c: min((by_source[name] for name in names), default=1.0) for c, names in sources.items()}


def source_thresholds(conn: psycopg.Connection, s: ReidSettings) -> list[dict]:
    """Per source: its different-person distances (pairs, quantiles) and the join threshold its decisions use."""
    rows = conn.execute(
        "SELECT so.name, count(*), min(a.distance), percentile_disc(ARRAY[0.01, 0.05, 0.5]) WITHIN GROUP "
        "(ORDER BY a.distance) FROM apart_distances a JOIN sources so ON so.id = a.source_id GROUP BY so.name "
        "ORDER BY so.name").fetchall()
    return [{"source": name, "different_pairs": count, "min": round(low, 4),
             "quantiles_1_5_50": [round(q, 4) for q in quantiles], "join": round(for_source(conn, name, s).threshold, 4)}
            for name, count, low, quantiles in rows]
