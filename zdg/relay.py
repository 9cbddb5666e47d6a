"""The relay the wiring inserts where both sides of an edge are replicated."""

from __future__ import annotations

from zdg.message import Message
from zdg.node import Node


class RelayNode(Node):
    """Forwards messages unchanged."""

    TYPE = "relay"

    def process(self, msg: Message) -> Message:
        return Message(fields=msg.fields, arrays=msg.arrays, meta=msg.meta)
