"""Positional truth for a clip (tests/data/friends_poker_truth.json format): who a sequence is, from where it starts.

A sequence is person P when its first frame lies in P's [first, last] and the x centre of its first box in
[x_min, x_max]; a sequence matching nobody is not a main character (junk, or someone unlabelled).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from zdg.node import CommandError


class Appearance(BaseModel):
    name: str
    first: int
    last: int
    x_min: float
    x_max: float


class Truth(BaseModel):
    people: list[Appearance]

    def name_at(self, first_frame: int, x_centre: float) -> str | None:
        for p in self.people:
            if p.first <= first_frame <= p.last and p.x_min <= x_centre <= p.x_max:
                return p.name
        return None


def load_truth(path: Path) -> Truth:
    try:
        return Truth.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError, ValidationError) as exc:
        raise CommandError(f"{path}: not a truth file ({exc})") from None
