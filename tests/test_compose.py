"""`zdg compose`, `zdg keys` and CURVE edges between boxes (the container suite runs them in containers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import yaml
import zmq
import zmq.auth

from tests.conftest import REPO, zdg

TWO_BOXES = """
name: two_boxes
hosts:
  edge: 127.0.0.1
nodes:
  - name: counter
    type: counter
    host: edge
    params: {count: 300, rate: 100}
  - name: collect
    type: collect
    host: central
    params: {path: %s}
edges:
  - {from: counter, to: collect}
"""


def test_committed_compose_file_is_generated_from_the_default_graph():
    check = REPO / ".docker-compose.check.yml"  # beside the committed file, so relative mounts match
    done = zdg("compose", "graphs/video_reid.yaml", "-o", str(check))
    try:
        assert done.returncode == 0, done.stderr
        fresh = check.read_text()
    finally:
        check.unlink(missing_ok=True)
    assert fresh == (REPO / "docker-compose.yml").read_text(), (
        "docker-compose.yml is out of date: run `zdg compose graphs/video_reid.yaml -o docker-compose.yml`")


def test_compose_wires_services_by_the_graph(tmp_path):
    doc = yaml.safe_load(zdg("compose", "graphs/video_reid.yaml").stdout)
    services = doc["services"]
    assert services["detector"]["deploy"] == {"replicas": 2}
    assert services["db"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["db"]["environment"]["ZDG_DSN"].endswith("@postgres:5432/zdg")
    assert "ports" not in services["db"]  # only outside topics are published
    assert services["reid"]["ports"] == ["127.0.0.1:5606:5606"]  # plaintext: this box only (settings.publish_address)
    assert services["source"]["image"].endswith("zdg-faces:0.1.0}")
    demo_text = zdg("compose", "graphs/demo.yaml").stdout
    demo = yaml.safe_load(demo_text)["services"]
    assert "postgres" not in demo and demo["counter"]["image"].endswith("zdg:0.1.0}")
    assert "relay-e2" in demo  # both sides replicated: the same relay as local runs
    # video_reid's on_crash: restart_graph: every node recovers the graph through the store's epoch; demo's doesn't
    reid_text = (REPO / "docker-compose.yml").read_text()
    assert "every node starts afresh" in reid_text and "every node starts afresh" not in demo_text
    for name, service in yaml.safe_load(reid_text)["services"].items():
        if name != "postgres":
            assert "--graph-recovery" in service["command"] and "@postgres:5432/zdg" in service["environment"]["ZDG_DSN"]
            assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert not any("--graph-recovery" in s["command"] for s in demo.values())


def test_the_publisher_of_a_secure_topic_gets_its_box_keys_and_no_other_service_does(write_graph):
    graph = write_graph("""\
        name: sec
        nodes:
          - {name: counter, type: counter, params: {count: 10}}
          - {name: square, type: square}
        edges:
          - {from: counter, to: square}
          - {from: square, pattern: pub, topic: squares, secure: true}
        """)
    services = yaml.safe_load(zdg("compose", str(graph)).stdout)["services"]
    assert services["square"]["environment"]["ZDG_KEYS"] == "/keys"
    assert "${ZDG_KEYS:-./keys/local}:/keys:ro" in services["square"]["volumes"]
    assert "ZDG_KEYS" not in services["counter"].get("environment", {})


def test_compose_on_invalid_graph_gives_validate_errors(write_graph):
    bad = write_graph("name: g\nnodes:\n  - name: a\n    type: counter\n    replicas: 0\n")
    compose, validate = zdg("compose", str(bad)), zdg("validate", str(bad))
    assert compose.returncode == validate.returncode == 2
    assert compose.stderr == validate.stderr and f"{bad}:5: nodes[0].replicas" in compose.stderr


def test_boxes_get_their_own_files_with_keys_and_published_crossing_edges(write_graph, tmp_path):
    graph = write_graph(TWO_BOXES % "/work/out/c.jsonl")
    whole = zdg("compose", str(graph))
    assert whole.returncode == 1 and "pass --host" in whole.stderr
    assert "no node has host: nowhere" in zdg("compose", str(graph), "--host", "nowhere").stderr
    edge = yaml.safe_load(zdg("compose", str(graph), "--host", "edge").stdout)["services"]
    central = yaml.safe_load(zdg("compose", str(graph), "--host", "central").stdout)["services"]
    assert set(edge) == {"counter"} and set(central) == {"collect"}
    assert edge["counter"]["ports"] == ["5600:5600"]  # counter binds the crossing edge
    assert "--address" in central["collect"]["command"]
    assert "${ZDG_ADDRESS_EDGE:-127.0.0.1}" in " ".join(central["collect"]["command"])
    assert edge["counter"]["environment"]["ZDG_KEYS"] == "/keys"
    done = zdg("keys", str(graph), "-o", str(tmp_path / "keys"))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "keys" / "edge").iterdir()) == ["central.key", "edge.key", "edge.key_secret"]


def test_mixed_placement_is_a_graph_error(write_graph):
    bad = write_graph("name: g\nnodes:\n  - name: a\n    type: counter\n    host: x\n  - name: b\n    type: collect\n"
                      "edges:\n  - {from: a, to: b}\n")
    done = zdg("validate", str(bad))
    assert done.returncode == 2 and f"{bad}:6: nodes[1]: node 'b' has no host:" in done.stderr


def _node(graph, name, keys, *extra):
    return subprocess.Popen([sys.executable, "-m", "zdg", "node", str(graph), name, "--transport", "tcp",
                             "--keys", str(keys), "--run-dir", str(keys.parent / f"run-{name}"), *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_crossing_edge_is_curve_encrypted_and_refuses_unknown_keys(write_graph, tmp_path):
    out = tmp_path / "collected.jsonl"
    graph = write_graph(TWO_BOXES % out)
    assert zdg("keys", str(graph), "-o", str(tmp_path / "keys")).returncode == 0
    counter = _node(graph, "counter", tmp_path / "keys" / "edge")
    try:
        ctx = zmq.Context.instance()
        rogue = ctx.socket(zmq.DEALER)
        rogue.curve_publickey, rogue.curve_secretkey = zmq.curve_keypair()
        rogue.curve_serverkey = zmq.auth.load_certificate(str(tmp_path / "keys" / "edge" / "edge.key"))[0]
        rogue.linger = 0
        rogue.connect("tcp://127.0.0.1:5600")
        rogue.send_multipart([b"H", b"16"])  # ask for work like a downstream replica would
        assert rogue.poll(3000) == 0, "a peer without the graph's key received data"
        rogue.close()
        collect = _node(graph, "collect", tmp_path / "keys" / "central")
        assert collect.wait(60) == 0, collect.stdout.read()
        assert counter.wait(30) == 0, counter.stdout.read()
    finally:
        counter.kill()
    assert len(out.read_text().splitlines()) == 300
    metrics = json.loads(next((tmp_path / "keys" / "run-counter").glob("metrics/*.json")).read_text())
    assert metrics["auth_refused"] >= 1
    assert "refused a peer with an unknown CURVE key" in counter.stdout.read()


def test_health_follows_metrics_freshness(tmp_path):
    metrics = tmp_path / "g" / "metrics"
    metrics.mkdir(parents=True)
    assert zdg("health", "--run-dir", str(tmp_path)).returncode == 1
    (metrics / "n.0.json").write_text("{}")
    assert zdg("health", "--run-dir", str(tmp_path)).returncode == 0
    stale = time.time() - 5
    os.utime(metrics / "n.0.json", (stale, stale))
    assert zdg("health", "--run-dir", str(tmp_path), "--max-age", "1").returncode == 1
