"""The ANN indexes on the stored centroids (of sequences and of clusters): HNSW while a table holds few rows,
IVFFlat from IVF_FROM rows on, its lists trained on the centroids themselves and retrained as their number
doubles or halves. At a million centroids IVFFlat answers in half HNSW's time at the same recall, and writers
no longer wait on inserts into a graph (bench/RESULTS.md)."""

from __future__ import annotations

import math
import re

import psycopg

IVF_FROM = 100_000  # rows; below half of it an IVFFlat index goes back to HNSW
TABLES = ("sequences", "clusters")
HNSW = "CREATE INDEX {name} ON {table} USING hnsw (centroid vector_cosine_ops)"
IVFFLAT = "CREATE INDEX {name} ON {table} USING ivfflat (centroid vector_cosine_ops) WITH (lists = {lists})"


def wanted_lists(rows: int, ivf_from: int = IVF_FROM) -> int:
    """IVFFlat lists for `rows` centroids (pgvector's advice: rows / 1000 up to a million, their square root
    beyond); 0 below `ivf_from`: HNSW."""
    if rows < ivf_from:
        return 0
    return max(1, rows // 1000 if rows <= 1_000_000 else math.isqrt(rows))


def current_lists(conn: psycopg.Connection, table: str) -> tuple[list[str], int]:
    """The centroid indexes `table` holds, and the lists of its IVFFlat one (0: none, HNSW)."""
    rows = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname LIKE %s",
                        (table, f"{table}_centroid_%")).fetchall()
    lists = [re.search(r"lists='?(\d+)", definition) for _, definition in rows if "ivfflat" in definition]
    return [name for name, _ in rows], int(lists[0].group(1)) if lists and lists[0] else 0


def row_count(conn: psycopg.Connection, table: str, ivf_from: int) -> int:
    """How many rows `table` holds: the planner's estimate where it is large enough to matter, else counted."""
    estimate = conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()[0]
    if estimate >= ivf_from / 4:
        return int(estimate)
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def rebuild_needed(held: bool, lists: int, rows: int, wanted: int, ivf_from: int) -> bool:
    """Whether the index held (IVFFlat with `lists`, 0: HNSW) no longer suits `rows` centroids (`wanted` lists)."""
    if not held:
        return True
    if lists == 0:
        return wanted > 0
    if wanted == 0:
        return rows < ivf_from / 2
    return not lists / 2 <= wanted <= lists * 2


def build_memory_kb(lists: int, dim: int) -> int:
    """maintenance_work_mem (kB) that pgvector's k-means for `lists` lists of `dim`-d vectors asks for (50 samples a
    list, at least 10,000; the centers three times over; their pairwise distances), doubled for headroom: 512-d
    centroids need more than PostgreSQL's default 64 MB from a million rows on."""
    samples = max(lists * 50, 10_000)
    needed = 4 * (samples * (dim + 4) + 3 * lists * dim + lists * lists)
    return 2 * needed // 1024 + 1


def refresh_centroid_index(conn: psycopg.Connection, table: str, ivf_from: int | None = None) -> str | None:
    """Rebuild `table`'s centroid index when the table outgrew or shrank past it (rebuild_needed); returns what was
    built, or None. The new index is built beside the old one, which goes only then: reads go on meanwhile, writes
    wait (about 16 s for IVFFlat over a million centroids on 2 cores). The build has the maintenance_work_mem its
    k-means needs (build_memory_kb)."""
    ivf_from = IVF_FROM if ivf_from is None else ivf_from
    held, lists = current_lists(conn, table)
    rows = row_count(conn, table, ivf_from)
    wanted = wanted_lists(rows, ivf_from)
    if not rebuild_needed(bool(held), lists, rows, wanted, ivf_from):
        return None
    final = f"{table}_centroid_{'ivfflat' if wanted else 'hnsw'}"
    building = f"{table}_centroid_rebuilt"
    with conn.transaction():
        if wanted:
            dim = conn.execute("SELECT atttypmod FROM pg_attribute WHERE attrelid = %s::regclass AND attname = "
                               "'centroid'", (table,)).fetchone()[0]
            conn.execute("SELECT set_config('maintenance_work_mem', greatest(%s, setting::bigint) || 'kB', true) "
                         "FROM pg_settings WHERE name = 'maintenance_work_mem'", (build_memory_kb(wanted, dim),))
        conn.execute((IVFFLAT if wanted else HNSW).format(name=building, table=table, lists=wanted))
        for name in held:
            conn.execute(f"DROP INDEX {name}")
        conn.execute(f"ALTER INDEX {building} RENAME TO {final}")
    return f"{final} ({wanted} lists)" if wanted else final


def refresh_centroid_indexes(conn: psycopg.Connection) -> list[str]:
    """refresh_centroid_index of every table with centroids; what was rebuilt."""
    return [built for table in TABLES if (built := refresh_centroid_index(conn, table))]
