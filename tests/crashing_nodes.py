"""Nodes for tests that die at awkward moments, loaded by graphs as `tests.crashing_nodes:Class`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from zdg.message import Message
from zdg.node import Node, Params, SourceNode


class CrashOnceParams(Params):
    marker: str = Field(description="created by the first replica; while it is missing, finish() kills the process")


class CrashOnceInFinishNode(Node):
    """Passes messages on; its first process dies inside finish(), after end of stream arrived."""

    Params = CrashOnceParams

    def process(self, msg: Message) -> Message:
        return Message(fields=msg.fields)

    def finish(self) -> Message:
        marker = Path(self.params.marker)
        if not marker.exists():
            marker.touch()
            os._exit(1)
        return Message(fields={"i": -1})


class CrashingSourceNode(SourceNode):
    """A source whose every start dies at once, so the runner always has a restart pending."""

    def generate(self) -> Iterator[Message]:
        os._exit(1)
        yield Message()
