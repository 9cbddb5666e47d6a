"""Graph recovery without a supervisor: the graph's epoch, kept in Postgres (the store) for every engine.

With `on_crash: restart_graph`, each node process joins the graph's current epoch when it starts. A
process that starts where its own previous run was still running in that epoch (a container the
engine restarted after a crash, a replica `zdg run` restarted) moves the graph to a new epoch.
Every node watches the epoch: on a newer one a node starts afresh (the same process, re-executed)
and joins it, while a source rewinds in place (to its checkpoint; a live stream replays its buffer)
once every node of the graph has joined. Messages carry their epoch and a node drops any from
another, so nothing of the old epoch mixes with the replay. A member is `<node>.<replica>@<host>`:
the same across a crash restart under compose (same container), Swarm (the stack names task
hostnames by slot), Kubernetes (same pod) and `zdg run`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger("zdg.recovery")
POLL_S = 0.5
PLANNED = "ZDG_REJOIN"  # set by a node re-executing itself for a new epoch: it joins, it does not move the graph on
LOCK = 7_261_001  # advisory lock for creating the tables (nodes start together)
DDL = (
    "CREATE TABLE IF NOT EXISTS zdg_graph_epochs (graph text PRIMARY KEY, epoch bigint NOT NULL DEFAULT 1, "
    "moved_by text, moved_at timestamptz)",
    "CREATE TABLE IF NOT EXISTS zdg_graph_members (graph text NOT NULL, member text NOT NULL, node text NOT NULL, "
    "epoch bigint NOT NULL, state text NOT NULL, seen_at timestamptz NOT NULL DEFAULT now(), "
    "PRIMARY KEY (graph, member))",
)


@dataclass(frozen=True)
class Joined:
    epoch: int
    moved: bool  # this start moved the graph to `epoch` (it replaces a run that died in the epoch before)
    crashed: bool = False  # this start replaces a run that died in the current epoch (moved, unless told not to)


class EpochBoard:
    """The graph's epoch and members in the store at `dsn`; one connection, reopened after an outage."""

    def __init__(self, dsn: str, graph: str, member: str, node: str) -> None:
        self.dsn, self.graph, self.member, self.node = dsn, graph, member, node
        self.conn = None

    def _connected(self):  # noqa: ANN202 - psycopg is imported only where recovery is on
        import psycopg

        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
            with self.conn.transaction():
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))
                for statement in DDL:
                    self.conn.execute(statement)
        return self.conn

    def _waiting(self, what: Callable[[], object], wait_s: float) -> object:
        """`what()`, retried while the store is unreachable (for up to `wait_s`)."""
        import psycopg

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
        """Join the current epoch; an unplanned start whose own run was still running in it moves the graph on
        (unless `may_move` is False: then it only rejoins)."""
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

    def _set(self, conn, epoch: int, state: str) -> None:  # noqa: ANN001
        conn.execute("INSERT INTO zdg_graph_members (graph, member, node, epoch, state) VALUES (%s, %s, %s, %s, %s) "
                     "ON CONFLICT (graph, member) DO UPDATE SET node = excluded.node, epoch = excluded.epoch, "
                     "state = excluded.state, seen_at = now()", (self.graph, self.member, self.node, epoch, state))

    def rejoin(self, epoch: int) -> None:
        """A source that rewound in place is a member of `epoch` now."""
        self._waiting(lambda: self._set(self._connected(), epoch, "running"), 600)

    def done(self) -> None:
        """This member finished cleanly: its next start is a new run, not a crash."""
        try:
            self._waiting(lambda: self._set(self._connected(), self.current(), "done"), 10)
        except Exception as exc:  # noqa: BLE001 - the store went away at the very end: the next start may rewind once
            log.warning("graph epoch: could not record a clean finish: %s", exc)
        self.close()

    def current(self) -> int:
        """The graph's epoch (0 once its record is gone: a store wiped under a running graph)."""
        row = self._connected().execute("SELECT epoch FROM zdg_graph_epochs WHERE graph = %s", (self.graph,)).fetchone()
        return row[0] if row else 0

    def wait_for_members(self, epoch: int, expected: Mapping[str, int], wait_s: float) -> bool:
        """Until every node has its replicas running in `epoch` (True), or `wait_s` passed (False)."""
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


class EpochWatcher(threading.Thread):
    """Polls the graph's epoch with a connection of its own; calls `on_newer(epoch)` once per newer epoch."""

    def __init__(self, board: EpochBoard, epoch: int, on_newer: Callable[[int], None]) -> None:
        super().__init__(name="zdg-epoch", daemon=True)
        self.board = EpochBoard(board.dsn, board.graph, board.member, board.node)
        self.epoch = epoch
        self.on_newer = on_newer
        self.stopped = threading.Event()  # set once the node finished: a newer epoch is no longer its business

    def run(self) -> None:
        import psycopg

        while not self.stopped.wait(POLL_S):
            try:
                current = self.board.current()
            except psycopg.Error:  # a store outage: the nodes wait it out; the epoch cannot move meanwhile
                self.board.close()
                continue
            if current > self.epoch and not self.stopped.is_set():
                self.epoch = current
                self.on_newer(current)
        self.board.close()


def reexecute(epoch: int) -> None:
    """Start this node afresh in the same process (pid, container) to join `epoch`; never returns. `sys.argv` is
    the node's `zdg node` command line (zdg.node_process sets it so in a node forked by `zdg run`)."""
    log.warning("graph moved to epoch %d: starting afresh to join it", epoch)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "zdg", *sys.argv[1:]], {**os.environ, PLANNED: "1"})
