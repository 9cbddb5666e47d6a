"""db-writer: stores closed sequences (faces with COPY) and forwards them with their store ids.

While the store is unreachable, sequences wait in a bounded buffer (counted) and writes are
retried with backoff; when the buffer is full the node blocks, so backpressure reaches the source.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pydantic import Field

from nodes.environment import FaceEnvironment
from nodes.messages import Sequence
from zdg.node import Deploy, FatalNodeError, Node, Params
from zdg.retry import Backoff, retry

if TYPE_CHECKING:
    from nodes.store.pg import PgFaceStore


class StoreParams(Params):
    dsn: str | None = Field(None, description="Postgres DSN; default $ZDG_DSN, else the embedded server")
    store_dir: str | None = Field(None, description="embedded server data folder (default .zdg/store)")
    wait_s: float = Field(600, gt=0, description="how long to wait for an unreachable store before failing")


class DbWriterParams(StoreParams):
    batch_size: int = Field(16, ge=1, le=1000, description="sequences per transaction")
    max_buffer: int = Field(2000, ge=1, description="sequences held while the store is down")


class DbWriterNode(Node):
    """Sequence in; the same Sequence with its `sequence_db_id` out, once stored."""

    TYPE = "db_writer"
    Params = DbWriterParams
    inputs = {"in": Sequence}
    outputs = {"out": Sequence}
    deploy = Deploy(image="zdg-faces", store=True)
    batch_timeout_ms = 200

    def setup(self) -> None:
        from nodes.store.db import describe, resolve_dsn
        from nodes.store.pg import PgFaceStore, StoreUnreachable

        self.batch_size = self.params.batch_size
        self.dsn = resolve_dsn(self.params.dsn, self.params.store_dir, FaceEnvironment.of(self.context.env))
        self.where = describe(self.dsn)
        self.open_store, self.unreachable = PgFaceStore.open, StoreUnreachable
        self.store: PgFaceStore | None = None
        self.buffer: list[Sequence] = []
        self.retry_at = 0.0
        self.backoff = Backoff()

    def _write(self) -> list[Sequence]:
        """Write everything buffered in one transaction and return it with store ids (raises if unreachable)."""
        batch = self.buffer
        try:
            if self.store is None or self.store.conn.closed:
                self.store = self.open_store(self.dsn, batch[0].embeddings.shape[1])
                self.log.info("writing to store %s (%d-d)", self.where, self.store.dim)
            results = self.store.write_sequences(batch)
        except self.unreachable:
            self.store = None
            raise
        self.buffer = []
        self.backoff.reset()
        for _, new in results:
            self.context.count("sequences_written" if new else "sequences_already_stored")
        return [seq.stored_as(store_id) for seq, (store_id, _) in zip(batch, results, strict=True)]

    def _on_outage(self, exc: Exception, delay: float) -> None:
        self.context.count("store_retries")
        self.log.warning("store unreachable (%s); %d sequences buffered, retry in %.1fs",
                         str(exc).strip().splitlines()[0], len(self.buffer), delay)

    def _flush(self) -> list[Sequence]:
        """One write attempt when one is due; on an outage keep the buffer and back off."""
        if not self.buffer or time.monotonic() < self.retry_at:
            return []
        try:
            return self._write()
        except self.unreachable as exc:
            delay = self.backoff.next()
            self.retry_at = time.monotonic() + delay
            self._on_outage(exc, delay)
            return []

    def _flush_blocking(self) -> list[Sequence]:
        if not self.buffer:
            return []
        try:
            return retry(self._write, self.unreachable, self.params.wait_s, self._on_outage, self.backoff)
        except self.unreachable:
            raise FatalNodeError(f"store {self.where} unreachable for {self.params.wait_s:.0f}s; "
                                 f"{len(self.buffer)} sequences not written") from None

    def process_batch(self, batch: list[Sequence]) -> list[Sequence]:
        self.buffer.extend(batch)
        self.context.counters["buffered"] = len(self.buffer)
        if len(self.buffer) >= self.params.max_buffer:
            return self._flush_blocking()
        return self._flush()

    def process(self, seq: Sequence) -> list[Sequence]:
        return self.process_batch([seq])

    def idle(self) -> list[Sequence]:
        out = self._flush()
        self.context.counters["buffered"] = len(self.buffer)
        return out

    def finish(self) -> list[Sequence]:
        out = self._flush_blocking()
        self.context.counters["buffered"] = 0
        return out

    def teardown(self) -> None:
        if self.store is not None:
            self.store.close()
