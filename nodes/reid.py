"""Re-identification node: each stored sequence joins its best face cluster or starts a new one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import psycopg

from nodes.db_writer import StoreParams
from nodes.store.db import connect, describe, resolve_dsn
from nodes.store.maintain import maintain
from nodes.store.reid import ReidSettings, decide
from nodes.store.schema import migrate
from zdg.message import Message
from zdg.node import FatalNodeError, Node

T = TypeVar("T")


class ReidParams(StoreParams, ReidSettings):
    maintain_every: int = 50


class ReidNode(Node):
    """Input: sequences from the db-writer (with `sequence_db_id`). Output: one decision per sequence."""

    Params = ReidParams

    def setup(self) -> None:
        self.dsn = resolve_dsn(self.params.dsn, self.params.store_dir)
        self.conn: psycopg.Connection | None = None
        self.decisions = 0

    def _with_store(self, dim: int, work: Callable[[psycopg.Connection], T]) -> T:
        """Run work(conn), reconnecting with backoff while the store is unreachable (up to wait_s)."""
        deadline = time.monotonic() + self.params.wait_s
        delay = 0.5
        while True:
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = connect(self.dsn)
                    migrate(self.conn, dim)
                return work(self.conn)
            except psycopg.OperationalError as exc:
                self.conn = None
                if time.monotonic() > deadline:
                    raise FatalNodeError(f"store {describe(self.dsn)} unreachable for {self.params.wait_s:.0f}s") from exc
                self.context.count("store_retries")
                self.log.warning("store unreachable; retrying in %.1fs", delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def process(self, msg: Message) -> Message:
        vectors = np.asarray(msg.arrays["vectors"], np.float32)
        decision = self._with_store(vectors.shape[1], lambda c: decide(c, msg.fields["sequence_db_id"], vectors, self.params))
        self.context.count(decision.status)
        self.decisions += 1
        if self.params.maintain_every and self.decisions % self.params.maintain_every == 0:
            self._with_store(vectors.shape[1], lambda c: maintain(c, self.params))
        f = msg.fields
        return Message(
            fields={"kind": "reid", "sequence_id": f["sequence_id"], "sequence_db_id": f["sequence_db_id"],
                    "video": f["video"], "video_path": f.get("video_path", ""), "first_frame": f["first_frame"],
                    "last_frame": f["last_frame"], "cluster_id": decision.cluster_id, "status": decision.status,
                    "distance": decision.distance, "silhouette": decision.silhouette, "name": decision.name,
                    "label": decision.name or f"face {decision.cluster_id}"},
            arrays={k: msg.arrays[k] for k in ("frames", "boxes_xyxy", "crops", "crop_frames") if k in msg.arrays},
        )

    def finish(self) -> None:
        if self.decisions and self.conn is not None:
            dim = int(self.conn.execute("SELECT value FROM zdg_meta WHERE key = 'dim'").fetchone()[0])
            self._with_store(dim, lambda c: maintain(c, self.params))

    def teardown(self) -> None:
        if self.conn is not None:
            self.conn.close()
