"""Graph YAML → typed, validated objects. Every problem is reported with file, line and path."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zdg.node import Node, Params, SourceNode
from zdg.registry import UnknownNodeType, resolve
from zdg.yamlsrc import Loc, YamlSource, load_yaml

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
HOST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Policy = Literal["block", "drop"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Settings(Strict):
    """Graph-wide defaults."""

    hwm: int = Field(16, ge=1, le=100_000, description="messages in flight per edge")
    policy: Policy = Field("block", description="block = backpressure (files); drop = drop and count (live cameras)")
    max_message_mb: float = Field(64, gt=0, description="largest frame a socket accepts (ZMQ_MAXMSGSIZE)")
    connect_timeout_s: float = Field(30, gt=0, description="how long a publisher waits for its subscribers")
    eos_timeout_s: float = Field(600, gt=0, description="how long a node waits for downstream to confirm end of stream")


class NodeSpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    replicas: int = Field(1, ge=1, le=64)
    host: str | None = Field(None, pattern=HOST_PATTERN, description="the box this node runs on (`zdg compose --host`)")


class EdgeSpec(Strict):
    from_: str = Field(alias="from")
    to: str | None = None
    pattern: Literal["push", "pub"] = "push"
    topic: str | None = Field(None, pattern=r"^[A-Za-z0-9_.\-/]+$")
    hwm: int | None = Field(None, ge=1, le=100_000)
    policy: Policy | None = None


class GraphSpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    settings: Settings = Settings()
    hosts: dict[str, str] = Field(default_factory=dict, description="box name -> address other boxes reach it at")
    nodes: list[NodeSpec] = Field(min_length=1)
    edges: list[EdgeSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class Issue:
    loc: Loc
    message: str


class GraphError(ValueError):
    """One or more problems in a graph file; str() lists them as `file:line: path: message`."""

    def __init__(self, source: YamlSource | None, issues: list[Issue], path: Path | None = None) -> None:
        self.issues = issues
        self.source = source
        self.path = path or (source.path if source else None)
        super().__init__("\n".join(self.format(i) for i in issues))

    def format(self, issue: Issue) -> str:
        line = self.source.line_of(issue.loc) if self.source else None
        where = f"{self.path}:{line}" if line else f"{self.path}"
        return f"{where}: {format_loc(issue.loc) or '(top)'}: {issue.message}"


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


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


def _pydantic_issues(exc: ValidationError, prefix: Loc = ()) -> list[Issue]:
    issues = []
    for err in exc.errors():
        loc = tuple("from" if p == "from_" else p for p in err["loc"])
        issues.append(Issue(prefix + loc, err["msg"]))
    return issues


def _split_ref(ref: str, default_port: str) -> tuple[str, str]:
    node, _, port = ref.partition(".")
    return node, port or default_port


def verify_unique_names(spec: GraphSpec) -> list[Issue]:
    seen: dict[str, int] = {}
    issues = []
    for i, node in enumerate(spec.nodes):
        if node.name in seen:
            issues.append(Issue(("nodes", i, "name"), f"duplicate node name {node.name!r} (first at nodes[{seen[node.name]}])"))
        seen.setdefault(node.name, i)
    return issues


def verify_hosts(spec: GraphSpec) -> list[Issue]:
    """Either no node names a box or every node does, and `hosts:` lists only boxes in use."""
    placed = [n.host for n in spec.nodes if n.host]
    if not placed:
        return [Issue(("hosts", h), f"no node has host: {h}") for h in spec.hosts]
    issues = [Issue(("nodes", i), f"node {n.name!r} has no host: (other nodes name their box, so every node must)")
              for i, n in enumerate(spec.nodes) if not n.host]
    issues += [Issue(("hosts", h), f"no node has host: {h}") for h in spec.hosts if h not in placed]
    issues += [Issue(("hosts", h), f"invalid address {a!r}") for h, a in spec.hosts.items() if not re.fullmatch(HOST_PATTERN, a)]
    return issues


def verify_node_types(spec: GraphSpec, classes: dict[str, type[Node]]) -> list[Issue]:
    """Resolve each type and validate its params against the class's Params model."""
    issues = []
    for i, node in enumerate(spec.nodes):
        try:
            cls = resolve(node.type)
        except UnknownNodeType as exc:
            issues.append(Issue(("nodes", i, "type"), str(exc)))
            continue
        classes[node.name] = cls
        try:
            cls.Params.model_validate(node.params)
        except ValidationError as exc:
            issues.extend(_pydantic_issues(exc, ("nodes", i, "params")))
    return issues


def _edge_end_issue(i: int, key: str, ref: str, names: set[str], classes: dict[str, type[Node]]) -> Issue | None:
    """An edge's `from` or `to` must name a node and one of its output (from) or input (to) ports."""
    node, port = _split_ref(ref, "out" if key == "from" else "in")
    if node not in names:
        return Issue(("edges", i, key), f"edge {key} unknown node {node!r} (nodes: {', '.join(sorted(names))})")
    direction = "output" if key == "from" else "input"
    ports = list(getattr(classes[node], f"{direction}s")) if node in classes else [port]
    if port not in ports:
        return Issue(("edges", i, key), f"node {node!r} has no {direction} port {port!r} ({direction}s: {ports})")
    return None


def verify_edges(spec: GraphSpec, classes: dict[str, type[Node]]) -> list[Issue]:
    """Edges name existing nodes and ports; push edges have a target; pub edges a topic."""
    names = {n.name for n in spec.nodes}
    issues = []
    for i, edge in enumerate(spec.edges):
        if edge.to is None and edge.pattern == "push":
            issues.append(Issue(("edges", i), "a push edge needs `to:` (only pub edges may end outside the graph)"))
        for key, ref in (("from", edge.from_), ("to", edge.to)):
            if ref is not None and (issue := _edge_end_issue(i, key, ref, names, classes)):
                issues.append(issue)
        if edge.pattern == "pub" and not edge.topic:
            issues.append(Issue(("edges", i), "a pub edge needs a `topic:`"))
        if edge.pattern == "push" and edge.topic:
            issues.append(Issue(("edges", i, "topic"), "`topic:` only applies to pub edges"))
    return issues


def verify_acyclic(spec: GraphSpec) -> list[Issue]:
    succ: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for i, edge in enumerate(spec.edges):
        if edge.to:
            succ[_split_ref(edge.from_, "out")[0]].append((_split_ref(edge.to, "in")[0], i))
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> Issue | None:
        state[node] = 1
        stack.append(node)
        for nxt, edge_index in succ[node]:
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                return Issue(("edges", edge_index), f"cycle: {' -> '.join(cycle)} (a graph must be a DAG)")
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in [n.name for n in spec.nodes]:
        if node not in state and (found := visit(node)):
            return [found]
    return []


def verify_connected(spec: GraphSpec, classes: dict[str, type[Node]]) -> list[Issue]:
    """Sources run once (replicas 1); every other node has an incoming edge."""
    targets = {_split_ref(e.to, "in")[0] for e in spec.edges if e.to}
    issues = []
    for i, node in enumerate(spec.nodes):
        cls = classes.get(node.name)
        if cls is None:
            continue
        if issubclass(cls, SourceNode):
            if node.replicas != 1:
                issues.append(Issue(("nodes", i, "replicas"), "a source node runs once: replicas must be 1"))
        elif node.name not in targets:
            issues.append(Issue(("nodes", i), f"node {node.name!r} has no incoming edge, so it would never receive a message"))
    return issues


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
        raise GraphError(source, issues + _pydantic_issues(exc)) from None
    classes: dict[str, type[Node]] = {}
    issues += verify_unique_names(spec)
    issues += verify_hosts(spec)
    issues += verify_node_types(spec, classes)
    issues += verify_edges(spec, classes)
    if not issues:  # these rules assume sound edges; otherwise they only repeat the same problem
        issues += verify_connected(spec, classes) or verify_acyclic(spec)
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
            src=PortRef(*_split_ref(e.from_, "out")),
            dst=PortRef(*_split_ref(e.to, "in")) if e.to else None,
            pattern=e.pattern,
            topic=e.topic or "",
            hwm=e.hwm or spec.settings.hwm,
            policy=e.policy or ("drop" if external else spec.settings.policy),
        ))
    return Graph(spec.name, source.path, spec.settings, nodes, edges, dict(spec.hosts))


def load_graph(path: str | Path, overrides: list[str] | None = None) -> Graph:
    return build_graph(load_yaml(path), overrides)
