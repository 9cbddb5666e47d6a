"""One node process's part in graph recovery (zdg.recovery): its epoch, its watcher, and a source's rewinds."""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from zdg.recovery import PLANNED, EpochWatcher, reexecute
from zdg.shared_store import store_service

GRAPH_WAIT_S = 120  # a rewinding source waits this long for every node to join the new epoch, then goes on


def graph_key(name: str) -> str:
    """The graph's name in the epoch table, scoped by $ZDG_RECOVERY_SCOPE (`zdg run` sets its run directory)."""
    scope = os.environ.get("ZDG_RECOVERY_SCOPE")
    return f"{name}@{scope}" if scope else name


class GraphMember:
    """Joins the graph's epoch, stamps and checks it on messages, and acts when it moves: a source between frames
    rewinds in place (`rewind_pending`, `rewind`), any other process starts afresh."""

    def __init__(self, dsn: str, graph: str, member: str, node: str, expected: Mapping[str, int],
                 log: logging.Logger, counts: Counter, stopping: Callable[[], bool]) -> None:
        self.board = store_service().epoch_board(dsn, graph_key(graph), member, node)
        self.expected = dict(expected)  # replicas per node of the plan: who must join before a source goes on
        self.log, self.counts, self.stopping = log, counts, stopping
        self.epoch: int | None = None
        self.watcher: EpochWatcher | None = None
        self.phase = threading.Lock()
        self.in_place = False  # a source between frames: a newer epoch rewinds it instead of restarting it
        self.newer: int | None = None

    def join(self, source: bool, may_move: bool = True) -> None:
        """Join the epoch (moving it on after a crash of ours, where `may_move`) and watch it; a source then waits
        for the graph."""
        joined = self.board.join(planned=os.environ.pop(PLANNED, None) is not None, may_move=may_move)
        self.epoch = joined.epoch
        if joined.moved:
            self.counts["graph_rewinds"] += 1
            self.log.warning("restarted after a crash: graph epoch %d, every node starts afresh and sources rewind to "
                             "their checkpoints", self.epoch)
        elif joined.crashed:
            self.counts["restarts_without_rewind"] += 1
            self.log.warning("restarted after a crash: what this source gave cannot be given again (a live stream), "
                             "so the graph goes on in epoch %d; the time it was down is lost", self.epoch)
        self.watcher = EpochWatcher(self.board, self.epoch, self._on_newer)
        self.watcher.start()
        if source:
            self._wait_for_graph()

    def stamp(self, meta: dict[str, Any]) -> None:
        meta["epoch"] = self.epoch

    def accepts(self, meta: Mapping[str, Any]) -> bool:
        """A message made in this epoch; one from another is counted (`stale_epoch`) and dropped by the caller."""
        if meta.get("epoch") == self.epoch:
            return True
        self.counts["stale_epoch"] += 1  # made before the graph's last restart: redone
        return False

    def _on_newer(self, epoch: int) -> None:
        """In the watcher thread: a source between frames rewinds in place; anything else starts afresh."""
        with self.phase:
            if self.in_place:
                self.newer = epoch
                return
        if not self.stopping():
            reexecute(epoch)

    def start_generating(self) -> None:
        with self.phase:
            self.in_place = True

    def stop_generating(self) -> int | None:
        """The source left its frames: the epoch to rewind to, if one came meanwhile."""
        with self.phase:
            self.in_place = False
            newer, self.newer = self.newer, None
        return newer

    @property
    def rewind_pending(self) -> bool:
        return self.newer is not None

    def rewind(self, epoch: int) -> None:
        """The graph moved to `epoch`: be a member of it and wait until every node joined (the caller then rewinds)."""
        self.log.warning("graph epoch %d: rewinding to the checkpoint once every node has joined", epoch)
        self.epoch = epoch
        self.board.rejoin(epoch)
        self._wait_for_graph()
        self.counts["graph_rewinds"] += 1

    def _wait_for_graph(self) -> None:
        assert self.epoch is not None
        if not self.board.wait_for_members(self.epoch, self.expected, GRAPH_WAIT_S):
            self.log.warning("not every node joined graph epoch %d within %ds; going on", self.epoch, GRAPH_WAIT_S)

    def leave(self) -> None:
        """Finished cleanly: stop watching, and record it so the next start is a new run, not a crash."""
        if self.watcher is not None:
            self.watcher.stopped.set()
        self.board.done()
