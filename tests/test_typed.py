"""Typed edges: messages check themselves, `zdg validate` checks edges, ports drop what does not fit."""

from __future__ import annotations

import numpy as np
import pytest

from nodes.messages import Faces, Frame, ReidDecision, Sequence
from tests.conftest import REPO
from zdg.config import GraphError, load_graph
from zdg.message import Message
from zdg.testing import over_the_wire
from zdg.typed import MessageTypeError


def faces(n: int, dim: int = 0) -> Faces:
    return Faces("v", "v.mp4", 4, 2, 0.1, np.zeros((n, 4), np.float32), np.zeros((n, 5, 2), np.float32),
                 np.ones(n, np.float32), np.ones(n, np.float32), np.zeros((n, 112, 112, 3), np.uint8),
                 np.ones((n, dim), np.float32) if dim else np.zeros((0, 0), np.float32))


def test_each_edge_type_survives_the_wire_with_one_name_per_quantity():
    frame = Frame("v", "v.mp4", 4, 2, 0.1, np.full((6, 8, 3), 7, np.uint8))
    back = Frame.from_message(over_the_wire(frame))
    assert (back.video, back.frame, back.seq, back.ts) == ("v", 4, 2, 0.1) and back.image.shape == (6, 8, 3)
    embedded = Faces.from_message(over_the_wire(faces(3, dim=16)))
    assert embedded.embeddings.shape == (3, 16) and len(embedded) == 3
    assert over_the_wire(faces(2)).fields["kind"] == "faces"
    assert {"embeddings", "boxes_xyxy", "kps", "crops"} <= set(over_the_wire(faces(1, dim=8)).arrays)


def test_shape_and_dtype_errors_say_expected_and_actual():
    with pytest.raises(MessageTypeError, match=r"Faces.kps: expected shape \(n=2, 5, 2\) float32, got \(2, 4\) float32"):
        Faces("v", "", 0, 0, 0.0, np.zeros((2, 4), np.float32), np.zeros((2, 4), np.float32), np.ones(2, np.float32),
              np.ones(2, np.float32), np.zeros((2, 112, 112, 3), np.uint8))
    with pytest.raises(MessageTypeError, match="Frame.image: expected dtype uint8, got float32"):
        Frame("v", "", 0, 0, 0.0, np.zeros((4, 4, 3), np.float32))
    with pytest.raises(MessageTypeError, match="expected a 'sequence' message, got kind 'faces'"):
        Sequence.from_message(over_the_wire(faces(1)))
    msg = over_the_wire(faces(1))
    del msg.arrays["crops"]
    with pytest.raises(MessageTypeError, match="Faces: array 'crops' missing"):
        Faces.from_message(msg)
    msg = over_the_wire(faces(1))
    msg.fields["frame"] = "four"
    with pytest.raises(MessageTypeError, match="Faces.frame: expected"):
        Faces.from_message(msg)


def test_decision_publishes_its_label():
    decision = ReidDecision("v:1", 5, "v", "", 0, 9, 12, "new", None, None, None, np.arange(3, dtype=np.int32),
                            np.zeros((3, 4), np.float32), np.zeros((0, 112, 112, 3), np.uint8), np.zeros(0, np.int32))
    assert over_the_wire(decision).fields["label"] == "face 12"
    named = ReidDecision.from_message(over_the_wire(decision))
    assert named.cluster_id == 12 and named.name is None and named.distance is None


def test_validate_refuses_an_edge_whose_types_disagree(write_graph):
    text = (REPO / "graphs/video_reid.yaml").read_text().replace("  - {from: source, to: detector}",
                                                                  "  - {from: source, to: detector}\n"
                                                                  "  - {from: source, to: reid}")
    path = write_graph(text)
    with pytest.raises(GraphError) as info:
        load_graph(path)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "{from: source, to: reid}" in t)
    assert str(info.value) == f"{path}:{line}: edges[1]: source.out sends Frame but reid.in takes Sequence"


def test_a_port_that_takes_several_types_accepts_each(write_graph):
    text = (REPO / "graphs/video_sequences.yaml").read_text()
    assert load_graph(write_graph(text)).nodes["gallery"].cls.inputs["in"] == (Sequence, ReidDecision)


def test_message_that_does_not_fit_a_typed_port_is_counted_and_dropped(write_graph, tmp_path, run_graph):
    out = tmp_path / "got.jsonl"
    graph = write_graph(f"""\
        name: t
        nodes:
          - {{name: counter, type: counter, params: {{count: 20}}}}
          - {{name: sequences, type: "tests.typed_nodes:SequenceCountNode", params: {{path: {out}}}}}
        edges:
          - {{from: counter, to: sequences}}
        """)
    result = run_graph(graph)
    assert result.proc.returncode == 0, result.proc.stderr
    assert result.total("sequences", "decode_errors") == 20
    assert result.total("sequences", "errors") == 0
    assert not out.exists() or out.read_text() == ""


def test_untyped_message_is_passed_as_is():
    from zdg.typed import receive

    msg = Message(fields={"i": 1})
    assert receive(None, msg) is msg
