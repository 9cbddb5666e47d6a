"""zdg: a ZeroMQ directed-graph network of small nodes that re-identifies faces in video."""

__version__ = "0.1.0"
