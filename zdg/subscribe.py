"""`zdg sub`: print messages from a published topic as JSON lines."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

import zmq

from zdg.message import DecodeError, Message, decode


def summarise(topic: str, msg: Message) -> dict[str, Any]:
    """A JSON-able view of a message; arrays become dtype/shape summaries."""
    out: dict[str, Any] = {"topic": topic, **msg.fields}
    if msg.arrays:
        out["arrays"] = {k: {"dtype": v.dtype.name, "shape": list(v.shape)} for k, v in msg.arrays.items()}
    if msg.eos:
        out["eos"] = True
    out["meta"] = msg.meta
    return out


def subscribe(endpoint: str, topics: list[str], count: int | None, until_eos: bool, timeout_s: float | None,
              out: TextIO = sys.stdout) -> int:
    """Print messages until `count` arrived, an EOS (with until_eos) or the timeout; returns messages printed."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.linger = 0
    for topic in topics or [""]:
        sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    sock.connect(endpoint)
    printed = 0
    deadline = time.monotonic() + timeout_s if timeout_s else None
    try:
        while count is None or printed < count:
            wait = 200 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not sock.poll(min(wait, 200)):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                continue
            try:
                topic, msg = decode(sock.recv_multipart())
            except DecodeError as exc:
                print(json.dumps({"error": str(exc)}), file=sys.stderr)
                continue
            print(json.dumps(summarise(topic, msg), default=str), file=out, flush=True)
            if msg.eos and until_eos:
                break
            printed += 0 if msg.eos else 1
    finally:
        sock.close()
    return printed
