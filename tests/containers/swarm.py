"""A real two-node Docker Swarm on one machine: two dockerd from Debian's docker.io package, each in a network
namespace of its own (joined by a veth pair, addresses 192.168.77.1 and .2), private sockets, data and exec roots.

Nothing outside is touched: the Podman setup, the machine's interfaces and its Docker (if any) stay as they are.
Traffic goes only to the namespaces' own addresses and loopback; images are loaded, never pulled. `stop()`
undoes everything by pid and by the namespaces' names. `docker/setup-swarm-engine.sh` unpacks the engine and
prints ZDG_SWARM_PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.conftest import REPO, SHARED
from tests.containers.conftest import sh, zdg
from zdg.shared_store import store_service

SUBNET = "192.168.77"
EDGE_NODES = ("source", "detector", "embedder")  # the face graph's camera side; the rest is on the central box


class SwarmUnavailable(RuntimeError):
    """This machine or kernel cannot run the two-node Swarm (the reason says what is missing)."""


def missing_support(engine_path: str | None) -> str | None:
    """Why a two-node Swarm cannot run here, or None."""
    if not engine_path:
        return "ZDG_SWARM_PATH is not set (docker/setup-swarm-engine.sh unpacks Debian's docker.io and prints it)"
    for tool in ("dockerd", "containerd", "docker"):
        if not shutil.which(tool, path=engine_path):
            return f"no {tool} in ZDG_SWARM_PATH={engine_path}"
    for tool in ("ip", "nsenter", "unshare", "runc"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if os.geteuid() != 0:
        return "network namespaces and dockerd need root"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlay filesystem"
    probe = f"zdgvx{os.getpid() % 10000}"
    done = subprocess.run(["ip", "link", "add", probe, "type", "vxlan", "id", "77", "dstport", "4789", "dev", "lo"],
                          capture_output=True, text=True)
    if done.returncode:
        return f"the kernel cannot make VXLAN links, which Swarm's overlay network needs: {done.stderr.strip()}"
    subprocess.run(["ip", "link", "del", probe], capture_output=True)
    return None


def out_folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)  # nodes run as an unprivileged user
    return path


def placed_face_graph(folder: Path) -> Path:
    """graphs/video_reid.yaml with its camera side on the edge box and the rest on the central box."""
    spec = yaml.safe_load((REPO / "graphs" / "video_reid.yaml").read_text())
    for node in spec["nodes"]:
        node["host"] = "edge" if node["name"] in EDGE_NODES else "central"
    path = folder / "video_reid.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def deploy_face_graph(swarm: TwoNodeSwarm, folder: Path, stack: str, end_s: float = 4) -> tuple[float, subprocess.Popen]:
    """The face graph on `end_s` seconds of the shared clip, placed on both nodes, and a subscriber of its outside
    topic on the central node (a host-mode port there). Returns when the deploy was issued, and the subscriber."""
    graph = placed_face_graph(folder)
    zdg("keys", str(graph), "-o", str(folder / "keys"))
    zdg("stack", str(graph), "--set", f"source.end_s={end_s}", "--set", "gallery.annotate_video=false",
        "--store-image", store_service().build_image, "-o", str(folder / "stack.yml"))
    env = {"ZDG_OUT": str(out_folder(folder / "out")), "ZDG_MODEL_ROOT": str(SHARED / "models"),
           "ZDG_DATA_ROOT": str(SHARED / "data")}
    subscriber = [sys.executable, "-m", "zdg", "sub", "tcp://127.0.0.1:5606", "reid", "--until-eos", "--timeout", "400"]
    sub = subprocess.Popen(swarm.in_namespace(swarm.manager, *subscriber), cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    return swarm.deploy(folder, stack, env), sub


@dataclass
class Engine:
    """One dockerd in its own network namespace."""

    name: str
    address: str
    root: Path
    netns: str
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.root}/docker.sock"


class TwoNodeSwarm:
    """A Swarm manager (`central`, 192.168.77.1) and a worker (`edge`, .2), each node labelled zdg.box=NAME."""

    def __init__(self, engine_path: str) -> None:
        self.path = f"{engine_path}:{os.environ['PATH']}"
        self.dir = Path(tempfile.mkdtemp(prefix="zdgsw", dir="/tmp"))  # short: unix socket paths are limited
        tag = f"{os.getpid() % 100000}"
        self.veth = (f"zsw{tag}a", f"zsw{tag}b")
        self.engines = {name: Engine(name, f"{SUBNET}.{i + 1}", self.dir / name, f"zdgsw-{tag}-{name}")
                        for i, name in enumerate(("central", "edge"))}
        self.db_password = secrets.token_urlsafe(16)  # a stack's store has no default password

    @property
    def manager(self) -> Engine:
        return self.engines["central"]

    def env(self, engine: Engine) -> dict[str, str]:
        return {**os.environ, "PATH": self.path, "DOCKER_HOST": engine.host}

    def docker(self, engine: Engine, *args: str, timeout: float = 600, check: bool = True, stdin=None) -> str:
        return sh("docker", *args, env=self.env(engine), timeout=timeout, check=check, stdin=stdin)

    def in_namespace(self, engine: Engine, *args: str) -> list[str]:
        """A command line that runs in the engine's network namespace (loopback there reaches its published ports)."""
        return ["nsenter", f"--net=/run/netns/{engine.netns}", *args]

    def start(self) -> None:
        for engine in self.engines.values():
            sh("ip", "netns", "add", engine.netns)
            sh("ip", "-n", engine.netns, "link", "set", "lo", "up")
        central, edge = self.engines.values()
        sh("ip", "link", "add", self.veth[0], "netns", central.netns, "type", "veth",
            "peer", "name", self.veth[1], "netns", edge.netns)
        for engine, veth in zip(self.engines.values(), self.veth, strict=True):
            sh("ip", "-n", engine.netns, "addr", "add", f"{engine.address}/24", "dev", veth)
            sh("ip", "-n", engine.netns, "link", "set", veth, "up")
        for engine in self.engines.values():
            self._start_engine(engine)
        self.docker(central, "swarm", "init", "--advertise-addr", central.address, "--listen-addr", central.address)
        token = self.docker(central, "swarm", "join-token", "-q", "worker").strip()
        self.docker(edge, "swarm", "join", "--token", token, "--advertise-addr", edge.address, f"{central.address}:2377")
        for engine in self.engines.values():
            node = self.docker(engine, "info", "-f", "{{.Swarm.NodeID}}").strip()
            self.docker(central, "node", "update", "--label-add", f"zdg.box={engine.name}", node)

    def _start_engine(self, engine: Engine) -> None:
        engine.root.mkdir(parents=True)
        log = (engine.root / "dockerd.log").open("w")
        dockerd = ["dockerd", "-H", engine.host, "--data-root", str(engine.root / "data"),
                   "--exec-root", str(engine.root / "exec"), "--pidfile", str(engine.root / "dockerd.pid"),
                   "--iptables=false", "--bridge=none"]
        # its own UTS namespace, so `docker node ls` tells the two apart by host name
        engine.proc = subprocess.Popen(
            self.in_namespace(engine, "unshare", "--uts", "sh", "-c", f'hostname {engine.name} && exec "$@"', "sh",
                              *dockerd),
            env=self.env(engine), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "version"], env=self.env(engine), capture_output=True).returncode:
            if engine.proc.poll() is not None or time.monotonic() > deadline:
                raise SwarmUnavailable(f"dockerd of {engine.name} did not start: "
                                       f"{(engine.root / 'dockerd.log').read_text()[-2000:]}")
            time.sleep(0.5)

    def load_images(self, images: list[str], source_env: dict[str, str]) -> None:
        """Move images from the engine that built them (`source_env`'s DOCKER_HOST) to both nodes, as `docker save |
        docker load` does between boxes (streamed: no archive on disk)."""
        for engine in self.engines.values():
            save = subprocess.Popen(["docker", "save", *images], env=source_env, stdout=subprocess.PIPE)
            try:
                self.docker(engine, "load", timeout=900, stdin=save.stdout)
            finally:
                save.stdout.close()
                assert save.wait(timeout=60) == 0, f"docker save {' '.join(images)} failed"

    def stop(self) -> None:
        """Leave the machine as it was: the swarm left, each dockerd and what it started stopped, namespaces gone."""
        for engine in self.engines.values():
            if engine.proc is not None and engine.proc.poll() is None:
                self.docker(engine, "swarm", "leave", "--force", timeout=60, check=False)
                containers = self.docker(engine, "ps", "-aq", check=False).split()
                if containers:
                    self.docker(engine, "rm", "-f", *containers, timeout=120, check=False)
        for engine in self.engines.values():
            if engine.proc is not None and engine.proc.poll() is None:
                os.killpg(engine.proc.pid, signal.SIGTERM)
                try:
                    engine.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(engine.proc.pid, signal.SIGKILL)
                    engine.proc.wait()
        for pid in self._leftover_pids():  # container shims and their processes, found by our folder in their args
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for mount in reversed(self._mounts()):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        for engine in self.engines.values():
            subprocess.run(["ip", "netns", "del", engine.netns], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _leftover_pids(self) -> list[int]:
        pids = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    if str(self.dir).encode() in (proc / "cmdline").read_bytes():
                        pids.append(int(proc.name))
        return pids

    def _mounts(self) -> list[str]:
        return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                if line.split()[4].startswith(str(self.dir))]

    def deploy(self, folder: Path, stack: str, env: dict[str, str]) -> float:
        """`docker stack deploy` from the folder (its files are relative to it); returns when it was issued."""
        started = time.monotonic()
        password = {"ZDG_DB_PASSWORD": self.db_password}
        subprocess.run(["docker", "stack", "deploy", "--resolve-image", "never", "-c", "stack.yml", stack], cwd=folder,
                       env={**self.env(self.manager), **password, **env}, check=True, capture_output=True, timeout=120)
        return started

    def tasks(self, stack: str) -> list[dict[str, str]]:
        out = self.docker(self.manager, "stack", "ps", stack, "--no-trunc", "--format", "{{json .}}")
        return [json.loads(line) for line in out.splitlines()]

    def latest_tasks(self, stack: str) -> dict[str, dict[str, str]]:
        """Each task slot's current task: `stack ps` lists it first, a slot's earlier tasks after it (as `\\_ NAME`,
        or under the same name in its JSON)."""
        latest: dict[str, dict[str, str]] = {}
        for task in self.tasks(stack):
            if not task["Name"].startswith((" ", "\\_")):
                latest.setdefault(task["Name"], task)
        return latest

    def wait_state(self, stack: str, service: str, state: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(n.startswith(f"{stack}_{service}.") and t["CurrentState"].startswith(state)
                      for n, t in self.latest_tasks(stack).items()):
            assert time.monotonic() < deadline, f"{stack}_{service} not {state} in {timeout} s: {self.tasks(stack)}"
            time.sleep(0.5)

    def wait_complete(self, stack: str, timeout: float) -> list[dict[str, str]]:
        """Every node's latest task complete (exit 0; the store keeps running); the tasks, for placement checks."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            latest = {n: t for n, t in self.latest_tasks(stack).items() if not n.startswith(f"{stack}_postgres.")}
            if latest and all(t["CurrentState"].startswith("Complete") for t in latest.values()):
                return list(latest.values())
            failed = [t for t in latest.values() if t["CurrentState"].startswith(("Failed", "Rejected"))]
            assert not failed, (failed, self.logs(stack))
            time.sleep(1)
        raise AssertionError(f"stack {stack} did not complete in {timeout} s: {self.tasks(stack)}\n{self.logs(stack)}")

    def service_logs(self, service: str, tail: str = "all") -> str:
        """What the service's tasks printed (nodes log to stderr)."""
        return subprocess.run(["docker", "service", "logs", "--tail", tail, service], env=self.env(self.manager),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60).stdout

    def logs(self, stack: str) -> str:
        services = self.docker(self.manager, "stack", "services", stack, "--format", "{{.Name}}", check=False).split()
        return "\n".join(self.service_logs(s, "30") for s in services)

    def remove(self, stack: str) -> None:
        """`docker stack rm`, waiting until its containers are gone on both nodes."""
        self.docker(self.manager, "stack", "rm", stack, check=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
                self.docker(e, "ps", "-aq", "--filter", f"label=com.docker.stack.namespace={stack}", check=False).strip()
                for e in self.engines.values()):
            time.sleep(1)
        self.docker(self.manager, "network", "rm", f"{stack}_zdg", check=False)
