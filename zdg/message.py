"""The one message type that flows on every edge, and its wire format.

On the wire a message is: [topic, msgpack header, array frame, array frame, ...].
The header carries metadata, user fields and (name, dtype, shape) for each array;
arrays travel as raw zero-copy frames. Nothing is ever pickled.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

WIRE_VERSION = 1
MAX_DIMS = 32  # numpy's limit
MAX_DIM = 2**31 - 1  # one axis; the product is bounded by the frame's length anyway
# Plain numeric dtypes only: object arrays would need pickle.
ALLOWED_DTYPES = frozenset(
    ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
     "float16", "float32", "float64"]
)


class DecodeError(ValueError):
    """A received frame set is not a valid zdg message."""


@dataclass
class Message:
    """Fields (msgpack-able values) plus named numpy arrays.

    `port` says which output port of the node emits it; `meta` is filled by the
    framework (graph, node, replica, seq, created, sent).
    """

    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    port: str = "out"
    eos: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


def encode(msg: Message, topic: str = "") -> list[Any]:
    """Frames for `msg`: the arrays are passed as buffers, not copied."""
    specs = []
    buffers = []
    for name, arr in msg.arrays.items():
        if arr.dtype.name not in ALLOWED_DTYPES:
            raise TypeError(f"array {name!r}: dtype {arr.dtype} cannot travel (allowed: {sorted(ALLOWED_DTYPES)})")
        arr = np.ascontiguousarray(arr)
        specs.append([name, arr.dtype.name, list(arr.shape)])
        buffers.append(memoryview(arr).cast("B") if arr.size else b"")
    header = {
        "v": WIRE_VERSION,
        "meta": msg.meta,
        "fields": msg.fields,
        "arrays": specs,
        "eos": msg.eos,
    }
    return [topic.encode(), msgpack.packb(header, use_bin_type=True), *buffers]


def _buffer(frame: Any) -> memoryview | bytes:
    return frame.buffer if hasattr(frame, "buffer") else frame


def decode(frames: list[Any]) -> tuple[str, Message]:
    """Parse frames (bytes or zmq.Frame) into (topic, Message); raises DecodeError, and nothing else, on any bytes."""
    if len(frames) < 2:
        raise DecodeError(f"expected at least 2 frames (topic, header), got {len(frames)}")
    try:
        return _decode(frames)
    except DecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - bytes from a peer: whatever they make a parser raise is a bad message
        raise DecodeError(f"malformed message: {type(exc).__name__}: {exc!s:.200}") from None


def _decode(frames: list[Any]) -> tuple[str, Message]:
    topic = bytes(_buffer(frames[0])).decode()
    header = msgpack.unpackb(_buffer(frames[1]), raw=False, strict_map_key=False)
    if not isinstance(header, dict) or header.get("v") != WIRE_VERSION:
        raise DecodeError(f"header is not a zdg v{WIRE_VERSION} header")
    specs = header.get("arrays", [])
    if not isinstance(specs, list) or len(specs) != len(frames) - 2:
        raise DecodeError(f"header lists {len(specs) if isinstance(specs, list) else '?'} arrays, got {len(frames) - 2} frames")
    arrays = {}
    for spec, frame in zip(specs, frames[2:], strict=True):
        name, dtype, shape = _array_spec(spec)
        if name in arrays:
            raise DecodeError(f"array name {name!r:.100} is not a new string")
        buf = _buffer(frame)
        expected = math.prod(shape) * dtype.itemsize  # Python ints: a forged huge shape cannot overflow to 0
        if len(buf) != expected:
            raise DecodeError(f"array {name!r}: {len(buf)} bytes for shape {shape} {dtype} (expected {expected})")
        arrays[name] = np.frombuffer(buf, dtype=dtype).reshape(shape) if expected else np.empty(shape, dtype)
    fields = header.get("fields") or {}
    meta = header.get("meta") or {}
    if not isinstance(fields, dict) or not isinstance(meta, dict):
        raise DecodeError("fields and meta must be maps")
    if not all(isinstance(k, str) for k in (*fields, *meta)):
        raise DecodeError("field names must be strings")
    return topic, Message(fields=fields, arrays=arrays, eos=bool(header.get("eos")), meta=meta)


def _array_spec(spec: Any) -> tuple[str, np.dtype, tuple[int, ...]]:
    """(name, dtype, shape) of one header entry, checked before anything is allocated: a known plain dtype, a
    shape of at most MAX_DIMS whole numbers each in [0, MAX_DIM] (so numpy never sees an impossible shape)."""
    if not isinstance(spec, list | tuple) or len(spec) != 3:
        raise DecodeError(f"bad array spec {spec!r:.200}: expected [name, dtype, shape]")
    name, dtype_name, shape = spec
    if not isinstance(name, str):
        raise DecodeError(f"array name {name!r:.100} is not a new string")
    if not isinstance(dtype_name, str) or dtype_name not in ALLOWED_DTYPES:
        raise DecodeError(f"array {name!r}: dtype {dtype_name!r:.50} not allowed")
    if not isinstance(shape, list | tuple) or len(shape) > MAX_DIMS:
        raise DecodeError(f"array {name!r}: shape {shape!r:.100} is not an array shape")
    if not all(type(s) is int and 0 <= s <= MAX_DIM for s in shape):
        raise DecodeError(f"array {name!r}: shape {shape!r:.100} is not an array shape (whole numbers 0..{MAX_DIM})")
    return name, np.dtype(dtype_name), tuple(shape)


def now() -> float:
    """Wall-clock seconds, used for message timestamps."""
    return time.time()
