"""Watch list: a named identity, or any face nobody has named, seen at chosen cameras and hours raises an alert
once per visit, with the face's crop, on MQTT (`<prefix>/<graph>/alert`) and optionally to a webhook.

A visit is one identity's presence at one camera: it ends after `visit_gap_s` without a sighting there.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Self

from pydantic import Field, model_validator

from nodes.messages import ReidDecision
from nodes.mqtt_link import DecisionsToMqtt, MqttLink, MqttSettings
from zdg.node import Params


class WatchRule(Params):
    name: str = Field(description="what the alert says, e.g. 'Ann at the door'")
    identities: list[str] = Field([], description="enrolled names that trigger it")
    unknown: bool = Field(False, description="any face without a name triggers it (a new one, or one seen before)")
    cameras: list[str] = Field([], description="video ids of the sources it watches (empty: every source)")
    hours: str | None = Field(None, pattern=r"^([01]?\d|2[0-3])-([01]?\d|2[0-4])$",
                              description="local hours it is armed, START-END (22-6 wraps midnight; unset: always)")

    @model_validator(mode="after")
    def _watches_someone(self) -> Self:
        if not self.identities and not self.unknown:
            raise ValueError("a rule needs identities or unknown: true")
        return self

    def armed(self, hour: int) -> bool:
        if self.hours is None:
            return True
        start, end = (int(h) for h in self.hours.split("-"))
        return start <= hour < end if start <= end else hour >= start or hour < end

    def matches(self, decision: ReidDecision) -> bool:
        if self.cameras and decision.video not in self.cameras:
            return False
        return decision.name in self.identities if decision.name else self.unknown


class WatchAlertsParams(MqttSettings):
    rules: list[WatchRule] = Field(min_length=1, description="who is watched for, where and when")
    mqtt: bool = Field(True, description="publish alerts on <topic_prefix>/<graph>/alert")
    webhook: str | None = Field(None, pattern=r"^https?://", description="URL each alert is POSTed to as JSON")
    webhook_timeout_s: float = Field(5, gt=0, description="seconds a webhook may take")
    visit_gap_s: float = Field(300, ge=0, description="seconds without a sighting at a camera that end a visit")


class WatchAlertsNode(DecisionsToMqtt):
    """Re-id decisions in (provisional ones too: the alert comes while the person is still on screen)."""

    TYPE = "watch_alerts"
    Params = WatchAlertsParams

    def setup(self) -> None:
        super().setup()
        self.topic = f"{self.prefix}/alert"
        self.link = MqttLink(self.params, self.context, availability=f"{self.prefix}/alerts/availability") \
            if self.params.mqtt else None
        self.last_seen: dict[tuple[str, int, str], float] = {}  # (rule, cluster, camera) -> monotonic time
        self.webhooks = ThreadPoolExecutor(1, thread_name_prefix="zdg-webhook")

    def process(self, decision: ReidDecision) -> None:
        if self.link is not None:
            self.link.check()
        if decision.cluster_id is None or decision.status in ("junk", "merged"):
            return
        now, hour = time.monotonic(), datetime.now().hour
        for rule in self.params.rules:
            if not (rule.matches(decision) and rule.armed(hour)):
                continue
            key = (rule.name, decision.cluster_id, decision.video)
            last = self.last_seen.get(key)
            self.last_seen[key] = now
            if last is None or now - last > self.params.visit_gap_s:
                self._alert(rule, decision)
        if len(self.last_seen) > 10_000:
            self.last_seen = {k: t for k, t in self.last_seen.items() if now - t <= self.params.visit_gap_s}

    def idle(self) -> None:
        if self.link is not None:
            self.link.send_waiting()

    def _alert(self, rule: WatchRule, decision: ReidDecision) -> None:
        self.context.count("alerts")
        alert = {"rule": rule.name, "label": decision.label, "name": decision.name, "cluster_id": decision.cluster_id,
                 "camera": decision.video, "sequence_id": decision.sequence_id,
                 "seen_at": datetime.now(UTC).isoformat(timespec="seconds"),
                 "crop_jpeg": base64.b64encode(self.crop_jpeg(decision.crops[0])).decode() if len(decision.crops) else None}
        self.context.log.info("alert %r: %s at %s", rule.name, decision.label, decision.video)
        body = json.dumps(alert)
        if self.link is not None:
            self.link.publish(self.topic, body)
        if self.params.webhook:
            self.webhooks.submit(self._post, body).add_done_callback(self._posted)

    def _post(self, body: str) -> None:
        request = urllib.request.Request(self.params.webhook, body.encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.params.webhook_timeout_s) as response:  # noqa: S310 - the graph's URL
            response.read()

    def _posted(self, done: Future) -> None:
        if done.exception() is None:
            self.context.count("webhook_sent")
        else:
            self.context.count("webhook_failed")
            self.context.log.warning("webhook %s failed: %s", self.params.webhook, done.exception())

    def finish(self) -> None:
        """The last alerts reach the webhook and the broker before the graph ends."""
        self.webhooks.shutdown(wait=True)
        if self.link is not None:
            self.context.count("mqtt_unacknowledged_at_end", self.link.flush(10))

    def teardown(self) -> None:
        self.webhooks.shutdown(wait=True)
        if self.link is not None:
            self.link.close()
