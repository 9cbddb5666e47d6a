"""Idempotent writes of closed sequences: faces go in with COPY, natural keys make replays write nothing."""

from __future__ import annotations

import cv2
import numpy as np
import psycopg

from zdg.message import Message

FACE_COLUMNS = "source_id, frame, face_index, sequence_id, bbox, kps, score, quality, embedding"
FACE_TYPES = ["int8", "int4", "int4", "int8", "float4[]", "float4[]", "float4", "float4", "vector"]


def ensure_source(conn: psycopg.Connection, name: str, path: str) -> int:
    return conn.execute(
        "INSERT INTO sources (name, path) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET path = excluded.path "
        "RETURNING id", (name, path)).fetchone()[0]


def write_sequence(conn: psycopg.Connection, msg: Message) -> tuple[int, bool]:
    """Store one closed sequence with its faces and crops; returns (sequence id, newly written)."""
    f, a = msg.fields, msg.arrays
    source_id = ensure_source(conn, f["video"], f.get("video_path", ""))
    row = conn.execute(
        "INSERT INTO sequences (source_id, seq_key, first_frame, last_frame, first_ts, last_ts, size, centroid) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (seq_key) DO NOTHING RETURNING id",
        (source_id, f["sequence_id"], f["first_frame"], f["last_frame"], f["first_ts"], f["last_ts"], f["size"],
         np.asarray(a["centroid"], np.float32))).fetchone()
    if row is None:
        return conn.execute("SELECT id FROM sequences WHERE seq_key = %s", (f["sequence_id"],)).fetchone()[0], False
    sequence_id = row[0]
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS faces_in (LIKE faces INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    with conn.cursor().copy(f"COPY faces_in ({FACE_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(FACE_TYPES)
        for i in range(len(a["vectors"])):
            copy.write_row((source_id, int(a["frames"][i]), int(a["face_index"][i]), sequence_id,
                            a["boxes_xyxy"][i].tolist(), a["kps"][i].ravel().tolist(), float(a["scores"][i]),
                            float(a["quality"][i]), np.asarray(a["vectors"][i], np.float32)))
    conn.execute(f"INSERT INTO faces ({FACE_COLUMNS}) SELECT {FACE_COLUMNS} FROM faces_in "
                 "ON CONFLICT (source_id, frame, face_index) DO NOTHING")
    for frame, crop in zip(a.get("crop_frames", []), a.get("crops", []), strict=True):
        ok, png = cv2.imencode(".png", np.asarray(crop))
        if ok:
            conn.execute("INSERT INTO crops VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", (sequence_id, int(frame), png.tobytes()))
    return sequence_id, True
