"""The re-id rule without a database: join, refuse, named tolerance, cannot-link, thresholds from the model's
calibration, and which sequences are junk."""

from __future__ import annotations

import json
from typing import get_args

import numpy as np
import pytest

from nodes.matching.decision import Candidate, ReidSettings, choose, for_model, sample
from nodes.matching.quality import junk_reason
from nodes.matching.setdist import SetDistance, l2_normalise, set_distance
from nodes.messages import Sequence
from tests.vectors import People
from zdg.node import FatalNodeError

person = People(dim=32, count=4, seed=3)
S = ReidSettings(threshold=0.45, named_threshold=0.6)


def test_a_sequence_joins_the_cluster_of_its_person_and_no_other():
    stored = [Candidate(10, person(0)), Candidate(11, person(1)), Candidate(12, person(2))]
    for who, cluster in ((0, 10), (1, 11), (2, 12)):
        choice = choose(person(who), stored, S)
        assert choice.cluster_id == cluster and choice.distance < 0.45 and choice.silhouette > 0.5


def test_a_stranger_starts_a_new_cluster_and_nothing_starts_one_too():
    stored = [Candidate(10, person(0)), Candidate(11, person(1))]
    choice = choose(person(3), stored, S)
    assert choice.cluster_id is None and choice.distance > 0.45
    assert choose(person(0), [], S).cluster_id is None


def test_named_clusters_have_their_own_tolerance():
    far = person(0, noise=0.35)  # the same person, badly seen
    stored = [Candidate(10, person(0)), Candidate(11, person(1))]
    s = ReidSettings(threshold=0.3, named_threshold=0.9)
    assert choose(far, stored, s).cluster_id is None
    named = [Candidate(10, person(0), "Ross"), Candidate(11, person(1))]
    assert choose(far, named, s).cluster_id == 10


def test_the_nearest_cluster_within_the_threshold_wins_and_the_decision_says_how_clear_it_was():
    between = person(0, noise=0.12) + 0.8 * person(1, noise=0.12)
    between /= np.linalg.norm(between, axis=1, keepdims=True)
    stored = [Candidate(10, person(0)), Candidate(11, person(1))]
    close_call = choose(between, stored, ReidSettings(threshold=0.9, named_threshold=0.9))
    clear = choose(person(0), stored, S)
    assert close_call.cluster_id == 10 and clear.cluster_id == 10
    assert close_call.silhouette < 0.3 < clear.silhouette


def test_probes_are_spread_along_the_sequence():
    seq = np.arange(20, dtype=np.float32)[:, None]
    assert sample(seq, 4)[:, 0].tolist() == [0, 6, 13, 19]
    assert len(sample(seq[:3], 4)) == 3


def test_a_cluster_on_screen_at_the_same_time_is_never_joined_however_close():
    twin = person(0)
    stored = [Candidate(10, person(0), co_occurs=True), Candidate(11, person(1))]
    assert choose(twin, stored, S).cluster_id is None
    looks = person(0)
    both = [Candidate(10, looks, co_occurs=True), Candidate(12, looks.copy())]
    assert choose(twin, both, S.model_copy(update={"margin": 0})).cluster_id == 12, \
        "without a margin, the same person's other cluster is still joined"
    assert choose(twin, both, S).cluster_id is None, "with one, a sequence as near to someone else joins no one"


def test_a_sequence_as_near_to_someone_known_to_be_another_person_as_to_its_best_cluster_joins_no_one():
    seq, looks = person(0), person(0)  # two relatives the embedding cannot tell apart
    siblings = [Candidate(10, looks, apart=frozenset({11})), Candidate(11, looks.copy(), apart=frozenset({10}))]
    assert choose(seq, siblings, S).cluster_id is None, "10 and 11 are two people: the sequence could be either"
    split = [Candidate(10, looks), Candidate(11, looks.copy())]
    assert choose(seq, split, S).cluster_id in (10, 11), "not known to be two people: maybe one person in two clusters"
    apart_and_far = [Candidate(10, person(0), apart=frozenset({11})), Candidate(11, person(1), apart=frozenset({10}))]
    assert choose(seq, apart_and_far, S).cluster_id == 10, "someone else far away contests nothing"


def test_across_scenes_a_sequence_joins_only_a_cluster_no_one_of_its_own_scene_is_as_near():
    someone = person(0)  # seen in scene "a"
    seq = l2_normalise(someone + 0.5 * person(1))  # in scene "b", as near to it as...
    other = l2_normalise(someone + 0.5 * person(2))  # ...someone else of scene "b", whom the sequence is not near
    assert set_distance(seq, other, "mean_min") > 1.5 * set_distance(seq, someone, "mean_min")

    def joined(cluster_sources, other_sources=("b",), name=None, s=S):
        stored = [Candidate(10, someone, name, sources=frozenset(cluster_sources)),
                  Candidate(11, other, sources=frozenset(other_sources))]
        return choose(seq, stored, s, source="b").cluster_id

    assert joined({"a"}) is None, "10 could as well be the other one of scene b: wait for maintenance"
    assert joined({"a"}, other_sources={"c"}) == 10, "no one of scene b is near 10"
    assert joined({"a", "b"}) == 10, "10 is already in scene b: the within-scene rule alone"
    assert joined({"a"}, name="Ross") == 10, "named identities keep their own rule"
    assert joined({"a"}, s=S.model_copy(update={"margin": 0})) == 10


def test_across_scenes_a_join_needs_its_cluster_clearly_nearer_than_the_other_scenes_runner_up():
    seq, someone = person(0, noise=0.2), person(0, noise=0.2)  # in scene "b"; someone seen in scene "a"
    d = set_distance(seq, someone, "mean_min")

    def someone_else_at(ratio: float) -> np.ndarray:
        """Someone's faces pulled toward person 1 until they are `ratio` x d from the sequence."""
        pulled = [l2_normalise(someone + k * person.centres[1]) for k in np.linspace(0, 2, 401)]
        return min(pulled, key=lambda c: abs(set_distance(seq, c, "mean_min") - ratio * d))

    loose = S.model_copy(update={"threshold": 1.5})

    def joined(ratio: float, rival_scene: str = "a", name: str | None = None, s: ReidSettings = loose) -> int | None:
        stored = [Candidate(10, someone, name, sources=frozenset({"a"})),
                  Candidate(11, someone_else_at(ratio), sources=frozenset({rival_scene}))]
        return choose(seq, stored, s, source="b").cluster_id

    assert joined(1.05) is None, "two of another scene about as near: wait for maintenance (precision)"
    assert joined(1.05, rival_scene="c") is None, "of a third scene, the same"
    assert joined(1.5) == 10, "clearly the nearer: join (recall)"
    assert joined(1.05, name="Ross") == 10, "named identities keep their own rule"
    assert joined(1.05, s=loose.model_copy(update={"margin": 0})) == 10, "margin 0: off"


def test_a_close_call_under_the_threshold_waits_for_maintenance_and_a_clear_one_joins_now():
    seq, stored = person(0), [Candidate(10, person(0))]
    distance = choose(seq, stored, S).distance
    assert choose(seq, stored, S.model_copy(update={"threshold": distance / 0.95})).cluster_id is None
    assert choose(seq, stored, S.model_copy(update={"threshold": distance / 0.8})).cluster_id == 10
    assert choose(seq, stored, S.model_copy(update={"threshold": distance / 0.95, "margin": 0})).cluster_id == 10


def test_low_quality_faces_weigh_less_in_the_distance():
    seq = np.concatenate([person(0, n=6), person(2, n=6)])  # half of it looks like someone else (blur, pose)
    stored = [Candidate(10, person(0))]
    even = choose(seq, stored, S)
    weighted = choose(seq, stored, S, weights=np.array([1.0] * 6 + [0.05] * 6))
    assert even.cluster_id is None and weighted.cluster_id == 10


def test_thresholds_come_from_the_models_calibration_unless_the_graph_sets_them(tmp_path):
    file = tmp_path / "m.json"
    file.write_text(json.dumps({"model": "m", "join": 0.61, "named_join": 0.7, "link_cosine": 0.4,
                                "split_cosine": 0.3, "false_merge_rate": 0.01}))
    calibrated = for_model(ReidSettings(calibration=str(file)), "m")
    assert (calibrated.threshold, calibrated.named_threshold) == (0.61, 0.7)
    assert for_model(ReidSettings(threshold=0.5, calibration=str(file)), "m").threshold == 0.5
    with pytest.raises(FatalNodeError, match="calibrated for model 'm', but the embeddings come from 'other'"):
        for_model(ReidSettings(calibration=str(file)), "other")
    with pytest.raises(FatalNodeError, match="no calibration for embedding model 'unknown'.*zdg calibrate"):
        for_model(ReidSettings(), "unknown")
    assert for_model(ReidSettings(), "mfn128").threshold > 0, "the default model ships its calibration"
    assert for_model(ReidSettings(), "dlib").threshold < for_model(ReidSettings(), "mfn128").threshold / 5


def seq_of(vectors: np.ndarray, scores: float = 0.85, box: tuple = (100, 100, 200, 220)) -> Sequence:
    n = len(vectors)
    return Sequence(
        sequence_id="v:0:0", video="v", video_path="", first_ts=0.0, last_ts=1.0, embeddings=vectors,
        frames=np.arange(n, dtype=np.int32), face_index=np.zeros(n, np.int32),
        boxes_xyxy=np.tile(box, (n, 1)).astype(np.float32), kps=np.zeros((n, 5, 2), np.float32),
        scores=np.full(n, scores, np.float32), quality=np.ones(n, np.float32),
        crops=np.zeros((0, 112, 112, 3), np.uint8), crop_frames=np.zeros(0, np.int32), width=640, height=360)


def test_junk_is_a_poor_detection_a_face_cut_off_by_the_frame_or_an_incoherent_set_and_nothing_else():
    assert junk_reason(seq_of(person(0)), S) is None
    assert "detector score 0.52" in junk_reason(seq_of(person(0), scores=0.52), S)
    assert "cut off by the frame edge" in junk_reason(seq_of(person(0), box=(0, 100, 60, 220)), S)
    assert junk_reason(seq_of(person(0), box=(580, 0, 639, 90)), S) is not None
    mixed = np.concatenate([person(0, n=3), person(1, n=3), person(2, n=3), person(3, n=3)])
    assert "incoherent" in junk_reason(seq_of(mixed), S)
    assert junk_reason(seq_of(person(0), box=(3, 100, 100, 220)), S) is None, "near the edge is not cut off"


@pytest.mark.parametrize("method", get_args(SetDistance))
def test_a_set_is_at_distance_zero_from_itself_never_below(method):
    vectors = l2_normalise(np.random.default_rng(3).normal(size=(9, 128)))
    assert 0.0 <= set_distance(vectors, vectors, method) < 1e-6

