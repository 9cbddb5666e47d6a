"""The store as rows a user takes to pandas: one per sequence, with its cluster and the cluster's name, or why
it is junk."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import psycopg

EXPORT_COLUMNS = ("source", "sequence_key", "first_frame", "last_frame", "first_ts", "last_ts", "faces", "cluster_id",
                  "cluster_name", "distance", "junk", "camera", "location", "seen_at")


def sequence_rows(conn: psycopg.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT so.name, s.seq_key, s.first_frame, s.last_frame, s.first_ts, s.last_ts, "
        "(SELECT count(*) FROM faces f WHERE f.sequence_id = s.id), s.cluster_id, c.name, s.distance, s.junk, "
        "so.camera, so.location, to_char(s.seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
        "FROM sequences s JOIN sources so ON so.id = s.source_id LEFT JOIN clusters c ON c.id = s.cluster_id "
        "ORDER BY so.name, s.first_frame, s.seq_key").fetchall()
    return [dict(zip(EXPORT_COLUMNS, row, strict=True)) for row in rows]


def render_rows(rows: list[dict[str, Any]], fmt: str) -> str:
    """JSON lines or CSV (with a header row)."""
    if fmt == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: inert(v) for k, v in row.items()} for row in rows)
    return out.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a leading apostrophe."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value
