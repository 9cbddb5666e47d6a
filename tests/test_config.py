"""Graph validation: one test per rule, each error names file, line and YAML path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, zdg
from zdg.config import GraphError, load_graph

VALID = """\
name: g
nodes:
  - name: counter
    type: counter
    params: {count: 3}
  - name: square
    type: square
    replicas: 2
  - name: collect
    type: collect
edges:
  - from: counter
    to: square
  - from: square
    to: collect
    pattern: pub
    topic: sq
"""


def errors_for(write_graph, text: str) -> list[str]:
    path = write_graph(text)
    with pytest.raises(GraphError) as info:
        load_graph(path)
    return str(info.value).splitlines()


def test_valid_graph_loads(write_graph):
    graph = load_graph(write_graph(VALID))
    assert list(graph.nodes) == ["counter", "square", "collect"]
    assert graph.nodes["square"].replicas == 2
    assert graph.edges[1].topic == "sq"


@pytest.mark.parametrize(
    ("old", "new", "line", "fragment"),
    [
        ("type: square", "type: sqaure", 7, "unknown node type 'sqaure'"),
        ("    to: collect\n", "    to: colect\n", 15, "edge to unknown node 'colect'"),
        ("params: {count: 3}", "params: {count: -1}", 5, "nodes[0].params.count"),
        ("params: {count: 3}", "params: {cuont: 3}", 5, "Extra inputs are not permitted"),
        ("replicas: 2", "replicas: 0", 8, "nodes[1].replicas"),
        ("    topic: sq\n", "", 14, "a pub edge needs a `topic:`"),
        ("    type: collect\n", "    type: collect\n  - name: square\n    type: square\n", 11, "duplicate node name 'square'"),
        ("  - from: counter", "  - from: counter.nope", 12, "no output port 'nope'"),
    ],
)
def test_each_rule_reports_file_line_and_path(write_graph, old, new, line, fragment):
    assert old in VALID
    errors = errors_for(write_graph, VALID.replace(old, new))
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{write_graph('', 'x.yaml').parent / 'graph.yaml'}:{line}: ")
    assert fragment in errors[0]


def test_cycle_is_reported_with_the_closing_edge(write_graph):
    text = VALID + "  - from: collect\n    to: square\n"
    text = text.replace("    type: collect", "    type: square")
    errors = errors_for(write_graph, text)
    assert len(errors) == 1
    assert ":18: edges[2]: cycle: square -> collect -> square" in errors[0]


def test_all_problems_are_reported_at_once(write_graph):
    text = VALID.replace("type: square", "type: nope").replace("replicas: 2", "replicas: 2\n    host: 'bad host'")
    errors = errors_for(write_graph, text)
    assert any("nope" in e for e in errors) and any("host" in e for e in errors), errors


def test_node_without_input_is_an_error(write_graph):
    text = VALID.replace("  - from: square\n    to: collect\n    pattern: pub\n    topic: sq\n", "")
    errors = errors_for(write_graph, text)
    assert "'collect' has no incoming edge" in errors[0]


def test_source_cannot_be_replicated(write_graph):
    errors = errors_for(write_graph, VALID.replace("params: {count: 3}", "replicas: 2"))
    assert "a source node runs once" in errors[0]


def test_set_overrides_params_and_rejects_unknown_nodes(write_graph):
    path = write_graph(VALID)
    assert load_graph(path, ["counter.count=7"]).nodes["counter"].params.count == 7
    with pytest.raises(GraphError, match="no node named 'nobody'"):
        load_graph(path, ["nobody.count=1"])


def test_invalid_yaml_names_the_line(write_graph):
    path = write_graph("name: g\nnodes: [\n  - a: b\n")
    proc = zdg("validate", str(path))
    assert proc.returncode == 2
    assert f"{path}:" in proc.stderr and "invalid YAML" in proc.stderr


def test_validate_cli_exit_codes(write_graph):
    good = write_graph(VALID, "good.yaml")
    bad = write_graph(VALID.replace("type: square", "type: nope"), "bad.yaml")
    assert zdg("validate", str(good)).returncode == 0
    proc = zdg("validate", str(good), str(bad))
    assert proc.returncode == 2
    assert f"{bad}:7: nodes[1].type: unknown node type 'nope'" in proc.stderr


def test_shipped_graphs_validate():
    graphs = sorted(Path(REPO, "graphs").glob("*.yaml"))
    assert graphs
    proc = zdg("validate", *map(str, graphs))
    assert proc.returncode == 0, proc.stderr
