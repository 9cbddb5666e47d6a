"""Link ends over real sockets: end of stream survives a receiver restarted after it was sent."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest
import zmq

from zdg.channels import InChannel, OutChannel
from zdg.config import build_graph
from zdg.endpoints import bind
from zdg.message import Message, decode, encode
from zdg.metrics import Metrics
from zdg.wiring import Transport, compile_plan
from zdg.yamlsrc import parse_yaml

GRAPH = """
name: c
nodes:
  - {name: src, type: counter}
  - {name: dst, type: collect}
edges:
  - EDGE
"""
EDGES = {"push": "{from: src, to: dst}", "pub": "{from: src, to: dst, pattern: pub, topic: t}"}


def link_for(pattern: str):
    graph = build_graph(parse_yaml(GRAPH.replace("EDGE", EDGES[pattern]), Path("c.yaml")))
    return graph.settings, compile_plan(graph).links[0]


def connected(channel: InChannel) -> InChannel:
    """Wait for the handshake and say HELLO, as the worker's loop does (push links only)."""
    if channel.monitor is not None:
        assert channel.monitor.poll(5000), "no handshake"
        channel.greet()
    return channel


def receive(channel: InChannel, timeout_s: float = 10) -> Message:
    assert channel.sock.poll(int(timeout_s * 1000)), "nothing received"
    return decode(channel.recv())[1]


@pytest.mark.parametrize("pattern", ["push", "pub"])
def test_restarted_receiver_still_gets_end_of_stream(pattern):
    settings, link = link_for(pattern)
    transport = Transport("ipc", Path(tempfile.mkdtemp(prefix="zdgc", dir="/tmp")))
    ctx = zmq.Context()
    first = InChannel(ctx, link, transport, settings, "dst.0")
    out = OutChannel(ctx, link, transport, settings, Metrics("src", 0, None), lambda: False, "src.0")
    connected(first)
    out.send(encode(Message(fields={"i": 1}), link.topic))
    assert receive(first).fields == {"i": 1}
    first.close()  # the receiver dies before end of stream

    done, sent_once = threading.Event(), threading.Event()
    send_once = out._send_eos_once

    def send_and_tell(frames: list) -> None:
        send_once(frames)
        sent_once.set()

    out._send_eos_once = send_and_tell  # so the test knows EOS went out while no receiver was there

    def finish() -> None:
        out.send_eos(encode(Message(eos=True), link.topic))
        done.set()

    sender = threading.Thread(target=finish)
    sender.start()
    assert sent_once.wait(10), "end of stream was never sent"
    second = connected(InChannel(ctx, link, transport, settings, "dst.0"))  # restarted with the same identity
    while not receive(second).eos:
        pass
    second.hold_eos("src.0")
    second.ack_eos()
    assert done.wait(10), "sender still waiting for the acknowledgement"
    sender.join()
    out.close()
    second.close()
    ctx.term()


def test_a_port_still_held_is_waited_for_then_named():
    holder = zmq.Context.instance().socket(zmq.ROUTER)
    port = holder.bind_to_random_port("tcp://127.0.0.1")
    address = f"tcp://127.0.0.1:{port}"
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    try:
        with pytest.raises(OSError, match=f"link e1: {address} is still in use"):
            bind(sock, address, "e1", wait_s=0.6)
        threading.Timer(0.7, holder.close).start()
        bind(sock, address, "e1", wait_s=10)  # freed by its holder meanwhile: this end takes it
        assert sock.last_endpoint.decode() == address
    finally:
        sock.close(0)
        holder.close(0)
