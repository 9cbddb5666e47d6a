"""Re-identification node: each stored sequence joins its best face cluster or starts a new one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from nodes.db_writer import StoreParams
from nodes.decision import ReidSettings
from nodes.environment import FaceEnvironment
from nodes.messages import ReidDecision, Sequence
from zdg.node import Deploy, FatalNodeError, Node
from zdg.retry import retry

if TYPE_CHECKING:
    from nodes.store.pg import PgFaceStore

T = TypeVar("T")


class ReidParams(StoreParams, ReidSettings):
    maintain_every: int = 50


class ReidNode(Node):
    """Stored sequences (with `sequence_db_id`) in; one ReidDecision per sequence out."""

    TYPE = "reid"
    Params = ReidParams
    inputs = {"in": Sequence}
    outputs = {"out": ReidDecision}
    deploy = Deploy(image="zdg-faces", store=True)

    def setup(self) -> None:
        from nodes.store.db import describe, resolve_dsn
        from nodes.store.pg import PgFaceStore, StoreUnreachable

        self.dsn = resolve_dsn(self.params.dsn, self.params.store_dir, FaceEnvironment.of(self.context.env))
        self.where = describe(self.dsn)
        self.open_store, self.unreachable = PgFaceStore.open, StoreUnreachable
        self.store: PgFaceStore | None = None
        self.decisions = 0

    def _on_outage(self, _exc: Exception, delay: float) -> None:
        self.store = None
        self.context.count("store_retries")
        self.log.warning("store unreachable; retrying in %.1fs", delay)

    def _with_store(self, dim: int, work: Callable[[PgFaceStore], T]) -> T:
        """work(store), reconnecting with backoff while the store is unreachable (up to wait_s)."""
        def attempt() -> T:
            if self.store is None or self.store.conn.closed:
                self.store = self.open_store(self.dsn, dim)
            return work(self.store)

        try:
            return retry(attempt, self.unreachable, self.params.wait_s, self._on_outage)
        except self.unreachable as exc:
            raise FatalNodeError(f"store {self.where} unreachable for {self.params.wait_s:.0f}s") from exc

    def process(self, seq: Sequence) -> ReidDecision:
        if seq.sequence_db_id is None:
            raise ValueError(f"sequence {seq.sequence_id} has no sequence_db_id: reid takes sequences from a db_writer")
        dim = seq.embeddings.shape[1]
        decision = self._with_store(dim, lambda store: store.decide(seq.sequence_db_id, seq.embeddings, self.params))
        self.context.count(decision.status)
        self.decisions += 1
        if self.params.maintain_every and self.decisions % self.params.maintain_every == 0:
            self._with_store(dim, lambda store: store.maintain(self.params))
        return ReidDecision(
            sequence_id=seq.sequence_id, sequence_db_id=seq.sequence_db_id, video=seq.video, video_path=seq.video_path,
            first_frame=seq.first_frame, last_frame=seq.last_frame, cluster_id=decision.cluster_id,
            status=decision.status, distance=decision.distance, silhouette=decision.silhouette, name=decision.name,
            frames=seq.frames, boxes_xyxy=seq.boxes_xyxy, crops=seq.crops, crop_frames=seq.crop_frames)

    def finish(self) -> None:
        if self.decisions and self.store is not None:
            self._with_store(self.store.dim, lambda store: store.maintain(self.params))

    def teardown(self) -> None:
        if self.store is not None:
            self.store.close()
