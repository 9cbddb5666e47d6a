"""`zdg run` starts the embedded store once, before the nodes that use it, and hands them its DSN.

Nodes opening a fresh embedded store at once raced (initdb's system user, CREATE EXTENSION); and a
node that owned the server took it down, or left it running, when it died.
"""

from __future__ import annotations

from collections.abc import Mapping

from nodes.environment import FaceEnvironment
from zdg.config import Graph


def prepare_store(graph: Graph, env: Mapping[str, str]) -> dict[str, str]:
    """ZDG_DSN of the embedded server the graph's store nodes share, started here; nothing when they use a DSN."""
    users = [n for n in graph.nodes.values() if n.cls.deployment(n.params).store]
    embedded = {getattr(n.params, "store_dir", None) for n in users if not getattr(n.params, "dsn", None)}
    if not embedded or env.get("ZDG_DSN") or len(embedded) > 1:
        return {}
    from nodes.store.embedded import embedded_dsn

    return {"ZDG_DSN": embedded_dsn(embedded.pop() or FaceEnvironment.of(env).store_dir)}
