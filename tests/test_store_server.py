"""The embedded store starts and stops with the commands that use it: after each store command on a fresh store
(and after `zdg ui` gets SIGTERM) no PostgreSQL of that folder is left running, unless `zdg store start` keeps
one running on purpose, which commands then reuse and `zdg store stop` ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO, free_port, shared_path, wait_until_serving

pytestmark = pytest.mark.slow


def postgres_of(store: Path) -> list[int]:
    """Pids of PostgreSQL processes serving the store folder's data."""
    pgdata = str(store / "pgdata")
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and pgdata in " ".join(proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


def zdg(store: Path, *args: str, ok: bool = True, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZDG_STORE_DIR": str(store)}
    env.pop("ZDG_DSN", None)
    done = subprocess.run([sys.executable, "-m", "zdg", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert (done.returncode == 0) == ok, done.stderr[-2000:]
    return done


@pytest.fixture
def store(tmp_path):
    folder = tmp_path / "store"
    yield folder
    for pid in postgres_of(folder):  # a failed test leaves nothing behind either
        os.kill(pid, signal.SIGKILL)


def test_every_store_command_leaves_no_server_behind(store, tmp_path):
    elsewhere = tmp_path / "elsewhere"  # not the checkout: the commands find its graphs/video_reid.yaml
    elsewhere.mkdir()
    photos = str(shared_path("data", "faces", "friends_ref", "Ross"))
    commands = [(["summary"], False),  # a fresh store: it says it holds nothing yet
                (["enroll", "--name", "Ross", photos], True), (["summary"], True), (["identities", "list"], True),
                (["export", "--format", "csv", "-o", str(tmp_path / "store.csv")], True), (["maintain"], True),
                (["report", "--out", str(tmp_path / "report")], True),
                (["eval", "video", "friends_poker.mp4", str(REPO / "tests" / "data" / "friends_poker_truth.json")],
                 False),  # no sequence of that clip stored: said, not scored
                (["identities", "delete", "1", "--report", str(tmp_path / "report")], True)]
    for command, ok in commands:
        zdg(store, *command, ok=ok, cwd=elsewhere)
        assert postgres_of(store) == [], f"zdg {' '.join(command)} left its server running"
    assert list(elsewhere.iterdir()) == []


def test_zdg_ui_stopped_by_sigterm_stops_its_server(store):
    port = free_port()
    env = {**os.environ, "ZDG_STORE_DIR": str(store)}
    env.pop("ZDG_DSN", None)
    ui = subprocess.Popen([sys.executable, "-m", "zdg", "ui", "--port", str(port)], cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_until_serving(f"http://127.0.0.1:{port}", ui)
    assert postgres_of(store), "the page is served from a running store"
    ui.send_signal(signal.SIGTERM)
    ui.wait(timeout=30)
    assert postgres_of(store) == []


def test_a_server_started_on_purpose_is_reused_and_left_running_until_stopped(store):
    started = zdg(store, "store", "start").stdout
    assert "running (pid" in started and "kept running" in started
    pids = postgres_of(store)
    assert pids
    zdg(store, "enroll", "--name", "Ross", str(shared_path("data", "faces", "friends_ref", "Ross")))
    zdg(store, "summary")
    assert postgres_of(store) == pids, "commands reuse it: the same postmaster, still running"
    status = zdg(store, "store", "status").stdout
    assert "running (pid" in status and "size:" in status
    assert "stopped" in zdg(store, "store", "stop").stdout
    assert postgres_of(store) == []
    assert "stopped" in zdg(store, "store", "status").stdout


def test_a_dead_user_does_not_keep_the_server_running_for_ever(store):
    zdg(store, "store", "start")
    zdg(store, "store", "stop")
    users = store / "pgdata" / ".handle_pids.json"
    users.write_text("[999999]")  # a process that held the server and was killed (no exit handler ran)
    zdg(store, "summary", ok=False)  # starts the server; the store is empty
    assert postgres_of(store) == []


def test_defaults_come_from_the_checkout_unless_this_folder_has_its_own(tmp_path):
    from nodes.environment import default_graph, default_store_dir, home

    checkout, here, installed = tmp_path / "checkout", tmp_path / "here", tmp_path / "site-packages"
    (checkout / "graphs").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    (checkout / "graphs" / "video_reid.yaml").write_text("")
    here.mkdir()
    installed.mkdir()
    assert home(here, checkout) == checkout and home(here, installed) == here  # an installed package: this folder
    assert default_store_dir(here, checkout) == checkout / ".zdg" / "store"
    assert default_graph("video_reid.yaml", here, checkout) == checkout / "graphs" / "video_reid.yaml"
    (here / ".zdg" / "store").mkdir(parents=True)  # a store made here before: used where it is, never left behind
    (here / "graphs").mkdir()
    (here / "graphs" / "video_reid.yaml").write_text("")
    assert default_store_dir(here, checkout) == here / ".zdg" / "store"
    assert default_graph("video_reid.yaml", here, checkout) == here / "graphs" / "video_reid.yaml"
