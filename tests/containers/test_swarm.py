"""`zdg stack` on a real two-node Docker Swarm (tests/containers/swarm.py): the demo graph and the face graph
placed across both nodes by label, edges between them CURVE-encrypted over the overlay network.

Run: ZDG_SWARM_PATH=... pytest -q -rs -m swarm tests/containers   (.ci/run sets it with docker/setup-swarm-engine.sh;
where the kernel cannot, the tests are skipped with the reason).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
import zmq.auth

from tests.conftest import REPO
from tests.containers.conftest import zdg
from tests.containers.swarm import EDGE_NODES, Engine, TwoNodeSwarm, deploy_face_graph, missing_support, out_folder
from tests.containers.test_container_faults import node_metrics
from tests.faults.test_faults import assert_same_store
from zdg.deploy.compose import BASE_IMAGE
from zdg.deploy.images import app_images
from zdg.shared_store import store_service

pytestmark = pytest.mark.swarm
TWO_BOXES = REPO / "tests" / "containers" / "two_boxes.yaml"


@pytest.fixture(scope="module")
def swarm() -> Iterator[TwoNodeSwarm]:
    reason = missing_support(os.environ.get("ZDG_SWARM_PATH"))
    if reason:
        pytest.skip(f"no two-node Swarm here: {reason}")
    cluster = TwoNodeSwarm(os.environ["ZDG_SWARM_PATH"])
    try:
        cluster.start()
        cluster.load_images([BASE_IMAGE, *(image.tag for image in app_images()), store_service().build_image], dict(os.environ))
        yield cluster
    finally:
        cluster.stop()


def test_demo_across_two_nodes_delivers_everything_and_refuses_a_foreign_key(swarm, tmp_path):
    zdg("keys", str(TWO_BOXES), "-o", str(tmp_path / "keys"))
    zdg("stack", str(TWO_BOXES), "--set", "counter.count=1000", "--set", "counter.rate=100",
        "-o", str(tmp_path / "stack.yml"))
    out = out_folder(tmp_path / "out")
    server = zmq.auth.load_certificate(str(tmp_path / "keys" / "central" / "central.key"))[0].decode()
    swarm.deploy(tmp_path, "two", {"ZDG_OUT": str(out)})
    try:
        rogue = ("import os, zmq\n"  # waits (up to 60 s) until collect has refused it, not a fixed time
                 "s = zmq.Context().socket(zmq.DEALER)\n"
                 "s.curve_publickey, s.curve_secretkey = zmq.curve_keypair()\n"
                 "s.curve_serverkey = os.environ['SERVER'].encode()\n"
                 "refused = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)\n"
                 "s.connect('tcp://collect:5601'); s.send_multipart([b'', b'x'])\n"
                 "print('refused' if refused.poll(60000) else 'never refused')\n")
        swarm.wait_state("two", "collect", "Running")
        swarm.docker(swarm.manager, "run", "--rm", "--network", "two_zdg", "-e", f"SERVER={server}", "--entrypoint",
                     "python", BASE_IMAGE, "-c", rogue, timeout=120)
        done = swarm.wait_complete("two", 180)
        rows = [json.loads(line) for line in (out / "collect.jsonl").read_text().splitlines()]
        assert sorted(r["i"] for r in rows) == list(range(1000))
        placed = {t["Name"].split(".")[0].removeprefix("two_"): t["Node"] for t in done}
        assert placed == {"counter": "edge", "square": "edge", "collect": "central"}
        assert "refused a peer with an unknown CURVE key" in swarm.service_logs("two_collect")
    finally:
        swarm.remove("two")


def stored(swarm: TwoNodeSwarm, stack: str) -> tuple[int, int, int]:
    """Faces, sequences, and sequences decided (a cluster, or junk) in the stack's store."""
    store = swarm.docker(swarm.manager, "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={stack}_postgres")
    count = swarm.docker(swarm.manager, "exec", "-e", f"PGPASSWORD={swarm.db_password}", store.split()[0], "psql",
                         "-h", "127.0.0.1", "-U", "zdg", "-d", "zdg", "-tAc",
                         "SELECT (SELECT count(*) FROM faces), count(*), count(*) FILTER (WHERE cluster_id IS NOT NULL "
                         "OR junk IS NOT NULL) FROM sequences")
    faces, sequences, decided = map(int, count.strip().split("|"))
    return faces, sequences, decided


def exported(swarm: TwoNodeSwarm, stack: str) -> list[dict]:
    """The stack's stored sequences as `zdg export` names them (what tests.faults compares)."""
    store = swarm.docker(swarm.manager, "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={stack}_postgres")
    out = swarm.docker(swarm.manager, "exec", "-e", f"PGPASSWORD={swarm.db_password}", store.split()[0], "psql",
                       "-h", "127.0.0.1", "-U", "zdg", "-d", "zdg", "-tAc",
                       "SELECT s.seq_key, s.first_frame, s.last_frame, (SELECT count(*) FROM faces f WHERE "
                       "f.sequence_id = s.id), s.cluster_id, s.junk FROM sequences s")
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    return [{"sequence_key": key, "first_frame": int(first), "last_frame": int(last), "faces": int(faces),
             "cluster_id": int(cluster) if cluster else None, "junk": junk == "t"}
            for key, first, last, faces, cluster, junk in rows]


def container_of(swarm: TwoNodeSwarm, service: str) -> tuple[Engine, str]:
    """The engine running the service's task, and its container."""
    for engine in swarm.engines.values():
        found = swarm.docker(engine, "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}").split()
        if found:
            return engine, found[0]
    raise AssertionError(f"no container of {service}")


def task_pid(swarm: TwoNodeSwarm, service: str) -> int:
    """The host pid of the service's running container (0 while there is none)."""
    try:
        engine, container = container_of(swarm, service)
        return int(swarm.docker(engine, "inspect", "-f", "{{.State.Pid}}", container).strip())
    except (AssertionError, ValueError):
        return 0


def replaced_in_slot(swarm: TwoNodeSwarm, stack: str, service: str, timeout: float) -> None:
    """Until the killed task of the service's slot 1 shows Failed and a new task there runs (or already finished)."""
    deadline = time.monotonic() + timeout
    while True:
        history = [t for t in swarm.tasks(stack) if f"{stack}_{service}.1" in t["Name"]]
        if any(t["CurrentState"].startswith("Failed") for t in history[1:]) and \
                history[0]["CurrentState"].startswith(("Running", "Complete")):
            return
        assert time.monotonic() < deadline, history
        time.sleep(0.5)


def decisions_of(sub: subprocess.Popen, first: str = "") -> list[dict]:
    lines = [first] + sub.communicate(timeout=60)[0].splitlines() if first else sub.communicate(timeout=60)[0].splitlines()
    return [d for d in map(json.loads, lines) if not d.get("eos")]


def test_face_graph_across_two_nodes_stores_and_publishes(swarm, tmp_path):
    started, sub = deploy_face_graph(swarm, tmp_path, "vr")
    try:
        first = sub.stdout.readline()
        print(f"docker stack deploy -> first re-id decision: {time.monotonic() - started:.1f} s")
        done = swarm.wait_complete("vr", 400)
        decisions = decisions_of(sub, first)
        assert len(decisions) == 2 and {d["status"] for d in decisions} <= {"new", "recognised"}
        placed = {t["Name"].split(".")[0].removeprefix("vr_"): t["Node"] for t in done}
        assert {n for n, box in placed.items() if box == "edge"} == set(EDGE_NODES)
        faces, sequences, decided = stored(swarm, "vr")
        assert faces > 50 and sequences == decided == 2
    finally:
        sub.kill()
        swarm.remove("vr")


def test_the_store_killed_mid_run_is_rescheduled_and_nothing_is_lost(swarm, tmp_path):
    _, sub = deploy_face_graph(swarm, tmp_path, "vk")
    try:
        swarm.wait_state("vk", "postgres", "Running")
        store = swarm.docker(swarm.manager, "ps", "-q", "--filter", "label=com.docker.swarm.service.name=vk_postgres").strip()
        deadline = time.monotonic() + 120
        while swarm.docker(swarm.manager, "inspect", "-f", "{{.State.Health.Status}}", store).strip() != "healthy":
            assert time.monotonic() < deadline, "the store never became healthy"
            time.sleep(0.5)
        swarm.docker(swarm.manager, "kill", store)  # SIGKILL, while the nodes start and read their checkpoint
        swarm.wait_complete("vk", 400)
        history = [t for t in swarm.tasks("vk") if "vk_postgres.1" in t["Name"]]
        assert history[0]["CurrentState"].startswith("Running"), history  # rescheduled: a new task runs the store
        assert any(t["CurrentState"].startswith("Failed") for t in history[1:]), history  # the killed one
        decisions = decisions_of(sub)
        assert len(decisions) == 2 and {d["status"] for d in decisions} <= {"new", "recognised"}
        faces, sequences, decided = stored(swarm, "vk")
        assert faces > 50 and sequences == decided == 2
    finally:
        sub.kill()
        swarm.remove("vk")


def test_a_sequencer_killed_on_the_swarm_is_replaced_and_the_graph_recovers(swarm, tmp_path):
    """The sequencer's task killed mid-video (SIGKILL): Swarm replaces it (same slot, same hostname), the graph
    recovers through the store's epoch, and the store equals a clean deployment's."""
    stored_by = {}
    for run in ("clean", "killed"):
        stack = f"vs{run[0]}"
        (tmp_path / run).mkdir()
        _, sub = deploy_face_graph(swarm, tmp_path / run, stack, end_s=10)
        try:
            if run == "killed":
                deadline = time.monotonic() + 300
                source = victim = 0
                while not (source and victim) or int(node_metrics(source, "source").get("out", 0)) < 60:
                    assert time.monotonic() < deadline, swarm.logs(stack)
                    source = source or task_pid(swarm, f"{stack}_source")
                    victim = victim or task_pid(swarm, f"{stack}_sequencer")
                    time.sleep(0.01 if source and victim else 0.5)
                before = node_metrics(victim, "sequencer")
                killed_at = time.monotonic()
                os.kill(victim, signal.SIGKILL)
                assert before.get("state") != "done", f"the sequencer had finished its stream when killed: {before}"
                replaced_in_slot(swarm, stack, "sequencer", 120)
            swarm.wait_complete(stack, 400)
            if run == "killed":
                print(f"sequencer killed -> stack complete: {time.monotonic() - killed_at:.1f} s")
                assert "restarted after a crash: graph epoch" in swarm.service_logs(f"{stack}_sequencer")
            stored_by[run] = exported(swarm, stack)
        finally:
            sub.kill()
            swarm.remove(stack)
    assert len(stored_by["clean"]) >= 3
    assert_same_store(stored_by["killed"], stored_by["clean"])
