"""Bytes from a socket are hostile: every forged header the review found is counted and dropped by a running node
(no restart, even with on_crash: restart_graph, nothing lost) and skipped by every subscriber (zdg.subscribe,
zdg sub); a message over the size cap is never taken in."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import zmq

import zdg
from tests.conftest import REPO
from tests.security.forged import FORGED, decision
from tests.test_client import run_publisher
from tests.test_runtime import _metric, _pid_of, _wait_for, collected, start_run
from zdg.message import DecodeError, Message, decode, encode

pytestmark = pytest.mark.security


@pytest.mark.parametrize("name", FORGED)
def test_every_forged_header_is_a_decode_error(name):
    with pytest.raises(DecodeError):
        decode([b"reid", *FORGED[name]])


def test_a_running_node_counts_and_drops_each_forged_message_and_nothing_restarts(write_graph, tmp_path, run_dir):
    out = tmp_path / "collected.jsonl"
    graph = write_graph(f"""
        name: forged
        settings: {{on_crash: restart_graph}}
        nodes:
          - {{name: counter, type: counter, params: {{count: 300, rate: 100}}}}
          - {{name: square, type: square, replicas: 2}}
          - {{name: collect, type: collect, params: {{path: {out}}}}}
        edges:
          - {{from: counter, to: square}}
          - {{from: square, to: collect}}
        """)
    rdir = run_dir / "r"
    runner = start_run(graph, rdir)
    _wait_for(lambda: _pid_of(rdir, "collect.0"))
    ctx = zmq.Context()
    rogue = ctx.socket(zmq.DEALER)
    rogue.linger = 2000
    rogue.connect(f"ipc://{rdir}/e1.sock")  # square (x2) -> collect: collect binds a ROUTER here
    for frames in FORGED.values():
        rogue.send_multipart([b"", *frames])
    _wait_for(lambda: (_metric(rdir, "collect.0", "decode_errors") or 0) >= len(FORGED))
    rogue.close()
    ctx.term()
    _, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    metrics = {f"{r['node']}.{r['replica']}": r for r in json.loads((rdir / "metrics.json").read_text())["replicas"]}
    assert metrics["collect.0"]["decode_errors"] == len(FORGED)
    assert all(m["restarts"] == 0 for m in metrics.values()), "no node crashed, so the graph was not restarted"
    assert sorted(r["i"] for r in collected(out)) == list(range(300)), "nothing was lost"


@pytest.fixture
def publisher(tmp_path):
    """A PUB socket publishing forged messages, a message too large for the subscribers' cap, and two decisions,
    again and again; its endpoint."""
    pub = zmq.Context.instance().socket(zmq.PUB)
    endpoint = f"ipc://{tmp_path}/forged.sock"
    pub.bind(endpoint)
    huge = encode(Message({"status": "new", "cluster_id": 99}, {"a": np.zeros(2**20, np.float32)}), "reid")  # 4 MB
    # the large one last: a subscriber that refuses it drops the connection, and what follows it on the wire with it
    thread, stop = run_publisher(pub, [*([b"reid", *f] for f in FORGED.values()), decision(1), decision(2), huge])
    yield endpoint
    stop.set()
    thread.join()
    pub.close()


def test_zdg_subscribe_skips_and_counts_forged_messages_and_never_takes_one_over_the_cap(publisher):
    messages = zdg.subscribe(publisher, "reid", until_eos=False, timeout_s=5, max_message_mb=1)
    got = {m["cluster_id"] for _, m in messages}
    assert got == {1, 2}, "the decisions arrive; the 4 MB message over the 1 MB cap never does"
    assert messages.malformed >= len(FORGED)


def test_zdg_sub_prints_the_decisions_and_says_how_many_it_skipped(publisher):
    done = subprocess.run([sys.executable, "-m", "zdg", "sub", publisher, "reid", "--timeout", "3"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert {json.loads(line)["cluster_id"] for line in done.stdout.splitlines()} >= {1, 2}
    assert "malformed message(s)" in done.stderr
