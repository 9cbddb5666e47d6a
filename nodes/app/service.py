"""What the CLI, the workbench and `zdg.Store` share: a graph's store, its models, its re-id settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nodes.app.offline import node_of_type
from nodes.environment import FaceEnvironment, default_graph
from zdg.config import Graph
from zdg.node import zdg_environment

if TYPE_CHECKING:
    from nodes.detector import DetectorNode
    from nodes.embedder import EmbedderNode
    from nodes.matching.decision import ReidSettings
    from nodes.store.pg import PgFaceStore

MAIN_GRAPH = "video_reid.yaml"  # the graph whose store and models the face commands use unless told


def main_graph() -> Path:
    """graphs/video_reid.yaml here, else the checkout's: the store commands work from any folder."""
    return default_graph(MAIN_GRAPH)


def embedding_model(graph: Graph) -> str:
    """The name the graph's embedder files its vectors (and calibration) under."""
    from nodes.matching.thresholds import embedding_space

    p = node_of_type(graph, "embedder").params
    return embedding_space(p.backend, p.pack, p.model)


def reid_settings(graph: Graph) -> ReidSettings:
    """The graph's reid settings with the thresholds it leaves out taken from its model's calibration."""
    from nodes.matching.decision import for_model

    return for_model(node_of_type(graph, "reid").params, embedding_model(graph))


class EmptyStore(LookupError):
    """The store holds nothing yet (no graph has written to it, nothing was enrolled)."""


def open_store(graph: Graph, dim: int | None = None, empty_ok: bool = False) -> PgFaceStore:
    """The store the graph's reid node uses (with `dim`: created or checked for that embedding dimension); an
    empty one raises EmptyStore unless `empty_ok`."""
    from nodes.store.db import describe, resolve_dsn
    from nodes.store.pg import PgFaceStore

    params = node_of_type(graph, "reid").params
    dsn = resolve_dsn(params.dsn, params.store_dir, FaceEnvironment.of(zdg_environment()))
    store = PgFaceStore.open(dsn, dim)
    if not store.dim and not empty_ok:
        store.close()
        raise EmptyStore(f"the store ({describe(dsn)}) holds nothing yet: run a graph on a clip, or `zdg enroll` photos")
    return store


def load_models(graph: Graph) -> tuple[DetectorNode, EmbedderNode]:
    from zdg.node import NodeContext

    made = []
    for type_name in ("detector", "embedder"):
        ndef = node_of_type(graph, type_name)
        node = ndef.cls(ndef.params, NodeContext(graph.name, ndef.name, env=zdg_environment()))
        node.setup()
        made.append(node)
    return made


def annotated_videos_dir(graph: Graph) -> Path:
    """Where the graph's gallery writes annotated videos (out/reid without one)."""
    gallery = [n for n in graph.nodes.values() if n.type == "gallery_sink"]
    return Path(gallery[0].params.out_dir) if gallery else Path("out/reid")
