"""The containers' guarantee: graphs/video_reid.yaml under compose (Podman), each node's container killed
(SIGKILL to its process) mid-video, restarted by the engine alone; the graph recovers through the store's
epoch and ends with the store of a clean run: the same sequences (keys, frames, faces), the same partition.

Run: pytest -q -m container_faults tests/containers   (needs DOCKER_HOST; .ci/run sets up Podman for it).
The kill points are drawn from ZDG_FAULT_SEED (printed); rerun with it to replay a failure.
ZDG_FAULT_ON_CRASH=restart_node switches the graph's recovery off (each container restarted alone), to see
the suite fail without it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED
from tests.containers.conftest import compose, described, sh, zdg
from tests.faults.test_faults import SEED, assert_same_store

pytestmark = pytest.mark.container_faults
NODES = ["source", "detector", "embedder", "sequencer", "db", "reid"]
END_S = 14  # of the shared clip: 176 frames emitted (stride 2)
ON_CRASH = os.environ.get("ZDG_FAULT_ON_CRASH", "restart_graph")


def compose_project(folder: Path, name: str) -> tuple[str, dict[str, str]]:
    (folder / "out").mkdir()
    (folder / "out").chmod(0o777)
    graph = folder / "video_reid.yaml"
    graph.write_text((REPO / "graphs/video_reid.yaml").read_text().replace("on_crash: restart_graph", f"on_crash: {ON_CRASH}"))
    zdg("compose", str(graph), "--set", f"source.end_s={END_S}", "--set", "gallery.annotate_video=false",
        "--store-image", "zdg-store:0.1.0", "-o", str(folder / "docker-compose.yml"))
    return name, {"ZDG_MODEL_ROOT": str(SHARED / "models"), "ZDG_DATA_ROOT": str(SHARED / "data")}


def containers(project: str, folder: Path, service: str, env: dict[str, str]) -> list[str]:
    return compose(project, folder, "ps", "-q", service, env=env).split()


def container_pid(container: str) -> int:
    return int(sh("docker", "inspect", "-f", "{{.State.Pid}}", container).strip())


def node_metrics(pid: int, node: str) -> dict:
    """A node's metrics read through its container's root as this host sees it (/proc/PID/root), not by `docker
    exec`: a poll takes microseconds, so a kill lands at its frame, not seconds later ({} before they exist)."""
    for path in Path(f"/proc/{pid}/root/tmp").glob(f"zdg*/video_reid/metrics/{node}.0.json"):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
    return {}


def container_log(container: str) -> str:
    """The container's own output, stdout and stderr (compose logs shows too little of one that hangs)."""
    done = subprocess.run(["docker", "logs", "--tail", "150", container], capture_output=True, text=True)
    return done.stdout + done.stderr


def wait_finished(project: str, folder: Path, env: dict[str, str], timeout: float = 400) -> None:
    """Every node's container exited 0 (the store keeps running)."""
    deadline = time.monotonic() + timeout
    nodes = ["source", "detector", "embedder", "sequencer", "db", "reid", "gallery"]
    while time.monotonic() < deadline:
        states = [sh("docker", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", c).strip()
                  for n in nodes for c in containers(project, folder, n, env)]
        if states and all(s == "exited 0" for s in states):
            return
        time.sleep(2)
    states = {c: described(c) for n in nodes for c in containers(project, folder, n, env)}
    stuck = [c for c, state in states.items() if " running " in state]
    for container in stuck:  # every thread's stack into its log (zdg.node_process.start_process)
        sh("docker", "kill", "--signal", "USR1", container, check=False)
    time.sleep(1)
    stacks = "\n".join(f"--- {states[c]}\n{container_log(c)[-8000:]}" for c in stuck)
    logs = compose(project, folder, "logs", "--tail", "30", env=env)
    raise AssertionError(f"{project} not finished in {timeout}s: {sorted(states.values())}\n{stacks}\n{logs[-6000:]}")


def export(project: str, folder: Path, env: dict[str, str]) -> list[dict]:
    """`zdg export` in a container on the project's network, against its store."""
    out = compose(project, folder, "run", "--rm", "-T", "--no-deps", "--entrypoint", "zdg", "reid", "export",
                  "--graph", "/etc/zdg/graph.yaml", env=env)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def run(folder: Path, name: str, kill: str | None = None) -> tuple[list[dict], str]:
    """The graph under compose, with `kill`'s container killed mid-video; the export and the killed node's logs."""
    project, env = compose_project(folder, name)
    try:
        compose(project, folder, "up", "-d", env=env)
        logs = ""
        if kill is not None:
            rng = random.Random(f"{SEED}:{kill}")
            after = rng.randrange(30, 140)
            print(f"ZDG_FAULT_SEED={SEED}: kill -9 {kill} after {after} frames")
            source = container_pid(containers(project, folder, "source", env)[0])
            victim = rng.choice(containers(project, folder, kill, env))
            pid = container_pid(victim)
            deadline = time.monotonic() + 300
            while int(node_metrics(source, "source").get("out", 0)) < after:
                assert time.monotonic() < deadline, compose(project, folder, "logs", "--tail", "30", env=env)[-6000:]
                time.sleep(0.01)
            before = node_metrics(pid, kill)
            os.kill(pid, signal.SIGKILL)
            print(f"killed {kill} in state {before.get('state')} after {before.get('in', 0)} messages in, "
                  f"{before.get('out', 0)} out")
            assert before.get("state") != "done", f"{kill} had finished its stream when killed: {before}"
        wait_finished(project, folder, env)
        if kill is not None:
            assert int(sh("docker", "inspect", "-f", "{{.RestartCount}}", victim).strip()) >= 1
            logs = compose(project, folder, "logs", "--no-color", env=env)
        return export(project, folder, env), logs
    finally:
        compose(project, folder, "down", "-v", env=env)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> list[dict]:
    rows, _ = run(tmp_path_factory.mktemp("clean"), "zdgt-clean")
    assert len(rows) >= 5
    return rows


@pytest.mark.parametrize("node", NODES)
def test_a_container_killed_mid_video_leaves_the_store_of_a_clean_run(node, clean, tmp_path):
    rows, logs = run(tmp_path, f"zdgt-kill-{node}", kill=node)
    assert_same_store(rows, clean)
    assert "restarted after a crash: graph epoch 2, every node starts afresh" in logs
    assert "graph moved to epoch 2: starting afresh" in logs
