"""The main job on a real clip with an MQTT sink on its decisions, as the README shows it: every stored sequence's
decision reaches a real Mosquitto, every identity's last sighting is retained, Home Assistant discovers the camera."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, shared_path
from tests.integrations.conftest import subscribe

pytestmark = pytest.mark.integrations


def test_the_main_job_publishes_every_decision_and_a_retained_sighting_per_identity(broker, tmp_path):
    graph = yaml.safe_load((REPO / "graphs/video_reid.yaml").read_text())
    graph["nodes"].append({"name": "mqtt", "type": "mqtt_sink", "params": {"port": broker.port}})
    graph["edges"].append({"from": "reid", "to": "mqtt", "pattern": "pub", "topic": "reid"})
    path = tmp_path / "video_reid_mqtt.yaml"
    path.write_text(yaml.safe_dump(graph))
    env = {k: v for k, v in os.environ.items() if k != "ZDG_DSN"} | {"ZDG_STORE_DIR": str(tmp_path / "store")}
    env.setdefault("ZDG_MODEL_ROOT", str(shared_path("models")))
    clip = shared_path("data", "videos", "friends_poker.mp4")
    heard, stop = subscribe(broker.port, "zdg/#", "homeassistant/#")
    try:
        done = subprocess.run([sys.executable, "-m", "zdg", "run", str(path), "--no-progress", "--run-dir",
                               str(tmp_path / "run"), "--set", f"source.path={clip}", "--set", "source.end_s=14",
                               "--set", f"gallery.out_dir={tmp_path / 'gallery'}", "--set", "gallery.annotate_video=false"],
                              env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-4000:]
        exported = subprocess.run([sys.executable, "-m", "zdg", "export", "--graph", str(path)], env=env, cwd=REPO,
                                  capture_output=True, text=True, timeout=120)
        rows = [json.loads(line) for line in exported.stdout.splitlines()]
        assert len(rows) >= 5, exported.stderr
        decisions = [json.loads(p) for p in heard.on("zdg/video_reid/decision")]
        assert sorted(d["sequence_id"] for d in decisions if d["status"] != "merged") == sorted(r["sequence_key"] for r in rows)
        final = {d["sequence_id"]: d["cluster_id"] for d in decisions}  # a merge's decision comes after the first
        assert final == {r["sequence_key"]: r["cluster_id"] for r in rows}, "what was published is what was stored"
        for cluster in {r["cluster_id"] for r in rows} - {None}:
            assert json.loads(heard.on(f"zdg/video_reid/identity/{cluster}")[-1])["camera"] == "friends_poker"
        config = json.loads(heard.on("homeassistant/sensor/zdg_video_reid_camera_friends_poker/config")[-1])
        assert config["state_topic"] == "zdg/video_reid/camera/friends_poker"
        assert heard.on("zdg/video_reid/availability")[-1] == b"offline", "the graph ended"
    finally:
        stop()
