"""Run one replica of one node: open its sockets, feed it messages, forward its outputs, handle EOS."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import zmq

from zdg.channels import InChannel, OutChannel
from zdg.config import Graph
from zdg.graph_member import GraphMember
from zdg.message import DecodeError, Message, decode, encode, now
from zdg.metrics import Metrics
from zdg.node import FatalNodeError, Node, NodeContext, Output, SourceNode, as_list, zdg_environment
from zdg.typed import receive, to_wire
from zdg.wiring import Plan, Transport, compile_plan

EXIT_OK, EXIT_FATAL, EXIT_INPUT = 0, 3, 4  # any other exit (a crash) is restarted by the runner
T = TypeVar("T")
ERROR_LOG_EVERY = 100


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
        self.member = GraphMember(recovery_dsn, plan.graph.name, f"{name}.{self.instance}", name,
                                  {n: d.replicas for n, d in plan.nodes.items()}, self.log, self.metrics.counts,
                                  lambda: self.stop) if recovery_dsn else None

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
        if self.member is not None:
            self.member.stamp(msg.meta)
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
        if self.member is not None:
            self.member.stamp(meta)
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
        if self.member is not None:
            source = isinstance(self.node, SourceNode)
            self.member.join(source, may_move=not source or self.node.replays_after_own_crash)
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

    def _leave_graph(self) -> None:
        if self.member is not None:
            self.member.leave()

    def _run_source(self) -> None:
        assert isinstance(self.node, SourceNode)
        while True:
            if self.member is not None:
                self.member.start_generating()
            for msg in self.node.generate():
                if self.member is not None and self.member.rewind_pending:
                    break
                self.emit(msg)
                self._write_metrics()
                if self.stop:
                    self.context.stream_complete = False
                    break
            epoch = self.member.stop_generating() if self.member is not None else None
            if epoch is None or self.stop:
                return
            self.member.rewind(epoch)
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
                    if self.member is not None and not self.member.accepts(msg.meta):
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
