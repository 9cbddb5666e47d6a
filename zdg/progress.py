"""`zdg run`'s progress: one bar for the whole graph, and the node processes' log lines written above it."""

from __future__ import annotations

import sys
from typing import IO

from tqdm import tqdm


def write_above_bar(stream: IO[bytes]) -> None:
    """Copy a worker's stderr line by line to ours without breaking into the progress bar."""
    for line in iter(stream.readline, b""):
        tqdm.write(line.decode(errors="replace").rstrip("\n"), file=sys.stderr)
    stream.close()


class GraphProgress:
    """One bar for the whole graph: what its sources read (of their total), then every other node's messages in,
    in graph order, so the run shows progress until the last node is done, not only the reading."""

    def __init__(self, graph_name: str, nodes: list[str], sources: set[str], shown: bool) -> None:
        self.title = f"{graph_name}: read"
        self.flowing = [name for name in nodes if name not in sources]
        self.shown = shown
        self.bar: tqdm | None = None

    def update(self, snaps: list[dict]) -> None:
        """Redraw from the replicas' latest metrics."""
        reading = [snap["progress"] for snap in snaps if "done" in (snap.get("progress") or {})]
        if not reading:
            return
        if self.bar is None:
            self.bar = tqdm(desc=self.title, unit="frame", disable=not self.shown, dynamic_ncols=True)
        totals = [p.get("total") for p in reading]
        self.bar.total = None if None in totals else sum(totals)
        self.bar.n = sum(p["done"] for p in reading)
        flow = dict.fromkeys(self.flowing, 0)
        for snap in snaps:
            if snap["node"] in flow:
                flow[snap["node"]] += snap.get("in", 0)
        self.bar.set_postfix_str(" ".join(f"{name} {count}" for name, count in flow.items()), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
