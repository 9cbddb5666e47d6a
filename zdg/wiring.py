"""Derive sockets and endpoints from a graph; users never write addresses.

Rules: a replicated node never binds. For each edge the single side binds (the upstream
when both are single); where both sides are replicated a relay node is inserted that
binds both ways. Push edges bound upstream use ROUTER/DEALER with credits so end of
stream reaches every downstream replica exactly once; push edges bound downstream use
DEALER/ROUTER; pub edges use XPUB/XSUB so publishers can wait for their subscribers and
subscribers can acknowledge end of stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from zdg.config import Edge, Graph, NodeDef
from zdg.curve import CurveKeys
from zdg.node import NoParams
from zdg.private import default_run_root
from zdg.relay import RelayNode

TCP_BASE_PORT = 5600
RUN_ROOT = default_run_root()  # local runs keep sockets and metrics in RUN_ROOT/<graph name>, private to their user


@dataclass(frozen=True)
class Link:
    """One physical socket pair: user edges map to one link, or two around a relay."""

    id: str
    src: str
    src_port: str
    dst: str | None
    dst_port: str
    pattern: Literal["push", "pub"]
    topic: str
    hwm: int
    policy: Literal["block", "drop"]
    binder: Literal["src", "dst"]
    number: int
    src_replicas: int
    dst_replicas: int
    src_host: str | None = None
    dst_host: str | None = None
    secure: bool = False  # an outside topic: CURVE server admitting the box folder's keys

    @property
    def crosses_boxes(self) -> bool:
        """Both ends are placed (`host:`) on different boxes: the edge is CURVE-encrypted TCP."""
        return self.dst is not None and self.src_host != self.dst_host

    @property
    def binder_node(self) -> str:
        return self.src if self.binder == "src" or self.dst is None else self.dst

    @property
    def binder_host(self) -> str | None:
        """The box of the binding end: where the connecting end of a crossing edge reaches."""
        return self.src_host if self.binder == "src" else self.dst_host

    @property
    def socket_kinds(self) -> tuple[str, str]:
        """(upstream kind, downstream kind)."""
        if self.pattern == "pub":
            return "XPUB", "XSUB"
        return ("ROUTER", "DEALER") if self.binder == "src" else ("DEALER", "ROUTER")


def service_name(node: str) -> str:
    """The container (and DNS) name of a node: underscores are not valid in host names."""
    return node.replace("_", "-")


def default_run_dir(graph: Graph) -> Path:
    return RUN_ROOT / graph.name


def tcp_port(link: Link) -> int:
    return TCP_BASE_PORT + link.number


@dataclass(frozen=True)
class Transport:
    """ipc under a run directory (local), or tcp between services (containers); links that cross
    boxes use `keys` and connect to the other box's address (`addresses`, box name -> address), or,
    where every box's services share one network (`one_network`: a Swarm overlay, a Kubernetes
    cluster), to the binding node's service name like any other link."""

    kind: Literal["ipc", "tcp"]
    run_dir: Path = RUN_ROOT
    addresses: dict[str, str] = field(default_factory=dict)
    keys: CurveKeys | None = None
    one_network: bool = False

    def bind_address(self, link: Link) -> str:
        if self.kind == "ipc":
            return f"ipc://{self.run_dir}/{link.id}.sock"
        return f"tcp://*:{tcp_port(link)}"

    def connect_address(self, link: Link) -> str:
        if self.kind == "ipc":
            return self.bind_address(link)
        if link.crosses_boxes and not self.one_network:
            host = self.addresses.get(link.binder_host or "", link.binder_host)
        else:
            host = service_name(link.binder_node)
        return f"tcp://{host}:{tcp_port(link)}"


@dataclass(frozen=True)
class Plan:
    graph: Graph
    nodes: dict[str, NodeDef]
    links: list[Link]

    def inputs(self, node: str) -> list[Link]:
        return [link for link in self.links if link.dst == node]

    def outputs(self, node: str) -> list[Link]:
        return [link for link in self.links if link.src == node]

    def external_topics(self) -> list[Link]:
        return [link for link in self.links if link.dst is None]


def _relay(edge: Edge, host: str | None) -> NodeDef:
    return NodeDef(f"relay-e{edge.index}", "relay", RelayNode, NoParams(), 1, host)


def compile_plan(graph: Graph) -> Plan:
    nodes = dict(graph.nodes)
    links: list[Link] = []

    def add(edge: Edge, link_id: str, src: str, src_port: str, dst: str | None, dst_port: str) -> None:
        src_n = nodes[src].replicas
        dst_n = nodes[dst].replicas if dst else 0
        binder: Literal["src", "dst"] = "src" if src_n == 1 else "dst"
        links.append(Link(link_id, src, src_port, dst, dst_port, edge.pattern, edge.topic, edge.hwm,
                          edge.policy, binder, len(links), src_n, dst_n, nodes[src].host,
                          nodes[dst].host if dst else None, edge.secure and dst is None))

    for edge in graph.edges:
        src = graph.nodes[edge.src.node]
        dst = graph.nodes[edge.dst.node] if edge.dst else None
        dst_name = edge.dst.node if edge.dst else None
        dst_port = edge.dst.port if edge.dst else "in"
        if src.replicas > 1 and (dst is None or dst.replicas > 1):
            relay = _relay(edge, src.host)
            nodes[relay.name] = relay
            add(edge, f"e{edge.index}a", src.name, edge.src.port, relay.name, "in")
            add(edge, f"e{edge.index}b", relay.name, "out", dst_name, dst_port)
        else:
            add(edge, f"e{edge.index}", src.name, edge.src.port, dst_name, dst_port)
    return Plan(graph, nodes, links)


def local_topic_endpoint(graph: Graph, topic: str) -> str:
    """Where `zdg run` publishes the graph's outside topic `topic` (the address it prints at start)."""
    for link in compile_plan(graph).external_topics():
        if link.topic == topic:
            return Transport("ipc", default_run_dir(graph)).bind_address(link)
    raise LookupError(f"graph {graph.name!r} publishes no outside topic {topic!r}")
