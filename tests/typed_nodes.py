"""A node with a typed input port, loaded by test graphs as `tests.typed_nodes:SequenceCountNode`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from nodes.messages import Sequence
from zdg.node import Params, SinkNode


class SequenceCountParams(Params):
    path: str = Field(description="one line per sequence received")


class SequenceCountNode(SinkNode):
    Params = SequenceCountParams
    inputs = {"in": Sequence}

    def process(self, seq: Sequence) -> None:
        with Path(self.params.path).open("a") as out:
            out.write(f"{seq.sequence_id}\n")
