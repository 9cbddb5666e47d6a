"""The Python client: `zdg.subscribe` yields a topic's messages decoded, over plain and CURVE sockets."""

from __future__ import annotations

import threading
import time

import numpy as np
import zmq

import zdg
from zdg.curve import CurveKeys, generate_keys
from zdg.message import Message, encode


def publish(sock: zmq.Socket, messages: list[list], stop: threading.Event) -> None:
    """Send the frames again and again until told to stop (a SUB joins a PUB at some point, not at once)."""
    while not stop.is_set():
        for frames in messages:
            sock.send_multipart(frames)
        time.sleep(0.05)


def run_publisher(sock: zmq.Socket, messages: list[list]) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=publish, args=(sock, messages, stop), daemon=True)
    thread.start()
    return thread, stop


def decision(i: int) -> list:
    boxes = np.full((2, 4), i, np.float32)
    return encode(Message({"status": "new", "cluster_id": i}, {"boxes_xyxy": boxes}), "reid")


def test_subscribe_yields_fields_and_arrays_skips_malformed_and_other_topics_and_ends_at_eos(tmp_path):
    pub = zmq.Context.instance().socket(zmq.PUB)
    endpoint = f"ipc://{tmp_path}/t.sock"
    pub.bind(endpoint)
    noise = [[b"reid", b"\xc1 not msgpack"], encode(Message({"x": 1}), "other")]
    thread, stop = run_publisher(pub, [*noise, decision(1), decision(2), encode(Message(eos=True), "reid")])
    try:
        started = time.monotonic()
        to_eos = list(zdg.subscribe(endpoint, "reid", timeout_s=20))
        ended_at_eos = time.monotonic() - started < 10
        got = list(zdg.subscribe(endpoint, "reid", until_eos=False, timeout_s=1.5))
    finally:
        stop.set()
        thread.join()
        pub.close()
    assert to_eos[-1][1].eos and ended_at_eos and not any(m.eos for _, m in to_eos[:-1])
    assert all(topic == "reid" for topic, _ in got), "other topics are not delivered"
    people = {(m["cluster_id"], float(m.arrays["boxes_xyxy"][0, 0])) for _, m in got if not m.eos}
    assert people == {(1, 1.0), (2, 2.0)}, "fields and arrays decoded; the malformed message skipped"


def test_a_curve_topic_delivers_to_a_keyed_client_only(tmp_path):
    generate_keys(["box", "viewer", "stranger"], tmp_path / "keys")
    allowed = tmp_path / "keys" / "box"
    (allowed / "stranger.key").unlink()  # the server knows only box's and viewer's public keys
    server = CurveKeys(allowed, "box")
    pub = zmq.Context.instance().socket(zmq.PUB)
    server.serve(pub)
    endpoint = f"ipc://{tmp_path}/c.sock"
    pub.bind(endpoint)
    thread, stop = run_publisher(pub, [decision(7)])
    try:
        viewer = CurveKeys(tmp_path / "keys" / "viewer", "viewer")
        stranger = CurveKeys(tmp_path / "keys" / "stranger", "stranger")
        _, msg = next(zdg.subscribe(endpoint, "reid", timeout_s=20, keys=viewer, server="box"))
        assert msg["cluster_id"] == 7
        assert list(zdg.subscribe(endpoint, "reid", timeout_s=1.5, keys=stranger, server="box")) == []
        assert server.count_refused() >= 1
        refused = server.refused
        assert list(zdg.subscribe(endpoint, "reid", timeout_s=1.5)) == [], "no key, no CURVE: nothing"
        assert server.count_refused() > refused, "a plaintext subscriber is refused and counted too"
    finally:
        stop.set()
        thread.join()
        pub.close()
        server.close()
