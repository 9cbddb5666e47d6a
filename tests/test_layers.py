"""The rooms of `nodes/` import one way (README "Where things are"), and the framework imports no app.

Layers, top first; a module may import its own layer and those below it. Imports under
`if TYPE_CHECKING:` only name types for annotations and are not counted.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = [  # (name, module prefixes), top first
    ("app", ["nodes.app"]),
    ("tools", ["nodes.tools"]),
    ("node files", ["nodes.video_source", "nodes.detector", "nodes.embedder", "nodes.sequencer", "nodes.db_writer",
                    "nodes.reid", "nodes.gallery_sink", "nodes.jsonl_sink", "nodes.mqtt_sink", "nodes.mqtt_link",
                    "nodes.watch_alerts"]),
    ("store", ["nodes.store"]),
    ("vision", ["nodes.vision"]),
    ("matching", ["nodes.matching"]),
    ("edge types and settings", ["nodes.messages", "nodes.environment"]),
]
SIBLINGS = {("store", "vision")}  # neither may import the other
APP_LIBRARIES = re.compile(r"postgres|pgvector|insightface|onnxruntime|psycopg", re.IGNORECASE)


def layer_of(module: str) -> int:
    if module == "nodes":  # the package itself holds only its docstring
        return len(LAYERS) - 1
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py: give it one")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(source)
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
               for stmt in node.body for n in ast.walk(stmt)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.lineno, submodule if is_module(submodule := f"{node.module}.{alias.name}") else node.module)
                      for alias in node.names]  # `from nodes.vision import tracking` imports nodes.vision.tracking
    return found


def is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def wrong_imports(files: list[Path]) -> list[str]:
    problems = []
    for path in files:
        own = module_name(path)
        for line, imported in runtime_imports(path.read_text()):
            if not (imported == "nodes" or imported.startswith("nodes.")):
                continue
            if own.startswith("zdg"):
                problems.append(f"{path.relative_to(REPO)}:{line}: the framework imports the app ({imported})")
                continue
            mine, theirs = layer_of(own), layer_of(imported)
            pair = (LAYERS[mine][0], LAYERS[theirs][0])
            if theirs < mine or pair in SIBLINGS or pair[::-1] in SIBLINGS:
                problems.append(f"{path.relative_to(REPO)}:{line}: {LAYERS[mine][0]} imports {LAYERS[theirs][0]} "
                                f"({imported})")
    return problems


def project_files() -> list[Path]:
    return sorted(p for folder in ("zdg", "nodes") for p in (REPO / folder).rglob("*.py"))


def test_every_import_goes_down_a_layer():
    assert wrong_imports(project_files()) == []


@pytest.mark.parametrize(("module", "line"), [
    ("nodes/matching/setdist.py", "from nodes.store.db import connect\n"),
    ("nodes/vision/tracking.py", "from nodes.store.clusters import merge\n"),
    ("nodes/store/pg.py", "from nodes.detector import DetectorNode\n"),
    ("nodes/matching/decision.py", "from nodes.vision import tracking\n"),
    ("zdg/worker.py", "import nodes.messages\n"),
])
def test_one_wrong_import_is_named(tmp_path, module, line):
    path = REPO / module
    source = path.read_text()
    assert wrong_imports([path]) == []
    path.write_text(source + line)
    try:
        problems = wrong_imports([path])
    finally:
        path.write_text(source)
    assert len(problems) == 1 and problems[0].startswith(f"{module}:{source.count(chr(10)) + 1}:")


def test_nodes_top_level_holds_node_files_and_edge_types_only():
    top = sorted(module_name(p) for p in (REPO / "nodes").glob("*.py"))
    assert len(top) <= 16, top
    assert {LAYERS[layer_of(name)][0] for name in top} == {"node files", "edge types and settings"}


def test_the_framework_names_no_database_or_face_library():
    """The store and the images come from the application's plugins (zdg.store, zdg.images): zdg/ names none of
    the libraries behind them, in code or in words."""
    named = [f"{path.relative_to(REPO)}:{number}: {line.strip()}" for path in sorted((REPO / "zdg").rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1) if APP_LIBRARIES.search(line)]
    assert named == []
