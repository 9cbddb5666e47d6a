"""The face store as a service of a deployed graph (the `zdg.store` entry point): Postgres + pgvector in compose,
Swarm and Kubernetes, and the epoch board graph recovery keeps in it."""

from __future__ import annotations

from pathlib import Path

from zdg.recovery import EpochBoard
from zdg.shared_store import PASSWORD, StoreService

CHECKOUT = Path(__file__).resolve().parents[2]
DATA = "/var/lib/postgresql/data"


def epoch_board(dsn: str, graph: str, member: str, node: str) -> EpochBoard:
    from nodes.store.epochs import PgEpochBoard

    return PgEpochBoard(dsn, graph, member, node)


STORE = StoreService(
    service="postgres",
    image="pgvector/pgvector:pg17",  # `zdg build --store` makes a local stand-in for boxes without a registry
    what="Postgres + pgvector",
    port=5432,
    environment={"POSTGRES_USER": "zdg", "POSTGRES_PASSWORD": PASSWORD, "POSTGRES_DB": "zdg"},
    dsn="postgresql://zdg:{password}@{host}:5432/zdg",
    data=DATA,
    init="/docker-entrypoint-initdb.d/10-zdg.sql",
    init_file=CHECKOUT / "docker" / "db" / "init.sql",
    ready=("pg_isready", "-h", "127.0.0.1", "-U", "zdg", "-d", "zdg"),
    uid=999,  # postgres in the pgvector and zdg-store images
    epoch_board=epoch_board,
    dockerfile=CHECKOUT / "docker" / "store.Dockerfile",
    kubernetes_environment={"PGDATA": f"{DATA}/pgdata"},  # a volume's root may hold lost+found
)
