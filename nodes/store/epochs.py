"""The graph's epoch and members in Postgres: the store's epoch board for graph recovery (zdg.recovery)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

import psycopg

from nodes.store.db import open_connection
from zdg.recovery import Joined

log = logging.getLogger("zdg.recovery")
LOCK = 7_261_001  # advisory lock for creating the tables (nodes start together)
DDL = (
    "CREATE TABLE IF NOT EXISTS zdg_graph_epochs (graph text PRIMARY KEY, epoch bigint NOT NULL DEFAULT 1, "
    "moved_by text, moved_at timestamptz)",
    "CREATE TABLE IF NOT EXISTS zdg_graph_members (graph text NOT NULL, member text NOT NULL, node text NOT NULL, "
    "epoch bigint NOT NULL, state text NOT NULL, seen_at timestamptz NOT NULL DEFAULT now(), "
    "PRIMARY KEY (graph, member))",
)


class PgEpochBoard:
    """The graph's epoch and members in the store at `dsn`; one connection, reopened after an outage."""

    def __init__(self, dsn: str, graph: str, member: str, node: str) -> None:
        self.dsn, self.graph, self.member, self.node = dsn, graph, member, node
        self.conn: psycopg.Connection | None = None

    def twin(self) -> PgEpochBoard:
        """The same board on a connection of its own (for a watcher thread)."""
        return PgEpochBoard(self.dsn, self.graph, self.member, self.node)

    def _connected(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = open_connection(self.dsn)
            with self.conn.transaction():
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))
                for statement in DDL:
                    self.conn.execute(statement)
        return self.conn

    def _waiting(self, what: Callable[[], object], wait_s: float) -> object:
        """`what()`, retried while the store is unreachable (for up to `wait_s`)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return what()
            except psycopg.OperationalError as exc:
                self.close()
                if time.monotonic() > deadline:
                    raise
                log.warning("graph epoch: store unreachable (%s); retrying", str(exc).strip().splitlines()[0])
                time.sleep(2)

    def join(self, planned: bool, wait_s: float = 600, may_move: bool = True) -> Joined:
        return self._waiting(lambda: self._join(planned, may_move), wait_s)

    def _join(self, planned: bool, may_move: bool = True) -> Joined:
        conn = self._connected()
        with conn.transaction():
            conn.execute("INSERT INTO zdg_graph_epochs (graph) VALUES (%s) ON CONFLICT DO NOTHING", (self.graph,))
            epoch = conn.execute("SELECT epoch FROM zdg_graph_epochs WHERE graph = %s FOR UPDATE", (self.graph,)).fetchone()[0]
            before = conn.execute("SELECT epoch, state FROM zdg_graph_members WHERE graph = %s AND member = %s",
                                  (self.graph, self.member)).fetchone()
            crashed = not planned and before is not None and before == (epoch, "running")
            moved = crashed and may_move
            if moved:
                epoch += 1
                conn.execute("UPDATE zdg_graph_epochs SET epoch = %s, moved_by = %s, moved_at = now() WHERE graph = %s",
                             (epoch, self.member, self.graph))
            self._set(conn, epoch, "running")
        return Joined(epoch, moved, crashed)

    def _set(self, conn: psycopg.Connection, epoch: int, state: str) -> None:
        conn.execute("INSERT INTO zdg_graph_members (graph, member, node, epoch, state) VALUES (%s, %s, %s, %s, %s) "
                     "ON CONFLICT (graph, member) DO UPDATE SET node = excluded.node, epoch = excluded.epoch, "
                     "state = excluded.state, seen_at = now()", (self.graph, self.member, self.node, epoch, state))

    def rejoin(self, epoch: int) -> None:
        self._waiting(lambda: self._set(self._connected(), epoch, "running"), 600)

    def done(self) -> None:
        try:
            self._waiting(lambda: self._set(self._connected(), self._current(), "done"), 10)
        except Exception as exc:  # noqa: BLE001 - the store went away at the very end: the next start may rewind once
            log.warning("graph epoch: could not record a clean finish: %s", exc)
        self.close()

    def _current(self) -> int:
        row = self._connected().execute("SELECT epoch FROM zdg_graph_epochs WHERE graph = %s", (self.graph,)).fetchone()
        return row[0] if row else 0

    def current(self) -> int | None:
        try:
            return self._current()
        except psycopg.Error:  # a store outage: the nodes wait it out; the epoch cannot move meanwhile
            self.close()
            return None

    def wait_for_members(self, epoch: int, expected: Mapping[str, int], wait_s: float) -> bool:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            rows = self._waiting(lambda: self._connected().execute(
                "SELECT node, count(*) FROM zdg_graph_members WHERE graph = %s AND epoch = %s AND state = 'running' "
                "GROUP BY node", (self.graph, epoch)).fetchall(), wait_s)
            joined = dict(rows)
            if all(joined.get(node, 0) >= n for node, n in expected.items()):
                return True
            time.sleep(0.2)
        return False

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None
