"""Run a node in memory for tests: no sockets, but the same wire encoding and typed ports as a graph.

    with NodeHarness(SequencerNode, max_gap=6) as h:
        h.feed(*faces_list)
        sequences = h.typed("out", finish=True)
"""

from __future__ import annotations

from typing import Any

from zdg.message import Message, decode, encode
from zdg.node import Node, NodeContext, Output, Params, SourceNode, as_list, zdg_environment
from zdg.typed import receive, to_wire


def over_the_wire(out: Output, port: str | None = None) -> Message:
    """`out` encoded and decoded as a socket would carry it (typed messages are written first)."""
    msg = to_wire(out)
    _, back = decode([bytes(f) if isinstance(f, memoryview) else f for f in encode(msg)])
    back.port = port or msg.port
    return back


class NodeHarness:
    """One node instance, set up: `feed` inputs, read what it emitted per port; `finish` ends the stream.

    `env` stands for the ZDG_* variables a worker hands its nodes (default: this process's)."""

    def __init__(self, cls: type[Node], params: Params | None = None, env: dict[str, str] | None = None,
                 **param_values: Any) -> None:
        self.cls = cls
        self.context = NodeContext("test", cls.TYPE or cls.__name__, env=zdg_environment() if env is None else env)
        self.node = cls(params if params is not None else cls.Params(**param_values), self.context)
        self.emitted: list[Message] = []
        self.node.setup()

    def __enter__(self) -> NodeHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.node.teardown()

    def _collect(self, outs: Any) -> list[Message]:
        msgs = [over_the_wire(out) for out in as_list(outs)]
        self.emitted += msgs
        return msgs

    def feed(self, *items: Output, port: str = "in") -> list[Message]:
        """Send each item to input `port` (one `process` call each, or one batch); returns what came out."""
        received = [receive(self.cls.inputs[port], over_the_wire(item, port)) for item in items]
        if self.node.batch_size > 1:
            return self._collect(self.node.process_batch(received))
        return [m for item in received for m in self._collect(self.node.process(item))]

    def generate(self, limit: int | None = None) -> list[Message]:
        """A source's messages (the first `limit` of them)."""
        assert isinstance(self.node, SourceNode)
        out = []
        for item in self.node.generate():
            out += self._collect(item)
            if limit is not None and len(out) >= limit:
                break
        return out

    def finish(self) -> list[Message]:
        return self._collect(self.node.finish())

    def typed(self, port: str = "out", finish: bool = False) -> list[Any]:
        """What the node emitted on `port` so far (after `finish()` when asked), as its port's type."""
        if finish:
            self.finish()
        return [receive(self.cls.outputs[port], m) for m in self.emitted if m.port == port]
