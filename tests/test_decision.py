"""The re-id rule without a database: join, refuse, named tolerance, separation guard."""

from __future__ import annotations

import numpy as np

from nodes.decision import Candidate, ReidSettings, choose, sample
from tests.vectors import People

person = People(dim=32, count=4, seed=3)


def test_a_sequence_joins_the_cluster_of_its_person_and_no_other():
    stored = [Candidate(10, person(0)), Candidate(11, person(1)), Candidate(12, person(2))]
    for who, cluster in ((0, 10), (1, 11), (2, 12)):
        choice = choose(person(who), stored, ReidSettings())
        assert choice.cluster_id == cluster and choice.distance < 0.45 and choice.silhouette > 0.5


def test_a_stranger_starts_a_new_cluster_and_nothing_starts_one_too():
    stored = [Candidate(10, person(0)), Candidate(11, person(1))]
    choice = choose(person(3), stored, ReidSettings())
    assert choice.cluster_id is None and choice.distance > 0.45
    assert choose(person(0), [], ReidSettings()).cluster_id is None


def test_named_clusters_have_their_own_tolerance():
    far = person(0, noise=0.35)  # the same person, badly seen
    stored = [Candidate(10, person(0)), Candidate(11, person(1))]
    s = ReidSettings(threshold=0.3, named_threshold=0.9)
    assert choose(far, stored, s).cluster_id is None
    named = [Candidate(10, person(0), "Ross"), Candidate(11, person(1))]
    assert choose(far, named, s).cluster_id == 10


def test_a_join_that_would_blur_two_clusters_is_refused_by_the_silhouette_floor():
    between = person(0, noise=0.12) + person(1, noise=0.12)
    between /= np.linalg.norm(between, axis=1, keepdims=True)
    stored = [Candidate(10, person(0)), Candidate(11, person(1))]
    loose = ReidSettings(threshold=0.9, silhouette_floor=-1)
    assert choose(between, stored, loose).cluster_id in (10, 11)
    guarded = ReidSettings(threshold=0.9, silhouette_floor=0.5)
    refused = choose(between, stored, guarded)
    assert refused.cluster_id is None and refused.silhouette < 0.5


def test_probes_are_spread_along_the_sequence():
    seq = np.arange(20, dtype=np.float32)[:, None]
    assert sample(seq, 4)[:, 0].tolist() == [0, 6, 13, 19]
    assert len(sample(seq[:3], 4)) == 3


def test_a_cluster_on_screen_at_the_same_time_is_never_joined_however_close():
    twin = person(0)
    stored = [Candidate(10, person(0), co_occurs=True), Candidate(11, person(1))]
    assert choose(twin, stored, ReidSettings()).cluster_id is None
    both = [Candidate(10, person(0), co_occurs=True), Candidate(12, person(0))]
    assert choose(twin, both, ReidSettings()).cluster_id == 12, "the same person's other cluster is still joined"


def test_a_sequence_as_close_as_the_clusters_own_members_joins_whatever_the_silhouette():
    seen = person(0, n=20)
    stored = [Candidate(10, seen), Candidate(11, person(0, n=20, noise=0.13))]  # the same person split in two
    strict = ReidSettings(silhouette_floor=0.99)
    rerun = choose(seen.copy(), stored, strict)  # the same footage again: distance 0
    assert rerun.cluster_id == 10 and rerun.distance < 1e-5
    farther = person(0, n=20, noise=0.25)  # the same person seen worse than any member is
    assert choose(farther, stored, strict).cluster_id is None, "a new look still has to keep clusters apart"
