"""Distance thresholds belong to the embedding model: one calibration file per model, made by `zdg calibrate`.

Lookup: a node's `calibration` param (a file), else the file shipped for the model in nodes/matching/calibrated/.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from zdg.node import FatalNodeError

SHIPPED = Path(__file__).with_name("calibrated")


class Thresholds(BaseModel):
    """What `zdg calibrate` picked for one model, and from what."""

    model: str = Field(description="embedding space: the insightface pack name, or 'dlib'")
    distance: str = Field("mean_min", description="set distance the join thresholds are measured in")
    join: float = Field(gt=0, le=2, description="reid: a sequence joins a cluster below this set distance")
    named_join: float = Field(gt=0, le=2, description="reid: tolerance for enrolled (named) identities")
    cross_join: float | None = Field(None, gt=0, le=2, description="reid: two clusters of different sources (another "
                                     "scene) that are each other's clear nearest merge below this (None: `join`)")
    link_cosine: float = Field(ge=-1, le=1, description="sequencer: appearance alone links faces at or above this")
    split_cosine: float = Field(ge=-1, le=1, description="sequencer: a match below this cosine starts a new sequence")
    false_merge_rate: float = Field(description="target: share of different-person pairs under `join`")
    cross_false_merge_rate: float | None = Field(None, description="share of different-person pairs under `cross_join`")
    command: str = Field("", description="the command that wrote this file")
    figures: dict = Field(default_factory=dict, description="pair counts and what the thresholds give on the data")


def embedding_space(backend: str, pack: str, model: str | None) -> str:
    """The name calibrations are filed under: the recogniser family and model that made the vectors."""
    if backend == "dlib":
        return "dlib"
    return pack if model is None else f"{pack}/{Path(model).stem}"


def shipped_path(model: str) -> Path:
    return SHIPPED / f"{model.replace('/', '__')}.json"


def load_thresholds(model: str, path: str | None = None) -> Thresholds:
    """The calibration for `model` (from `path` when given). FatalNodeError names what is missing or wrong."""
    file = Path(path) if path else shipped_path(model)
    if not file.is_file():
        raise FatalNodeError(f"no calibration for embedding model {model!r} ({file} not found): run "
                             f"`zdg calibrate --graph GRAPH --video CLIP [--truth TRUTH.json] --photos DIR -o {file}`, "
                             "or set the node's thresholds by hand")
    try:
        found = Thresholds.model_validate_json(file.read_text())
    except ValidationError as exc:
        raise FatalNodeError(f"{file}: not a calibration file: {exc}") from None
    if found.model != model:
        raise FatalNodeError(f"{file}: calibrated for model {found.model!r}, but the embeddings come from {model!r}")
    return found
