"""The annotated video is drawn with the ids that are valid at the end, not those merged away meanwhile."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from nodes.gallery_sink import GallerySinkNode
from nodes.messages import CROP_SIZE, ReidDecision
from zdg.testing import NodeHarness


def decision(cluster_id: int, status: str, frames: list[int], merged_from: int | None = None) -> ReidDecision:
    n = len(frames)
    return ReidDecision(sequence_id="v:0:0", sequence_db_id=7, video="v", video_path=__file__, first_frame=0, last_frame=9,
                        cluster_id=cluster_id, status=status, distance=0.2, silhouette=None, name=None,
                        frames=np.asarray(frames, np.int32), boxes_xyxy=np.tile([1, 2, 30, 40], (n, 1)).astype(np.float32),
                        crops=np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8), crop_frames=np.zeros(0, np.int32),
                        merged_from=merged_from)


def test_a_merged_sequence_is_drawn_with_the_cluster_it_was_merged_into(tmp_path):
    drawn = {}
    with NodeHarness(GallerySinkNode, out_dir=str(tmp_path), label_field="label") as node:
        node.node.annotate = SimpleNamespace(annotate_video=lambda path, boxes, out: drawn.update(boxes) or len(boxes))
        node.feed(decision(14, "new", [0, 2]))
        node.feed(decision(3, "merged", [], merged_from=14))
        node.finish()
    assert {frame: [label for _, label in found] for frame, found in drawn.items()} == {0: ["face 3"], 2: ["face 3"]}


def test_provisional_decisions_are_not_drawn_and_streams_keep_nothing_in_memory(tmp_path):
    from dataclasses import replace

    drawn = {}
    with NodeHarness(GallerySinkNode, out_dir=str(tmp_path), label_field="label") as node:
        node.node.annotate.annotate_video = lambda path, boxes, out: drawn.update(boxes) or len(boxes)
        node.feed(decision(5, "provisional", [0, 2]))
        node.feed(replace(decision(6, "new", [4, 6]), sequence_id="cam:0:0", video="cam", video_path="rtsp://cam/1"))
        node.feed(decision(14, "new", [8]))
        assert (list(node.node.boxes), list(node.node.labels)) == (["v"], ["v:0:0"]), "nothing of the stream is kept"
        node.finish()
    assert {frame: [label for _, label in found] for frame, found in drawn.items()} == {8: ["face 14"]}
