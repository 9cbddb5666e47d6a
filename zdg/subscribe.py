"""Messages of a published topic: `zdg.subscribe` yields them decoded, `zdg sub` prints them as JSON lines."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

import zmq

from zdg.message import DecodeError, Message, decode

if TYPE_CHECKING:
    from zdg.curve import CurveKeys

log = logging.getLogger("zdg.subscribe")


MAX_MESSAGE_MB = 64.0  # as a node's default (settings.max_message_mb): a larger message drops its connection


class Subscription:
    """The messages of one subscription, decoded; `malformed` counts those skipped (not zdg messages)."""

    def __init__(self, endpoint: str, topic: str | list[str], until_eos: bool, timeout_s: float | None,
                 keys: CurveKeys | None, server: str | None, max_message_mb: float) -> None:
        self.endpoint, self.until_eos, self.timeout_s = endpoint, until_eos, timeout_s
        self.prefixes = [topic] if isinstance(topic, str) else topic or [""]
        self.keys, self.server, self.max_message_mb = keys, server, max_message_mb
        self.malformed = 0
        self._messages = self._receive()

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> tuple[str, Message]:
        return next(self._messages)

    def close(self) -> None:
        """Stop receiving and close the socket (also done when iteration ends or the object is collected)."""
        self._messages.close()

    def _receive(self) -> Iterator[tuple[str, Message]]:
        sock = zmq.Context.instance().socket(zmq.SUB)
        sock.linger = 0
        sock.setsockopt(zmq.MAXMSGSIZE, int(self.max_message_mb * 1024 * 1024))
        if self.keys is not None:
            self.keys.connect_to(sock, self.server or self.keys.host)
        for prefix in self.prefixes:
            sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        sock.connect(self.endpoint)
        deadline = time.monotonic() + self.timeout_s if self.timeout_s else None
        try:
            while deadline is None or time.monotonic() < deadline:
                wait = 200 if deadline is None else max(0, min(200, int((deadline - time.monotonic()) * 1000)))
                if not sock.poll(wait):
                    continue
                try:
                    yield (found := decode(sock.recv_multipart()))
                except DecodeError as exc:
                    self.malformed += 1
                    log.warning("skipped a malformed message (%d so far): %s", self.malformed, exc)
                    continue
                if found[1].eos and self.until_eos:
                    return
        finally:
            sock.close()


def subscribe(endpoint: str, topic: str | list[str] = "", *, until_eos: bool = True, timeout_s: float | None = None,
              keys: CurveKeys | None = None, server: str | None = None,
              max_message_mb: float = MAX_MESSAGE_MB) -> Subscription:
    """(topic, message) of each message published on `endpoint` under the topic prefix(es): fields by
    `msg["name"]`, arrays as numpy in `msg.arrays`. Ends at the publisher's end of stream (with until_eos),
    after `timeout_s` seconds, or when the caller stops iterating. A CURVE topic needs `keys` (this client's
    key folder, `zdg keys`) and `server`, the publishing box. Malformed messages are logged, counted
    (`.malformed`) and skipped; a message over `max_message_mb` drops the connection (ZMQ_MAXMSGSIZE).

        for topic, msg in zdg.subscribe("tcp://127.0.0.1:5560", "reid"):
            print(msg["status"], msg["cluster_id"], msg.arrays["boxes_xyxy"].shape)
    """
    return Subscription(endpoint, topic, until_eos, timeout_s, keys, server, max_message_mb)


def summarise(topic: str, msg: Message) -> dict[str, Any]:
    """A JSON-able view of a message; arrays become dtype/shape summaries."""
    out: dict[str, Any] = {"topic": topic, **msg.fields}
    if msg.arrays:
        out["arrays"] = {k: {"dtype": v.dtype.name, "shape": list(v.shape)} for k, v in msg.arrays.items()}
    if msg.eos:
        out["eos"] = True
    out["meta"] = msg.meta
    return out


def print_messages(endpoint: str, topics: list[str], count: int | None, until_eos: bool, timeout_s: float | None,
                   out: TextIO = sys.stdout, keys: CurveKeys | None = None, server: str | None = None) -> int:
    """Print messages until `count` arrived, an EOS (with until_eos) or the timeout; returns messages printed."""
    printed = 0
    if count == 0:
        return 0
    messages = subscribe(endpoint, topics, until_eos=until_eos, timeout_s=timeout_s, keys=keys, server=server)
    for topic, msg in messages:
        print(json.dumps(summarise(topic, msg), default=str), file=out, flush=True)
        printed += 0 if msg.eos else 1
        if count is not None and printed >= count:
            break
    if messages.malformed:
        print(f"zdg sub: skipped {messages.malformed} malformed message(s)", file=sys.stderr)
    return printed
