"""Run one replica of one node: open its sockets, feed it messages, forward its outputs, handle EOS."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import zmq

from zdg.channels import InChannel, OutChannel
from zdg.config import Graph
from zdg.message import DecodeError, Message, decode, encode, now
from zdg.metrics import Metrics
from zdg.node import FatalNodeError, Node, NodeContext, Output, SourceNode, as_list, zdg_environment
from zdg.recovery import PLANNED, EpochBoard, EpochWatcher, reexecute
from zdg.typed import receive, to_wire
from zdg.wiring import Plan, Transport, compile_plan

EXIT_OK, EXIT_FATAL, EXIT_INPUT = 0, 3, 4  # any other exit (a crash) is restarted by the runner
T = TypeVar("T")
ERROR_LOG_EVERY = 100
GRAPH_WAIT_S = 120  # a rewinding source waits this long for every node to join the new epoch, then goes on


class Worker:
    def __init__(self, plan: Plan, name: str, replica: int, transport: Transport, metrics_dir: Path | None,
                 recovery_dsn: str | None = None) -> None:
        self.plan = plan
        self.ndef = plan.nodes[name]
        self.replica = replica
        self.instance = f"{replica}@{socket.gethostname()}"  # containers of one service all have replica 0
        self.keys = transport.keys
        self.log = logging.getLogger(f"zdg.{name}.{replica}")
        self.context = NodeContext(plan.graph.name, name, replica, self.ndef.replicas, self.log, env=zdg_environment(),
                                   graph_recovery=recovery_dsn is not None)
        path = metrics_dir / f"{name}.{replica}.json" if metrics_dir else None
        self.metrics = Metrics(name, replica, path)
        self.stop = False
        self.parent_pid = os.getppid()
        self.seq = 0
        self.zctx = zmq.Context()
        settings = plan.graph.settings
        self.outs: dict[str, list[OutChannel]] = defaultdict(list)
        for link in plan.outputs(name):
            self.outs[link.src_port].append(
                OutChannel(self.zctx, link, transport, settings, self.metrics, lambda: self.stop, f"{name}.{self.instance}"))
        self.ins = [InChannel(self.zctx, link, transport, settings, f"{name}.{replica}") for link in plan.inputs(name)]
        self.node: Node = self.ndef.cls(self.ndef.params, self.context)
        self.board = EpochBoard(recovery_dsn, graph_key(plan.graph.name), f"{name}.{self.instance}", name) \
            if recovery_dsn else None
        self.epoch: int | None = None  # the graph's epoch this process belongs to (with graph recovery)
        self.watcher: EpochWatcher | None = None
        self.phase = threading.Lock()
        self.rewinds_in_place = False  # a source between frames: a newer epoch rewinds it instead of restarting it
        self.rewind_epoch: int | None = None

    def _on_signal(self, signum: int, _frame: object) -> None:
        """First signal: finish (drain). A second one, or any once the runner that started us is gone: exit now,
        even from inside a node's blocking wait (an orphan must never outlive its runner)."""
        if self.stop or os.getppid() != self.parent_pid:
            raise SystemExit(128 + signum)
        self.log.info("received %s: finishing", signal.Signals(signum).name)
        self.stop = True

    def _write_metrics(self, force: bool = False) -> None:
        if self.keys is not None and self.metrics.due(force):  # a socket read: not on every message
            self.metrics.counts["auth_refused"] = self.keys.count_refused()
        self.metrics.write(self.context.counters, self.context.progress, force)

    def emit(self, out: Output, parent: Message | None = None) -> None:
        msg = to_wire(out)
        channels = self.outs.get(msg.port)
        if msg.port not in self.ndef.cls.outputs:
            raise ValueError(f"node emitted on unknown port {msg.port!r} (outputs: {self.ndef.cls.outputs})")
        self.seq += 1
        msg.meta = {
            "graph": self.plan.graph.name, "node": self.ndef.name, "replica": self.replica, "seq": self.seq,
            "created": (parent.meta.get("created") if parent else None) or msg.meta.get("created") or now(),
            "sent": now(),
        }
        if self.board is not None:
            msg.meta["epoch"] = self.epoch
        self.metrics.counts["out"] += 1
        if not channels:
            return
        frames = encode(msg)
        for channel in channels:
            channel.send([channel.link.topic.encode(), *frames[1:]])

    def send_eos(self) -> None:
        """End of stream on every output link, offered on all of them before waiting for any acknowledgement:
        where two outputs meet again downstream (a diamond), waiting on one first would wait for ever."""
        meta = {"node": self.ndef.name, "replica": self.instance, "complete": self.context.stream_complete}
        if self.board is not None:
            meta["epoch"] = self.epoch
        sent = []
        for port, channels in self.outs.items():
            frames = encode(Message(port=port, eos=True, meta=meta))
            for channel in channels:
                sent.append((channel, [channel.link.topic.encode(), *frames[1:]]))
                channel.offer_eos(sent[-1][1])
        for channel, frames in sent:
            channel.confirm_eos(frames)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            self.node.setup()
        except FatalNodeError as exc:
            self.log.error("%s", exc)
            return EXIT_FATAL
        self.metrics.state = "running"
        self._write_metrics(force=True)
        if self.board is not None:
            self._join_graph()
        try:
            if isinstance(self.node, SourceNode):
                self._run_source()
            else:
                self._run_inputs()
            for out in as_list(self._guarded(self.node.finish)):
                self.emit(out)
            self.send_eos()
            for channel in self.ins:  # only now: a replica that crashed before this is sent EOS again
                channel.ack_eos()
            self._leave_graph()
            if self.context.input_error:
                self.log.error("%s", self.context.input_error)
                return EXIT_INPUT
        except FatalNodeError as exc:
            self.log.error("%s", exc)
            self._leave_graph()
            return EXIT_FATAL
        finally:
            self._guarded(self.node.teardown)
            self.metrics.state = "done"
            self._write_metrics(force=True)
            linger = 0 if sys.exc_info()[0] is SystemExit else None  # stopped at once: queued messages are not waited for
            for channel in self.ins:
                channel.close()
            for channels in self.outs.values():
                for channel in channels:
                    channel.close(linger)
            if self.keys is not None:
                self.keys.close()
            self.zctx.term()
        return EXIT_OK

    def _guarded(self, fn: Callable[[], T]) -> T | None:
        """Run a node hook; an exception is logged and counted, never fatal unless FatalNodeError."""
        try:
            return fn()
        except FatalNodeError:
            raise
        except Exception:
            self.metrics.counts["errors"] += 1
            self.log.exception("%s failed", fn.__name__)
            return None

    def _join_graph(self) -> None:
        """Join the graph's epoch (moving it on after a crash of ours), watch it, and as a source wait for the graph."""
        assert self.board is not None
        joined = self.board.join(planned=os.environ.pop(PLANNED, None) is not None)
        self.epoch = joined.epoch
        if joined.moved:
            self.metrics.counts["graph_rewinds"] += 1
            self.log.warning("restarted after a crash: graph epoch %d, every node starts afresh and sources rewind to "
                             "their checkpoints", self.epoch)
        self.watcher = EpochWatcher(self.board, self.epoch, self._on_newer_epoch)
        self.watcher.start()
        if isinstance(self.node, SourceNode):
            self._wait_for_graph()

    def _on_newer_epoch(self, epoch: int) -> None:
        """In the watcher thread: a source between frames rewinds in place; anything else starts afresh."""
        with self.phase:
            if self.rewinds_in_place:
                self.rewind_epoch = epoch
                return
        if not self.stop:
            reexecute(epoch)

    def _wait_for_graph(self) -> None:
        assert self.board is not None and self.epoch is not None
        expected = {name: ndef.replicas for name, ndef in self.plan.nodes.items()}
        if not self.board.wait_for_members(self.epoch, expected, GRAPH_WAIT_S):
            self.log.warning("not every node joined graph epoch %d within %ds; going on", self.epoch, GRAPH_WAIT_S)

    def _leave_graph(self) -> None:
        if self.board is not None:
            if self.watcher is not None:
                self.watcher.stopped.set()
            self.board.done()

    def _run_source(self) -> None:
        assert isinstance(self.node, SourceNode)
        while True:
            with self.phase:
                self.rewinds_in_place = self.board is not None
            for msg in self.node.generate():
                if self.rewind_epoch is not None:
                    break
                self.emit(msg)
                self._write_metrics()
                if self.stop:
                    self.context.stream_complete = False
                    break
            with self.phase:
                self.rewinds_in_place = False
                epoch, self.rewind_epoch = self.rewind_epoch, None
            if epoch is None or self.stop:
                return
            self._rewind_source(epoch)

    def _rewind_source(self, epoch: int) -> None:
        """The graph moved to `epoch`: once every node joined it, generate again from the checkpoint."""
        assert self.board is not None
        self.log.warning("graph epoch %d: rewinding to the checkpoint once every node has joined", epoch)
        self.epoch = epoch
        self.board.rejoin(epoch)
        self._wait_for_graph()
        self.metrics.counts["graph_rewinds"] += 1
        self.node.rewind()

    def _run_inputs(self) -> None:
        poller = zmq.Poller()
        for channel in self.ins:
            poller.register(channel.sock, zmq.POLLIN)
            if channel.monitor is not None:
                poller.register(channel.monitor, zmq.POLLIN)
        expected = {c.link.id: c.link.src_replicas for c in self.ins}
        eos_from: dict[str, set] = defaultdict(set)
        batch: list[tuple[Message, InChannel, object]] = []
        batch_size = max(1, int(getattr(self.node, "batch_size", 1)))
        timeout_s = float(getattr(self.node, "batch_timeout_ms", 50)) / 1000
        batch_started = 0.0
        while not self.stop:
            wait_ms = 100 if not batch else max(0, int((batch_started + timeout_s - time.monotonic()) * 1000))
            events = poller.poll(wait_ms)
            if not events and not batch:
                for out in as_list(self._guarded(self.node.idle)):
                    self.emit(out)
            for sock, _ in events:
                channel = next(c for c in self.ins if sock in (c.sock, c.monitor))
                if sock is channel.monitor:
                    channel.greet()
                    continue
                while len(batch) < batch_size and (frames := channel.recv()) is not None:
                    try:
                        _, msg = decode(frames)
                    except DecodeError as exc:
                        self._drop_malformed(channel, exc)
                        continue
                    if self.board is not None and msg.meta.get("epoch") != self.epoch:
                        self.metrics.counts["stale_epoch"] += 1  # made before the graph's last restart: redone
                        channel.ack()
                        continue
                    if msg.eos:
                        if not _from_upstream(msg, channel.link.src, channel.link.src_replicas):
                            self._drop_malformed(channel, ValueError(f"end of stream from {msg.meta.get('node')!r}, "
                                                                     f"not from {channel.link.src}"))
                            continue
                        eos_from[channel.link.id].add((msg.meta.get("node"), msg.meta.get("replica")))
                        if msg.meta.get("complete") is False:  # an upstream source was stopped before its end
                            self.context.stream_complete = False
                        channel.hold_eos(f"{msg.meta.get('node')}.{msg.meta.get('replica')}")
                        continue
                    msg.port = channel.link.dst_port
                    try:
                        item = receive(self.ndef.cls.inputs.get(msg.port), msg)
                    except Exception as exc:  # noqa: BLE001 - not of the port's type (MessageTypeError), or forged fields
                        self._drop_malformed(channel, exc)
                        continue
                    if not batch:
                        batch_started = time.monotonic()
                    batch.append((msg, channel, item))
                    self.metrics.received()
            self.metrics.gauges["queue"] = len(batch)
            if batch and (len(batch) >= batch_size or time.monotonic() >= batch_started + timeout_s):
                self._process(batch, batch_size)
                batch = []
            self._write_metrics()
            if all(len(eos_from[k]) >= n for k, n in expected.items()) and not batch:
                break
        if self.stop:
            self.context.stream_complete = False
        if batch:
            self._process(batch, batch_size)

    def _drop_malformed(self, channel: InChannel, exc: Exception) -> None:
        """A message that is not a zdg message, or not of the port's type: counted, acked and dropped."""
        self.metrics.counts["decode_errors"] += 1
        channel.ack()
        if self.metrics.counts["decode_errors"] % ERROR_LOG_EVERY == 1:
            self.log.warning("dropped malformed message on %s: %s", channel.link.id, exc)

    def _process(self, batch: list[tuple[Message, InChannel, object]], batch_size: int) -> None:
        msgs = [m for m, _, _ in batch]
        items = [item for _, _, item in batch]
        started = time.perf_counter()
        try:
            outs = self.node.process_batch(items) if batch_size > 1 else as_list(self.node.process(items[0]))
        except FatalNodeError:
            raise
        except Exception:
            outs = []
            self.metrics.counts["errors"] += len(msgs)
            if self.metrics.counts["errors"] % ERROR_LOG_EVERY <= len(msgs):
                self.log.exception("process failed on %d message(s); continuing", len(msgs))
        self.metrics.timing(time.perf_counter() - started, len(msgs))
        for channel in {id(c): c for _, c, _ in batch}.values():
            channel.ack(sum(1 for _, c, _ in batch if c is channel))
        parent = msgs[0] if len(msgs) == 1 else None
        for out in outs:
            self.emit(out, parent)


def _from_upstream(msg: Message, src: str, replicas: int) -> bool:
    """An end-of-stream marker names a replica of the link's upstream node ("<index>@<host>")."""
    index, _, _ = str(msg.meta.get("replica", "")).partition("@")
    return msg.meta.get("node") == src and index.isdigit() and int(index) < max(replicas, 1)


def graph_key(name: str) -> str:
    """The graph's name in the epoch table, scoped by $ZDG_RECOVERY_SCOPE (`zdg run` sets its run directory)."""
    scope = os.environ.get("ZDG_RECOVERY_SCOPE")
    return f"{name}@{scope}" if scope else name


def run_node(graph: Graph, name: str, replica: int, transport: Transport, metrics_dir: Path | None,
             recovery_dsn: str | None = None) -> int:
    """Entry point shared by `zdg run` (one process per replica) and containers (`zdg node`); with `recovery_dsn`
    the node takes part in graph recovery through that store (zdg.recovery)."""
    plan = compile_plan(graph)
    if name not in plan.nodes:
        raise KeyError(f"graph {graph.name!r} has no node {name!r} (nodes: {', '.join(plan.nodes)})")
    if not 0 <= replica < plan.nodes[name].replicas:
        raise ValueError(f"node {name!r} has {plan.nodes[name].replicas} replica(s); replica {replica} does not exist")
    return Worker(plan, name, replica, transport, metrics_dir, recovery_dsn).run()


def wait_after_end(metrics_dir: Path, every_s: float = 1.0) -> None:
    """A finished node that stays up until SIGTERM/SIGINT, its metrics kept fresh so `zdg health` passes."""
    stopped: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: stopped.append(number))
    logging.getLogger("zdg.worker").info("stream complete; staying up until stopped (--after-end wait)")
    while not stopped:
        for path in metrics_dir.glob("*.json"):
            os.utime(path)
        time.sleep(every_s)
