"""zdg: a ZeroMQ directed-graph network of small nodes that re-identifies faces in video.

For notebooks and scripts: `zdg.subscribe(endpoint, topic)` yields a published topic's messages decoded;
`zdg.Store()` reads the face store (identities, sequences, search by photo; needs the faces extra).
"""

from typing import Any

from zdg.subscribe import subscribe

__version__ = "0.1.0"
__all__ = ["Store", "subscribe"]


def __getattr__(name: str) -> Any:
    if name == "Store":  # the face application's; imported only when asked for, the framework stays free of it
        from nodes.client import Store

        return Store
    raise AttributeError(f"module 'zdg' has no attribute {name!r}")
