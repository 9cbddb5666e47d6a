"""`zdg top`: a live table of per-replica metrics from a run directory."""

from __future__ import annotations

import time
from pathlib import Path

from zdg.metrics import format_table, read_all


def top(run_dir: Path, once: bool, interval_s: float = 1.0) -> int:
    metrics_dir = run_dir / "metrics"
    if not metrics_dir.is_dir():
        raise FileNotFoundError(f"{metrics_dir}: no metrics here (is the graph running with this --run-dir?)")
    while True:
        table = format_table(read_all(metrics_dir))
        if once:
            print(table)
            return 0
        print("\x1b[2J\x1b[H" + f"zdg top  {run_dir}  (Ctrl-C to quit)\n" + table, flush=True)
        time.sleep(interval_s)
