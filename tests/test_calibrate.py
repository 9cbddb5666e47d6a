"""Thresholds picked from data: which pairs count as different people, the false-merge rate they keep, and that
the shipped calibration is what `zdg calibrate` gives on the shared data."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from nodes.matching.setdist import set_distance
from nodes.matching.thresholds import load_thresholds, shipped_path
from nodes.tools.calibrate import FaceSet, collect_pairs, relation, sequencer_cosines, thresholds
from tests.conftest import REPO, shared_path, zdg
from tests.vectors import People

person = People(dim=32, count=12, seed=5)


def test_what_the_video_and_the_labels_say_about_two_sets():
    a = FaceSet("clip1", None, person(0), (0, 50))
    together = FaceSet("clip1", None, person(1), (40, 90))
    later = FaceSet("clip1", None, person(0), (100, 150))
    elsewhere = FaceSet("clip2", None, person(2), (0, 50))
    assert relation(a, together, disjoint=False) is False, "on screen together: two people"
    assert relation(a, later, disjoint=False) is None, "no labels: unknown"
    assert relation(a, elsewhere, disjoint=False) is None and relation(a, elsewhere, disjoint=True) is False
    joey, joey_again, ross = (FaceSet("c", "Joey", person(0), (0, 9)), FaceSet("c", "Joey", person(0), (20, 29)),
                              FaceSet("c", "Ross", person(1), (20, 29)))
    assert relation(joey, joey_again, False) is True and relation(joey, ross, False) is False


def test_the_join_threshold_lets_through_only_the_target_share_of_different_people():
    sets = [FaceSet(f"clip{i % 3}", None, person(i), (0, 10)) for i in range(12)]  # 3 clips, 4 people each at once
    pairs = collect_pairs(sets, "mean_min", disjoint=True)
    assert len(pairs.different) == 66 and not pairs.same
    link, split = sequencer_cosines(pairs.face_cosines_different, 0.05)
    found = thresholds("m", pairs, 0.05, 0.2, link, split, "mean_min", "zdg calibrate", [])
    assert np.mean(np.asarray(pairs.different) < found.join) <= 0.05
    assert found.join < found.cross_join and np.mean(np.asarray(pairs.different) < found.cross_join) <= 0.2
    assert set_distance(person(0), person(0), "mean_min") < found.join, "one person's sets stay under it"
    assert link >= split, "appearance alone needs more than a continuing track"


@pytest.mark.slow
def test_the_shipped_calibration_is_what_zdg_calibrate_gives(tmp_path):
    shipped = load_thresholds("mfn128")
    assert shipped.command.startswith("zdg calibrate ") and "-o" not in shipped.command.split()
    if not all((REPO / path).exists() for path in shipped.figures["data"]):
        pytest.skip("the shared clips are not beside the repo")
    out = tmp_path / "mfn128.json"
    done = zdg("calibrate", *shipped.command.split()[2:], "-o", str(out), timeout=600,
               env={**os.environ, "ZDG_MODEL_ROOT": os.environ.get("ZDG_MODEL_ROOT") or str(shared_path("models"))})
    assert done.returncode == 0, done.stderr
    again = json.loads(out.read_text())
    for key in ("join", "named_join", "cross_join", "link_cosine", "split_cosine"):
        assert again[key] == pytest.approx(getattr(shipped, key), abs=0.002), key
    assert shipped_path("mfn128").is_file()


def test_the_recorded_command_says_what_was_calibrated_from_not_where_it_was_written():
    from nodes.app.tool_commands import recipe_args

    argv = ["--video", "a.mp4", "-o", "/tmp/x.json", "--disjoint", "--output=/tmp/y.json", "--output", "z.json"]
    assert recipe_args(argv) == ["--video", "a.mp4", "--disjoint"]
