"""The face application's ZDG_* settings, read once at the edge (worker or CLI) and passed in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from zdg.node import Params

STORE_DIR = Path(".zdg/store")
DEFAULT_CLIP = "videos/friends_poker.mp4"
CHECKOUT = Path(__file__).resolve().parents[1]  # the folder that holds nodes/ (and, in a checkout, graphs/)
SHARED_DATA = CHECKOUT.parent / "shared" / "data"  # ../shared/data beside the repo


def home(cwd: Path | None = None, checkout: Path = CHECKOUT) -> Path:
    """Where relative defaults live: the checkout zdg runs from (it holds graphs/ and pyproject.toml), so a
    command run in any folder finds the same graph and store; the current folder for an installed package."""
    if (checkout / "graphs").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout
    return cwd or Path.cwd()


def default_store_dir(cwd: Path | None = None, checkout: Path = CHECKOUT) -> Path:
    """The embedded store's folder: .zdg/store here when this folder has one (made before defaults moved to the
    checkout: nothing stored is left behind), else the home's."""
    here = (cwd or Path.cwd()) / STORE_DIR
    return here if here.is_dir() else home(cwd, checkout) / STORE_DIR


def default_graph(name: str, cwd: Path | None = None, checkout: Path = CHECKOUT) -> Path:
    """graphs/<name> here when this folder has it, else the home's."""
    here = (cwd or Path.cwd()) / "graphs" / name
    return here if here.is_file() else home(cwd, checkout) / "graphs" / name


@dataclass(frozen=True)
class FaceEnvironment:
    dsn: str | None  # ZDG_DSN: an external Postgres + pgvector; None: the embedded server
    store_dir: str  # ZDG_STORE_DIR: the embedded server's data folder
    model_root: str | None  # ZDG_MODEL_ROOT: where model packs are looked for first
    data_root: Path  # ZDG_DATA_ROOT: the shared clips and photos

    @classmethod
    def of(cls, env: Mapping[str, str]) -> FaceEnvironment:
        return cls(env.get("ZDG_DSN") or None, env.get("ZDG_STORE_DIR") or str(default_store_dir()),
                   env.get("ZDG_MODEL_ROOT") or None, Path(env.get("ZDG_DATA_ROOT") or SHARED_DATA))

    def model_root_for(self, param: str | None) -> str | None:
        """A node's `model_root` param, else $ZDG_MODEL_ROOT (nodes.vision.models then tries ~/.insightface)."""
        return param or self.model_root

    @property
    def default_clip(self) -> str:
        return str(self.data_root / DEFAULT_CLIP)


class StoreParams(Params):
    """Where a node finds the store."""

    dsn: str | None = Field(None, description="Postgres DSN; default $ZDG_DSN, else the embedded server")
    store_dir: str | None = Field(None, description="embedded server data folder (default $ZDG_STORE_DIR, else "
                                  ".zdg/store in the current folder if it has one, else in the checkout)")
    wait_s: float = Field(600, gt=0, description="how long to wait for an unreachable store before failing")
