"""What the container suites share: the docker CLI, `zdg` in a subprocess, and the images built once a session."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO


def sh(*args: str, timeout: float = 600, check: bool = True, env: dict | None = None, cwd: Path | None = None,
       stdin=None) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
                          cwd=cwd or REPO, stdin=stdin)
    if check and done.returncode:
        raise AssertionError(f"{' '.join(args)} -> {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def zdg(*args: str, **kw) -> str:
    return sh(sys.executable, "-m", "zdg", *args, **kw)


def compose(project: str, folder: Path, *args: str, env: dict | None = None, timeout: float = 300) -> str:
    return sh("docker-compose", "-p", project, *args, cwd=folder, env=env, timeout=timeout)


def described(container: str) -> str:
    """`/name status exit-code restarts=N`: a container's state, as a failed run reports it."""
    return sh("docker", "inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.ExitCode}} restarts={{.RestartCount}}",
              container).strip()


def is_podman() -> bool:
    return "podman" in sh("docker", "version", check=False).lower()


@pytest.fixture(scope="session", autouse=True)
def images() -> Iterator[None]:
    """Build the images once (`--build-arg BASE_IMAGE` from $ZDG_BASE_IMAGE, pip's CA from $ZDG_BUILD_CA)."""
    if subprocess.run(["docker", "version"], capture_output=True).returncode:
        pytest.exit("no container engine: set DOCKER_HOST (docker/setup-podman.sh makes one with Podman)", 2)
    args = ["build", "--store"]
    if os.environ.get("ZDG_BASE_IMAGE"):
        args += ["--base-image", os.environ["ZDG_BASE_IMAGE"]]
    if os.environ.get("ZDG_BUILD_CA"):
        args += ["--ca-file", os.environ["ZDG_BUILD_CA"]]
    zdg(*args, timeout=1800)
    stop = threading.Event()
    if is_podman():  # Podman runs healthchecks from systemd timers; without systemd, run them here
        def pump() -> None:
            while not stop.wait(2):
                for cid in sh("podman", "ps", "-q", check=False).split():
                    subprocess.run(["podman", "healthcheck", "run", cid], capture_output=True)
        threading.Thread(target=pump, daemon=True).start()
    yield
    stop.set()


