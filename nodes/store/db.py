"""Open the store: an external server ($ZDG_DSN or a `dsn` param) or the embedded PostgreSQL."""

from __future__ import annotations

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from nodes.environment import FaceEnvironment

EXTENSION_LOCK = 7242


def resolve_dsn(dsn: str | None, store_dir: str | None, env: FaceEnvironment) -> str:
    """The node's `dsn`, then $ZDG_DSN, then the embedded server in `store_dir` (else $ZDG_STORE_DIR, then
    nodes.environment.default_store_dir)."""
    if dsn or env.dsn:
        return dsn or env.dsn
    from nodes.store.embedded import embedded_dsn  # the `embedded` extra: images with a store service lack it

    return embedded_dsn(store_dir or env.store_dir)


def describe(dsn: str) -> str:
    """A DSN safe to log: no password."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    return f"{info.get('user', '')}@{info.get('host', 'localhost')}/{info.get('dbname', '')}"


def to_numpy(value: object) -> np.ndarray:
    """A vector column value (pgvector's Vector) as a float32 array."""
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, np.float32)


def connect(dsn: str) -> psycopg.Connection:
    """Connect (autocommit) with pgvector registered; raises psycopg.OperationalError if unreachable."""
    conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    with conn.transaction():  # one node at a time: concurrent CREATE EXTENSION on a fresh store collide
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (EXTENSION_LOCK,))
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    register_vector(conn)
    return conn
