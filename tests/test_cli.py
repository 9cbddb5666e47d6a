"""CLI surfaces other than run/validate: graph drawing, top, help."""

from __future__ import annotations

import json

from tests.conftest import REPO, zdg


def test_graph_renders_mermaid_and_dot():
    mermaid = zdg("graph", str(REPO / "graphs/demo.yaml"))
    assert mermaid.returncode == 0
    assert "flowchart LR" in mermaid.stdout and "counter -->|push| square" in mermaid.stdout
    dot = zdg("graph", str(REPO / "graphs/demo.yaml"), "--format", "dot")
    assert '"square" -> "collect" [label="pub squares"]' in dot.stdout


def test_demo_runs_and_top_shows_its_metrics(run_dir):
    proc = zdg("run", str(REPO / "graphs/demo.yaml"), "--run-dir", str(run_dir), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "collected 1000 messages" in proc.stderr
    timing = json.loads((run_dir / "metrics.json").read_text())["timing_s"]
    firsts = timing["first_in_s"]
    assert set(firsts) == {"relay-e2", "square", "collect"}
    assert firsts["square"] <= min(firsts["collect"], firsts["relay-e2"]), "square's receivers after square"
    assert 0 < firsts["collect"] < timing["run_s"]
    assert f"whole run {timing['run_s']:.1f} s" in proc.stderr
    top = zdg("top", str(run_dir), "--once")
    assert top.returncode == 0
    assert "square" in top.stdout and "done" in top.stdout


def test_help_lists_commands():
    proc = zdg("--help")
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.startswith("    ") and not line.startswith("     ")}
    assert {"validate", "run", "sub", "graph", "top", "node", "calibrate", "store", "ui"} <= listed, listed


def test_a_bad_input_file_is_one_line_and_exit_1_from_the_cli_and_an_exception_to_a_library(tmp_path):
    import pytest

    from nodes.matching.truth import load_truth
    from zdg.node import CommandError

    bad = tmp_path / "truth.json"
    bad.write_text("{not json")
    with pytest.raises(CommandError, match="not a truth file"):
        load_truth(bad)
    done = zdg("eval", "video", "clip.mp4", str(bad))
    assert done.returncode == 1 and done.stderr.startswith(f"zdg: {bad}: not a truth file") and "Traceback" not in done.stderr


def test_an_entry_point_left_stale_by_an_update_says_to_install_again(monkeypatch, capsys):
    from importlib.metadata import EntryPoint

    from zdg import cli, registry

    stale = EntryPoint("faces", "nodes.commands:add_commands", registry.COMMAND_GROUP)  # where it was before nodes/app/
    monkeypatch.setattr(registry, "entry_points", lambda group: [stale] if group == registry.COMMAND_GROUP else [])
    assert cli.main(["validate", str(REPO / "graphs" / "demo.yaml")]) == 1
    said = capsys.readouterr().err
    assert "entry point 'faces' (nodes.commands:add_commands) cannot be imported" in said
    assert "pip install -e ." in said and "Traceback" not in said


def test_a_forked_node_restarting_in_place_runs_the_same_zdg_node_command():
    from zdg.cli import build_parser, launch_of
    from zdg.node_process import NodeLaunch

    launch = NodeLaunch(REPO / "graphs" / "demo.yaml", "square", 1, ["square.delay=0", "counter.count=5"],
                        REPO / "run", "tcp", REPO / "keys", {"edge": "10.0.0.2"}, True, "wait", True)
    assert launch_of(build_parser().parse_args(launch.argv())) == launch  # zdg.recovery.reexecute runs sys.argv
    assert launch_of(build_parser().parse_args(NodeLaunch(REPO / "g.yaml", "n").argv())) == NodeLaunch(REPO / "g.yaml", "n")
