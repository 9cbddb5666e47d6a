"""Typed messages: what one edge carries, checked when built and when received.

An application declares frozen dataclasses that subclass `TypedMessage`: every field is a header
scalar, typed by its annotation (`int`, `float`, `str`, `bool`, `X | None`), except the arrays the
class lists in `ARRAYS` (name -> (shape, dtype), where a letter in the shape is a size shared by
every array of the message). Nodes declare which type
each port carries; `zdg validate` refuses an edge whose ends disagree, and the worker hands a
node the typed object (a message that does not fit its port's type is counted and dropped).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any, ClassVar, Self

import numpy as np

from zdg.message import Message

PortType = type | tuple[type, ...] | None  # None: any message
Shape = tuple[int | str, ...]


class MessageTypeError(ValueError):
    """A message does not have the fields or arrays its type needs; says expected vs actual."""


def _shape_text(shape: Shape, sizes: dict[str, int]) -> str:
    dims = [f"{d}={sizes[d]}" if isinstance(d, str) and d in sizes else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _checked(owner: str, name: str, value: Any, shape: Shape, dtype: str, sizes: dict[str, int]) -> np.ndarray:
    """`value` as an array of `shape` and `dtype` (cast within the same kind), binding the named sizes."""
    want = np.dtype(dtype)
    if not isinstance(value, np.ndarray):
        raise MessageTypeError(f"{owner}.{name}: expected an array {_shape_text(shape, sizes)} {dtype}, "
                               f"got {type(value).__name__}")
    if value.ndim != len(shape) or any(a != (sizes.get(d, a) if isinstance(d, str) else d)
                                       for d, a in zip(shape, value.shape, strict=True)):
        raise MessageTypeError(f"{owner}.{name}: expected shape {_shape_text(shape, sizes)} {dtype}, "
                               f"got {tuple(value.shape)} {value.dtype}")
    if value.dtype != want and (value.dtype.kind != want.kind and not (want.kind == "f" and value.dtype.kind in "iu")):
        raise MessageTypeError(f"{owner}.{name}: expected dtype {dtype}, got {value.dtype}")
    for d, a in zip(shape, value.shape, strict=True):
        if isinstance(d, str):
            sizes[d] = a
    return value if value.dtype == want else value.astype(want)


@cache
def scalars(cls: type[TypedMessage]) -> dict[str, tuple[type, ...]]:
    """A message class's header fields: each dataclass field that is not an array, with the types it allows."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in cls.ARRAYS:
            hint = hints[f.name]
            out[f.name] = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return out


class TypedMessage:
    """Base of typed edge messages. `KIND` travels as the `kind` field and is checked on receipt."""

    KIND: ClassVar[str] = ""
    ARRAYS: ClassVar[dict[str, tuple[Shape, str]]] = {}

    def __post_init__(self) -> None:
        owner = type(self).__name__
        sizes: dict[str, int] = {}
        for name, (shape, dtype) in self.ARRAYS.items():
            object.__setattr__(self, name, _checked(owner, name, getattr(self, name), shape, dtype, sizes))

    def fields(self) -> dict[str, Any]:
        """Header fields: the declared scalars (subclasses add derived ones for subscribers)."""
        return {name: getattr(self, name) for name in scalars(type(self))}

    def to_message(self, port: str = "out") -> Message:
        arrays = {name: getattr(self, name) for name in self.ARRAYS}
        return Message(fields={"kind": self.KIND, **self.fields()}, arrays=arrays, port=port)

    @classmethod
    def from_message(cls, msg: Message) -> Self:
        owner = cls.__name__
        if msg.fields.get("kind") != cls.KIND:
            raise MessageTypeError(f"{owner}: expected a {cls.KIND!r} message, got kind {msg.fields.get('kind')!r}")
        defaults = {f.name for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
        values: dict[str, Any] = {}
        for name, kinds in scalars(cls).items():
            if name not in msg.fields:
                if name in defaults:
                    continue
                raise MessageTypeError(f"{owner}: field {name!r} missing")
            value = msg.fields[name]
            if float in kinds and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                expected = " or ".join("None" if k is type(None) else k.__name__ for k in kinds)
                raise MessageTypeError(f"{owner}.{name}: expected {expected}, got {type(value).__name__}")
            values[name] = value
        for name in cls.ARRAYS:
            if name not in msg.arrays:
                raise MessageTypeError(f"{owner}: array {name!r} missing (has: {sorted(msg.arrays)})")
            values[name] = msg.arrays[name]
        return cls(**values)


def type_names(port_type: PortType) -> str:
    if port_type is None:
        return "any message"
    types = port_type if isinstance(port_type, tuple) else (port_type,)
    return " or ".join(t.__name__ for t in types)


def compatible(produced: PortType, accepted: PortType) -> bool:
    """An edge is sound when either end is untyped, or every type produced is one the input takes."""
    if produced is None or accepted is None:
        return True
    made = produced if isinstance(produced, tuple) else (produced,)
    taken = accepted if isinstance(accepted, tuple) else (accepted,)
    return all(any(issubclass(m, t) for t in taken) for m in made)


def receive(port_type: PortType, msg: Message) -> Any:
    """What a node's port hands to `process`: the typed object, or the Message itself when untyped.

    A port that takes several types picks the one whose KIND the message names."""
    if port_type is None:
        return msg
    types = port_type if isinstance(port_type, tuple) else (port_type,)
    kind = msg.fields.get("kind")
    for t in types:
        if len(types) == 1 or getattr(t, "KIND", None) == kind:
            return t.from_message(msg)
    raise MessageTypeError(f"expected a message of kind {[getattr(t, 'KIND', '?') for t in types]}, got {kind!r}")


def to_wire(out: Any) -> Message:
    """A node's output as a Message (typed messages write themselves)."""
    if isinstance(out, Message):
        return out
    if isinstance(out, TypedMessage):
        return out.to_message()
    raise TypeError(f"a node returned {type(out).__name__}, which is neither a Message nor a typed message")
