"""Gallery sink: a PNG strip of best crops per sequence, and an annotated copy of each video."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Literal

from pydantic import Field

from nodes.messages import ReidDecision, Sequence
from nodes.vision.source_paths import is_stream
from zdg.node import Deploy, Params, SinkNode


class GallerySinkParams(Params):
    out_dir: str = Field("out/gallery", description="folder for <video>/seq_<n>.png and <video>_annotated.mp4")
    annotate_video: bool = Field(True, description="write an annotated copy of each video file at end of stream "
                                 "(streams get crop strips only)")
    label_field: Literal["sequence_id", "label", "cluster_id", "name", "status"] = Field(
        "sequence_id", description="drawn next to each box (label, cluster_id, name, status: re-id decisions only)")


class GallerySinkNode(SinkNode):
    """Takes sequences or re-id decisions (both carry crops, frames and boxes); one strip per sequence."""

    TYPE = "gallery_sink"
    Params = GallerySinkParams
    inputs = {"in": (Sequence, ReidDecision)}
    deploy = Deploy(image="zdg-faces", models=True)  # reads the clips it annotates
    preload = ("nodes.vision.annotate",)

    def setup(self) -> None:
        from nodes.vision import annotate

        self.annotate = annotate
        self.boxes: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
        self.labels: dict[str, str] = {}  # sequence id -> what is drawn next to its boxes
        self.paths: dict[str, str] = {}

    def process(self, item: Sequence | ReidDecision) -> None:
        if isinstance(item, ReidDecision) and item.status == "provisional":  # its decision follows when it closes
            return
        label = str(getattr(item, self.params.label_field, item.sequence_id))
        if isinstance(item, ReidDecision) and item.status == "merged":  # its cluster id changed: only relabel
            if item.sequence_id in self.labels:
                self.labels[item.sequence_id] = label
            return
        if len(item.crops):
            name = self.annotate.strip_name(item.sequence_id)
            self.annotate.write_strip(item.crops, Path(self.params.out_dir) / item.video / f"{name}.png")
        if not self.params.annotate_video or is_stream(item.video_path):
            return  # a stream cannot be read again to draw on: nothing of it is kept (memory stays flat)
        self.labels[item.sequence_id] = label
        self.paths[item.video] = item.video_path
        for frame, box in zip(item.frames, item.boxes_xyxy, strict=True):
            self.boxes[item.video][int(frame)].append((box, item.sequence_id))

    def finish(self) -> None:
        if not self.params.annotate_video:
            return
        for video, boxes in self.boxes.items():
            if Path(self.paths[video]).is_file():
                out = Path(self.params.out_dir) / f"{video}_annotated.mp4"
                labelled = {frame: [(box, self.labels[key]) for box, key in found] for frame, found in boxes.items()}
                frames = self.annotate.annotate_video(self.paths[video], labelled, out)
                self.log.info("annotated video: %s (%d frames)", out, frames)
