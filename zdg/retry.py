"""One retry helper for every caller that waits out an outage (a store, a stream)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Backoff:
    """Delays that double from `first` up to `cap`; `reset()` after a success."""

    first: float = 0.5
    cap: float = 5.0
    factor: float = 2.0
    delay: float = field(init=False)

    def __post_init__(self) -> None:
        self.delay = self.first

    def next(self) -> float:
        current = self.delay
        self.delay = min(self.delay * self.factor, self.cap)
        return current

    def reset(self) -> None:
        self.delay = self.first


def retry(work: Callable[[], T], retry_on: type[Exception] | tuple[type[Exception], ...], wait_s: float,
          on_retry: Callable[[Exception, float], None], backoff: Backoff | None = None) -> T:
    """`work()`, retried with backoff while it raises `retry_on`; after `wait_s` the last error is raised."""
    deadline = time.monotonic() + wait_s
    backoff = backoff or Backoff()
    while True:
        try:
            return work()
        except retry_on as exc:
            if time.monotonic() > deadline:
                raise
            delay = backoff.next()
            on_retry(exc, delay)
            time.sleep(delay)
