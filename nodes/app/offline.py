"""A graph's face nodes run in this process over one clip (no sockets, no store): for calibration and evaluation.

The source, detector, embedder and sequencer are the graph's own node classes with its params, so what is
measured here is what the graph would store.
"""

from __future__ import annotations

from typing import Any

from nodes.messages import Faces, Sequence
from zdg.config import Graph, NodeDef
from zdg.testing import NodeHarness
from zdg.typed import receive


def node_of_type(graph: Graph, type_name: str) -> NodeDef:
    found = [n for n in graph.nodes.values() if n.type == type_name]
    if not found:
        raise LookupError(f"{graph.path}: no {type_name} node (the graph gives the models and the store)")
    return found[0]


def harness(graph: Graph, type_name: str, **overrides: Any) -> NodeHarness:
    ndef = node_of_type(graph, type_name)
    return NodeHarness(ndef.cls, ndef.params.model_copy(update=overrides))


def clip_faces(graph: Graph, clip: str, video_id: str) -> list[Faces]:
    """Every frame's embedded faces, as the graph's source, detector and embedder give them."""
    faces: list[Faces] = []
    with (harness(graph, "video_source", path=clip, video_id=video_id, checkpoint=False) as source,
          harness(graph, "detector") as detector, harness(graph, "embedder") as embedder):
        for frame in source.node.generate():
            for found in detector.feed(frame):
                faces += [receive(Faces, m) for m in embedder.feed(receive(Faces, found))]
    return faces


def clip_sequences(graph: Graph, faces: list[Faces], **sequencer: Any) -> list[Sequence]:
    """The closed sequences the graph's sequencer (with `sequencer` params changed) makes of those faces."""
    with harness(graph, "sequencer", **sequencer) as h:
        h.feed(*faces)
        return h.typed("out", finish=True)
