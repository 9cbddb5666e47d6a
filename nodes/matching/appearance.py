"""Clothing as evidence within one visit of one source: two sequences whose torso colours differ clearly are two
people (a family at one table, dressed differently), whatever their faces say. Never used across visits: people
change clothes."""

from __future__ import annotations

import numpy as np


def torso_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Hellinger distance of two L1-normalised histograms: 0 the same colours, 1 none in common."""
    return float(np.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(np.clip(a, 0, None) * np.clip(b, 0, None)))))))


def seen(torso: np.ndarray | None) -> bool:
    """A torso histogram that was measured (the body was in the frame)."""
    return torso is not None and len(torso) > 0 and float(torso.sum()) > 0


def dressed_distance(torso: np.ndarray, others: list[np.ndarray]) -> float | None:
    """How differently `torso` is dressed from the nearest-dressed of `others` (the same cluster's sequences of the
    same visit); None when either side was never seen."""
    measured = [o for o in others if seen(o)]
    return min(torso_distance(torso, o) for o in measured) if seen(torso) and measured else None


def dress_factor(distance: float | None, limit: float) -> float:
    """The share of the face's join threshold that clothing leaves within a visit: all of it up to half of `limit`
    (reid.torso_apart), none from `limit` on (dressed apart: someone else), and linearly less between: the more
    differently two are dressed, the nearer their faces must be. 1 when unseen (None) or off (`limit` 0)."""
    if distance is None or not limit:
        return 1.0
    return float(np.clip(2 * (limit - distance) / limit, 0.0, 1.0))
