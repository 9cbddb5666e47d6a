"""Draw a graph as Mermaid or Graphviz dot text."""

from __future__ import annotations

from zdg.config import Edge, Graph


def _label(graph: Graph, name: str) -> str:
    node = graph.nodes[name]
    reps = f" ×{node.replicas}" if node.replicas > 1 else ""
    return f"{name}{reps}\\n({node.type})"


def _edge_label(edge: Edge) -> str:
    return f"pub {edge.topic}" if edge.pattern == "pub" else "push"


def to_mermaid(graph: Graph) -> str:
    lines = ["flowchart LR"]
    for name in graph.nodes:
        lines.append(f'    {name}["{_label(graph, name).replace(chr(92) + "n", "<br/>")}"]')
    for edge in graph.edges:
        target = edge.dst.node if edge.dst else f'topic_{edge.index}(("{edge.topic}"))'
        lines.append(f"    {edge.src.node} -->|{_edge_label(edge)}| {target}")
    return "\n".join(lines)


def to_dot(graph: Graph) -> str:
    lines = [f'digraph "{graph.name}" {{', "    rankdir=LR;", "    node [shape=box];"]
    for name in graph.nodes:
        lines.append(f'    "{name}" [label="{_label(graph, name)}"];')
    for edge in graph.edges:
        if edge.dst is None:
            lines.append(f'    "topic:{edge.topic}" [shape=ellipse];')
        target = edge.dst.node if edge.dst else f"topic:{edge.topic}"
        lines.append(f'    "{edge.src.node}" -> "{target}" [label="{_edge_label(edge)}"];')
    lines.append("}")
    return "\n".join(lines)
