"""Files and defaults: secret keys 0600 in 0700 folders whatever the umask, a private per-user run root that is
refused when someone else made it or it is a link, and compose files with no default password that publish a
plaintext topic on this box only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from zdg.curve import generate_keys
from zdg.private import UnsafeFolder, default_run_root, private_dir

pytestmark = pytest.mark.security


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secret_keys_are_0600_in_0700_folders_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        folders = generate_keys(["central", "edge"], tmp_path / "keys", ["alice"])
    finally:
        os.umask(old)
    for folder in [tmp_path / "keys" / "pairs", *folders]:
        assert mode(folder) == 0o700, folder
        for secret in folder.glob("*.key_secret"):
            assert mode(secret) == 0o600, secret


@pytest.mark.skipif(os.geteuid() != 0, reason="handing folders to the containers' user needs root")
def test_zdg_keys_as_root_gives_each_box_folder_to_the_containers_user_and_runs_again(tmp_path):
    for _ in range(2):  # a second run finds the folders owned by that user and keeps them
        done = subprocess.run([sys.executable, "-m", "zdg", "keys", "tests/containers/two_boxes.yaml", "-o",
                               str(tmp_path / "keys")], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    box = tmp_path / "keys" / "central"
    assert box.stat().st_uid == 1000 and (box / "central.key_secret").stat().st_uid == 1000
    assert mode(box) == 0o700 and mode(box / "central.key_secret") == 0o600
    assert (tmp_path / "keys" / "pairs").stat().st_uid == os.getuid(), "every secret stays the user's"


def test_the_run_root_is_per_user_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert default_run_root() == Path(f"/tmp/zdg-{os.getuid()}")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_run_root() == tmp_path / "zdg"
    made = private_dir(tmp_path / "runs" / "graph")
    assert mode(made) == 0o700
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "planted").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeFolder, match="symbolic link"):
        private_dir(tmp_path / "planted")


@pytest.mark.skipif(os.geteuid() != 0, reason="making a folder another user owns needs root")
def test_a_run_root_another_user_made_first_is_refused(tmp_path, write_graph):
    taken = tmp_path / "zdg"
    taken.mkdir()
    os.chown(taken, 4242, 4242)
    graph = write_graph("""
        name: taken
        nodes:
          - {name: counter, type: counter, params: {count: 3}}
          - {name: collect, type: collect, params: {path: /dev/null}}
        edges:
          - {from: counter, to: collect}
        """)
    done = subprocess.run([sys.executable, "-m", "zdg", "run", str(graph), "--no-progress"], cwd=REPO,
                          env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "belongs to uid 4242" in done.stderr and "Traceback" not in done.stderr
    assert list(taken.iterdir()) == [], "nothing was written into it"


def test_a_local_run_keeps_its_sockets_and_metrics_private(tmp_path, write_graph):
    out = tmp_path / "out.jsonl"
    graph = write_graph(f"""
        name: private
        nodes:
          - {{name: counter, type: counter, params: {{count: 3}}}}
          - {{name: collect, type: collect, params: {{path: {out}}}}}
        edges:
          - {{from: counter, to: collect}}
        """)
    done = subprocess.run([sys.executable, "-m", "zdg", "run", str(graph), "--no-progress"], cwd=REPO,
                          env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    root = tmp_path / "zdg"
    for path in [root, *root.rglob("*"), out]:
        assert mode(path) & 0o077 == 0, f"{path} is {oct(mode(path))}"


def test_compose_has_no_default_password_and_publishes_plaintext_topics_on_this_box_only(tmp_path):
    target = tmp_path / "docker-compose.yml"
    done = subprocess.run([sys.executable, "-m", "zdg", "compose", "graphs/video_reid.yaml", "-o", str(target)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = target.read_text()
    assert ":-zdg}" not in text and "${ZDG_DB_PASSWORD:?" in text
    env = tmp_path / ".env"
    password = env.read_text().strip()
    assert mode(env) == 0o600 and password.startswith("ZDG_DB_PASSWORD=") and len(password) > 30
    subprocess.run([sys.executable, "-m", "zdg", "compose", "graphs/video_reid.yaml", "-o", str(target)], cwd=REPO,
                   capture_output=True, check=True, timeout=60)
    assert env.read_text().strip() == password, "a second run keeps the password"
    assert yaml.safe_load(text)["services"]["reid"]["ports"] == ["127.0.0.1:5606:5606"]
    opened = tmp_path / "open.yaml"
    graph = (REPO / "graphs" / "video_reid.yaml").read_text()
    opened.write_text(graph.replace("settings:\n", "settings:\n  publish_address: 0.0.0.0\n", 1))
    everywhere = subprocess.run([sys.executable, "-m", "zdg", "compose", str(opened)], cwd=REPO, capture_output=True,
                                text=True, timeout=60)
    assert everywhere.returncode == 0, everywhere.stderr
    assert yaml.safe_load(everywhere.stdout)["services"]["reid"]["ports"] == ["0.0.0.0:5606:5606"], "when the graph says so"
