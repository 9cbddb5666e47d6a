"""Per-source checkpoints: the frame a rerun resumes from, and the end frame once a file was read to its end.

`resume_frame` advances in the same transaction as the re-id decision that makes a sequence durable;
every face of a frame before it belongs to a stored, decided sequence (or to none), so a rerun from it
rebuilds every sequence still open, with the same keys. The table needs no embedding dimension, so a
source can read it before any node has created the rest of the store.
"""

from __future__ import annotations

import psycopg

DDL = ("CREATE TABLE IF NOT EXISTS checkpoints (source text PRIMARY KEY, resume_frame int NOT NULL DEFAULT 0, "
       "end_frame int, updated_at timestamptz NOT NULL DEFAULT now())")
LOCK = 7245


def _ensure(conn: psycopg.Connection) -> None:
    if conn.execute("SELECT to_regclass('checkpoints')").fetchone()[0] is None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))
            conn.execute(DDL)


def read_checkpoint(conn: psycopg.Connection, source: str) -> tuple[int, int | None]:
    """(resume frame, end frame or None) of a source; (0, None) for one never seen."""
    _ensure(conn)
    row = conn.execute("SELECT resume_frame, end_frame FROM checkpoints WHERE source = %s", (source,)).fetchone()
    return (row[0], row[1]) if row else (0, None)


def advance(conn: psycopg.Connection, source: str, resume_frame: int) -> None:
    """Move the resume frame forward (never back); call inside the transaction that made the effects durable."""
    _ensure(conn)
    conn.execute("INSERT INTO checkpoints (source, resume_frame) VALUES (%s, %s) ON CONFLICT (source) DO UPDATE "
                 "SET resume_frame = GREATEST(checkpoints.resume_frame, excluded.resume_frame), updated_at = now()",
                 (source, resume_frame))


def mark_end(conn: psycopg.Connection, source: str, end_frame: int) -> None:
    """The source was read to its end: it is finished once the resume frame reaches `end_frame`."""
    _ensure(conn)
    conn.execute("INSERT INTO checkpoints (source, end_frame) VALUES (%s, %s) ON CONFLICT (source) DO UPDATE "
                 "SET end_frame = excluded.end_frame, updated_at = now()", (source, end_frame))
