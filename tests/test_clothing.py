"""Clothing within one visit of one source: people dressed differently are not made one, whatever their faces say;
across visits clothing says nothing."""

from __future__ import annotations

import numpy as np

from nodes.matching.appearance import dress_factor, dressed_distance, torso_distance
from nodes.matching.decision import ReidSettings
from nodes.matching.setdist import l2_normalise, nearer_side_distance, set_distance
from nodes.vision.torso import TORSO_BINS, torso_histogram
from tests.stored import decide, person, sequence, store

S = ReidSettings(threshold=0.45, named_threshold=0.6)


def shirt(bgr: tuple[int, int, int], face_top: int = 100) -> np.ndarray:
    """A 640x480 frame: a skin-coloured face at (300, face_top) over a body of colour `bgr`."""
    frame = np.full((480, 640, 3), 40, np.uint8)
    frame[face_top:face_top + 60, 300:350] = (120, 150, 200)
    frame[face_top + 60:, 250:400] = bgr
    return frame


def worn(bgr: tuple[int, int, int]) -> np.ndarray:
    return torso_histogram(shirt(bgr), np.array([300, 100, 350, 160], np.float32))


def test_a_red_and_a_blue_shirt_are_far_apart_and_one_shirt_twice_is_near():
    red, blue, red_again = worn((30, 30, 200)), worn((200, 60, 30)), worn((35, 28, 205))
    assert red.shape == (TORSO_BINS,) and abs(float(red.sum()) - 1) < 1e-5
    assert torso_distance(red, blue) > 0.9
    assert torso_distance(red, red_again) < 0.2
    assert dress_factor(dressed_distance(red, [blue]), 0.5) == 0, "dressed apart"
    assert dress_factor(dressed_distance(red, [blue, red_again]), 0.5) == 1, "one alike is enough"
    assert dress_factor(dressed_distance(red, [blue]), 0.0) == 1, "0: off"


def test_a_body_outside_the_frame_is_not_seen_and_decides_nothing():
    at_bottom = torso_histogram(shirt((30, 30, 200), face_top=415), np.array([300, 415, 350, 475], np.float32))
    assert not at_bottom.any()
    assert dressed_distance(at_bottom, [worn((200, 60, 30))]) is None
    assert dressed_distance(worn((30, 30, 200)), [np.zeros(0, np.float32)]) is None


def test_one_face_dressed_differently_in_the_same_visit_starts_its_own_identity(faces):
    red, blue = worn((30, 30, 200)), worn((200, 60, 30))
    first = decide(faces, store(faces, sequence("a", person(0), torso=red)), person(0), S)
    again = decide(faces, store(faces, sequence("b", person(0), torso=red, ts=30)), person(0), S)
    assert again.cluster_id == first.cluster_id, "dressed alike: the faces decide (recall)"
    other = decide(faces, store(faces, sequence("c", person(0), torso=blue, ts=60)), person(0), S)
    assert other.status == "new", "dressed differently in the same visit: someone else (precision)"
    unseen = decide(faces, store(faces, sequence("d", person(0), ts=90)), person(0), S)
    assert unseen.cluster_id in (first.cluster_id, other.cluster_id), "no body seen: the faces decide"
    later = decide(faces, store(faces, sequence("e", person(0), torso=blue, ts=5000)), person(0), S)
    assert later.status == "recognised", "another visit (over visit_s later): clothing says nothing"
    elsewhere = decide(faces, store(faces, sequence("f", person(0), video="w", torso=blue)), person(0), S)
    assert elsewhere.status == "recognised", "another source: clothing says nothing"
    off = decide(faces, store(faces, sequence("g", person(0), torso=worn((30, 200, 30)), ts=120)), person(0),
                 S.model_copy(update={"torso_apart": 0}))
    assert off.status == "recognised"


def test_maintenance_does_not_merge_clusters_dressed_differently_in_one_visit(faces):
    strict, loose = S.model_copy(update={"threshold": 0.01}), S.model_copy(update={"threshold": 1.9, "margin": 0})
    red, blue = worn((30, 30, 200)), worn((200, 60, 30))
    ids = [decide(faces, store(faces, sequence(key, person(0), torso=torso, ts=ts)), person(0), strict).cluster_id
           for key, torso, ts in (("r1", red, 0), ("b1", blue, 10), ("r2", red, 20))]
    assert len(set(ids)) == 3
    merges = faces.maintain(loose).merges
    assert {frozenset(m) for m in merges} == {frozenset((ids[0], ids[2]))}, "the two in red merge, the one in blue not"


def partly(share_red: float) -> np.ndarray:
    """Clothes with `share_red` of the red shirt's colours and the rest the blue one's (a jacket over a shirt)."""
    return share_red * worn((30, 30, 200)) + (1 - share_red) * worn((200, 60, 30))


def test_clothes_alike_ask_nothing_of_the_face_and_the_more_unlike_they_are_the_more_they_ask():
    assert dress_factor(None, 0.5) == 1 and dress_factor(0.9, 0) == 1, "unseen, or clothing off: the face alone"
    assert dress_factor(0.1, 0.5) == 1 and dress_factor(0.25, 0.5) == 1, "up to half of torso_apart: nothing"
    assert dress_factor(0.5, 0.5) == 0 and dress_factor(0.8, 0.5) == 0, "dressed apart: no face is near enough"
    assert 0 < dress_factor(0.45, 0.5) < dress_factor(0.35, 0.5) < dress_factor(0.3, 0.5) < 1


def test_within_a_visit_a_face_dressed_partly_unlike_a_cluster_must_be_nearer_to_join_it(faces):
    red, jacket = worn((30, 30, 200)), partly(0.77)
    assert 0.3 < torso_distance(red, jacket) < 0.4 < 0.5  # factor about 0.6
    first = person(1)
    decided = decide(faces, store(faces, sequence("a", first, torso=red)), first, S)
    far_unlike, far_alike, near = person(1, noise=0.3), person(1, noise=0.3), person(1, noise=0.02)
    farther = max(set_distance(far_unlike, first, S.distance), set_distance(far_alike, first, S.distance))
    s = S.model_copy(update={"threshold": farther / 0.75})
    assert set_distance(far_unlike, first, S.distance) > 0.6 * s.threshold
    assert set_distance(near, first, S.distance) < 0.4 * s.threshold
    unlike = decide(faces, store(faces, sequence("b", far_unlike, torso=jacket, ts=10)), far_unlike, s)
    assert unlike.status == "new", "partly unlike: at 0.6-0.75 of the join, the face is too far now (precision)"
    alike = decide(faces, store(faces, sequence("c", far_alike, torso=red, ts=20)), far_alike, s)
    assert alike.cluster_id == decided.cluster_id, "dressed alike, as far: it joins (recall)"
    closer = decide(faces, store(faces, sequence("d", near, torso=jacket, ts=30)), near, s)
    assert closer.status == "recognised", "a much nearer face still joins, clothes partly unlike (recall)"


def test_maintenance_merges_clusters_dressed_partly_unlike_only_when_their_faces_are_nearer(faces):
    red, jacket = worn((30, 30, 200)), partly(0.77)
    first = person(2)
    again = l2_normalise(first + 0.01)
    far = person(2, noise=0.3)
    strict = S.model_copy(update={"threshold": 0.001})
    ids = [decide(faces, store(faces, sequence(key, vectors, torso=torso, ts=ts)), vectors, strict).cluster_id
           for key, vectors, torso, ts in (("r1", first, red, 0), ("j1", far, jacket, 10), ("r2", again, red, 20))]
    assert len(set(ids)) == 3
    loose = S.model_copy(update={"threshold": nearer_side_distance(far, first, S.distance) / 0.8, "margin": 0})
    merges = faces.maintain(loose).merges
    assert {frozenset(m) for m in merges} == {frozenset((ids[0], ids[2]))}, \
        "at 0.8 of the join, the two in red merge and the one in a jacket over red stays apart"


def test_a_sequence_wears_the_mean_of_its_faces_measured_clothes_through_the_wire():
    from dataclasses import replace

    from nodes.sequencer import SequencerNode
    from tests.test_sequencer import frame
    from zdg.testing import NodeHarness

    red, blue = worn((30, 30, 200)), worn((200, 60, 30))
    worn_by = [red, blue, np.zeros(TORSO_BINS, np.float32), np.full(TORSO_BINS, np.nan, np.float32)] * 3
    frames = [replace(frame(i, [(0, 100 + i)]), torso=torso[None]) for i, torso in enumerate(worn_by)]
    with NodeHarness(SequencerNode) as node:
        node.feed(*frames)
        (seq,) = node.typed("out", finish=True)
    assert seq.size == len(worn_by)
    assert np.allclose(seq.torso, (red + blue) / 2), "unseen (zeros) and broken (NaN) rows are left out"
