"""MQTT sink: re-id decisions as JSON on an MQTT broker, each identity's and camera's last sighting retained,
and Home Assistant MQTT discovery so a sensor per camera and per named identity appears by itself.

Topics (`<prefix>` is `topic_prefix`/<graph name>):
  <prefix>/availability            online / offline (the broker says offline if the node dies)
  <prefix>/decision                every decision: sequence, cluster, label, status, camera, time
  <prefix>/identity/<cluster id>   retained: where and when this face was last seen
  <prefix>/identity/<cluster id>/snapshot   retained: its best crop as JPEG (`snapshots`)
  <prefix>/camera/<camera>         retained: the last face seen at this camera (camera = the source's video id)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pydantic import Field

from nodes.messages import ReidDecision
from nodes.mqtt_link import DecisionsToMqtt, MqttLink, MqttSettings, topic_part


class MqttSinkParams(MqttSettings):
    discovery: bool = Field(True, description="publish Home Assistant MQTT discovery configs (retained)")
    discovery_prefix: str = Field("homeassistant", description="Home Assistant's discovery topic prefix")
    snapshots: bool = Field(True, description="publish each identity's best crop as a retained JPEG")
    provisional: bool = Field(False, description="also publish provisional decisions (sequences still on screen)")
    flush_s: float = Field(10, ge=0, description="at the end of the stream, seconds to wait for the broker to "
                           "acknowledge what is queued")


class MqttSinkNode(DecisionsToMqtt):
    """Re-id decisions in; JSON on the broker. Junk is not published; a merge moves the retained sighting."""

    TYPE = "mqtt_sink"
    Params = MqttSinkParams

    def setup(self) -> None:
        super().setup()
        self.link = MqttLink(self.params, self.context, availability=f"{self.prefix}/availability")
        self.announced: set[str] = set()

    def process(self, decision: ReidDecision) -> None:
        self.link.check()
        if decision.status == "provisional" and not self.params.provisional:
            return
        camera = topic_part(decision.video)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        event = {"sequence_id": decision.sequence_id, "cluster_id": decision.cluster_id, "label": decision.label,
                 "name": decision.name, "status": decision.status, "distance": decision.distance,
                 "camera": decision.video, "first_frame": decision.first_frame, "last_frame": decision.last_frame,
                 "merged_from": decision.merged_from, "seen_at": now}
        self.link.publish(f"{self.prefix}/decision", json.dumps(event))
        if decision.cluster_id is None or decision.status == "provisional":
            return
        if decision.status == "merged" and decision.merged_from is not None:
            self._forget(decision.merged_from)
        sighting = json.dumps({k: event[k] for k in ("cluster_id", "label", "name", "camera", "sequence_id", "seen_at")})
        identity = f"{self.prefix}/identity/{decision.cluster_id}"
        self.link.publish(identity, sighting, retain=True)
        self.link.publish(f"{self.prefix}/camera/{camera}", sighting, retain=True)
        if self.params.snapshots and len(decision.crops):
            self.link.publish(f"{identity}/snapshot", self.crop_jpeg(decision.crops[0]), retain=True)  # best first
        if self.params.discovery:
            self._announce_camera(camera, decision.video)
            if decision.name:
                self._announce_identity(decision.cluster_id, decision.name)

    def idle(self) -> None:
        self.link.send_waiting()  # the broker came back while no decision arrived

    def _forget(self, cluster_id: int) -> None:
        """A merged-away cluster: its retained sighting, snapshot and discovery entity are cleared."""
        identity = f"{self.prefix}/identity/{cluster_id}"
        for topic in (identity, f"{identity}/snapshot", self._discovery_topic(f"id{cluster_id}")):
            self.link.publish(topic, b"", retain=True)
        self.announced.discard(f"id{cluster_id}")

    def _discovery_topic(self, key: str) -> str:
        return f"{self.params.discovery_prefix}/sensor/{self._object_id(key)}/config"

    def _object_id(self, key: str) -> str:
        return f"zdg_{topic_part(self.context.graph)}_{key}"

    def _announce(self, key: str, name: str, state_topic: str, value_template: str) -> None:
        if key in self.announced:
            return
        self.announced.add(key)
        graph = topic_part(self.context.graph)
        config = {"name": name, "unique_id": self._object_id(key), "object_id": self._object_id(key),
                  "state_topic": state_topic, "value_template": value_template,
                  "json_attributes_topic": state_topic, "availability_topic": f"{self.prefix}/availability",
                  "icon": "mdi:face-recognition",
                  "device": {"identifiers": [f"zdg_{graph}"], "name": f"zdg {self.context.graph}", "manufacturer": "zdg"}}
        self.link.publish(self._discovery_topic(key), json.dumps(config), retain=True)

    def _announce_camera(self, camera: str, video: str) -> None:
        self._announce(f"camera_{camera}", f"{video} last face", f"{self.prefix}/camera/{camera}",
                       "{{ value_json.label }}")

    def _announce_identity(self, cluster_id: int, name: str) -> None:
        self._announce(f"id{cluster_id}", f"{name} last seen", f"{self.prefix}/identity/{cluster_id}",
                       "{{ value_json.camera }}")

    def finish(self) -> None:
        """Wait (up to `flush_s`) for the broker to acknowledge what is still queued, so a file's last decisions
        are not lost when the graph ends."""
        self.context.count("mqtt_unacknowledged_at_end", self.link.flush(self.params.flush_s))

    def teardown(self) -> None:
        self.link.close()
