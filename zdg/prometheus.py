"""Prometheus `/metrics` from the replicas' metric snapshots (the files `zdg top` reads): the runner serves
every local replica's, a worker started with $ZDG_METRICS_PORT its own (containers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from zdg.metrics import LATENCY_BUCKETS_MS

LABELS = ["graph", "node", "replica"]
COUNTED = {"in": "zdg_messages_in", "out": "zdg_messages_out", "dropped": "zdg_dropped",
           "errors": "zdg_errors", "decode_errors": "zdg_malformed"}
HELP = {"in": "messages received", "out": "messages sent", "dropped": "messages dropped (full queues, rogue peers)",
        "errors": "messages whose processing raised", "decode_errors": "malformed messages counted and dropped"}


class SnapshotCollector:
    """Metric families made, on each scrape, from the current snapshots (dicts of zdg.metrics.Metrics)."""

    def __init__(self, graph: str, snapshots: Callable[[], list[dict[str, Any]]]) -> None:
        self.graph = graph
        self.snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        snaps = self.snapshots()
        labels = {id(s): [self.graph, s["node"], str(s["replica"])] for s in snaps}
        for key, name in COUNTED.items():
            family = CounterMetricFamily(name, HELP[key], labels=LABELS)
            for s in snaps:
                family.add_metric(labels[id(s)], s.get(key, 0))
            yield family
        restarts = CounterMetricFamily("zdg_restarts", "times the replica was restarted", labels=LABELS)
        events = CounterMetricFamily("zdg_node_events", "what a node counted: faces, sequences, decisions by status "
                                     "(new, recognised, junk, merged), store retries, ...", labels=[*LABELS, "event"])
        queue = GaugeMetricFamily("zdg_queue_depth", "messages waiting at the replica's input", labels=[*LABELS, "kind"])
        up = GaugeMetricFamily("zdg_replica_running", "1 while the replica runs, 0 once done", labels=LABELS)
        latency = HistogramMetricFamily("zdg_processing_seconds", "processing time per message", labels=LABELS)
        bounds = [str(ms / 1000) for ms in LATENCY_BUCKETS_MS] + ["+Inf"]
        for s in snaps:
            own = labels[id(s)]
            restarts.add_metric(own, s.get("restarts", 0))
            for event, count in sorted(s.get("counters", {}).items()):
                events.add_metric([*own, event], count)
            for kind in ("queue", "backlog"):
                queue.add_metric([*own, kind], s.get(kind) or 0)
            up.add_metric(own, 1 if s.get("state") == "running" else 0)
            per_bucket = s.get("latency_buckets") or [0] * len(bounds)
            cumulative = [sum(per_bucket[:i + 1]) for i in range(len(bounds))]
            latency.add_metric(own, list(zip(bounds, cumulative, strict=True)), s.get("latency_sum_ms", 0) / 1000)
        yield from (restarts, events, queue, up, latency)


def serve(graph: str, snapshots: Callable[[], list[dict[str, Any]]], port: int, host: str = "0.0.0.0") -> int:
    """Serve /metrics on host:port (0: any free port) in a background thread; returns the port."""
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(graph, snapshots))
    server, _ = start_http_server(port, host, registry)
    return server.server_port
