"""Per-replica counters and timings, written as small JSON files the runner and `zdg top` read."""

from __future__ import annotations

import json
import os
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np

COUNTERS = ("in", "out", "dropped", "errors", "decode_errors")
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)  # the /metrics histogram's upper bounds
KEPT_ACROSS_RESTARTS = ("dropped", "errors", "decode_errors")  # what went wrong is not forgotten by a restart


class Metrics:
    """Counts for one node replica; `write()` is cheap enough to call every half second."""

    def __init__(self, node: str, replica: int, path: Path | None) -> None:
        self.node = node
        self.replica = replica
        self.path = path
        self.counts: Counter = Counter({k: 0 for k in COUNTERS})
        self.proc_ms: deque[float] = deque(maxlen=2048)
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)  # per bucket (the last: above every bound)
        self.latency_sum_ms = 0.0
        self.gauges: dict[str, Any] = {"queue": 0, "backlog": 0}
        self.state = "starting"
        self.first_in_at: float | None = None
        self.last_in_at: float | None = None
        self.started = time.time()
        self._last_write = 0.0
        self._carry_over()

    def _carry_over(self) -> None:
        """A restarted replica keeps its predecessor's failure counts (the file it wrote)."""
        try:
            before = json.loads(self.path.read_text()) if self.path else {}
        except (OSError, ValueError):
            return
        for key in KEPT_ACROSS_RESTARTS:
            if isinstance(before.get(key), int):
                self.counts[key] = before[key]

    def received(self) -> None:
        now = time.time()
        self.counts["in"] += 1
        self.first_in_at = self.first_in_at or now
        self.last_in_at = now

    def timing(self, seconds: float, n: int = 1) -> None:
        """Record processing time for a batch of n messages (per-message time is stored)."""
        per = seconds * 1000 / max(n, 1)
        self.proc_ms.extend([per] * min(n, 64))
        self.latency_buckets[int(np.searchsorted(LATENCY_BUCKETS_MS, per))] += n
        self.latency_sum_ms += per * n

    def snapshot(self, extra_counters: Counter | None = None, progress: dict | None = None) -> dict[str, Any]:
        times = np.fromiter(self.proc_ms, dtype=float) if self.proc_ms else None
        return {
            "node": self.node,
            "replica": self.replica,
            "pid": os.getpid(),
            "state": self.state,
            "uptime_s": round(time.time() - self.started, 3),
            **dict(self.counts),
            "p50_ms": round(float(np.percentile(times, 50)), 3) if times is not None else None,
            "p95_ms": round(float(np.percentile(times, 95)), 3) if times is not None else None,
            **self.gauges,
            "latency_buckets": list(self.latency_buckets),
            "latency_sum_ms": round(self.latency_sum_ms, 3),
            "counters": dict(extra_counters or {}),
            "progress": dict(progress or {}),
            "first_in_at": self.first_in_at,
            "last_in_at": self.last_in_at,
            "written": time.time(),
        }

    def due(self, force: bool = False) -> bool:
        """Whether write() writes now (at most twice a second unless forced)."""
        return self.path is not None and (force or time.monotonic() - self._last_write >= 0.5)

    def write(self, extra_counters: Counter | None = None, progress: dict | None = None, force: bool = False) -> None:
        if not self.due(force):
            return
        self._last_write = time.monotonic()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot(extra_counters, progress)))
        os.replace(tmp, self.path)


def read_all(metrics_dir: Path) -> list[dict[str, Any]]:
    """Every replica's latest snapshot in a run directory's metrics folder."""
    out = []
    for path in sorted(metrics_dir.glob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out


def format_table(snapshots: list[dict[str, Any]]) -> str:
    """A fixed-width table, one row per replica."""
    cols = ("node", "replica", "state", "in", "out", "dropped", "errors", "decode_errors",
            "p50_ms", "p95_ms", "queue", "backlog", "restarts")
    heads = ("node", "rep", "state", "in", "out", "drop", "err", "bad", "p50ms", "p95ms", "queue", "backlog", "restarts")
    rows = [heads] + [tuple("-" if s.get(c) is None else str(s.get(c)) for c in cols) for s in snapshots]
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    extras = [f"  {s['node']}.{s['replica']}: " + ", ".join(f"{k}={v}" for k, v in sorted(s["counters"].items()))
              for s in snapshots if s.get("counters")]
    return "\n".join(lines + extras)
