"""Graph recovery without a supervisor: the graph's epoch, kept in the graph's store for every engine.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("zdg.recovery")
POLL_S = 0.5
PLANNED = "ZDG_REJOIN"  # set by a node re-executing itself for a new epoch: it joins, it does not move the graph on


@dataclass(frozen=True)
class Joined:
    epoch: int
    moved: bool  # this start moved the graph to `epoch` (it replaces a run that died in the epoch before)
    crashed: bool = False  # this start replaces a run that died in the current epoch (moved, unless told not to)


class EpochBoard(Protocol):
    """The graph's epoch and its members, kept in the graph's store (the store plugin supplies it: zdg.shared_store)."""

    def twin(self) -> EpochBoard:
        """The same board on a connection of its own (for a watcher thread)."""

    def join(self, planned: bool, wait_s: float = 600, may_move: bool = True) -> Joined:
        """Join the current epoch, waiting up to `wait_s` for the store; an unplanned start whose own run was still
        running in it moves the graph on (unless `may_move` is False: then it only rejoins)."""

    def rejoin(self, epoch: int) -> None:
        """A source that rewound in place is a member of `epoch` now."""

    def done(self) -> None:
        """This member finished cleanly: its next start is a new run, not a crash."""

    def current(self) -> int | None:
        """The graph's epoch (0 once its record is gone: a store wiped under a running graph); None while the store
        cannot be reached."""

    def wait_for_members(self, epoch: int, expected: Mapping[str, int], wait_s: float) -> bool:
        """Until every node has its replicas running in `epoch` (True), or `wait_s` passed (False)."""

    def close(self) -> None: ...


class EpochWatcher(threading.Thread):
    """Polls the graph's epoch with a connection of its own; calls `on_newer(epoch)` once per newer epoch."""

    def __init__(self, board: EpochBoard, epoch: int, on_newer: Callable[[int], None]) -> None:
        super().__init__(name="zdg-epoch", daemon=True)
        self.board = board.twin()
        self.epoch = epoch
        self.on_newer = on_newer
        self.stopped = threading.Event()  # set once the node finished: a newer epoch is no longer its business

    def run(self) -> None:
        while not self.stopped.wait(POLL_S):
            current = self.board.current()
            if current is None:  # a store outage: the nodes wait it out; the epoch cannot move meanwhile
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
