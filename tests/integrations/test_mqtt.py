"""The MQTT sink against a real Mosquitto: decisions as JSON, retained sightings, Home Assistant discovery,
a broker restart mid-stream, a full queue, logins and TLS."""

from __future__ import annotations

import json
import subprocess

import cv2
import numpy as np
import pytest

from nodes.messages import CROP_SIZE, ReidDecision
from nodes.mqtt_sink import MqttSinkNode
from tests.conftest import free_port
from tests.integrations.conftest import start_broker, subscribe
from zdg.node import FatalNodeError
from zdg.testing import NodeHarness

pytestmark = pytest.mark.integrations


def decision(n: int, cluster_id: int | None, status: str = "new", name: str | None = None, video: str = "door cam",
             merged_from: int | None = None) -> ReidDecision:
    crop = np.zeros((1, CROP_SIZE, CROP_SIZE, 3), np.uint8)
    crop[0, :, :, 2] = 200  # red: crops are BGR, as OpenCV decodes frames
    return ReidDecision(sequence_id=f"{video}:{n}", sequence_db_id=n, video=video, video_path=f"/videos/{video}.mp4",
                        first_frame=10 * n, last_frame=10 * n + 9, cluster_id=cluster_id, status=status, distance=0.3,
                        silhouette=None, name=name, frames=np.arange(10 * n, 10 * n + 10, dtype=np.int32),
                        boxes_xyxy=np.zeros((10, 4), np.float32), crops=crop, crop_frames=np.array([10 * n], np.int32),
                        merged_from=merged_from)


def test_decisions_sightings_and_home_assistant_discovery_reach_the_broker(broker):
    heard, stop = subscribe(broker.port, "zdg/#", "homeassistant/#")
    try:
        with NodeHarness(MqttSinkNode, port=broker.port) as node:
            node.feed(decision(1, 7), decision(2, None, "junk"), decision(3, 8, "recognised", name="Ann"),
                      decision(4, 9, "provisional"))
            node.finish()
            heard.wait(lambda: len(heard.on("zdg/test/decision")) == 3, what="three decisions (provisional left out)")
            assert node.context.counters["mqtt_dropped"] == 0
        events = [json.loads(p) for p in heard.on("zdg/test/decision")]
        assert [(e["sequence_id"], e["cluster_id"], e["label"], e["camera"]) for e in events] == [
            ("door cam:1", 7, "face 7", "door cam"), ("door cam:2", None, "junk", "door cam"),
            ("door cam:3", 8, "Ann", "door cam")]
        assert json.loads(heard.on("zdg/test/identity/8")[-1])["camera"] == "door cam"
        assert json.loads(heard.on("zdg/test/camera/door_cam")[-1])["label"] == "Ann", "a topic level has no space"
        snapshot = cv2.imdecode(np.frombuffer(heard.on("zdg/test/identity/7/snapshot")[-1], np.uint8), cv2.IMREAD_COLOR)
        assert snapshot.shape == (CROP_SIZE, CROP_SIZE, 3) and snapshot[..., 2].mean() > 150 > snapshot[..., 0].mean(), \
            "the crop as JPEG, still red"
        camera = json.loads(heard.on("homeassistant/sensor/zdg_test_camera_door_cam/config")[-1])
        assert camera["state_topic"] == "zdg/test/camera/door_cam" and camera["availability_topic"] == "zdg/test/availability"
        ann = json.loads(heard.on("homeassistant/sensor/zdg_test_id8/config")[-1])
        assert ann["name"] == "Ann last seen" and ann["state_topic"] == "zdg/test/identity/8"
        assert not heard.under("homeassistant/sensor/zdg_test_id7"), "an unnamed face gets no entity of its own"
        assert heard.on("zdg/test/availability")[-1] == b"offline", "the node said it went away"
    finally:
        stop()
    late, stop = subscribe(broker.port, "zdg/test/identity/+", "homeassistant/#")
    try:  # what a Home Assistant started later gets: the retained state
        late.wait(lambda: len(late.on("zdg/test/identity/8")) == 1, what="retained sighting")
        assert all(retained for _, _, retained in late.messages)
        assert len(late.under("homeassistant/sensor/")) == 2
    finally:
        stop()


def test_a_merge_moves_the_retained_sighting_and_removes_the_merged_away_entity(broker):
    heard, stop = subscribe(broker.port, "zdg/#", "homeassistant/#")
    try:
        with NodeHarness(MqttSinkNode, port=broker.port) as node:
            node.feed(decision(1, 5, name="Bo"), decision(1, 6, "merged", name="Bo", merged_from=5))
            node.finish()
        heard.wait(lambda: heard.on("homeassistant/sensor/zdg_test_id5/config")[-1:] == [b""], what="entity removed")
        assert heard.on("zdg/test/identity/5")[-1] == b"" and json.loads(heard.on("zdg/test/identity/6")[-1])["name"] == "Bo"
    finally:
        stop()


def test_decisions_made_while_the_broker_restarts_are_delivered_and_a_full_queue_is_counted(broker):
    heard, stop = subscribe(broker.port, "zdg/test/decision")
    with NodeHarness(MqttSinkNode, port=broker.port, queue_max=40, discovery=False, snapshots=False) as node:
        node.feed(decision(0, 1))
        heard.wait(lambda: len(heard.on("zdg/test/decision")) == 1)
        stop()
        broker.stop()
        node.feed(*[decision(n, 1) for n in range(1, 11)])  # each: a decision, an identity and a camera sighting
        broker.start()
        heard, stop = subscribe(broker.port, "zdg/test/decision")
        try:
            node.finish()
            heard.wait(lambda: len(heard.on("zdg/test/decision")) == 10, what="the ten queued while it was down")
            assert node.context.counters["mqtt_dropped"] == 0 and node.context.counters["mqtt_reconnects"] == 1
            stop()
            broker.stop()
            heard.wait(lambda: not node.node.link.client.is_connected(), what="the node noticing the broker gone")
            node.feed(*[decision(n, 1) for n in range(11, 31)])  # 60 messages for a queue of 40
            assert node.context.counters["mqtt_dropped"] == 60 - 40
        finally:
            stop()
    ids = [json.loads(p)["sequence_id"] for p in heard.on("zdg/test/decision")]
    assert ids == [f"door cam:{n}" for n in range(1, 11)], "in order, once each"


def test_a_login_is_required_and_a_wrong_password_stops_the_node_with_the_reason(tmp_path):
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "cam", "s3cret"], check=True, capture_output=True)
    broker = start_broker(tmp_path / "authed", f"allow_anonymous false\npassword_file {passwords}\n")
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    try:
        heard, stop = subscribe(broker.port, "zdg/#", username="cam", password="s3cret")
        with NodeHarness(MqttSinkNode, port=broker.port, username="cam", password_file=str(secret)) as node:
            node.feed(decision(1, 2))
            node.finish()
        heard.wait(lambda: len(heard.on("zdg/test/decision")) == 1, what="the decision, logged in")
        stop()
        with NodeHarness(MqttSinkNode, port=broker.port, username="cam", env={"ZDG_MQTT_PASSWORD": "wrong"}) as node:
            heard.wait(lambda: node.node.link.refused is not None, timeout=10, what="the broker's refusal")
            with pytest.raises(FatalNodeError, match="refused the login"):
                node.feed(decision(1, 2))
        secret.chmod(0o644)
        with pytest.raises(FatalNodeError, match="readable by others"):
            NodeHarness(MqttSinkNode, port=broker.port, username="cam", password_file=str(secret))
    finally:
        broker.stop()


def test_tls_to_a_broker_with_its_own_ca(tmp_path):
    ca_key, ca, key, csr, cert = (tmp_path / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=zdg test CA",
                    "-keyout", ca_key, "-out", ca], check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr],
                   check=True, capture_output=True)
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
                    "-extfile", ext, "-out", cert], check=True, capture_output=True)
    tls_port = free_port()
    broker = start_broker(tmp_path / "tls", f"allow_anonymous true\nlistener {tls_port} 127.0.0.1\n"
                          f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n")
    try:
        heard, stop = subscribe(broker.port, "zdg/#")
        with NodeHarness(MqttSinkNode, port=tls_port, tls=True, ca_file=str(ca)) as node:
            node.feed(decision(1, 3))
            node.finish()
            assert node.context.counters["mqtt_unacknowledged_at_end"] == 0
        heard.wait(lambda: len(heard.on("zdg/test/decision")) == 1, what="the decision, over TLS")
        stop()
    finally:
        broker.stop()
