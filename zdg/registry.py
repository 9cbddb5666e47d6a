"""Resolve a node `type:` (a built-in name or `package.module:Class`) to its class."""

from __future__ import annotations

import importlib

from zdg.node import Node

# Built-in types are imported lazily so a demo graph never loads face models.
BUILTIN_TYPES: dict[str, str] = {
    "counter": "zdg.demo_nodes:CounterNode",
    "square": "zdg.demo_nodes:SquareNode",
    "collect": "zdg.demo_nodes:CollectNode",
    "relay": "zdg.demo_nodes:RelayNode",
    "video_source": "nodes.video_source:VideoSourceNode",
    "detector": "nodes.detector:DetectorNode",
    "embedder": "nodes.embedder:EmbedderNode",
    "sequencer": "nodes.sequencer:SequencerNode",
    "jsonl_sink": "nodes.jsonl_sink:JsonlSinkNode",
    "gallery_sink": "nodes.gallery_sink:GallerySinkNode",
    "db_writer": "nodes.db_writer:DbWriterNode",
    "reid": "nodes.reid:ReidNode",
}


class UnknownNodeType(LookupError):
    """`type:` names nothing importable."""


def resolve(type_name: str) -> type[Node]:
    target = BUILTIN_TYPES.get(type_name, type_name)
    if ":" not in target:
        known = ", ".join(sorted(BUILTIN_TYPES))
        raise UnknownNodeType(f"unknown node type {type_name!r} (built-in: {known}; or use package.module:Class)")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = " (face and store nodes need `pip install 'zdg[faces]'`)" if module_name.startswith("nodes.") else ""
        raise UnknownNodeType(f"node type {type_name!r}: cannot import {module_name}: {exc}{hint}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise UnknownNodeType(f"node type {type_name!r}: {target} is not a zdg Node class")
    return cls
