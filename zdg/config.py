"""Graph YAML → typed, validated objects. Every problem is reported with file, line and path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from zdg.node import Node, Params, SourceNode
from zdg.rules import (
    unknown_types,
    verify_acyclic,
    verify_connected,
    verify_edge_types,
    verify_edges,
    verify_hosts,
    verify_node_types,
    verify_unique_names,
)
from zdg.spec import GraphError, GraphSpec, Issue, Policy, Settings, pydantic_issues, split_ref
from zdg.yamlsrc import YamlSource, load_yaml

__all__ = ["Edge", "Graph", "GraphError", "NodeDef", "PortRef", "Settings", "build_graph", "load_graph"]


@dataclass(frozen=True)
class PortRef:
    node: str
    port: str


@dataclass(frozen=True)
class Edge:
    """A validated edge with resolved ports and effective flow settings."""

    index: int
    src: PortRef
    dst: PortRef | None
    pattern: Literal["push", "pub"]
    topic: str
    hwm: int
    policy: Policy
    secure: bool = False  # an outside topic only keyed CURVE clients may read


@dataclass(frozen=True)
class NodeDef:
    name: str
    type: str
    cls: type[Node]
    params: Params
    replicas: int
    host: str | None

    @property
    def is_source(self) -> bool:
        return issubclass(self.cls, SourceNode)


@dataclass(frozen=True)
class Graph:
    name: str
    path: Path
    settings: Settings
    nodes: dict[str, NodeDef]
    edges: list[Edge]
    hosts: dict[str, str]

    def address_of(self, host: str) -> str:
        """Where other boxes reach `host`: its `hosts:` entry, else the name itself."""
        return self.hosts.get(host, host)

    def in_edges(self, node: str) -> list[Edge]:
        return [e for e in self.edges if e.dst and e.dst.node == node]

    def out_edges(self, node: str) -> list[Edge]:
        return [e for e in self.edges if e.src.node == node]


def apply_overrides(data: Any, overrides: list[str]) -> list[Issue]:
    """Apply `node.param=value` strings (value parsed as YAML) to raw graph data."""
    issues = []
    nodes = {n.get("name"): n for n in data.get("nodes", []) if isinstance(n, dict)} if isinstance(data, dict) else {}
    for item in overrides:
        key, eq, value = item.partition("=")
        node, dot, param = key.partition(".")
        if not eq or not dot or not param:
            issues.append(Issue(("--set",), f"{item!r}: expected node.param=value"))
        elif node not in nodes:
            issues.append(Issue(("--set",), f"{item!r}: no node named {node!r}"))
        else:
            nodes[node].setdefault("params", {})[param] = yaml.safe_load(value) if value else ""
    return issues


def build_graph(source: YamlSource, overrides: list[str] | None = None) -> Graph:
    """Validate parsed YAML into a Graph, or raise GraphError listing every problem."""
    if not isinstance(source.data, dict):
        raise GraphError(source, [Issue((), "a graph file must be a mapping with name, nodes and edges")])
    issues = apply_overrides(source.data, overrides or [])
    try:
        spec = GraphSpec.model_validate(source.data)
    except ValidationError as exc:
        raise GraphError(source, issues + pydantic_issues(exc) + unknown_types(source.data)) from None
    classes: dict[str, type[Node]] = {}
    issues += verify_unique_names(spec)
    issues += verify_hosts(spec)
    issues += verify_node_types(spec, classes)
    issues += verify_edges(spec, classes)
    if not issues:  # these rules assume sound edges; otherwise they only repeat the same problem
        issues += verify_edge_types(spec, classes) + (verify_connected(spec, classes) or verify_acyclic(spec))
    if issues:
        raise GraphError(source, issues)
    nodes = {
        n.name: NodeDef(n.name, n.type, classes[n.name], classes[n.name].Params.model_validate(n.params), n.replicas, n.host)
        for n in spec.nodes
    }
    edges = []
    for i, e in enumerate(spec.edges):
        external = e.pattern == "pub" and e.to is None
        edges.append(Edge(
            index=i,
            src=PortRef(*split_ref(e.from_, "out")),
            dst=PortRef(*split_ref(e.to, "in")) if e.to else None,
            pattern=e.pattern,
            topic=e.topic or "",
            hwm=e.hwm or spec.settings.hwm,
            policy=e.policy or ("drop" if external else spec.settings.policy),
            secure=e.secure,
        ))
    return Graph(spec.name, source.path, spec.settings, nodes, edges, dict(spec.hosts))


def load_graph(path: str | Path, overrides: list[str] | None = None) -> Graph:
    return build_graph(load_yaml(path), overrides)
