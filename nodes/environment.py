"""The face application's ZDG_* settings, read once at the edge (worker or CLI) and passed in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from zdg.node import Params

DEFAULT_STORE_DIR = ".zdg/store"
DEFAULT_CLIP = "videos/friends_poker.mp4"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data beside the repo


@dataclass(frozen=True)
class FaceEnvironment:
    dsn: str | None  # ZDG_DSN: an external Postgres + pgvector; None: the embedded server
    store_dir: str  # ZDG_STORE_DIR: the embedded server's data folder
    model_root: str | None  # ZDG_MODEL_ROOT: where model packs are looked for first
    data_root: Path  # ZDG_DATA_ROOT: the shared clips and photos

    @classmethod
    def of(cls, env: Mapping[str, str]) -> FaceEnvironment:
        return cls(env.get("ZDG_DSN") or None, env.get("ZDG_STORE_DIR") or DEFAULT_STORE_DIR,
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
    store_dir: str | None = Field(None, description="embedded server data folder (default .zdg/store)")
    wait_s: float = Field(600, gt=0, description="how long to wait for an unreachable store before failing")
