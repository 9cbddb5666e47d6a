"""A node's handle on the store: the DSN it resolves to, a connection opened on demand, and waiting out outages."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from nodes.environment import FaceEnvironment, StoreParams
from zdg.node import FatalNodeError
from zdg.retry import retry

if TYPE_CHECKING:
    from nodes.store.pg import PgFaceStore

T = TypeVar("T")


class StoreClient:
    def __init__(self, params: StoreParams, env: Mapping[str, str], log: logging.Logger,
                 count: Callable[[str], None]) -> None:
        from nodes.store.db import describe, resolve_dsn
        from nodes.store.pg import PgFaceStore, StoreUnreachable

        self.dsn = resolve_dsn(params.dsn, params.store_dir, FaceEnvironment.of(env))
        self.where = describe(self.dsn)  # no password: safe to log
        self.wait_s = params.wait_s
        self.unreachable = StoreUnreachable
        self.open_store = PgFaceStore.open
        self.log, self.count = log, count
        self.store: PgFaceStore | None = None

    def connected(self, dim: int | None) -> PgFaceStore:
        """The store, connected (and migrated for `dim`) if it is not; raises `unreachable` while it is down."""
        if self.store is None or self.store.conn.closed:
            self.store = self.open_store(self.dsn, dim)
            self.log.info("store %s (%d-d embeddings)", self.where, self.store.dim)
        return self.store

    def lost(self) -> None:
        """The connection failed: the next call reconnects."""
        self.store = None

    def call(self, dim: int | None, work: Callable[[PgFaceStore], T]) -> T:
        """work(store), reconnecting with backoff while the store is unreachable (up to wait_s), then FatalNodeError."""
        def on_retry(_exc: Exception, delay: float) -> None:
            self.lost()
            self.count("store_retries")
            self.log.warning("store unreachable; retrying in %.1fs", delay)

        try:
            return retry(lambda: work(self.connected(dim)), self.unreachable, self.wait_s, on_retry)
        except self.unreachable as exc:
            raise FatalNodeError(f"store {self.where} unreachable for {self.wait_s:.0f}s") from exc

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
