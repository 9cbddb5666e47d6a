"""Socket ends of a link. The worker sends and receives frame lists; these classes own the sockets.

Push links bound upstream are ROUTER → DEALER with credits (load balancing over replicas);
push links bound downstream are DEALER → ROUTER; pub links are XPUB → XSUB. End of stream is
acknowledged: each downstream end answers EOS with an ack naming the sender (an XSUB can send
upstream) once its node has finished and passed its own EOS on, and the upstream end waits for
every ack before closing, re-sending EOS meanwhile. ZeroMQ's linger alone does not guarantee the
last write batch reaches the peer when a process exits at once, and a replica that crashes while
finishing is sent EOS again when it is restarted.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from zdg.config import Settings
from zdg.endpoints import attach
from zdg.metrics import Metrics
from zdg.wiring import Link, Transport

log = logging.getLogger("zdg.channels")
HELLO, CREDIT, EOS_ACK = b"H", b"C", b"A"
DROP_LINGER_MS = 2_000  # drop-policy edges give up queued messages this long after close
EOS_RESEND_S = 2.0  # unacknowledged end of stream is sent again (a restarted peer missed it)
SOCKET_TYPES = {"XPUB": zmq.XPUB, "ROUTER": zmq.ROUTER, "DEALER": zmq.DEALER, "XSUB": zmq.XSUB}


def _credit(kind: bytes, rest: list[bytes]) -> int | None:
    """The credit a HELLO or CREDIT frame offers, or None for anything else (a forged or garbled frame)."""
    if kind not in (HELLO, CREDIT) or len(rest) != 1 or not rest[0].isdigit() or len(rest[0]) > 9:
        return None
    return int(rest[0])


class OutChannel:
    """Upstream end of a link. `send` returns False when the message was dropped."""

    def __init__(self, ctx: zmq.Context, link: Link, transport: Transport, settings: Settings,
                 metrics: Metrics, stopping: Callable[[], bool], sender: str) -> None:
        self.link = link
        self.sender = sender.encode()
        self.settings = settings
        self.metrics = metrics
        self.stopping = stopping
        self.drop = link.policy == "drop"
        self.kind = link.socket_kinds[0]
        self.sock = ctx.socket(SOCKET_TYPES[self.kind])
        # block policy: nothing queued is discarded at exit (a restarted peer reconnects and drains it)
        self.sock.linger = DROP_LINGER_MS if self.drop else -1
        self.sock.sndhwm = link.hwm + 8
        if self.kind == "XPUB":
            self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)
            if not self.drop:
                self.sock.setsockopt(zmq.XPUB_NODROP, 1)
        if self.kind == "ROUTER":
            self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            self.sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        attach(self.sock, link, transport, link.binder == "src")
        self.credits: dict[bytes, int] = {}
        self.acked: set[bytes] = set()
        self.peer_prefix = f"{link.dst_port}:{link.dst}.".encode()  # the routing ids of this link's receivers
        self.subscribed = 0
        self.pub_acks: set[bytes] = set()
        self.ready = link.pattern != "pub" or link.dst_replicas == 0

    def _pump(self, timeout_ms: int) -> None:
        """Read what flows back: credits and acks (ROUTER, DEALER) or (un)subscriptions (XPUB)."""
        if timeout_ms and not self.sock.poll(timeout_ms, zmq.POLLIN):
            return
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if self.kind == "XPUB":
                if frames[0][:1] == b"\x01":
                    self.subscribed += 1
                elif frames[0].startswith(EOS_ACK + self.sender + b"|"):
                    self.pub_acks.add(frames[0])
                continue
            peer, kind, *rest = frames if self.kind == "ROUTER" else [b"", *frames]
            n = _credit(kind, rest)
            if (kind != EOS_ACK and n is None) or (self.kind == "ROUTER" and not peer.startswith(self.peer_prefix)):
                self.metrics.counts["decode_errors"] += 1  # not a peer of this link, or not a control frame
                continue
            if kind == EOS_ACK:
                self.acked.add(peer)
            elif n is not None:
                self.credits[peer] = n if kind == HELLO else self.credits.get(peer, 0) + n
        if self.kind == "ROUTER":
            self.metrics.gauges["backlog"] = max(0, sum(self.link.hwm - c for c in self.credits.values()))

    def _wait(self, done: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline or self.stopping():
                return False
            self._pump(100)
        return True

    def wait_ready(self) -> None:
        """Publishers wait until every internal subscriber has subscribed (no slow-joiner loss)."""
        if not self._wait(lambda: self.subscribed >= self.link.dst_replicas, self.settings.connect_timeout_s):
            log.warning("link %s: %d of %d subscribers after %.0fs; publishing anyway",
                        self.link.id, self.subscribed, self.link.dst_replicas, self.settings.connect_timeout_s)
        self.ready = True

    def _pick_peer(self) -> bytes | None:
        best = max(self.credits.items(), key=lambda kv: kv[1], default=None)
        return best[0] if best and best[1] > 0 else None

    def send(self, frames: list[Any]) -> bool:
        if not self.ready:
            self.wait_ready()
        if self.kind == "ROUTER":
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
                if self.kind == "XPUB" or self.sock.poll(100, zmq.POLLOUT) == 0:
                    time.sleep(0.001)  # XPUB reports POLLOUT even when full under NODROP

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

    def _eos_pending(self) -> bool:
        if self.kind == "ROUTER":
            return not self.acked >= set(self.credits)
        if self.kind == "DEALER":
            return not self.acked
        return len(self.pub_acks) < self.link.dst_replicas

    def _send_eos_once(self, frames: list[Any]) -> None:
        if self.kind != "ROUTER":
            self.send(frames)
            return
        for peer in set(self.credits) - self.acked:
            try:
                self.sock.send_multipart([peer, *frames], copy=False)
            except zmq.ZMQError as exc:
                log.warning("link %s: end of stream not delivered to %r: %s", self.link.id, peer, exc)

    def send_eos(self, frames: list[Any]) -> None:
        """End of stream on this link alone, acknowledged (a worker offers on all its links before confirming)."""
        self.offer_eos(frames)
        self.confirm_eos(frames)

    def offer_eos(self, frames: list[Any]) -> None:
        """Send end of stream once to every downstream replica (a router waits for them to connect first)."""
        if self.kind == "ROUTER":
            self._wait(lambda: len(self.credits) >= self.link.dst_replicas, self.settings.connect_timeout_s)
        self._send_eos_once(frames)

    def confirm_eos(self, frames: list[Any]) -> None:
        """Wait until every downstream replica acknowledged end of stream; unacknowledged peers get it again
        every EOS_RESEND_S (receivers count each sender once)."""
        deadline = time.monotonic() + self.settings.eos_timeout_s
        while not self._wait(lambda: not self._eos_pending(), min(EOS_RESEND_S, deadline - time.monotonic())):
            if time.monotonic() >= deadline or self.stopping():
                if not self.stopping():
                    log.warning("link %s: end of stream not acknowledged within %.0fs", self.link.id,
                                self.settings.eos_timeout_s)
                return
            self._send_eos_once(frames)

    def close(self, linger: int | None = None) -> None:
        """Close; `linger` 0 drops what is still queued (a node told to stop now), None keeps the socket's own."""
        self.sock.close(linger)


class InChannel:
    """Downstream end of a link; `ack` returns credit (ROUTER upstream), `hold_eos`/`ack_eos` confirm end of stream."""

    def __init__(self, ctx: zmq.Context, link: Link, transport: Transport, settings: Settings,
                 identity: str) -> None:
        self.link = link
        self.kind = link.socket_kinds[1]
        self.sock = ctx.socket(SOCKET_TYPES[self.kind])
        self.sock.linger = 1000
        self.sock.rcvhwm = link.hwm + 8
        self.sock.setsockopt(zmq.MAXMSGSIZE, int(settings.max_message_mb * 1024 * 1024))
        self.last_peer = b""
        self.eos_held: dict[str, bytes] = {}
        self.pending = 0  # received against credit and not yet acked (DEALER)
        self.identity = f"{identity}@{socket.gethostname()}".encode()
        self.monitor: zmq.Socket | None = None
        if self.kind == "DEALER":
            self.sock.setsockopt(zmq.ROUTING_ID, f"{link.dst_port}:".encode() + self.identity)
            # HELLO on every handshake: a restarted upstream node starts with no credit for this peer
            self.monitor = self.sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        attach(self.sock, link, transport, link.binder == "dst")
        if self.kind == "XSUB":
            self.sock.send(b"\x01" + link.topic.encode())  # subscribe (re-sent to publishers that join later)

    def recv(self) -> list[zmq.Frame] | None:
        try:
            frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None
        if self.kind == "ROUTER":
            self.last_peer = frames[0].bytes
            return frames[1:]
        self.pending += 1
        return frames

    def greet(self) -> None:
        """Answer each (re)connection to the upstream ROUTER with HELLO and the credit this end can take."""
        assert self.monitor is not None
        while self.monitor.poll(0):
            recv_monitor_message(self.monitor)
            self.sock.send_multipart([HELLO, str(max(0, self.link.hwm - self.pending)).encode()])

    def ack(self, n: int = 1) -> None:
        if self.kind == "DEALER" and n:
            self.pending -= n
            self.sock.send_multipart([CREDIT, str(n).encode()])

    def hold_eos(self, sender: str) -> None:
        """Note the end-of-stream marker just received from `sender` (node.replica) until `ack_eos`."""
        self.eos_held[sender] = self.last_peer
        if self.kind == "DEALER":
            self.pending -= 1  # end of stream is sent outside the credit window

    def ack_eos(self) -> None:
        """Confirm every held end-of-stream marker; pub acks name this subscriber too."""
        for sender, peer in self.eos_held.items():
            if self.kind == "DEALER":
                self.sock.send_multipart([EOS_ACK, b"1"])
            elif self.kind == "ROUTER":
                self.sock.send_multipart([peer, EOS_ACK])
            else:
                self.sock.send(EOS_ACK + sender.encode() + b"|" + self.identity)

    def close(self) -> None:
        if self.monitor is not None:
            self.sock.disable_monitor()
            self.monitor.close()
        self.sock.close()
