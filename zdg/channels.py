"""Socket ends of a link. The worker sends and receives frame lists; these classes own the sockets."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import zmq

from zdg.config import Settings
from zdg.metrics import Metrics
from zdg.wiring import Link, Transport

log = logging.getLogger("zdg.channels")
HELLO, CREDIT = b"H", b"C"
OUT_LINGER_MS = 10_000


def _open(ctx: zmq.Context, kind: int, link: Link, transport: Transport, binds: bool) -> zmq.Socket:
    sock = ctx.socket(kind)
    if binds:
        sock.bind(transport.bind_address(link))
    else:
        sock.connect(transport.connect_address(link))
    return sock


class OutChannel:
    """Upstream end of a link. `send` returns False when the message was dropped."""

    def __init__(self, ctx: zmq.Context, link: Link, transport: Transport, settings: Settings,
                 metrics: Metrics, stopping: Callable[[], bool]) -> None:
        self.link = link
        self.settings = settings
        self.metrics = metrics
        self.stopping = stopping
        self.drop = link.policy == "drop"
        kind = {"XPUB": zmq.XPUB, "ROUTER": zmq.ROUTER, "PUSH": zmq.PUSH}[link.socket_kinds[0]]
        self.sock = ctx.socket(kind)
        self.sock.linger = OUT_LINGER_MS
        self.sock.sndhwm = link.hwm + 8
        if kind == zmq.XPUB:
            self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)
            if not self.drop:
                self.sock.setsockopt(zmq.XPUB_NODROP, 1)
        if kind == zmq.ROUTER:
            self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            self.sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        if link.binder == "src":
            self.sock.bind(transport.bind_address(link))
        else:
            self.sock.connect(transport.connect_address(link))
        self.credits: dict[bytes, int] = {}
        self.subscribers = 0
        self.ready = link.pattern != "pub" or link.dst_replicas == 0

    def _pump(self, timeout_ms: int) -> None:
        """Read credit (ROUTER) or subscription (XPUB) messages waiting on the socket."""
        if self.link.pattern == "push" and self.link.binder == "dst":
            return
        if timeout_ms and not self.sock.poll(timeout_ms, zmq.POLLIN):
            return
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if self.link.pattern == "pub":
                if frames[0][:1] == b"\x01":
                    self.subscribers += 1
            elif len(frames) == 3:
                peer, kind, amount = frames
                n = int(amount)
                self.credits[peer] = n if kind == HELLO else self.credits.get(peer, 0) + n
        self.metrics.gauges["backlog"] = max(0, sum(self.link.hwm - c for c in self.credits.values()))

    def wait_ready(self) -> None:
        """Publishers wait until every internal subscriber has subscribed (no slow-joiner loss)."""
        deadline = time.monotonic() + self.settings.connect_timeout_s
        while not self.ready and not self.stopping():
            self._pump(100)
            self.ready = self.subscribers >= self.link.dst_replicas
            if time.monotonic() > deadline:
                log.warning("link %s: %d of %d subscribers after %.0fs; publishing anyway",
                            self.link.id, self.subscribers, self.link.dst_replicas, self.settings.connect_timeout_s)
                self.ready = True

    def _pick_peer(self) -> bytes | None:
        best = max(self.credits.items(), key=lambda kv: kv[1], default=None)
        return best[0] if best and best[1] > 0 else None

    def send(self, frames: list[Any]) -> bool:
        if not self.ready:
            self.wait_ready()
        if self.link.socket_kinds[0] == "ROUTER":
            return self._send_routed(frames)
        while True:
            try:
                self.sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
                return True
            except zmq.Again:
                if self.drop or self.stopping():
                    self.metrics.counts["dropped"] += 1
                    return False
                self._pump(0)
                if self.sock.poll(100, zmq.POLLOUT) == 0 or self.link.pattern == "pub":
                    time.sleep(0.001)

    def _send_routed(self, frames: list[Any]) -> bool:
        while True:
            peer = self._pick_peer()
            if peer is None:  # credits are read only when spent: fewer syscalls per message
                self._pump(0)
                peer = self._pick_peer()
            if peer is None:
                if self.drop or self.stopping():
                    self.metrics.counts["dropped"] += 1
                    return False
                self._pump(100)
                continue
            try:
                self.sock.send_multipart([peer, *frames], copy=False)
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH:
                    raise
                self.credits.pop(peer, None)
                continue
            self.credits[peer] -= 1
            return True

    def send_eos(self, frames: list[Any]) -> None:
        """End of stream reaches every downstream replica exactly once."""
        if self.link.socket_kinds[0] != "ROUTER":
            self.send(frames)
            return
        deadline = time.monotonic() + self.settings.connect_timeout_s
        while len(self.credits) < self.link.dst_replicas and time.monotonic() < deadline and not self.stopping():
            self._pump(100)
        for peer in list(self.credits):
            try:
                self.sock.send_multipart([peer, *frames], copy=False)
            except zmq.ZMQError as exc:
                log.warning("link %s: end of stream not delivered to %r: %s", self.link.id, peer, exc)

    def close(self) -> None:
        self.sock.close()


class InChannel:
    """Downstream end of a link; `ack` returns credit for messages processed (ROUTER links)."""

    def __init__(self, ctx: zmq.Context, link: Link, transport: Transport, settings: Settings,
                 identity: str) -> None:
        self.link = link
        kind = {"SUB": zmq.SUB, "DEALER": zmq.DEALER, "PULL": zmq.PULL}[link.socket_kinds[1]]
        self.sock = ctx.socket(kind)
        self.sock.linger = 0
        self.sock.rcvhwm = link.hwm + 8
        self.sock.setsockopt(zmq.MAXMSGSIZE, int(settings.max_message_mb * 1024 * 1024))
        self.credited = kind == zmq.DEALER
        if kind == zmq.SUB:
            self.sock.setsockopt(zmq.SUBSCRIBE, link.topic.encode())
        if self.credited:
            self.sock.setsockopt(zmq.ROUTING_ID, f"{link.dst_port}:{identity}@{socket.gethostname()}".encode())
        if link.binder == "dst":
            self.sock.bind(transport.bind_address(link))
        else:
            self.sock.connect(transport.connect_address(link))
        if self.credited:
            self.sock.send_multipart([HELLO, str(link.hwm).encode()])

    def recv(self) -> list[zmq.Frame] | None:
        try:
            return self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None

    def ack(self, n: int = 1) -> None:
        if self.credited and n:
            self.sock.send_multipart([CREDIT, str(n).encode()])

    def close(self) -> None:
        self.sock.close()
