"""The node contract: what a node class implements. Nodes never touch sockets."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from zdg.typed import PortType


class Params(BaseModel):
    """Base for node parameter models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """For nodes without parameters."""


class FatalNodeError(RuntimeError):
    """Bad input or config that a restart cannot fix (missing file, corrupt video)."""


class CommandError(RuntimeError):
    """What a command cannot do, in one line a person can act on (not a truth file, no frame in the clip): `zdg`
    prints it and exits 1; a library caller catches it."""


@dataclass(frozen=True)
class Deploy:
    """What a node needs where it is deployed; `zdg compose` reads this instead of guessing."""

    image: str = "zdg"  # image name; the tag is zdg's version
    store: bool = False  # talks to the graph's store (zdg.shared_store): gets ZDG_DSN and waits for its service
    models: bool = False  # reads model packs or clips: gets the /models and /data mounts
    gpu: bool = False  # asks the engine for a GPU


@dataclass
class NodeContext:
    """What a node may know about where it runs. `env` holds the ZDG_* variables, read once at start."""

    graph: str
    name: str
    replica: int = 0
    replicas: int = 1
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("zdg.node"))
    counters: Counter = field(default_factory=Counter)
    progress: dict = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    stream_complete: bool = True  # False at finish() when a source was stopped (Ctrl-C) before its end
    graph_recovery: bool = False  # the graph restarts through its epoch in the store (zdg.recovery)
    input_error: str | None = None

    def fail_input(self, message: str) -> None:
        """The input ended badly (a truncated file): the graph still finishes what arrived, then exits non-zero."""
        self.input_error = message
        self.stream_complete = False

    def count(self, key: str, n: int = 1) -> None:
        """Bump a node-specific counter shown in metrics (e.g. rejections by reason)."""
        self.counters[key] += n


def zdg_environment() -> dict[str, str]:
    """The ZDG_* variables; read once where a process starts (worker, CLI command) and handed to nodes."""
    return {k: v for k, v in os.environ.items() if k.startswith("ZDG_")}


Output = Any  # a Message or a typed message (anything with to_message())


class Node:
    """Base class. Override `process` (or `process_batch`), optionally `setup`/`finish`/`teardown`.

    `inputs`/`outputs` map port names to the typed message each carries (None: any Message). A typed
    input port hands `process` the typed object; `process` returns messages (typed or Message), a
    list of them, or None. Set `batch_size` > 1 to receive lists in `process_batch`. Heavy imports
    (models, databases) belong in `setup`, so validating or composing a graph needs none of them.
    """

    TYPE: ClassVar[str | None] = None  # the `type:` name a graph uses (registered as an entry point)
    Params: ClassVar[type[Params]] = NoParams
    inputs: ClassVar[Mapping[str, PortType]] = {"in": None}
    outputs: ClassVar[Mapping[str, PortType]] = {"out": None}
    deploy: ClassVar[Deploy] = Deploy()
    preload: ClassVar[tuple[str, ...]] = ()  # modules setup() imports: `zdg run` imports them once for all its processes
    batch_size: int = 1
    batch_timeout_ms: float = 50.0

    def __init__(self, params: Params, context: NodeContext) -> None:
        self.params = params
        self.context = context
        self.log = context.log

    @classmethod
    def deployment(cls, params: Params) -> Deploy:
        """What this node needs with these params (default: the class's `deploy`)."""
        return cls.deploy

    def setup(self) -> None:
        """Load models, open connections. Runs in the worker process."""

    def process(self, msg: Any) -> Output | list[Output] | None:
        raise NotImplementedError(f"{type(self).__name__} must implement process() or process_batch()")

    def process_batch(self, msgs: list[Any]) -> list[Output]:
        out: list[Output] = []
        for msg in msgs:
            out.extend(as_list(self.process(msg)))
        return out

    def idle(self) -> Output | list[Output] | None:
        """Called about every 100 ms while no input arrives (retry buffered work, emit timers)."""
        return None

    def finish(self) -> Output | list[Output] | None:
        """End of stream: flush state. Returned messages go out before the EOS marker."""
        return None

    def teardown(self) -> None:
        """Release resources."""


class SourceNode(Node):
    """A node with no inputs that yields messages from `generate()`."""

    inputs: ClassVar[Mapping[str, PortType]] = {}

    def generate(self) -> Iterator[Output]:
        raise NotImplementedError

    def rewind(self) -> None:
        """The graph restarted (graph recovery): the next `generate()` starts where the graph's effects are durable
        (a checkpoint, a replay buffer); by default from the beginning."""

    @property
    def replays_after_own_crash(self) -> bool:
        """Whether this source, restarted after a crash of its own, can give again what it gave before (a file can;
        a live stream cannot: the graph then goes on as it is rather than restarting, and loses only the time the
        source was down)."""
        return True

    def set_progress(self, done: int, total: int | None) -> None:
        """Report progress shown in the runner's progress bar."""
        self.context.progress.update(done=done, total=total)


class SinkNode(Node):
    """A node with no outputs."""

    outputs: ClassVar[Mapping[str, PortType]] = {}


def as_list(result: Output | list[Output] | None) -> list[Output]:
    if result is None:
        return []
    if isinstance(result, list | tuple):
        return list(result)
    return [result]
