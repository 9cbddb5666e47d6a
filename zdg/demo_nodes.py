"""Small built-in nodes that prove the framework without any face code."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydantic import Field

from zdg.message import Message
from zdg.node import Node, Params, SinkNode, SourceNode


class CounterParams(Params):
    count: int = Field(100, ge=0, description="how many messages to emit (0 = forever)")
    rate: float = Field(0, ge=0, description="messages per second (0 = as fast as possible)")
    array_len: int = Field(4, ge=0, description="length of the int64 array carried by each message")


class CounterNode(SourceNode):
    """Emits {i} with an array [i, i, ...] for i in 0..count-1."""

    TYPE = "counter"
    Params = CounterParams

    def generate(self) -> Iterator[Message]:
        p = self.params
        i = 0
        start = time.monotonic()
        while p.count == 0 or i < p.count:
            if p.rate:
                delay = start + i / p.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield Message(fields={"i": i}, arrays={"values": np.full(p.array_len, i, dtype=np.int64)})
            i += 1
            self.set_progress(i, p.count or None)


class SquareParams(Params):
    fail_on: list[int] = Field(default_factory=list, description="raise on these i (to show error handling)")
    delay_ms: float = Field(0, ge=0, description="simulated work per message")


class SquareNode(Node):
    """Squares `i` and its array."""

    TYPE = "square"
    Params = SquareParams

    def process(self, msg: Message) -> Message:
        i = msg["i"]
        if i in self.params.fail_on:
            raise ValueError(f"asked to fail on i={i}")
        if self.params.delay_ms:
            time.sleep(self.params.delay_ms / 1000)
        return Message(
            fields={"i": i, "square": i * i, "by": f"{self.context.name}.{self.context.replica}"},
            arrays={"values": np.asarray(msg.arrays["values"]) ** 2},
        )


class CollectParams(Params):
    path: str | None = Field(None, description="write every received message's fields as a JSON line here")


class CollectNode(SinkNode):
    """Sink that logs a count and optionally writes fields to a JSONL file."""

    TYPE = "collect"
    Params = CollectParams

    def setup(self) -> None:
        self.received = 0
        self.file = None
        if self.params.path:
            Path(self.params.path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.params.path, "a", buffering=1)  # noqa: SIM115 (open for the node's life)

    def process(self, msg: Message) -> None:
        self.received += 1
        if self.file:
            self.file.write(json.dumps(msg.fields) + "\n")

    def finish(self) -> None:
        self.log.info("collected %d messages", self.received)

    def teardown(self) -> None:
        if self.file:
            self.file.close()
