"""db-writer: stores closed sequences (faces with COPY) and forwards them with their store ids.

While the store is unreachable, sequences wait in a bounded buffer (counted) and writes are
retried with backoff; when the buffer is full the node blocks, so backpressure reaches the source.
"""

from __future__ import annotations

import time

from pydantic import Field

from nodes.environment import StoreParams
from nodes.messages import Sequence
from zdg.node import Deploy, FatalNodeError, Node
from zdg.retry import Backoff, retry


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
    preload = ("nodes.store.handle", "nodes.store.pg")
    batch_timeout_ms = 200

    def setup(self) -> None:
        from nodes.store.handle import StoreClient

        self.batch_size = self.params.batch_size
        self.client = StoreClient(self.params, self.context.env, self.log, self.context.count)
        self.unreachable = self.client.unreachable
        self.buffer: list[Sequence] = []
        self.retry_at = 0.0
        self.backoff = Backoff()

    def _write(self) -> list[Sequence]:
        """Write everything buffered in one transaction and return it with store ids (raises if unreachable)."""
        batch = self.buffer
        try:
            results = self.client.connected(batch[0].embeddings.shape[1]).write_sequences(batch)
        except self.unreachable:
            self.client.lost()
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
            raise FatalNodeError(f"store {self.client.where} unreachable for {self.params.wait_s:.0f}s; "
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
        counts = self.context.counters
        if counts["sequences_already_stored"] and not counts["sequences_written"]:
            self.log.warning("all %d sequences were stored before: this footage already ran under this video_id, so "
                             "nothing new was written (a new video_id stores it as a new visit)",
                             counts["sequences_already_stored"])
        return out

    def teardown(self) -> None:
        self.client.close()
