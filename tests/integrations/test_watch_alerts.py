"""Watch-list alerts: once per visit, only where and when a rule is armed, with the crop, on a real Mosquitto and
to a real HTTP webhook on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from nodes.watch_alerts import WatchAlertsNode
from tests.conftest import REPO, free_port
from tests.integrations.conftest import subscribe
from tests.integrations.test_mqtt import decision
from zdg.testing import NodeHarness

pytestmark = pytest.mark.integrations


@pytest.fixture
def webhook():
    """An HTTP server on 127.0.0.1 that keeps every JSON body POSTed to it."""
    bodies: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/zdg", bodies
    server.shutdown()


def test_a_watched_name_raises_one_alert_per_visit_on_mqtt_and_the_webhook(broker, webhook):
    url, posted = webhook
    heard, stop = subscribe(broker.port, "zdg/test/alert")
    rule = {"name": "Ann at the door", "identities": ["Ann"], "cameras": ["door"]}
    try:
        with NodeHarness(WatchAlertsNode, port=broker.port, rules=[rule], webhook=url, visit_gap_s=0.5) as node:
            node.feed(decision(1, 3, "provisional", name="Ann", video="door"),  # still on screen: the alert comes now
                      decision(1, 3, "recognised", name="Ann", video="door"),   # the same visit
                      decision(2, 3, "recognised", name="Ann", video="hall"),   # not watched there
                      decision(3, 4, "recognised", name="Bob", video="door"),   # not watched
                      decision(4, None, "junk", video="door"))
            time.sleep(0.6)  # longer than visit_gap_s: Ann's next sighting at the door is a new visit
            node.feed(decision(5, 3, "recognised", name="Ann", video="door"))
            node.finish()
            assert node.context.counters["alerts"] == 2 and node.context.counters["webhook_sent"] == 2
        heard.wait(lambda: len(heard.on("zdg/test/alert")) == 2, what="two alerts")
    finally:
        stop()
    for alerts in ([json.loads(p) for p in heard.on("zdg/test/alert")], posted):
        assert [(a["rule"], a["name"], a["camera"], a["sequence_id"]) for a in alerts] == [
            ("Ann at the door", "Ann", "door", "door:1"), ("Ann at the door", "Ann", "door", "door:5")]
        crop = cv2.imdecode(np.frombuffer(base64.b64decode(alerts[0]["crop_jpeg"]), np.uint8), cv2.IMREAD_COLOR)
        assert crop[..., 2].mean() > 150, "the face's crop comes with it"


def test_unknown_faces_alert_only_in_the_rules_hours(broker):
    hour = datetime.now().hour
    armed, disarmed = f"{hour}-{(hour + 1) % 24}", f"{(hour + 1) % 24}-{(hour + 2) % 24}"
    for hours, expected in ((armed, [7]), (disarmed, [])):
        heard, stop = subscribe(broker.port, "zdg/test/alert")
        try:
            rule = {"name": "someone unknown", "unknown": True, "hours": hours}
            with NodeHarness(WatchAlertsNode, port=broker.port, rules=[rule]) as node:
                node.feed(decision(1, 7, "new"), decision(2, 8, "recognised", name="Ann"))
                node.finish()
                assert node.context.counters["alerts"] == len(expected), hours
            if expected:
                heard.wait(lambda h=heard: len(h.on("zdg/test/alert")) == 1, what="the unknown face's alert")
            assert [json.loads(p)["cluster_id"] for p in heard.on("zdg/test/alert")] == expected, hours
        finally:
            stop()


def test_a_webhook_that_fails_is_counted_and_the_alerts_go_on(broker):
    rule = {"name": "anyone", "unknown": True}
    with NodeHarness(WatchAlertsNode, port=broker.port, rules=[rule], webhook=f"http://127.0.0.1:{free_port()}/",
                     webhook_timeout_s=2) as node:
        node.feed(decision(1, 7), decision(2, 8))
        node.finish()
        assert node.context.counters["alerts"] == 2 and node.context.counters["webhook_failed"] == 2


def test_a_rule_that_watches_nobody_is_refused_with_its_place_in_the_graph_file(tmp_path):
    graph = tmp_path / "alerts.yaml"
    graph.write_text("name: g\nnodes:\n  - name: reid\n    type: relay\n  - name: alerts\n    type: watch_alerts\n"
                     "    params:\n      rules:\n        - name: nobody\n          cameras: [door]\n"
                     "edges:\n  - {from: reid, to: alerts}\n")
    done = subprocess.run([sys.executable, "-m", "zdg", "validate", str(graph)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2
    assert f"{graph}:9" in done.stderr + done.stdout and "identities or unknown" in done.stderr + done.stdout
