"""The framework knows nothing of faces: it imports no app module, validates face graphs without the
app's heavy dependencies, and takes a new node type from one file."""

from __future__ import annotations

import re
import subprocess
import sys
import venv
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path

import pytest

from tests.conftest import REPO, zdg
from zdg.config import load_graph
from zdg.deploy.compose import ComposeFiles, build_compose
from zdg.shared_store import store_service

HEAVY = ("cv2", "onnxruntime", "insightface", "psycopg", "scipy", "sklearn", "pgvector", "matplotlib")


def test_framework_modules_import_nothing_of_the_app():
    code = ("import sys, zdg.config, zdg.deploy.compose, zdg.wiring, zdg.worker, zdg.runner; "
            "print(sorted(m for m in sys.modules if m == 'nodes' or m.startswith('nodes.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "[]"


def _core_closure() -> list[Distribution]:
    """zdg's own distribution and every installed distribution its core requirements pull in (no extras;
    one this platform's markers leave out is not installed, so it is skipped)."""
    seen: dict[str, Distribution] = {}
    todo = ["zdg"]
    while todo:
        name = re.split(r"[\s<>=!~;\[]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if name in seen:
            continue
        try:
            seen[name] = distribution(name)
        except PackageNotFoundError:
            continue
        todo += [r for r in seen[name].requires or [] if "extra ==" not in r]
    return list(seen.values())


@pytest.fixture(scope="module")
def framework_venv(tmp_path_factory) -> Path:
    """A real venv whose site-packages hold only the framework's dependencies (linked from this one) and zdg."""
    root = tmp_path_factory.mktemp("fwvenv")
    venv.create(root, with_pip=False)
    site = next(root.glob("lib/python*/site-packages"))
    for dist in _core_closure():
        base = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            target = site / top
            if (base / top).exists() and not target.exists() and not top.startswith("__editable__"):
                target.symlink_to(base / top)
    (site / "zdg-repo.pth").write_text(f"{REPO}\n")
    return root / "bin" / "python"


def test_face_graphs_validate_compose_and_draw_with_only_the_framework_installed(framework_venv):
    python = str(framework_venv)
    missing = subprocess.run([python, "-c", f"import importlib.util as u; print([m for m in {HEAVY!r} if u.find_spec(m)])"],
                             capture_output=True, text=True, check=True)
    assert missing.stdout.strip() == "[]", "the framework venv must not hold the app's dependencies"
    graphs = sorted(str(p) for p in (REPO / "graphs").glob("*.yaml"))
    done = subprocess.run([python, "-m", "zdg", "validate", *graphs], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": ok (") == len(graphs)
    for command in (["compose", "graphs/video_reid.yaml"], ["graph", "graphs/video_reid.yaml"], ["schema"]):
        done = subprocess.run([python, "-m", "zdg", *command], capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, (command, done.stderr)


NEW_NODE = '''
from nodes.messages import ReidDecision
from zdg.node import Deploy, Params, SinkNode


class AlertParams(Params):
    names: list[str] = []


class AlertNode(SinkNode):
    """Says when a watched name is seen."""

    Params = AlertParams
    inputs = {"in": ReidDecision}
    deploy = Deploy(image="registry.example/alerts:2")

    def process(self, decision: ReidDecision) -> None:
        if decision.name in self.params.names:
            self.log.warning("%s seen in %s", decision.name, decision.video)
'''


def graph_with_alert(tmp_path: Path, edge: str) -> tuple[Path, subprocess.CompletedProcess]:
    """video_reid plus the one-file AlertNode fed by `edge`, and `zdg validate` of it."""
    package = tmp_path / "alerts"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "node.py").write_text(NEW_NODE)
    text = (REPO / "graphs/video_reid.yaml").read_text()
    text = text.replace("edges:\n", "  - {name: alert, type: 'alerts.node:AlertNode', params: {names: [Ross]}}\nedges:\n")
    graph_path = tmp_path / "with_alert.yaml"
    graph_path.write_text(text + f"  - {edge}\n")
    return graph_path, zdg("validate", str(graph_path), env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"})


def test_a_new_node_type_is_one_file_outside_zdg(tmp_path):
    graph_path, done = graph_with_alert(tmp_path, "{from: reid, to: alert, pattern: pub, topic: reid}")
    assert done.returncode == 0, done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        graph = load_graph(graph_path)
        doc = build_compose(graph, ComposeFiles(tmp_path, graph_path, store_service().init_file), [])
        single = tmp_path / "restart_node.yaml"  # without graph recovery, only the nodes that use the store wait for it
        single.write_text(graph_path.read_text().replace("on_crash: restart_graph", "on_crash: restart_node"))
        alone = build_compose(load_graph(single), ComposeFiles(tmp_path, single, store_service().init_file), [])
    finally:
        sys.path.remove(str(tmp_path))
    assert doc["services"]["alert"]["image"] == "${ZDG_ALERTS_IMAGE:-registry.example/alerts:2}"
    assert "--graph-recovery" in doc["services"]["alert"]["command"] and "depends_on" in doc["services"]["alert"]
    assert "depends_on" not in alone["services"]["alert"] and "depends_on" in alone["services"]["reid"]
    assert not any("--graph-recovery" in service["command"] for service in alone["services"].values() if "command" in service)
    assert doc["services"]["sequencer"]["image"].endswith("zdg-faces:0.1.0}")


def test_wrong_typed_edge_to_a_new_node_is_refused(tmp_path):
    _, done = graph_with_alert(tmp_path, "{from: sequencer, to: alert}")
    assert done.returncode == 2
    assert "sequencer.out sends Sequence but alert.in takes ReidDecision" in done.stderr


def test_committed_graph_schema_is_current_and_checks_params():
    jsonschema = pytest.importorskip("jsonschema")
    import json

    import yaml

    done = zdg("schema")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (REPO / "graphs" / "graph.schema.json").read_text(), \
        "graphs/graph.schema.json is out of date: run `zdg schema -o graphs/graph.schema.json`"
    schema = json.loads(done.stdout)
    for path in (REPO / "graphs").glob("*.yaml"):
        assert path.read_text().startswith("# yaml-language-server: $schema=graph.schema.json\n"), path
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    bad = yaml.safe_load((REPO / "graphs" / "video_reid.yaml").read_text())
    bad["nodes"][1]["params"]["min_scor"] = 0.3
    with pytest.raises(jsonschema.ValidationError, match="min_scor"):
        jsonschema.validate(bad, schema)
