"""The node contract: what a node class implements. Nodes never touch sockets."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from zdg.message import Message


class Params(BaseModel):
    """Base for node parameter models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """For nodes without parameters."""


class FatalNodeError(RuntimeError):
    """Bad input or config that a restart cannot fix (missing file, corrupt video)."""


@dataclass
class NodeContext:
    """What a node may know about where it runs."""

    graph: str
    name: str
    replica: int = 0
    replicas: int = 1
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("zdg.node"))
    counters: Counter = field(default_factory=Counter)
    progress: dict = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        """Bump a node-specific counter shown in metrics (e.g. rejections by reason)."""
        self.counters[key] += n


class Node:
    """Base class. Override `process` (or `process_batch`), optionally `setup`/`finish`/`teardown`.

    `process` returns a Message, a list of them, or None. Set `batch_size` > 1 to receive
    lists in `process_batch`. `finish` runs at end of stream and may return final messages.
    """

    Params: ClassVar[type[Params]] = NoParams
    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ("out",)
    batch_size: int = 1
    batch_timeout_ms: float = 50.0

    def __init__(self, params: Params, context: NodeContext) -> None:
        self.params = params
        self.context = context
        self.log = context.log

    def setup(self) -> None:
        """Load models, open connections. Runs in the worker process."""

    def process(self, msg: Message) -> Message | list[Message] | None:
        raise NotImplementedError(f"{type(self).__name__} must implement process() or process_batch()")

    def process_batch(self, msgs: list[Message]) -> list[Message]:
        out: list[Message] = []
        for msg in msgs:
            out.extend(as_list(self.process(msg)))
        return out

    def idle(self) -> Message | list[Message] | None:
        """Called about every 100 ms while no input arrives (retry buffered work, emit timers)."""
        return None

    def finish(self) -> Message | list[Message] | None:
        """End of stream: flush state. Returned messages go out before the EOS marker."""
        return None

    def teardown(self) -> None:
        """Release resources."""


class SourceNode(Node):
    """A node with no inputs that yields messages from `generate()`."""

    inputs: ClassVar[tuple[str, ...]] = ()

    def generate(self) -> Iterator[Message]:
        raise NotImplementedError

    def set_progress(self, done: int, total: int | None) -> None:
        """Report progress shown in the runner's progress bar."""
        self.context.progress.update(done=done, total=total)


class SinkNode(Node):
    """A node with no outputs."""

    outputs: ClassVar[tuple[str, ...]] = ()


def as_list(result: Message | list[Message] | None) -> list[Message]:
    if result is None:
        return []
    if isinstance(result, Message):
        return [result]
    return list(result)
