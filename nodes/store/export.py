"""The store as rows a user takes to pandas: one per sequence, with its cluster and the cluster's name, or why
it is junk."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

import psycopg

EXPORT_COLUMNS = ("source", "sequence_key", "first_frame", "last_frame", "first_ts", "last_ts", "faces", "cluster_id",
                  "cluster_name", "distance", "junk", "camera", "location", "seen_at")


def sequence_rows(conn: psycopg.Connection, batch: int = 10_000) -> Iterator[dict[str, Any]]:
    """Every sequence as an export row, read through a server-side cursor `batch` rows at a time (memory stays
    flat however large the store)."""
    with conn.transaction(), conn.cursor(name="zdg_export") as cur:
        cur.itersize = batch
        cur.execute(
            "SELECT so.name, s.seq_key, s.first_frame, s.last_frame, s.first_ts, s.last_ts, "
            "(SELECT count(*) FROM faces f WHERE f.sequence_id = s.id), s.cluster_id, c.name, s.distance, s.junk, "
            "so.camera, so.location, to_char(s.seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
            "FROM sequences s JOIN sources so ON so.id = s.source_id LEFT JOIN clusters c ON c.id = s.cluster_id "
            "ORDER BY so.name, s.first_frame, s.seq_key")
        for row in cur:
            yield dict(zip(EXPORT_COLUMNS, row, strict=True))


def write_rows(rows: Iterable[dict[str, Any]], fmt: str, out: TextIO) -> int:
    """JSON lines or CSV (with a header row) to `out` as the rows come; how many were written."""
    count = 0
    writer = None if fmt == "jsonl" else csv.DictWriter(out, EXPORT_COLUMNS, lineterminator="\n")
    if writer:
        writer.writeheader()
    for row in rows:
        if writer:
            writer.writerow({k: inert(v) for k, v in row.items()})
        else:
            out.write(json.dumps(row) + "\n")
        count += 1
    return count


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a leading apostrophe."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value
