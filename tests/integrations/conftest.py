"""A real Mosquitto broker (Debian's package) on 127.0.0.1, and a subscriber that keeps what it hears."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@dataclass
class Broker:
    """One mosquitto process; `restart` keeps its port (and forgets what was retained: no persistence)."""

    folder: Path
    port: int
    config: str
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        conf = self.folder / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\npersistence false\nuser root\n{self.config}")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=(self.folder / "mosquitto.log").open("a"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "running" in (self.folder / "mosquitto.log").read_text():
                return
            assert self.proc.poll() is None, (self.folder / "mosquitto.log").read_text()
            time.sleep(0.05)
        raise AssertionError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
        (self.folder / "mosquitto.log").write_text("")


def start_broker(folder: Path, config: str = "allow_anonymous true\n") -> Broker:
    if not os.path.exists(MOSQUITTO):
        pytest.fail("mosquitto is not installed (apt-get install mosquitto; .ci/run does)")
    folder.mkdir(parents=True, exist_ok=True)
    broker = Broker(folder, free_port(), config)
    broker.start()
    return broker


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    b = start_broker(tmp_path / "broker")
    yield b
    b.stop()


@dataclass
class Heard:
    """What a subscriber received: (topic, payload, retained) in order of arrival."""

    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def under(self, prefix: str) -> list[tuple[str, bytes, bool]]:
        with self.lock:
            return [m for m in self.messages if m[0].startswith(prefix)]

    def wait(self, condition: Callable[[], bool], timeout: float = 20, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"not heard in {timeout}s: {what}\n{self.messages[-10:]}"
            time.sleep(0.05)


def subscribe(port: int, *topics: str, **login: str) -> tuple[Heard, Callable[[], None]]:
    """A paho subscriber on 127.0.0.1:`port`; returns what it hears and a function that stops it."""
    from paho.mqtt import client as mqtt

    heard = Heard()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if login:
        client.username_pw_set(login["username"], login["password"])
    subscribed = threading.Event()

    def connected(c, userdata, flags, reason, properties) -> None:
        c.subscribe([(t, 1) for t in topics])

    def message(c, userdata, msg) -> None:
        with heard.lock:
            heard.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    client.on_connect = connected
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = message
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert subscribed.wait(10), "the test's subscriber could not subscribe"

    def stop() -> None:
        client.disconnect()
        client.loop_stop()

    return heard, stop
