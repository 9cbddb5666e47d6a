"""Idempotent writes: closed sequences, a batch in a few statements (faces go in with COPY), and enrolled photos;
natural keys make replays write nothing."""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
import psycopg
from pgvector import Vector

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


def stored_holders(conn: psycopg.Connection, batch: list[Sequence], sources: list[int]) -> list[list[int | None]]:
    """For each sequence of the batch, the stored sequence holding each of its faces (None: not stored); one query,
    each face looked up by its key."""
    numbers = np.concatenate([np.full(seq.size, i) for i, seq in enumerate(batch)]).tolist()
    rows = conn.execute(
        "SELECT q.n, f.sequence_id FROM unnest(%s::int[], %s::bigint[], %s::int[], %s::int[]) "
        "WITH ORDINALITY AS q(n, source_id, frame, face_index, o) LEFT JOIN LATERAL (SELECT sequence_id FROM faces "
        "WHERE source_id = q.source_id AND frame = q.frame AND face_index = q.face_index) f ON true ORDER BY q.o",
        (numbers, [sources[n] for n in numbers], np.concatenate([seq.frames for seq in batch]).tolist(),
         np.concatenate([seq.face_index for seq in batch]).tolist())).fetchall()
    holders: list[list[int | None]] = [[] for _ in batch]
    for n, holder in rows:
        holders[n].append(holder)
    return holders


def insert_sequences(conn: psycopg.Connection, batch: list[Sequence], sources: list[int]) -> dict[str, tuple[int, bool]]:
    """Insert the sequences' rows; (id, newly inserted) by key (a key stored before keeps its row)."""
    columns = list(zip(*[(sources[i], seq.sequence_id, seq.first_frame, seq.last_frame, seq.first_ts, seq.last_ts,
                          seq.size, Vector(seq.centroid), seq.start_time + seq.first_ts if seq.start_time > 0 else None)
                         for i, seq in enumerate(batch)], strict=True))
    inserted = conn.execute(
        "INSERT INTO sequences (source_id, seq_key, first_frame, last_frame, first_ts, last_ts, size, centroid, seen_at) "
        "SELECT source_id, seq_key, first_frame, last_frame, first_ts, last_ts, size, centroid, to_timestamp(seen_at) "
        "FROM unnest(%s::bigint[], %s::text[], %s::int[], %s::int[], %s::float8[], %s::float8[], %s::int[], "
        "%s::vector[], %s::float8[]) AS q(source_id, seq_key, first_frame, last_frame, first_ts, last_ts, size, "
        "centroid, seen_at) ON CONFLICT (seq_key) DO NOTHING RETURNING seq_key, id", [list(c) for c in columns]).fetchall()
    ids = {key: (sequence_id, True) for key, sequence_id in inserted}
    dressed = [(seq.torso.tolist(), ids[seq.sequence_id][0]) for seq in batch if seq.sequence_id in ids and len(seq.torso)]
    if dressed:
        with conn.cursor() as cur:
            cur.executemany("UPDATE sequences SET torso = %s WHERE id = %s", dressed)
    old = [seq.sequence_id for seq in batch if seq.sequence_id not in ids]
    if old:
        ids |= {key: (sequence_id, False) for key, sequence_id in
                conn.execute("SELECT seq_key, id FROM sequences WHERE seq_key = ANY(%s)", (old,)).fetchall()}
    return ids


def copy_faces(conn: psycopg.Connection, rows: list[tuple[Sequence, int, int]]) -> None:
    """The faces of each (sequence, source id, stored id), with COPY; faces stored before stay as they are."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS faces_in (LIKE faces INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    with conn.cursor().copy(f"COPY faces_in ({FACE_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(FACE_TYPES)
        for seq, source_id, sequence_id in rows:
            for i in range(seq.size):
                copy.write_row((source_id, int(seq.frames[i]), int(seq.face_index[i]), sequence_id,
                                seq.boxes_xyxy[i].tolist(), seq.kps[i].ravel().tolist(), float(seq.scores[i]),
                                float(seq.quality[i]), seq.embeddings[i]))
    conn.execute(f"INSERT INTO faces ({FACE_COLUMNS}) SELECT {FACE_COLUMNS} FROM faces_in "
                 "ON CONFLICT (source_id, frame, face_index) DO NOTHING")


def write_crops(conn: psycopg.Connection, rows: list[tuple[Sequence, int, int]]) -> None:
    crops = [(sequence_id, int(frame), png.tobytes()) for seq, _, sequence_id in rows
             for frame, crop in zip(seq.crop_frames, seq.crops, strict=True)
             for ok, png in [cv2.imencode(".png", crop)] if ok]
    with conn.cursor() as cursor:
        cursor.executemany("INSERT INTO crops VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", crops)


def write_sequences(conn: psycopg.Connection, batch: list[Sequence]) -> list[tuple[int, bool]]:
    """Store closed sequences with their faces and crops; returns (sequence id, newly written) for each.

    Keys come from content (nodes.vision.tracking.sequence_key), so a sequence seen before is found by its key; one
    whose every face is stored already (under another key, or by a sequence earlier in the batch) is not written
    again either, and its id is that of the sequence holding most of its faces. A few statements per batch."""
    wheres = [(seq.video, seq.video_path, seq.camera, seq.location, seq.start_time) for seq in batch]
    source_ids = {where: ensure_source(conn, *where) for where in dict.fromkeys(wheres)}
    sources = [source_ids[where] for where in wheres]
    queued: dict[tuple[int, int, int], int] = {}  # face key -> number in the batch of the sequence writing it
    held: dict[int, int | tuple[str, int]] = {}  # number in the batch -> stored holder, or ("queued", its number)
    fresh: list[int] = []
    for n, (seq, stored) in enumerate(zip(batch, stored_holders(conn, batch, sources), strict=True)):
        keys = [(sources[n], int(f), int(i)) for f, i in zip(seq.frames, seq.face_index, strict=True)]
        holders = [h if h is not None else ("queued", queued[k]) if k in queued else None
                   for h, k in zip(stored, keys, strict=True)]
        if None in holders:
            fresh.append(n)
            queued |= {k: n for k, h in zip(keys, holders, strict=True) if h is None}
        else:
            held[n] = Counter(holders).most_common(1)[0][0]
    ids = insert_sequences(conn, [batch[n] for n in fresh], [sources[n] for n in fresh]) if fresh else {}
    written = [(batch[n], sources[n], ids[batch[n].sequence_id][0]) for n in fresh if ids[batch[n].sequence_id][1]]
    if written:
        copy_faces(conn, written)
        write_crops(conn, written)
    results: list[tuple[int, bool]] = []
    for n, seq in enumerate(batch):
        holder = held.get(n)
        if holder is None:
            results.append(ids[seq.sequence_id])
        elif isinstance(holder, tuple):
            results.append((ids[batch[holder[1]].sequence_id][0], False))
        else:
            results.append((holder, False))
    return results


def write_photo_face(conn: psycopg.Connection, photo: str, path: str, embedding: np.ndarray, box: np.ndarray,
                     kps: np.ndarray, score: float, cluster_id: int) -> None:
    """An enrolled photo's face, in a named cluster (a photo enrolled again moves to that cluster)."""
    source_id = ensure_source(conn, f"photo:{photo}", path)
    conn.execute(
        "INSERT INTO faces (source_id, frame, face_index, bbox, kps, score, quality, embedding, cluster_id) "
        "VALUES (%s, 0, 0, %s, %s, %s, %s, %s, %s) ON CONFLICT (source_id, frame, face_index) "
        "DO UPDATE SET cluster_id = excluded.cluster_id",
        (source_id, box.tolist(), kps.ravel().tolist(), score, score, embedding.astype(np.float32), cluster_id))
