"""How a link's socket meets its address: CURVE keys where the link needs them, and a bind that waits for a
port still held by another process (a node's predecessor, a container being removed) instead of failing at once."""

from __future__ import annotations

import itertools
import logging
import time

import zmq

from zdg.curve import MissingKeyError
from zdg.wiring import Link, Transport

log = logging.getLogger("zdg.channels")
BIND_WAIT_S = 30.0


def attach(sock: zmq.Socket, link: Link, transport: Transport, binds: bool) -> None:
    """Bind or connect `sock` for its end of `link`, with the CURVE keys the link needs."""
    if link.secure:
        if transport.keys is None:
            raise MissingKeyError(f"topic {link.topic!r} is secure: give the box's key folder (--keys or $ZDG_KEYS, "
                                  "made by `zdg keys GRAPH --client NAME`)")
        transport.keys.serve(sock)
    elif link.crosses_boxes and transport.kind == "tcp":
        if transport.keys is None:
            raise MissingKeyError(f"link {link.id} crosses boxes ({link.src_host} -> {link.dst_host}): "
                                  "give the box's key folder (--keys or $ZDG_KEYS, made by `zdg keys`)")
        if binds:
            transport.keys.serve(sock)
        else:
            transport.keys.connect_to(sock, link.binder_host)
    if binds:
        bind(sock, transport.bind_address(link), link.id)
    else:
        sock.connect(transport.connect_address(link))


def bind(sock: zmq.Socket, address: str, link_id: str, wait_s: float = BIND_WAIT_S) -> None:
    """Bind, waiting up to `wait_s` for an address another process still holds; then fail naming the link."""
    deadline = time.monotonic() + wait_s
    for attempt in itertools.count():
        try:
            sock.bind(address)
            return
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EADDRINUSE:
                raise
            if time.monotonic() >= deadline:
                raise OSError(f"link {link_id}: {address} is still in use by another process after {wait_s:.0f} s "
                              "(another graph, or a node of this one still running?)") from exc
            if attempt == 0:
                log.warning("link %s: %s is in use; waiting up to %.0f s for it", link_id, address, wait_s)
        time.sleep(0.5)
