"""JSONL sink: one line per message with its fields; arrays summarised, embeddings optionally included."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from zdg.message import Message
from zdg.node import Params, SinkNode


class JsonlSinkParams(Params):
    path: str = Field("out/sequences.jsonl", description="output file (appended)")
    include_embeddings: bool = Field(False, description="write the embeddings as lists")


class JsonlSinkNode(SinkNode):
    """Any message in: its header fields as one JSON line, arrays as their shapes (a few as lists)."""

    TYPE = "jsonl_sink"
    Params = JsonlSinkParams

    def setup(self) -> None:
        path = Path(self.params.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a", buffering=1)

    def process(self, msg: Message) -> None:
        row = dict(msg.fields)
        for name, arr in msg.arrays.items():
            if name in ("frames", "crop_frames", "scores") or (name == "embeddings" and self.params.include_embeddings):
                row[name] = arr.tolist()
            elif name != "crops":
                row.setdefault("shapes", {})[name] = list(arr.shape)
        self.file.write(json.dumps(row) + "\n")

    def teardown(self) -> None:
        self.file.close()
