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
    return Faces(video="v", video_path="v.mp4", frame=4, seq=2, ts=0.1, boxes_xyxy=np.zeros((n, 4), np.float32),
                 kps=np.zeros((n, 5, 2), np.float32), scores=np.ones(n, np.float32),
                 quality=np.ones(n, np.float32), crops=np.zeros((n, 112, 112, 3), np.uint8),
                 embeddings=np.ones((n, dim), np.float32) if dim else np.zeros((0, 0), np.float32))


def test_each_edge_type_survives_the_wire_with_one_name_per_quantity():
    frame = Frame(video="v", video_path="v.mp4", frame=4, seq=2, ts=0.1, image=np.full((6, 8, 3), 7, np.uint8))
    back = Frame.from_message(over_the_wire(frame))
    assert (back.video, back.frame, back.seq, back.ts) == ("v", 4, 2, 0.1) and back.image.shape == (6, 8, 3)
    embedded = Faces.from_message(over_the_wire(faces(3, dim=16)))
    assert embedded.embeddings.shape == (3, 16) and len(embedded) == 3
    assert over_the_wire(faces(2)).fields["kind"] == "faces"
    assert {"embeddings", "boxes_xyxy", "kps", "crops"} <= set(over_the_wire(faces(1, dim=8)).arrays)


def test_shape_and_dtype_errors_say_expected_and_actual():
    with pytest.raises(MessageTypeError, match=r"Faces.kps: expected shape \(n=2, 5, 2\) float32, got \(2, 4\) float32"):
        Faces(video="v", video_path="", frame=0, seq=0, ts=0.0, boxes_xyxy=np.zeros((2, 4), np.float32),
              kps=np.zeros((2, 4), np.float32), scores=np.ones(2, np.float32),
              quality=np.ones(2, np.float32), crops=np.zeros((2, 112, 112, 3), np.uint8))
    with pytest.raises(MessageTypeError, match="Frame.image: expected dtype uint8, got float32"):
        Frame(video="v", video_path="", frame=0, seq=0, ts=0.0, image=np.zeros((4, 4, 3), np.float32))
    with pytest.raises(MessageTypeError, match="expected a 'sequence' message, got kind 'faces'"):
        Sequence.from_message(over_the_wire(faces(1)))
    msg = over_the_wire(faces(1))
    del msg.arrays["crops"]
    with pytest.raises(MessageTypeError, match="Faces: array 'crops' missing"):
        Faces.from_message(msg)
    msg = over_the_wire(faces(1))
    msg.fields["frame"] = "four"
    with pytest.raises(MessageTypeError, match="Faces.frame: expected int, got str"):
        Faces.from_message(msg)
    msg.fields.update(frame=True)  # a bool is not a frame number
    with pytest.raises(MessageTypeError, match="Faces.frame: expected int, got bool"):
        Faces.from_message(msg)


def test_header_fields_are_typed_by_their_annotations():
    decision = ReidDecision(sequence_id="v:1", sequence_db_id=None, video="v", video_path="", first_frame=0,
                            last_frame=9, cluster_id=None, status="provisional", distance=None, silhouette=None,
                            name=None, frames=np.arange(3, dtype=np.int32), boxes_xyxy=np.zeros((3, 4), np.float32),
                            crops=np.zeros((0, 112, 112, 3), np.uint8), crop_frames=np.zeros(0, np.int32))
    msg = over_the_wire(decision)
    assert ReidDecision.from_message(msg).cluster_id is None  # int | None takes None
    msg.fields.update(distance=1)  # float | None takes an int, as a float
    assert type(ReidDecision.from_message(msg).distance) is float
    msg.fields.update(cluster_id="12")
    with pytest.raises(MessageTypeError, match="ReidDecision.cluster_id: expected int or None, got str"):
        ReidDecision.from_message(msg)
    assert set(over_the_wire(faces(1)).fields) >= {"video", "video_path", "frame", "seq", "ts", "camera", "location",
                                                   "start_time", "width", "height", "model"}
    with pytest.raises(TypeError):  # keyword-only: no positional mix-ups of 11 arguments
        Frame("v", "", 0, 0, 0.0, np.zeros((4, 4, 3), np.uint8))  # type: ignore[misc]


def test_decision_publishes_its_label():
    decision = ReidDecision(sequence_id="v:1", sequence_db_id=5, video="v", video_path="", first_frame=0, last_frame=9,
                            cluster_id=12, status="new", distance=None, silhouette=None, name=None,
                            frames=np.arange(3, dtype=np.int32), boxes_xyxy=np.zeros((3, 4), np.float32),
                            crops=np.zeros((0, 112, 112, 3), np.uint8), crop_frames=np.zeros(0, np.int32))
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
