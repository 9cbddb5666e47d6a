"""Forged messages from the security review: headers whose shapes made numpy or Python raise something other than
DecodeError, plus the older kinds of garbage. Each is one multipart message after the topic frame."""

from __future__ import annotations

import msgpack
import numpy as np

from zdg.message import Message, encode


def header(shape: list, frames: int = 1, dtype: str = "float32") -> list[bytes]:
    packed = msgpack.packb({"v": 1, "fields": {}, "meta": {}, "arrays": [["a", dtype, shape]], "eos": False})
    return [packed, *([b""] * frames)]


FORGED: dict[str, list[bytes]] = {
    "shape [inf]": header([float("inf")]),
    "shape [0, 2**63]": header([0, 2**63]),
    "shape [0, 2**62, 2**62]": header([0, 2**62, 2**62]),
    "shape [nan]": header([float("nan")]),
    "shape of 33 axes": header([1] * 33),
    "shape as text": header("12"),
    "shape of booleans": header([True, True]),
    "dtype as a list": header([1], dtype=[["x", "f4"]]),
    "not msgpack": [b"\xc1 not msgpack"],
    "fields keyed by a list": [msgpack.packb({"v": 1, "fields": {(1, 2): 1}, "arrays": [], "meta": {}})],
}


def decision(cluster_id: int, topic: str = "reid") -> list:
    """A well-formed `reid` decision with an array."""
    return encode(Message({"status": "new", "cluster_id": cluster_id}, {"boxes_xyxy": np.zeros((1, 4), np.float32)}), topic)
