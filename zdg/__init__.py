"""zdg: a ZeroMQ directed-graph network of small nodes that re-identifies faces in video.

For notebooks and scripts: `zdg.subscribe(endpoint, topic)` yields a published topic's messages decoded;
`zdg.Store()` reads the face store (identities, sequences, search by photo; needs the faces extra).
"""

from typing import Any

from zdg.subscribe import subscribe

__version__ = "0.1.0"
__all__ = ["Store", "subscribe"]


def __getattr__(name: str) -> Any:
    """Names an installed application exports under `zdg.` (entry points `zdg.exports`: the face app's `Store`),
    imported only when asked for: the framework itself names no application."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="zdg.exports", name=name):
        return ep.load()
    raise AttributeError(f"module 'zdg' has no attribute {name!r}")
