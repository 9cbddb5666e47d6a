"""The store a graph's nodes share, as the application supplies it (entry point group `zdg.store`): how deployment
runs it as a service and where graph recovery keeps the graph's epoch. zdg itself knows only that a graph may have
one store, reached at the address in ZDG_DSN; what kind of database it is belongs to the plugin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from zdg import __version__

if TYPE_CHECKING:
    from zdg.recovery import EpochBoard

STORE_GROUP = "zdg.store"
PASSWORD = "{password}"  # stands for the database password in `environment` and `dsn`


@dataclass(frozen=True)
class StoreService:
    """The store as a service of the graph's network, and the epoch board of graph recovery."""

    service: str  # its name on the graph's network: compose service, Swarm service, Kubernetes StatefulSet
    image: str  # the image deployments run unless told otherwise (--store-image)
    what: str  # a few words for --help, e.g. the database and its extensions
    port: int
    environment: dict[str, str]  # the server's variables; PASSWORD in a value stands for the password
    dsn: str  # the nodes' ZDG_DSN, with "{password}" and "{host}"
    data: str  # its data folder in the container (a volume)
    init: str  # where the init script is mounted (run once on an empty data folder)
    init_file: Path  # that script
    ready: tuple[str, ...]  # a command in the container that succeeds once the store serves
    uid: int  # the server's user in the image: owns the volume (Kubernetes fsGroup)
    epoch_board: Callable[[str, str, str, str], EpochBoard]  # (dsn, graph, member, node), zdg.recovery
    dockerfile: Path | None = None  # `zdg build --store` builds a local stand-in image from it
    build_name: str = "zdg-store"
    kubernetes_environment: dict[str, str] = field(default_factory=dict)  # more variables under Kubernetes

    def address(self, password: str) -> str:
        """The address nodes get as ZDG_DSN, with `password` (a value or a variable reference)."""
        return self.dsn.format(password=password, host=self.service)

    def server_environment(self, password: str) -> dict[str, str]:
        return {key: value.replace(PASSWORD, password) for key, value in self.environment.items()}

    @property
    def scheme(self) -> str:
        return self.dsn.split("://", 1)[0]

    @property
    def build_image(self) -> str:
        return f"{self.build_name}:{__version__}"


class NoStorePlugin(LookupError):
    """A node needs the graph's store (or the graph recovers through it), and no application supplies one."""


@cache
def store_service() -> StoreService:
    """The installed application's store (the first `zdg.store` entry point by name)."""
    from zdg.registry import load_entry_point

    found = sorted(entry_points(group=STORE_GROUP), key=lambda ep: ep.name)
    if not found:
        raise NoStorePlugin(f"no application supplies a store (entry point group {STORE_GROUP}): a node that uses the "
                            "store, or settings.on_crash: restart_graph, needs one (pip install the application)")
    return load_entry_point(found[0])
