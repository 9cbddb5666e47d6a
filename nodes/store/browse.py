"""What a person browsing the store reads: one identity's sequences, their crops, and the history of changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg


@dataclass
class SequenceRow:
    id: int
    key: str
    source: str
    path: str | None
    first_frame: int
    last_frame: int
    first_ts: float | None
    last_ts: float | None
    faces: int
    distance: float | None
    junk: str | None
    stored_at: datetime
    crop_frames: list[int]
    camera: str | None
    location: str | None
    seen_at: datetime | None  # wall clock, where the source's start time is known


@dataclass
class Event:
    at: datetime
    kind: str
    cluster_id: int | None
    other_id: int | None
    detail: dict | None
    actor: str | None


@dataclass
class DecidedSequence(SequenceRow):
    """A stored sequence with what re-identification made of it: its identity (None: junk) and that one's name."""

    cluster_id: int | None
    name: str | None


SEQUENCE_COLUMNS = (
    "s.id, s.seq_key, so.name, so.path, s.first_frame, s.last_frame, s.first_ts, s.last_ts, s.size, s.distance, s.junk, "
    "s.created_at, coalesce((SELECT array_agg(c.frame ORDER BY c.frame) FROM crops c WHERE c.sequence_id = s.id), '{}'), "
    "so.camera, so.location, s.seen_at")


def sequences_of(conn: psycopg.Connection, cluster_id: int) -> list[SequenceRow]:
    """The identity's sequences in the order they were seen (source, then frame), with their crops' frames."""
    rows = conn.execute(
        f"SELECT {SEQUENCE_COLUMNS} FROM sequences s JOIN sources so ON so.id = s.source_id WHERE s.cluster_id = %s "
        "ORDER BY coalesce(s.seen_at, s.created_at), so.name, s.first_frame", (cluster_id,)).fetchall()
    return [SequenceRow(*row) for row in rows]


def recent_sequences(conn: psycopg.Connection, before: int | None, limit: int) -> list[DecidedSequence]:
    """The newest stored sequences (ids below `before`, if given), newest first, with their identity and name."""
    rows = conn.execute(
        f"SELECT {SEQUENCE_COLUMNS}, s.cluster_id, cl.name FROM sequences s JOIN sources so ON so.id = s.source_id "
        "LEFT JOIN clusters cl ON cl.id = s.cluster_id WHERE (%s::bigint IS NULL OR s.id < %s) ORDER BY s.id DESC LIMIT %s",
        (before, before, limit)).fetchall()
    return [DecidedSequence(*row) for row in rows]


def crop(conn: psycopg.Connection, sequence_id: int, frame: int | None = None) -> bytes | None:
    """A stored crop (PNG) of a sequence: the one of `frame`, else its first."""
    row = conn.execute("SELECT png FROM crops WHERE sequence_id = %s AND (%s::int IS NULL OR frame = %s) "
                       "ORDER BY frame LIMIT 1", (sequence_id, frame, frame)).fetchone()
    return bytes(row[0]) if row else None


def events(conn: psycopg.Connection, cluster_id: int | None = None, limit: int = 50) -> list[Event]:
    """The newest changes (of one identity, or of all), newest first."""
    rows = conn.execute(
        "SELECT at, kind, cluster_id, other_id, detail, actor FROM cluster_events "
        "WHERE %s::bigint IS NULL OR cluster_id = %s OR other_id = %s ORDER BY id DESC LIMIT %s",
        (cluster_id, cluster_id, cluster_id, limit)).fetchall()
    return [Event(*row) for row in rows]
