"""Cannot-links: pairs of clusters a person marked as different people. No merge crosses one, and a merge
carries the links of the cluster merged away to the one it went into."""

from __future__ import annotations

import psycopg


def link(conn: psycopg.Connection, a: int, b: int) -> None:
    conn.execute("INSERT INTO cannot_links (a, b) VALUES (%s, %s) ON CONFLICT DO NOTHING", (min(a, b), max(a, b)))


def linked(conn: psycopg.Connection, a: int, b: int) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM cannot_links WHERE a = %s AND b = %s)",
                        (min(a, b), max(a, b))).fetchone()[0]


def kept_apart(conn: psycopg.Connection, cluster_id: int) -> set[int]:
    """The clusters marked as other people than this one."""
    rows = conn.execute("SELECT CASE WHEN a = %s THEN b ELSE a END FROM cannot_links WHERE a = %s OR b = %s",
                        (cluster_id, cluster_id, cluster_id)).fetchall()
    return {r[0] for r in rows}


def carry(conn: psycopg.Connection, source: int, target: int) -> None:
    """`source` is merged into `target`: whoever was kept apart from source is kept apart from target."""
    for other in kept_apart(conn, source) - {target}:
        link(conn, other, target)
