"""Named identities (enrolled photos) and store-level operations behind `zdg enroll|identities|summary`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import psycopg

from nodes.embedder import l2_normalise
from nodes.faces import FrameInfo
from nodes.store.reid import new_cluster, refresh_cluster
from nodes.store.writes import ensure_source
from nodes.video_source import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from nodes.detector import DetectorNode
    from nodes.embedder import EmbedderNode


def photo_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(f for f in path.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


def largest_face(detector: DetectorNode, embedder: EmbedderNode, image: np.ndarray,
                 label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """(embedding, box, keypoints, score) of the largest face in a photo, or None."""
    faces = detector.detect(image, FrameInfo(label, label, 0, 0, 0.0))
    if not len(faces):
        return None
    areas = (faces.boxes_xyxy[:, 2] - faces.boxes_xyxy[:, 0]) * (faces.boxes_xyxy[:, 3] - faces.boxes_xyxy[:, 1])
    i = int(areas.argmax())
    faces.embeddings = l2_normalise(embedder.recogniser.embed([faces.crops[i]]))
    return faces.embeddings[0], faces.boxes_xyxy[i], faces.kps[i], float(faces.scores[i])


def cluster_by_name(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute("SELECT id FROM clusters WHERE name = %s", (name,)).fetchone()
    return row[0] if row else new_cluster(conn, name)


def enroll(conn: psycopg.Connection, name: str, photos: list[Path], detector: DetectorNode,
           embedder: EmbedderNode) -> tuple[int, list[str]]:
    """Add each photo's largest face to the named cluster; returns (cluster id, photos without a face)."""
    skipped = []
    with conn.transaction():
        cluster_id = cluster_by_name(conn, name)
        for photo in photos:
            image = cv2.imread(str(photo))
            found = largest_face(detector, embedder, image, str(photo)) if image is not None else None
            if found is None:
                skipped.append(str(photo))
                continue
            emb, box, kps, score = found
            source_id = ensure_source(conn, f"photo:{photo.resolve()}", str(photo))
            conn.execute(
                "INSERT INTO faces (source_id, frame, face_index, bbox, kps, score, quality, embedding, cluster_id) "
                "VALUES (%s, 0, 0, %s, %s, %s, %s, %s, %s) ON CONFLICT (source_id, frame, face_index) "
                "DO UPDATE SET cluster_id = excluded.cluster_id",
                (source_id, box.tolist(), kps.ravel().tolist(), score, score, emb.astype(np.float32), cluster_id))
        refresh_cluster(conn, cluster_id)
    return cluster_id, skipped


@dataclass
class Identity:
    id: int
    name: str | None
    size: int
    sequences: int
    sources: int
    silhouette: float | None


def list_identities(conn: psycopg.Connection) -> list[Identity]:
    rows = conn.execute(
        "SELECT c.id, c.name, c.size, count(DISTINCT s.id), count(DISTINCT s.source_id), c.silhouette FROM clusters c "
        "LEFT JOIN sequences s ON s.cluster_id = c.id GROUP BY c.id ORDER BY c.id").fetchall()
    return [Identity(*row) for row in rows]


def rename(conn: psycopg.Connection, cluster_id: int, name: str) -> None:
    if conn.execute("UPDATE clusters SET name = %s WHERE id = %s", (name, cluster_id)).rowcount != 1:
        raise LookupError(f"no identity {cluster_id}")


def merge(conn: psycopg.Connection, source: int, target: int) -> None:
    """Move every vector and sequence of `source` into `target`."""
    with conn.transaction():
        names = dict(conn.execute("SELECT id, name FROM clusters WHERE id = ANY(%s)", ([source, target],)).fetchall())
        missing = {source, target} - set(names)
        if missing:
            raise LookupError(f"no identity {sorted(missing)}")
        conn.execute("UPDATE faces SET cluster_id = %s WHERE cluster_id = %s", (target, source))
        conn.execute("UPDATE sequences SET cluster_id = %s WHERE cluster_id = %s", (target, source))
        conn.execute("DELETE FROM clusters WHERE id = %s", (source,))
        if not names[target] and names[source]:
            conn.execute("UPDATE clusters SET name = %s WHERE id = %s", (names[source], target))
        conn.execute("INSERT INTO cluster_events (kind, cluster_id, other_id) VALUES ('merge', %s, %s)", (target, source))
        refresh_cluster(conn, target)


def delete(conn: psycopg.Connection, cluster_id: int) -> int:
    """Remove the identity and every vector of it (faces and sequences); returns faces deleted."""
    with conn.transaction():
        if not conn.execute("SELECT 1 FROM clusters WHERE id = %s", (cluster_id,)).fetchone():
            raise LookupError(f"no identity {cluster_id}")
        faces = conn.execute("DELETE FROM faces WHERE cluster_id = %s", (cluster_id,)).rowcount
        conn.execute("DELETE FROM sequences WHERE cluster_id = %s", (cluster_id,))
        conn.execute("DELETE FROM clusters WHERE id = %s", (cluster_id,))
        conn.execute("INSERT INTO cluster_events (kind, cluster_id) VALUES ('delete', %s)", (cluster_id,))
    return faces


def summary(conn: psycopg.Connection) -> dict[str, int]:
    one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    return {
        "sources": one("SELECT count(*) FROM sources WHERE name NOT LIKE 'photo:%'"),
        "sequences": one("SELECT count(*) FROM sequences"),
        "faces": one("SELECT count(*) FROM faces WHERE sequence_id IS NOT NULL"),
        "clusters": one("SELECT count(*) FROM clusters"),
        "named_clusters": one("SELECT count(*) FROM clusters WHERE name IS NOT NULL"),
        "recognised_sequences": one("SELECT count(*) FROM cluster_events WHERE kind = 'recognised'"),
        "reappearing_clusters": one("SELECT count(*) FROM (SELECT cluster_id FROM sequences WHERE cluster_id IS NOT NULL "
                                    "GROUP BY cluster_id HAVING count(*) > 1) t"),
        "clusters_in_several_sources": one("SELECT count(*) FROM (SELECT cluster_id FROM sequences WHERE cluster_id IS NOT NULL "
                                           "GROUP BY cluster_id HAVING count(DISTINCT source_id) > 1) t"),
    }
