"""Open the store: an external server ($ZDG_DSN or a `dsn` param) or the embedded PostgreSQL."""

from __future__ import annotations

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from nodes.environment import FaceEnvironment

EXTENSION_LOCK = 7242
NEIGHBOUR_PROBES = 10  # ivfflat.probes of the store's own nearest-cluster lookups (maintenance, corrections)
# A peer that vanished without closing (a container killed or cut off mid-query, a network that drops packets) is
# noticed in about half a minute on both ends, not after TCP's quarter of an hour: a node never waits forever on a
# silent socket, and the server drops a dead node's session, with any lock it held. A DSN's own values win.
CLIENT_LIVENESS = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3",
                   "tcp_user_timeout": "30000", "connect_timeout": "5"}
SERVER_LIVENESS = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3",
                   "tcp_user_timeout": "30000"}


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


def open_connection(dsn: str) -> psycopg.Connection:
    """An autocommit connection that notices a dead peer (CLIENT_LIVENESS, SERVER_LIVENESS); raises
    psycopg.OperationalError if the store is unreachable."""
    given = psycopg.conninfo.conninfo_to_dict(dsn)
    conn = psycopg.connect(dsn, autocommit=True, **{k: v for k, v in CLIENT_LIVENESS.items() if k not in given})
    set_configs(conn, {k: v for k, v in SERVER_LIVENESS.items() if k not in given.get("options", "")})
    return conn


def set_configs(conn: psycopg.Connection, settings: dict[str, object], local: bool = False) -> None:
    """Set server settings for the session (`local`: for the rest of the transaction, as SET LOCAL), in one round
    trip."""
    if settings:
        conn.execute("SELECT " + ", ".join(["set_config(%s, %s, %s)"] * len(settings)),
                     [x for name, value in settings.items() for x in (name, str(value), local)])


def connect(dsn: str) -> psycopg.Connection:
    """open_connection with pgvector registered, and the IVFFlat lists its nearest-cluster lookups probe."""
    conn = open_connection(dsn)
    with conn.transaction():  # one node at a time: concurrent CREATE EXTENSION on a fresh store collide
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (EXTENSION_LOCK,))
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    register_vector(conn)
    set_configs(conn, {"ivfflat.probes": NEIGHBOUR_PROBES})
    return conn
