"""db-writer: stores closed sequences (faces with COPY) and forwards them with their store ids.

While the store is unreachable, sequences wait in a bounded buffer (counted) and writes are
retried with backoff; when the buffer is full the node blocks, so backpressure reaches the source.
"""

from __future__ import annotations

import time
from collections import deque

import psycopg
from pydantic import Field

from nodes.store.db import connect, describe, resolve_dsn
from nodes.store.schema import migrate
from nodes.store.writes import write_sequence
from zdg.message import Message
from zdg.node import FatalNodeError, Node, Params


class StoreParams(Params):
    dsn: str | None = Field(None, description="Postgres DSN; default $ZDG_DSN, else the embedded server")
    store_dir: str | None = Field(None, description="embedded server data folder (default .zdg/store)")
    wait_s: float = Field(600, gt=0, description="how long to wait for an unreachable store before failing")


class DbWriterParams(StoreParams):
    batch_size: int = Field(16, ge=1, le=1000, description="sequences per transaction")
    max_buffer: int = Field(2000, ge=1, description="sequences held while the store is down")


class DbWriterNode(Node):
    Params = DbWriterParams
    batch_timeout_ms = 200

    def setup(self) -> None:
        self.batch_size = self.params.batch_size
        self.dsn = resolve_dsn(self.params.dsn, self.params.store_dir)
        self.conn: psycopg.Connection | None = None
        self.dim: int | None = None
        self.buffer: deque[Message] = deque()
        self.retry_at = 0.0
        self.backoff = 0.5

    def _connection(self, dim: int) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = connect(self.dsn)
            migrate(self.conn, dim)
            self.log.info("writing to store %s (%d-d)", describe(self.dsn), dim)
        return self.conn

    def _flush(self) -> list[Message]:
        """Write everything buffered in one transaction; on a store outage keep it and back off."""
        if not self.buffer or time.monotonic() < self.retry_at:
            return []
        batch = list(self.buffer)
        try:
            conn = self._connection(int(batch[0].arrays["vectors"].shape[1]))
            with conn.transaction():
                results = [write_sequence(conn, msg) for msg in batch]
        except psycopg.OperationalError as exc:
            self.conn = None
            self.retry_at = time.monotonic() + self.backoff
            self.log.warning("store unreachable (%s); %d sequences buffered, retry in %.1fs",
                             str(exc).strip().splitlines()[0], len(self.buffer), self.backoff)
            self.backoff = min(self.backoff * 2, 5.0)
            self.context.count("store_retries")
            return []
        self.backoff = 0.5
        self.buffer.clear()
        out = []
        for msg, (sequence_db_id, new) in zip(batch, results, strict=True):
            self.context.count("sequences_written" if new else "sequences_already_stored")
            msg.fields["sequence_db_id"] = sequence_db_id
            out.append(Message(fields=msg.fields, arrays=msg.arrays))
        return out

    def _flush_blocking(self, deadline: float) -> list[Message]:
        while True:
            out = self._flush()
            if not self.buffer:
                return out
            if time.monotonic() > deadline:
                raise FatalNodeError(f"store {describe(self.dsn)} unreachable for {self.params.wait_s:.0f}s; "
                                     f"{len(self.buffer)} sequences not written")
            time.sleep(max(0.0, self.retry_at - time.monotonic()))

    def process_batch(self, msgs: list[Message]) -> list[Message]:
        self.buffer.extend(msgs)
        self.context.counters["buffered"] = len(self.buffer)
        if len(self.buffer) >= self.params.max_buffer:
            return self._flush_blocking(time.monotonic() + self.params.wait_s)
        return self._flush()

    def process(self, msg: Message) -> list[Message]:
        return self.process_batch([msg])

    def idle(self) -> list[Message]:
        out = self._flush()
        self.context.counters["buffered"] = len(self.buffer)
        return out

    def finish(self) -> list[Message]:
        out = self._flush_blocking(time.monotonic() + self.params.wait_s)
        self.context.counters["buffered"] = 0
        return out

    def teardown(self) -> None:
        if self.conn is not None:
            self.conn.close()
