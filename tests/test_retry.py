"""The one retry helper: waits out a passing outage, gives up with the last error after its deadline."""

from __future__ import annotations

import pytest

from zdg.retry import Backoff, retry


def test_retry_waits_out_a_passing_outage_with_growing_delays():
    failures = [ConnectionError("down"), ConnectionError("still down")]
    delays: list[float] = []

    def work() -> str:
        if failures:
            raise failures.pop(0)
        return "written"

    result = retry(work, ConnectionError, 10, lambda _e, d: delays.append(d), Backoff(first=0.01, cap=0.03))
    assert result == "written" and delays == [0.01, 0.02]


def test_retry_gives_up_after_its_deadline_with_the_last_error():
    calls = []

    def work() -> None:
        calls.append(1)
        raise ConnectionError(f"down {len(calls)}")

    with pytest.raises(ConnectionError, match="down"):
        retry(work, ConnectionError, 0.05, lambda _e, _d: None, Backoff(first=0.01, cap=0.01))
    assert 2 <= len(calls) <= 10


def test_other_errors_are_not_retried():
    calls = []

    def work() -> None:
        calls.append(1)
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        retry(work, ConnectionError, 10, lambda _e, _d: None)
    assert len(calls) == 1


def test_backoff_doubles_to_its_cap_and_resets():
    b = Backoff(first=1, cap=5)
    assert [b.next() for _ in range(5)] == [1, 2, 4, 5, 5]
    b.reset()
    assert b.next() == 1
