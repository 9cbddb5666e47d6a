"""`zdg calibrate`: every distance threshold of one embedding model, picked for a target false-merge rate.

The data are sets of faces with what is known about who they are:
  - sequences of a clip: two sequences on screen at the same time are two people (no labels needed);
    with a truth file (tests/data/friends_poker_truth.json format) also who each one is;
  - with `disjoint`, faces from different sources (clips, photo folders) are different people;
  - photos, a folder per identity: each photo becomes a set of frame-like variants.
From the different-person pairs ("impostors"), a threshold is the distance under which only
`false_merge_rate` of them fall (`cross_false_merge_rate` for the looser join across sources, which also needs
the two clusters to be each other's clear nearest); same-person pairs, where labels give some, say what recall that leaves.
The sequencer's cosines are picked first, from sequences tracked by position alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from nodes.matching.setdist import nearer_side_distance, set_distance
from nodes.matching.thresholds import Thresholds

FACES_PER_SET = 40  # faces of a set compared face to face (evenly spread) for the sequencer's cosines


@dataclass(frozen=True)
class FaceSet:
    """Faces of one person: a clip's sequence or a photo's variants."""

    group: str  # the clip (video id) or the photo folder it came from
    label: str | None  # who, when known
    embeddings: np.ndarray
    frames: tuple[int, int] | None = None  # first and last frame (clip sequences)
    photo: bool = False


def relation(a: FaceSet, b: FaceSet, disjoint: bool) -> bool | None:
    """True: same person; False: different people; None: unknown."""
    if a.group == b.group and a.frames and b.frames and a.frames[0] <= b.frames[1] and b.frames[0] <= a.frames[1]:
        return False  # on screen together
    if a.label is not None and b.label is not None:
        return a.label == b.label
    if disjoint and a.group != b.group:
        return False  # sources without a person in common
    return None


def spread(embeddings: np.ndarray) -> np.ndarray:
    if len(embeddings) <= FACES_PER_SET:
        return embeddings
    return embeddings[np.linspace(0, len(embeddings) - 1, FACES_PER_SET).round().astype(int)]


@dataclass
class Pairs:
    """Set distances of same-person and different-person pairs; `named` are photo-vs-sequence pairs."""

    same: list[float]
    different: list[float]
    named_same: list[float]
    named_different: list[float]
    face_cosines_different: list[float]


def collect_pairs(sets: list[FaceSet], method: str, disjoint: bool) -> Pairs:
    pairs = Pairs([], [], [], [], [])
    for a, b in combinations(sets, 2):
        same = relation(a, b, disjoint)
        if same is None:
            continue
        if a.photo != b.photo:
            photo, seq = (a, b) if a.photo else (b, a)
            d = set_distance(seq.embeddings, photo.embeddings, method)
            (pairs.named_same if same else pairs.named_different).append(d)
            continue
        if a.photo:
            continue  # photo vs photo says little about video
        (pairs.same if same else pairs.different).append(nearer_side_distance(a.embeddings, b.embeddings, method))
        if not same:
            pairs.face_cosines_different += (spread(a.embeddings) @ spread(b.embeddings).T).ravel().tolist()
    return pairs


def under(values: Iterable[float], threshold: float) -> float | None:
    values = list(values)
    return float(np.mean(np.asarray(values) < threshold)) if values else None


def sequencer_cosines(face_cosines_different: list[float], false_merge_rate: float) -> tuple[float, float]:
    """(link, split): a track continues only with a face more alike than all but `false_merge_rate` of
    different-person face pairs (below: split), and appearance alone (boxes apart) links only above all but a
    tenth of that."""
    if not face_cosines_different:
        raise ValueError("no different-person face pairs: give clips with people on screen together, "
                         "several clips with --disjoint, or a truth file")
    cos = np.asarray(face_cosines_different)
    return (float(np.quantile(cos, 1 - false_merge_rate / 10, method="higher")),
            float(np.quantile(cos, 1 - false_merge_rate, method="higher")))


def thresholds(model: str, pairs: Pairs, false_merge_rate: float, cross_false_merge_rate: float, link: float,
               split: float, method: str, command: str, data: list[str]) -> Thresholds:
    if not pairs.different:
        raise ValueError("no different-person sequence pairs to calibrate the join on")
    join = float(np.quantile(pairs.different, false_merge_rate, method="lower"))  # at most the rate falls under it
    named = float(np.quantile(pairs.named_different, false_merge_rate, method="lower")) if pairs.named_different else join
    cross = max(join, float(np.quantile(pairs.different, cross_false_merge_rate, method="lower")))
    figures = {
        "data": data,
        "different_person_pairs": len(pairs.different), "same_person_pairs": len(pairs.same),
        "named_different_pairs": len(pairs.named_different), "named_same_pairs": len(pairs.named_same),
        "different_person_face_pairs": len(pairs.face_cosines_different),
        "false_merges_at_join": under(pairs.different, join), "same_person_joined_at_join": under(pairs.same, join),
        "false_merges_at_cross_join": under(pairs.different, cross),
        "same_person_joined_at_cross_join": under(pairs.same, cross),
        "named_false_at_named_join": under(pairs.named_different, named),
        "named_same_at_named_join": under(pairs.named_same, named),
        "different_person_distance_quantiles": np.quantile(pairs.different, [0, 0.01, 0.05, 0.5]).round(4).tolist(),
        "same_person_distance_quantiles": (np.quantile(pairs.same, [0.5, 0.95, 1]).round(4).tolist()
                                           if pairs.same else []),
    }
    return Thresholds(model=model, distance=method, join=round(join, 4), named_join=round(named, 4),
                      cross_join=round(cross, 4), link_cosine=round(link, 4), split_cosine=round(split, 4),
                      false_merge_rate=false_merge_rate, cross_false_merge_rate=cross_false_merge_rate,
                      command=command, figures=figures)
