"""A node's connection to an MQTT broker (paho-mqtt): login, TLS, reconnect with back-off, a bounded queue
while the broker is away (what it cannot hold is dropped and counted) that is sent in order before anything
newer, and an availability topic with a last will."""

from __future__ import annotations

import re
import socket
import stat
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from nodes.messages import ReidDecision
from zdg.node import Deploy, FatalNodeError, NodeContext, Params, SinkNode

if TYPE_CHECKING:
    from paho.mqtt.client import Client

PASSWORD_ENV = "ZDG_MQTT_PASSWORD"
CONNECT_WAIT_S = 5  # at start, how long to wait for the broker before going on (messages wait for it)


class MqttSettings(Params):
    host: str = Field("127.0.0.1", description="MQTT broker host")
    port: int = Field(1883, ge=1, le=65535, description="broker port (8883 is usual with tls)")
    topic_prefix: str = Field("zdg", pattern=r"^[A-Za-z0-9_\-/]+$", description="topics are <prefix>/<graph>/...")
    username: str | None = Field(None, description="login name, if the broker asks for one")
    password_file: str | None = Field(None, description="file holding the password (not readable by group or others); "
                                      f"else the {PASSWORD_ENV} variable")
    tls: bool = Field(False, description="connect with TLS")
    ca_file: str | None = Field(None, description="CA certificate to trust with tls (default: the system's)")
    client_id: str = Field("", description="MQTT client id (default: <graph>-<node>-<replica>@<host name>; a broker "
                           "drops the older of two clients with one id)")
    qos: int = Field(1, ge=0, le=2, description="0: fire and forget (lost while the broker is away); 1 or 2: "
                     "queued while it is away")
    queue_max: int = Field(1000, ge=1, description="messages held while the broker is unreachable; more are dropped "
                           "(counted as mqtt_dropped)")
    keepalive_s: int = Field(30, ge=5, description="MQTT keepalive")


def topic_part(text: str) -> str:
    """`text` as one MQTT topic level: letters, digits, '_' and '-' only (no '/', '+', '#')."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", text) or "_"


def read_password(settings: MqttSettings, context: NodeContext) -> str | None:
    """The broker password: from `password_file` (refused if others may read it), else the environment."""
    if settings.password_file is None:
        return context.env.get(PASSWORD_ENV)
    path = Path(settings.password_file)
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise FatalNodeError(f"{path}: the MQTT password file is readable by others (chmod 600 {path})")
        return path.read_text().strip()
    except OSError as e:
        raise FatalNodeError(f"password_file {path}: {e.strerror}") from e


class MqttLink:
    """A started paho client. `publish` never blocks: while the broker is away messages wait in a queue of
    `queue_max`; `check` raises once the broker has refused the login (a restart cannot fix that)."""

    def __init__(self, settings: MqttSettings, context: NodeContext, availability: str) -> None:
        from paho.mqtt import client as mqtt

        self.settings, self.context, self.availability = settings, context, availability
        self.refused: str | None = None
        self.connections = 0
        self._unacked: set[int] = set()  # ids of what publish() queued: only the node's thread touches it
        self._acks: deque[int] = deque()  # ids the broker acknowledged, appended by paho's thread
        self._waiting: deque[tuple[str, str | bytes, bool]] = deque()  # held while the broker is away, oldest first
        self._first_connection = threading.Event()
        client_id = settings.client_id or f"{context.graph}-{context.name}-{context.replica}@{socket.gethostname()}"
        self.client: Client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if settings.username is not None:
            self.client.username_pw_set(settings.username, read_password(settings, context))
        if settings.tls:
            self.client.tls_set(ca_certs=settings.ca_file)
        self.client.max_queued_messages_set(settings.queue_max)
        self.client.reconnect_delay_set(1, 30)
        self.client.will_set(availability, "offline", qos=1, retain=True)
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_publish = self._acknowledged
        self.client.connect_async(settings.host, settings.port, settings.keepalive_s)
        self.client.loop_start()
        if not self._first_connection.wait(CONNECT_WAIT_S) and not self.refused:
            context.log.warning("MQTT broker %s:%s not reached yet; messages wait (up to queue_max) until it is",
                                settings.host, settings.port)

    def _connected(self, client: Client, userdata, flags, reason, properties) -> None:
        where = f"{self.settings.host}:{self.settings.port}"
        if reason.is_failure:
            if reason.value in (0x04, 0x05, 0x86, 0x87):  # bad user name or password / not authorised
                self.refused = f"the MQTT broker {where} refused the login ({reason}): check username and password"
                self._first_connection.set()  # nothing to wait for
            self.context.log.warning("MQTT broker %s refused the connection: %s", where, reason)
            return
        self.connections += 1
        if self.connections > 1:
            self.context.count("mqtt_reconnects")
        self.context.log.info("MQTT connected to %s", where)
        client.publish(self.availability, "online", qos=1, retain=True)
        self._first_connection.set()

    def _disconnected(self, client: Client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self.context.log.warning("MQTT broker %s:%s lost (%s); reconnecting", self.settings.host,
                                     self.settings.port, reason)

    def _acknowledged(self, client: Client, userdata, mid: int, reason, properties) -> None:
        """paho's thread: the broker has the message (it may say so before publish() returned: the node's thread
        matches acknowledgements to what it queued later, in `_settle`)."""
        self._acks.append(mid)

    def _settle(self) -> None:
        while self._acks:
            self._unacked.discard(self._acks.popleft())

    def check(self) -> None:
        if self.refused:
            raise FatalNodeError(self.refused)

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> bool:
        """Send one message, or hold it while the broker is away; False when it was dropped (the queue is full).
        What was held goes first, so the broker sees messages in the order they were made (a retained sighting
        is never overwritten by an older one)."""
        if len(self._waiting) >= self.settings.queue_max:
            self.context.count("mqtt_dropped")
            return False
        self._waiting.append((topic, payload, retain))
        self.send_waiting()
        return True

    def send_waiting(self) -> None:
        """Hand what is held to paho, oldest first, while connected (the node's thread: publish, idle, flush)."""
        from paho.mqtt.client import MQTT_ERR_NO_CONN, MQTT_ERR_SUCCESS

        while self._waiting and self.client.is_connected():
            topic, payload, retain = self._waiting[0]
            info = self.client.publish(topic, payload, qos=self.settings.qos, retain=retain)
            taken = info.rc == MQTT_ERR_SUCCESS or (info.rc == MQTT_ERR_NO_CONN and self.settings.qos > 0)  # paho resends
            if not taken:  # paho's own queue is full, or QoS 0 and the connection just went: it stays first in line
                break
            self._waiting.popleft()
            self._unacked.add(info.mid)
            self.context.count("mqtt_published")
        self._settle()

    def flush(self, timeout: float) -> int:
        """Wait up to `timeout` s for the broker to acknowledge what is queued; how many messages it has not."""
        deadline = time.monotonic() + timeout
        self.send_waiting()
        while (self._unacked or self._waiting) and time.monotonic() < deadline:
            time.sleep(0.02)
            self.send_waiting()
        return len(self._unacked) + len(self._waiting)

    def close(self) -> None:
        """Say offline (retained) and disconnect."""
        if self.client.is_connected():
            self.publish(self.availability, "offline", retain=True)
            self.flush(2)
        self.client.disconnect()
        self.client.loop_stop()


class DecisionsToMqtt(SinkNode):
    """Base of the nodes that send re-id decisions to a broker, on topics under `<topic_prefix>/<graph>/`."""

    inputs = {"in": ReidDecision}
    deploy = Deploy(image="zdg-faces")
    preload = ("nodes.vision.annotate", "paho.mqtt.client")

    def setup(self) -> None:
        from nodes.vision.annotate import crop_jpeg

        self.crop_jpeg = crop_jpeg
        self.prefix = f"{self.params.topic_prefix}/{topic_part(self.context.graph)}"
