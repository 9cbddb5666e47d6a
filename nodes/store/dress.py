"""Clothing within one visit of one source (nodes.matching.appearance): how differently a sequence, or another
cluster, is dressed from a cluster. A visit: sequences of one source within `visit_s` of each other (by wall
clock where the source has one, else by stream time)."""

from __future__ import annotations

import numpy as np
import psycopg

from nodes.matching.appearance import dressed_distance
from nodes.matching.decision import ReidSettings

SAME_VISIT = ("CASE WHEN s.seen_at IS NOT NULL AND q.seen_at IS NOT NULL "
              "THEN abs(extract(epoch FROM s.seen_at - q.seen_at)) <= %(visit)s "
              "ELSE s.first_ts <= q.last_ts + %(visit)s AND s.last_ts >= q.first_ts - %(visit)s END")


def dressed_from(conn: psycopg.Connection, sequence_db_id: int, cluster_ids: list[int],
                 s: ReidSettings) -> dict[int, float]:
    """For each of these clusters holding sequences of the same visit as `sequence_db_id`, how differently the
    nearest-dressed of them is dressed from it (torso distance); clusters with none, or unseen clothes, are left out."""
    if not s.torso_apart or not cluster_ids:
        return {}
    own = conn.execute("SELECT torso FROM sequences WHERE id = %s", (sequence_db_id,)).fetchone()
    if own is None or own[0] is None:
        return {}
    rows = conn.execute(
        "SELECT s.cluster_id, s.torso FROM sequences q JOIN sequences s ON s.source_id = q.source_id "
        f"WHERE q.id = %(q)s AND s.id <> q.id AND s.cluster_id = ANY(%(ids)s) AND s.torso IS NOT NULL AND {SAME_VISIT}",
        {"q": sequence_db_id, "ids": cluster_ids, "visit": s.visit_s}).fetchall()
    seen: dict[int, list[np.ndarray]] = {}
    for cluster_id, torso in rows:
        seen.setdefault(cluster_id, []).append(np.asarray(torso, np.float32))
    query = np.asarray(own[0], np.float32)
    distances = {c: dressed_distance(query, torsos) for c, torsos in seen.items()}
    return {c: d for c, d in distances.items() if d is not None}


def clusters_dressed(conn: psycopg.Connection, a: int, b: int, s: ReidSettings) -> float | None:
    """How differently the nearest-dressed pair of a's and b's sequences of one visit are dressed (None: no such
    pair, or clothing off)."""
    if not s.torso_apart:
        return None
    rows = conn.execute(
        "SELECT q.torso, s.torso FROM sequences q JOIN sequences s ON s.source_id = q.source_id "
        "WHERE q.cluster_id = %(a)s AND s.cluster_id = %(b)s AND q.torso IS NOT NULL AND s.torso IS NOT NULL "
        f"AND {SAME_VISIT}", {"a": a, "b": b, "visit": s.visit_s}).fetchall()
    distances = [d for x, y in rows if (d := dressed_distance(np.asarray(x, np.float32), [np.asarray(y, np.float32)]))
                 is not None]
    return min(distances) if distances else None
