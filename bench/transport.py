"""Transport benchmark: zdg edge vs raw pyzmq, measured side by side in one run.

(a) 1920x1080x3 uint8 frames through one PUSH/PULL-style hop: zdg (credit-based ROUTER/DEALER
    link, msgpack header + zero-copy array frame, decode to numpy) vs raw pyzmq PUSH/PULL of
    the same bytes. Rounds alternate A/B; the median ratio is printed (goal >= 0.9).
(b) one-way latency of a small (~1 kB header) message over ipc, p50/p99 (goal p50 < 200 us).

    python bench/transport.py [--frames 300] [--rounds 5] [--latency-msgs 5000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

from zdg.channels import InChannel, OutChannel
from zdg.config import build_graph
from zdg.message import Message, decode, encode
from zdg.metrics import Metrics
from zdg.wiring import Transport, compile_plan
from zdg.yamlsrc import parse_yaml

GRAPH = """
name: bench
settings: {hwm: 32}  # credits = messages in flight; raw PUSH+PULL below hold 16 + 16
nodes:
  - {name: src, type: counter}
  - {name: dst, type: collect}
edges:
  - {from: src, to: dst}
"""
SHAPE = (1080, 1920, 3)


def _setup(run_dir: str):
    graph = build_graph(parse_yaml(GRAPH, Path("bench.yaml")))
    link = compile_plan(graph).links[0]
    return graph.settings, link, Transport("ipc", Path(run_dir))


def zdg_sender(run_dir: str, n: int, small: bool) -> None:
    settings, link, transport = _setup(run_dir)
    ctx = zmq.Context()
    out = OutChannel(ctx, link, transport, settings, Metrics("src", 0, None), lambda: False, "src.0")
    frame = np.random.default_rng(0).integers(0, 255, SHAPE, dtype=np.uint8)
    pad = "x" * 900
    for i in range(n):
        if small:
            time.sleep(0.0005)
            msg = Message(fields={"i": i, "t": time.perf_counter(), "pad": pad})
        else:
            msg = Message(fields={"i": i}, arrays={"frame": frame})
        out.send(encode(msg))
    out.send_eos(encode(Message(eos=True)))
    out.close()
    ctx.term()


def zdg_receiver(run_dir: str, result: mp.Queue) -> None:
    settings, link, transport = _setup(run_dir)
    ctx = zmq.Context()
    inp = InChannel(ctx, link, transport, settings, "dst.0")
    assert inp.monitor is not None and inp.monitor.poll(10_000), "no handshake with the sender"
    inp.greet()  # HELLO with this end's credit, as the worker does on every (re)connection
    latencies, count, start = [], 0, None
    while True:
        frames = inp.sock.recv_multipart(copy=False)
        now = time.perf_counter()
        _, msg = decode(frames)
        if msg.eos:
            inp.hold_eos("src.0")
            inp.ack_eos()
            break
        inp.ack()
        start = start or now
        count += 1
        if "t" in msg.fields:
            latencies.append(now - msg.fields["t"])
        else:
            assert msg.arrays["frame"].shape == SHAPE
    result.put((count, time.perf_counter() - start, latencies))
    inp.close()
    ctx.term()


def raw_sender(run_dir: str, n: int, small: bool) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.sndhwm = 16
    sock.connect(f"ipc://{run_dir}/raw.sock")
    frame = np.random.default_rng(0).integers(0, 255, SHAPE, dtype=np.uint8)
    import msgpack

    for i in range(n):
        if small:
            time.sleep(0.0005)
            sock.send(msgpack.packb({"i": i, "t": time.perf_counter(), "pad": "x" * 900}))
        else:
            sock.send(frame, copy=False)
    sock.send(b"")
    sock.close(linger=-1)
    ctx.term()


def raw_receiver(run_dir: str, result: mp.Queue) -> None:
    import msgpack

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.rcvhwm = 16
    sock.bind(f"ipc://{run_dir}/raw.sock")
    latencies, count, start = [], 0, None
    while True:
        data = sock.recv(copy=False)
        now = time.perf_counter()
        if len(data) == 0:
            break
        start = start or now
        count += 1
        if len(data) < 4096:
            latencies.append(now - msgpack.unpackb(data.buffer)["t"])
        else:
            np.frombuffer(data.buffer, np.uint8).reshape(SHAPE)
    result.put((count, time.perf_counter() - start, latencies))
    sock.close()
    ctx.term()


def hop(kind: str, n: int, small: bool) -> tuple[int, float, list[float]]:
    run_dir = tempfile.mkdtemp(prefix="zdgb-", dir="/tmp")
    result: mp.Queue = mp.Queue()
    recv_fn, send_fn = (zdg_receiver, zdg_sender) if kind == "zdg" else (raw_receiver, raw_sender)
    receiver = mp.Process(target=recv_fn, args=(run_dir, result))
    receiver.start()
    sender = mp.Process(target=send_fn, args=(run_dir, n, small))
    sender.start()
    out = result.get(timeout=300)
    sender.join()
    receiver.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-msgs", type=int, default=5000)
    args = parser.parse_args()

    ratios = []
    print(f"(a) {args.frames} frames of {SHAPE} uint8 ({np.prod(SHAPE) / 1e6:.1f} MB) per round, zdg vs raw pyzmq, alternating")
    for r in range(args.rounds):
        zn, zt, _ = hop("zdg", args.frames, False)
        rn, rt, _ = hop("raw", args.frames, False)
        zfps, rfps = (zn - 1) / zt, (rn - 1) / rt
        ratios.append(zfps / rfps)
        print(f"  round {r + 1}: zdg {zfps:8.1f} fps   raw {rfps:8.1f} fps   ratio {zfps / rfps:.3f}")
    print(f"  median ratio zdg/raw: {statistics.median(ratios):.3f}  (goal >= 0.9)")

    print(f"(b) small-message one-way latency over ipc, {args.latency_msgs} msgs at ~2 kHz, ~1 kB header")
    for kind in ("zdg", "raw"):
        _, _, lat = hop(kind, args.latency_msgs, True)
        us = np.array(lat) * 1e6
        print(f"  {kind}: p50 {np.percentile(us, 50):7.1f} us   p99 {np.percentile(us, 99):7.1f} us")


if __name__ == "__main__":
    main()
