"""Idempotent writes: closed sequences (faces go in with COPY) and enrolled photos; natural keys make replays write nothing."""

from __future__ import annotations

import cv2
import numpy as np
import psycopg

from nodes.messages import Sequence

FACE_COLUMNS = "source_id, frame, face_index, sequence_id, bbox, kps, score, quality, embedding"
FACE_TYPES = ["int8", "int4", "int4", "int8", "float4[]", "float4[]", "float4", "float4", "vector"]


def ensure_source(conn: psycopg.Connection, name: str, path: str, camera: str = "", location: str = "",
                  start_time: float = 0.0) -> int:
    """The source's id, created or updated with its path and, where given, its camera, place and start time."""
    return conn.execute(
        "INSERT INTO sources (name, path, camera, location, start_time) VALUES (%s, %s, %s, %s, "
        "CASE WHEN %s > 0 THEN to_timestamp(%s) END) ON CONFLICT (name) DO UPDATE SET path = excluded.path, "
        "camera = coalesce(excluded.camera, sources.camera), location = coalesce(excluded.location, sources.location), "
        "start_time = coalesce(excluded.start_time, sources.start_time) RETURNING id",
        (name, path, camera or None, location or None, start_time, start_time)).fetchone()[0]


def holder_of_faces(conn: psycopg.Connection, source_id: int, seq: Sequence) -> int | None:
    """The stored sequence that already holds every face of `seq` (the same footage run again, or a replay
    that rebuilt part of a stored track), or None when any face of it is new."""
    rows = conn.execute(
        "SELECT f.sequence_id, count(*) FROM unnest(%s::int[], %s::int[]) AS q(frame, face_index) "
        "LEFT JOIN faces f ON f.source_id = %s AND f.frame = q.frame AND f.face_index = q.face_index "
        "GROUP BY f.sequence_id ORDER BY count(*) DESC",
        (seq.frames.tolist(), seq.face_index.tolist(), source_id)).fetchall()
    return None if any(holder is None for holder, _ in rows) else rows[0][0]


def write_sequence(conn: psycopg.Connection, seq: Sequence) -> tuple[int, bool]:
    """Store one closed sequence with its faces and crops; returns (sequence id, newly written).

    Keys come from content (nodes.tracking.sequence_key), so a sequence seen before is found by its key;
    one whose every face is stored already (under another key) is not written again either."""
    source_id = ensure_source(conn, seq.video, seq.video_path, seq.camera, seq.location, seq.start_time)
    if (holder := holder_of_faces(conn, source_id, seq)) is not None:
        return holder, False
    row = conn.execute(
        "INSERT INTO sequences (source_id, seq_key, first_frame, last_frame, first_ts, last_ts, size, centroid, seen_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s > 0 THEN to_timestamp(%s) END) "
        "ON CONFLICT (seq_key) DO NOTHING RETURNING id",
        (source_id, seq.sequence_id, seq.first_frame, seq.last_frame, seq.first_ts, seq.last_ts, seq.size,
         seq.centroid, seq.start_time, seq.start_time + seq.first_ts)).fetchone()
    if row is None:
        return conn.execute("SELECT id FROM sequences WHERE seq_key = %s", (seq.sequence_id,)).fetchone()[0], False
    sequence_id = row[0]
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS faces_in (LIKE faces INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    with conn.cursor().copy(f"COPY faces_in ({FACE_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(FACE_TYPES)
        for i in range(seq.size):
            copy.write_row((source_id, int(seq.frames[i]), int(seq.face_index[i]), sequence_id,
                            seq.boxes_xyxy[i].tolist(), seq.kps[i].ravel().tolist(), float(seq.scores[i]),
                            float(seq.quality[i]), seq.embeddings[i]))
    conn.execute(f"INSERT INTO faces ({FACE_COLUMNS}) SELECT {FACE_COLUMNS} FROM faces_in "
                 "ON CONFLICT (source_id, frame, face_index) DO NOTHING")
    for frame, crop in zip(seq.crop_frames, seq.crops, strict=True):
        ok, png = cv2.imencode(".png", crop)
        if ok:
            conn.execute("INSERT INTO crops VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", (sequence_id, int(frame), png.tobytes()))
    return sequence_id, True


def write_photo_face(conn: psycopg.Connection, photo: str, path: str, embedding: np.ndarray, box: np.ndarray,
                     kps: np.ndarray, score: float, cluster_id: int) -> None:
    """An enrolled photo's face, in a named cluster (a photo enrolled again moves to that cluster)."""
    source_id = ensure_source(conn, f"photo:{photo}", path)
    conn.execute(
        "INSERT INTO faces (source_id, frame, face_index, bbox, kps, score, quality, embedding, cluster_id) "
        "VALUES (%s, 0, 0, %s, %s, %s, %s, %s, %s) ON CONFLICT (source_id, frame, face_index) "
        "DO UPDATE SET cluster_id = excluded.cluster_id",
        (source_id, box.tolist(), kps.ravel().tolist(), score, score, embedding.astype(np.float32), cluster_id))
