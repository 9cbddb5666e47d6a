"""Named validation rules for a parsed graph; each returns the problems it finds, with YAML paths."""

from __future__ import annotations

import re
from collections import defaultdict

from pydantic import ValidationError

from zdg.node import Node, SourceNode
from zdg.registry import UnknownNodeType, resolve
from zdg.spec import HOST_PATTERN, GraphSpec, Issue, pydantic_issues, split_ref
from zdg.typed import compatible, type_names


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
            issues.extend(pydantic_issues(exc, ("nodes", i, "params")))
    return issues


def unknown_types(data: dict) -> list[Issue]:
    """The node types of raw graph data that resolve to no node class: checked even when the rest of the file is
    malformed, so every problem is reported at once."""
    issues = []
    for i, node in enumerate(data.get("nodes") or []):
        if isinstance(node, dict) and isinstance(node.get("type"), str):
            try:
                resolve(node["type"])
            except UnknownNodeType as exc:
                issues.append(Issue(("nodes", i, "type"), str(exc)))
    return issues


def _edge_end_issue(i: int, key: str, ref: str, names: set[str], classes: dict[str, type[Node]]) -> Issue | None:
    """An edge's `from` or `to` must name a node and one of its output (from) or input (to) ports."""
    node, port = split_ref(ref, "out" if key == "from" else "in")
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
        if edge.secure and edge.to is not None:
            issues.append(Issue(("edges", i, "secure"), "`secure:` applies to outside topics (pub edges without "
                                "`to:`); edges between boxes are always encrypted, edges inside one box never leave it"))
    return issues


def verify_acyclic(spec: GraphSpec) -> list[Issue]:
    succ: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for i, edge in enumerate(spec.edges):
        if edge.to:
            succ[split_ref(edge.from_, "out")[0]].append((split_ref(edge.to, "in")[0], i))
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
    targets = {split_ref(e.to, "in")[0] for e in spec.edges if e.to}
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


def verify_edge_types(spec: GraphSpec, classes: dict[str, type[Node]]) -> list[Issue]:
    """Both ends of an edge agree on the typed message it carries."""
    issues = []
    for i, edge in enumerate(spec.edges):
        if edge.to is None:
            continue
        (src, out_port), (dst, in_port) = split_ref(edge.from_, "out"), split_ref(edge.to, "in")
        produced, accepted = classes[src].outputs[out_port], classes[dst].inputs[in_port]
        if not compatible(produced, accepted):
            issues.append(Issue(("edges", i), f"{src}.{out_port} sends {type_names(produced)} but {dst}.{in_port} "
                                              f"takes {type_names(accepted)}"))
    return issues
