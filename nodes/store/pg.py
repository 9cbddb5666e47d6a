"""The face store on Postgres + pgvector: `FaceStore` over one connection."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg

from nodes.matching.decision import Candidate, ReidSettings
from nodes.matching.truth import Truth
from nodes.messages import Sequence
from nodes.store import apart, browse, checkpoints, clusters, corrections, evaluation, export, maintain, reid, writes
from nodes.store.db import connect
from nodes.store.schema import check_model, migrate, store_dim

StoreUnreachable = psycopg.OperationalError  # what callers retry on


class PgFaceStore:
    def __init__(self, conn: psycopg.Connection, dim: int) -> None:
        self.conn = conn
        self.dim = dim
        self.models_checked: set[str] = set()  # committed as the store's model: not checked again

    @classmethod
    def open(cls, dsn: str, dim: int | None = None) -> PgFaceStore:
        """Connect; with `dim`, create or upgrade the schema for it (DimensionMismatch if the store holds another);
        without, upgrade an existing store's schema (an empty database stays empty, dim 0)."""
        conn = connect(dsn)
        dim = dim or store_dim(conn)
        return cls(conn, migrate(conn, dim) if dim else 0)

    def write_sequences(self, batch: list[Sequence]) -> list[tuple[int, bool]]:
        models = {seq.model for seq in batch} - self.models_checked
        with self.conn.transaction():
            for model in models:
                check_model(self.conn, model)
            written = writes.write_sequences(self.conn, batch)
        self.models_checked |= models
        return written

    def candidates(self, embeddings: np.ndarray, settings: ReidSettings, exclude_sequence: int | None) -> list[Candidate]:
        with self.conn.transaction():
            return reid.candidates(self.conn, embeddings, settings, exclude_sequence)

    def clusters_on_screen(self, source: str, first_frame: int, last_frame: int) -> set[int]:
        return apart.clusters_on_screen(self.conn, source, first_frame, last_frame)

    def for_source(self, source: str, settings: ReidSettings) -> ReidSettings:
        return apart.for_source(self.conn, source, settings)

    def source_thresholds(self, settings: ReidSettings) -> list[dict]:
        return apart.source_thresholds(self.conn, settings)

    def decide(self, query: reid.Query, settings: ReidSettings, checkpoint: tuple[str, int] | None = None) -> reid.Decision:
        return reid.decide(self.conn, query, settings, checkpoint)

    def checkpoint(self, source: str) -> tuple[int, int | None]:
        return checkpoints.read_checkpoint(self.conn, source)

    def mark_end(self, source: str, end_frame: int) -> None:
        checkpoints.mark_end(self.conn, source, end_frame)

    def advance_checkpoint(self, source: str, resume_frame: int) -> None:
        checkpoints.advance(self.conn, source, resume_frame)

    def maintain(self, settings: ReidSettings, max_vectors: int = 500, full: bool = False) -> maintain.MaintenanceReport:
        return maintain.maintain(self.conn, settings, max_vectors, full)

    def enroll(self, name: str, faces: list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray, float]], model: str = "") -> int:
        if not self.dim and faces:  # the first write to an empty store: its schema, for these embeddings
            self.dim = migrate(self.conn, len(faces[0][2]))
        with self.conn.transaction():
            check_model(self.conn, model)
            cluster_id = clusters.cluster_by_name(self.conn, name)
            for photo, path, embedding, box, kps, score in faces:
                writes.write_photo_face(self.conn, photo, path, embedding, box, kps, score, cluster_id)
            clusters.refresh_cluster(self.conn, cluster_id)
        self.models_checked.add(model)
        return cluster_id

    def resolve(self, cluster_id: int) -> int:
        """The cluster an id (perhaps of a cluster merged away since it was published) names now."""
        return clusters.resolve(self.conn, cluster_id)

    def merge(self, source: int, target: int, actor: str | None = None) -> None:
        with self.conn.transaction():
            reid.lock_decisions(self.conn)
            clusters.merge_clusters(self.conn, self.resolve(source), self.resolve(target), actor=actor)

    def rename(self, cluster_id: int, name: str, actor: str | None = None) -> None:
        with self.conn.transaction():
            clusters.rename_cluster(self.conn, self.resolve(cluster_id), name, actor)

    def delete(self, cluster_id: int, actor: str | None = None) -> clusters.Deleted:
        with self.conn.transaction():
            reid.lock_decisions(self.conn)
            return clusters.delete_cluster(self.conn, self.resolve(cluster_id), actor)

    def erase(self) -> list[str]:
        return clusters.rewrite_tables(self.conn)

    def split(self, cluster_id: int, sequence_ids: list[int], actor: str | None = None) -> int:
        return corrections.split(self.conn, cluster_id, sequence_ids, actor)

    def move_sequence(self, sequence_id: int, target: int, actor: str | None = None) -> int:
        return corrections.move_sequence(self.conn, sequence_id, target, actor)

    def mark_different(self, a: int, b: int, actor: str | None = None) -> None:
        corrections.mark_different(self.conn, a, b, actor)

    def identities(self, ids: list[int] | None = None, after: int = 0, limit: int | None = None) -> list[clusters.Identity]:
        return clusters.list_identities(self.conn, ids, after, limit)

    def identity_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM clusters").fetchone()[0]

    def likely_targets(self, cluster_id: int, k: int = 30) -> list[int]:
        return clusters.likely_targets(self.conn, cluster_id, k)

    def sequences(self, cluster_id: int) -> list[browse.SequenceRow]:
        return browse.sequences_of(self.conn, self.resolve(cluster_id))

    def recent_sequences(self, before: int | None = None, limit: int = 50) -> list[browse.DecidedSequence]:
        return browse.recent_sequences(self.conn, before, limit)

    def crop(self, sequence_id: int, frame: int | None = None) -> bytes | None:
        return browse.crop(self.conn, sequence_id, frame)

    def events(self, cluster_id: int | None = None, limit: int = 50) -> list[browse.Event]:
        return browse.events(self.conn, cluster_id, limit)

    def summary(self) -> dict[str, int]:
        return clusters.summary(self.conn)

    def sampled_vectors(self) -> tuple[np.ndarray, np.ndarray, dict[int, str | None]]:
        return maintain.sampled_vectors(self.conn)

    def report_clusters(self) -> list[tuple]:
        return clusters.clusters_for_report(self.conn)

    def appearances(self, cluster_id: int) -> list[tuple]:
        return clusters.appearances(self.conn, cluster_id)

    def crops(self, cluster_id: int, limit: int) -> list[tuple[bytes, int]]:
        return clusters.crops_of(self.conn, cluster_id, limit)

    def export(self) -> Iterator[dict]:
        return export.sequence_rows(self.conn)

    def evaluate_video(self, truth: Truth, video: str, first_visit: str | None = None, *, torso_apart: float) -> dict:
        return evaluation.evaluate_video(self.conn, truth, video, first_visit, torso_apart=torso_apart)

    def close(self) -> None:
        self.conn.close()
