"""`zdg run`: every node replica as its own OS process, supervised and restarted with backoff."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zdg.config import Graph
from zdg.metrics import format_table, read_all
from zdg.node import zdg_environment
from zdg.private import private_dir
from zdg.progress import GraphProgress, write_above_bar
from zdg.registry import prepare_plugins
from zdg.retry import Backoff
from zdg.wiring import RUN_ROOT, Plan, Transport, compile_plan
from zdg.worker import EXIT_FATAL, EXIT_INPUT, EXIT_OK
from zdg.zygote import ForkedProcess, Zygote

log = logging.getLogger("zdg.runner")
MAX_IPC_PATH = 100
STABLE_AFTER_S = 30.0


@dataclass
class Replica:
    node: str
    index: int
    source: bool
    proc: ForkedProcess | None = None
    started: float = 0.0
    restarts: int = 0
    streak: int = 0
    restart_at: float | None = None
    done: bool = False
    backoff: Backoff = field(default_factory=lambda: Backoff(first=0.5, cap=10.0))

    @property
    def label(self) -> str:
        return f"{self.node}.{self.index}"


class Runner:
    def __init__(self, graph: Graph, overrides: list[str], run_dir: Path, max_restarts: int = 5,
                 grace_s: float = 10.0, progress: bool | None = None, keys: Path | None = None) -> None:
        self.graph = graph
        self.plan: Plan = compile_plan(graph)
        self.overrides = overrides
        self.run_dir = run_dir
        self.max_restarts = max_restarts
        self.grace_s = grace_s
        self.progress = progress
        self.keys = keys
        self.replicas = [Replica(name, i, n.is_source) for name, n in self.plan.nodes.items() for i in range(n.replicas)]
        self.draining_since: float | None = None
        self.terminated_since: float | None = None
        self.exit_code = EXIT_OK
        self.graph_restarts = 0
        self.node_env: dict[str, str] = {}
        self.recovers = False  # restart_graph through the store's epoch (zdg.recovery): nodes restart alone

    @property
    def metrics_dir(self) -> Path:
        return self.run_dir / "metrics"

    def _launch(self, rep: Replica) -> dict:
        """The replica's `zdg.node_process.NodeLaunch`, as JSON values for the zygote."""
        return {"graph": str(self.graph.path), "node": rep.node, "replica": rep.index, "overrides": self.overrides,
                "run_dir": str(self.run_dir), "keys": str(self.keys) if self.keys else None,
                "graph_recovery": self.recovers}

    @property
    def shows_bar(self) -> bool:
        return self.progress if self.progress is not None else sys.stderr.isatty()

    def _start_zygote(self) -> Zygote:
        """The parent of every node process, pre-loading what the graph's nodes import; with the progress bar
        shown, their log lines come through one pipe and are written above the bar."""
        modules = list(dict.fromkeys(["zdg.node_process", "zdg.worker", *(m for ndef in self.graph.nodes.values()
                                                                   for m in (ndef.cls.__module__, *ndef.cls.preload))]))
        if not self.shows_bar:
            return Zygote(modules)
        read_end, write_end = os.pipe()
        zygote = Zygote(modules, write_end)
        os.close(write_end)
        threading.Thread(target=write_above_bar, args=(os.fdopen(read_end, "rb"),), daemon=True).start()
        return zygote

    def _start(self, rep: Replica) -> None:
        """Start a replica's process, forked by the zygote."""
        rep.proc = self.zygote.spawn("zdg.node_process:run_forked", {"launch": self._launch(rep)},
                                     {**os.environ, **self.node_env}, f"zdg {rep.node}.{rep.index}")
        rep.started = time.monotonic()
        rep.restart_at = None

    def _prepare(self) -> None:
        longest = max((len(str(self.run_dir)) + len(link.id) + 12 for link in self.plan.links), default=0)
        if longest > MAX_IPC_PATH:
            raise ValueError(f"run directory {self.run_dir} is too long for ipc socket paths; choose a shorter --run-dir")
        if self.run_dir.parent == RUN_ROOT:
            private_dir(RUN_ROOT)  # refused when another user made it (they could read or plant sockets)
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        private_dir(self.run_dir)
        self.metrics_dir.mkdir()

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.draining_since is None:
            log.warning("%s: draining (sources stop, queued work finishes); again to stop now", signal.Signals(signum).name)
            self.draining_since = time.monotonic()
            self._signal(lambda r: r.source, signal.SIGTERM)
        else:
            self._terminate()

    def _signal(self, which: Callable[[Replica], bool], sig: int) -> None:
        for rep in self.replicas:
            if rep.proc and rep.proc.poll() is None and which(rep):
                rep.proc.send_signal(sig)

    def _terminate(self) -> None:
        if self.terminated_since is None:
            self.terminated_since = time.monotonic()
            self._signal(lambda r: True, signal.SIGTERM)

    def _reap(self, rep: Replica) -> None:
        assert rep.proc is not None
        code = rep.proc.returncode
        if code == EXIT_OK:
            rep.done = True
            return
        if code == EXIT_INPUT:  # finished what its input held, but the input ended badly: the run fails at the end
            rep.done = True
            self.exit_code = self.exit_code or EXIT_INPUT
            return
        why = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        if code == EXIT_FATAL:
            log.error("node %s failed (%s); stopping the graph", rep.label, why)
            self.exit_code = EXIT_FATAL
            rep.done = True
            self._terminate()
            return
        if self.terminated_since is not None:
            rep.done = True
            return
        if time.monotonic() - rep.started > STABLE_AFTER_S:
            rep.streak = 0
            rep.backoff.reset()
        if rep.streak >= self.max_restarts:
            log.error("node %s %s; gave up after %d restarts in a row", rep.label, why, rep.streak)
            self.exit_code = 1
            rep.done = True
            self._terminate()
            return
        delay = rep.backoff.next()
        rep.streak += 1
        rep.restarts += 1
        rep.restart_at = time.monotonic() + delay
        if self.graph.settings.on_crash == "restart_graph" and self.draining_since is None:
            self.graph_restarts += 1
            if not self.recovers:
                self._restart_graph(rep, why, delay)
                return
            log.warning("node %s %s; restarting it in %.1fs: the whole graph restarts from its checkpoints (restart %d)",
                        rep.label, why, delay, rep.restarts)
            return
        log.warning("node %s %s; restarting in %.1fs (restart %d)", rep.label, why, delay, rep.restarts)

    def _restart_graph(self, crashed: Replica, why: str, delay: float) -> None:
        """on_crash: restart_graph: stop every node now and start them all again; sources resume from their
        checkpoints and the nodes' effects are idempotent, so what was in flight is redone, not lost."""
        log.warning("node %s %s; restarting the whole graph in %.1fs (sources resume from their checkpoints)",
                    crashed.label, why, delay)
        self._signal(lambda r: True, signal.SIGKILL)
        for rep in self.replicas:
            if rep.proc is not None:
                rep.proc.wait()
            rep.done = False
            rep.restart_at = time.monotonic() + delay

    def run(self) -> int:
        self.started_at = time.time()
        self._prepare()
        self.zygote = self._start_zygote()  # before any thread of ours; it imports while the store starts
        try:
            return self._run()
        finally:
            self.zygote.close()

    def _run(self) -> int:
        for prepare in prepare_plugins():  # services the nodes share, started once (e.g. the embedded store)
            self.node_env |= prepare(self.graph, {**zdg_environment(), **self.node_env})
        if self.graph.settings.on_crash == "restart_graph" and {**os.environ, **self.node_env}.get("ZDG_DSN"):
            self.recovers = True  # the nodes recover the graph themselves, as in containers
            self.node_env["ZDG_RECOVERY_SCOPE"] = str(self.run_dir.resolve())
        for link in self.plan.external_topics():
            log.info("topic %r published at %s  (zdg sub %s %s)", link.topic, self.transport.bind_address(link),
                     self.transport.bind_address(link), link.topic)
        self._serve_metrics()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        progress = GraphProgress(self.graph.name, list(self.graph.nodes), {r.node for r in self.replicas if r.source},
                                 self.shows_bar)
        try:
            for rep in sorted(self.replicas, key=lambda r: r.source):
                self._start(rep)
            while not all(r.done for r in self.replicas):
                time.sleep(0.1)
                now = time.monotonic()
                for rep in self.replicas:
                    if rep.done:
                        continue
                    if rep.restart_at is not None:
                        if self.terminated_since is not None:
                            rep.done = True  # stopping: a restart still pending never happens
                        elif now >= rep.restart_at:
                            self._start(rep)
                    elif rep.proc and rep.proc.poll() is not None:
                        self._reap(rep)
                progress.update(read_all(self.metrics_dir))
                if self.draining_since and now - self.draining_since > self.grace_s:
                    self._terminate()
                if self.terminated_since and now - self.terminated_since > 3:
                    self._signal(lambda r: True, signal.SIGKILL)
        finally:
            progress.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self._report()
        return self.exit_code

    def _serve_metrics(self) -> None:
        """Prometheus /metrics of every replica on 127.0.0.1:`metrics_port` while the graph runs (if set)."""
        port = self.graph.settings.metrics_port
        if not port:
            return
        from zdg.prometheus import serve

        try:
            serve(self.graph.name, self.snapshots, port, "127.0.0.1")
            log.info("metrics at http://127.0.0.1:%d/metrics", port)
        except OSError as exc:
            log.warning("no /metrics: port %d: %s (another run serves it?)", port, exc.strerror)

    @property
    def transport(self) -> Transport:
        return Transport("ipc", self.run_dir)

    def snapshots(self) -> list[dict]:
        restarts = {r.label: r.restarts for r in self.replicas}
        snaps = read_all(self.metrics_dir)
        for snap in snaps:
            snap["restarts"] = restarts.get(f"{snap['node']}.{snap['replica']}", 0)
        return snaps

    def timing(self, snaps: list[dict]) -> dict[str, Any]:
        """Seconds from `zdg run` to each node's first message in (start-up), by arrival, and to the end of the run."""
        firsts: dict[str, float] = {}
        for snap in snaps:
            if snap.get("first_in_at"):
                firsts[snap["node"]] = min(firsts.get(snap["node"], snap["first_in_at"]), snap["first_in_at"])
        return {"first_in_s": {node: round(at - self.started_at, 2) for node, at in sorted(firsts.items(), key=lambda i: i[1])},
                "run_s": round(time.time() - self.started_at, 2)}

    def _report(self) -> None:
        snaps = self.snapshots()
        timing = self.timing(snaps)
        summary = self.run_dir / "metrics.json"
        summary.write_text(json.dumps({"graph": self.graph.name, "exit_code": self.exit_code, "timing_s": timing,
                                       "graph_restarts": self.graph_restarts, "replicas": snaps}, indent=1))
        print(format_table(snaps), file=sys.stderr)
        firsts = ", ".join(f"{node} {at:.1f}" for node, at in timing["first_in_s"].items())
        print(f"time: first message in (s after start): {firsts or '-'}; whole run {timing['run_s']:.1f} s", file=sys.stderr)
        print(f"metrics: {summary}", file=sys.stderr)
