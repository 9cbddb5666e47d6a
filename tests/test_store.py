"""Store and re-id logic on a real Postgres + pgvector (fresh database per test), synthetic vectors."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest

from nodes.matching.clustering import CandidatePairs
from nodes.matching.decision import ReidSettings
from nodes.matching.setdist import SetDistance, set_distance
from nodes.messages import Sequence
from nodes.store.reid import Query
from nodes.store.schema import DimensionMismatch, migrate
from tests.stored import DIM, decide, person, sequence, store
from tests.vectors import People

S = ReidSettings(threshold=0.45, named_threshold=0.6)
CENTRES = person.centres


def test_dimension_is_fixed_when_the_store_is_created(faces, conn):
    assert migrate(conn, DIM) == DIM
    with pytest.raises(DimensionMismatch, match="store holds 32-d embeddings but the model gives 512-d"):
        migrate(conn, 512)


def test_replayed_sequence_writes_nothing_twice(faces, conn):
    msg = sequence("1", person(0))
    first = store(faces, msg)
    again = store(faces, msg)
    assert first == again
    assert conn.execute("SELECT count(*) FROM faces").fetchone()[0] == 12
    assert conn.execute("SELECT count(*) FROM sequences").fetchone()[0] == 1


def tail_of(seq: Sequence, key: str, start: int) -> Sequence:
    """The faces of `seq` from `start` on, under another key (footage a replay rebuilt as part of a track)."""
    return Sequence(**{**seq.__dict__, "sequence_id": f"v:{key}", "embeddings": seq.embeddings[start:],
                       "frames": seq.frames[start:], "face_index": seq.face_index[start:], "boxes_xyxy": seq.boxes_xyxy[start:],
                       "kps": seq.kps[start:], "scores": seq.scores[start:], "quality": seq.quality[start:]})


def test_footage_stored_under_another_key_is_not_written_again(faces, conn):
    whole = sequence("whole", person(0))
    first = store(faces, whole)
    assert faces.write_sequences([tail_of(whole, "tail", 4)]) == [(first, False)]
    assert conn.execute("SELECT count(*) FROM sequences").fetchone()[0] == 1
    longer = sequence("longer", np.concatenate([person(0, 2), whole.embeddings]))
    longer = Sequence(**{**longer.__dict__, "frames": np.concatenate([whole.frames[:1] - 2, whole.frames[:1] - 1,
                                                                       whole.frames]).astype(np.int32)})
    assert faces.write_sequences([longer])[0][1], "a sequence with any new face is new footage"


def test_one_batch_stores_what_its_sequences_written_one_by_one_would(faces, conn):
    whole, other = sequence("whole", person(0)), sequence("other", person(1))
    written = faces.write_sequences([whole, tail_of(whole, "tail", 4), other, whole])
    (whole_id, whole_new), tail, (other_id, other_new), again = written
    assert whole_new and other_new and whole_id != other_id
    assert tail == again == (whole_id, False), "footage held by a sequence earlier in the batch is not written twice"
    assert conn.execute("SELECT count(*) FROM sequences").fetchone()[0] == 2
    assert conn.execute("SELECT sequence_id, count(*) FROM faces GROUP BY sequence_id ORDER BY sequence_id").fetchall() == [
        (whole_id, 12), (other_id, 12)]
    assert faces.write_sequences([other, whole]) == [(other_id, False), (whole_id, False)]


def test_same_person_is_recognised_and_a_stranger_is_new(faces, conn):
    s = S
    a1 = decide(faces, store(faces, sequence("1", person(0))), person(0), s)
    b1 = decide(faces, store(faces, sequence("2", person(1))), person(1), s)
    a2_vectors = person(0)
    a2 = decide(faces, store(faces, sequence("3", a2_vectors)), a2_vectors, s)
    assert (a1.status, b1.status, a2.status) == ("new", "new", "recognised")
    assert a2.cluster_id == a1.cluster_id != b1.cluster_id
    assert a2.silhouette is not None and a2.silhouette > 0.5


def test_occlusion_split_sequences_end_in_one_cluster_after_maintenance(faces, conn):
    strict = ReidSettings(threshold=0.01, named_threshold=0.01)  # at decision time nothing matches
    ids = {}
    for key, who in {"a_before": 0, "a_after": 0, "b": 1, "c": 2}.items():
        vectors = person(who)
        ids[key] = decide(faces, store(faces, sequence(key, vectors)), vectors, strict).cluster_id
    assert len(set(ids.values())) == 4
    report = faces.maintain(S)
    clusters = dict(conn.execute("SELECT seq_key, cluster_id FROM sequences").fetchall())
    assert clusters["v:a_before"] == clusters["v:a_after"]
    assert len({clusters["v:a_before"], clusters["v:b"], clusters["v:c"]}) == 3
    assert len(report.merges) == 1 and report.silhouette > 0.5
    (gone, kept), = report.merges
    assert faces.resolve(gone) == kept and faces.resolve(kept) == kept, "a published id stays reachable"
    assert [(m.merged_from, m.cluster_id) for m in report.moved] == [(gone, kept)]
    faces.rename(gone, "Ann")  # subscribers may still hold the old id
    assert {i.id: i.name for i in faces.identities()}[kept] == "Ann"


def test_maintenance_among_many_clusters_rejoins_every_split_person_and_joins_no_two_people(faces, conn):
    # 60 clusters: a pass compares each with its 10 nearest by centroid, not with all 59 others
    many = People(dim=DIM, count=30, seed=7)
    strict = ReidSettings(threshold=0.01, named_threshold=0.01)  # at decision time nothing matches
    for who in range(30):
        for half in "ab":
            vectors = many(who)
            decide(faces, store(faces, sequence(f"{who}{half}", vectors)), vectors, strict)
    assert conn.execute("SELECT count(*) FROM clusters").fetchone()[0] == 60
    report = faces.maintain(S)
    cluster = dict(conn.execute("SELECT seq_key, cluster_id FROM sequences").fetchall())
    people = [{cluster[f"v:{who}{half}"] for half in "ab"} for who in range(30)]
    assert all(len(ids) == 1 for ids in people), "each person's two sequences end in one cluster"
    assert len(set.union(*people)) == 30, "no two people share a cluster"
    assert len(report.merges) == 30 and report.silhouette > 0.5


def test_a_pass_looks_at_what_changed_since_the_last_and_zdg_maintain_at_everything(faces, conn):
    strict = ReidSettings(threshold=0.01, named_threshold=0.01)  # at decision time nothing matches

    def halves(who: int) -> tuple[int, int]:
        return tuple(decide(faces, store(faces, sequence(f"{who}{half}", person(who))), person(who), strict).cluster_id
                     for half in "ab")

    old = halves(0)
    assert faces.maintain(strict).merges == []  # the first pass looks at everything: nothing that close
    new = halves(1)
    assert faces.maintain(S).merges == [(max(new), min(new))], "the new halves join; the old pair was not looked at"
    assert faces.maintain(S).merges == [], "nothing changed since"
    assert faces.maintain(S, full=True).merges == [(max(old), min(old))], "a full pass (zdg maintain) looks at all"


def test_renaming_an_identity_has_the_next_pass_look_at_it_with_the_named_threshold(faces, conn):
    strict = ReidSettings(threshold=0.01, named_threshold=0.01)
    named_only = ReidSettings(threshold=0.01, named_threshold=0.6)  # only a named identity is close enough
    a, b = (decide(faces, store(faces, sequence(key, person(2))), person(2), strict).cluster_id for key in ("a", "b"))
    assert faces.maintain(named_only).merges == []
    faces.rename(b, "Bea")
    assert faces.maintain(named_only).merges == [(a, b)], "the unnamed half joins the named one"


def test_silhouettes_are_sklearns_with_every_cluster_as_a_neighbour_and_close_with_fewer():
    from sklearn.metrics import silhouette_samples

    from nodes.store.maintain import silhouettes

    many = People(dim=DIM, count=25, seed=3)
    sets = {c: many(c, n=2 + c % 5) for c in range(24)} | {24: many(24, n=1)}  # one cluster of a single vector
    labels = np.concatenate([[c] * len(v) for c, v in sets.items()])
    exact = silhouette_samples(np.concatenate(list(sets.values())), labels, metric="cosine")
    np.testing.assert_allclose(np.concatenate(list(silhouettes(sets, 24).values())), exact, atol=1e-5)  # all others
    for k in (10, 3):  # fewer: b is a minimum over fewer clusters, never below the exact one, so never a lower value
        ours = np.concatenate(list(silhouettes(sets, k).values()))
        assert (ours >= exact - 1e-5).all() and (ours - exact).max() < 0.1
    sets[0] = np.concatenate([sets[0], sets[1]])  # now a muddle of two people: its silhouette drops, b included
    ours = silhouettes(sets, 3)
    assert ours[0].mean() < 0.2 < min(values.mean() for c, values in ours.items() if c not in (0, 1, 24))
    assert silhouettes({0: sets[0]}) is None


def test_two_clusters_are_a_clear_match_only_when_each_is_the_others_nearest_by_the_margin():
    pairs = CandidatePairs()
    pairs.add(1, 2, 0.40)
    pairs.add(1, 3, 0.50)
    pairs.measure(2, 4, 0.60)
    assert pairs.clear_match(1, 2, 0.40, 0.1), "every other cluster is over 0.40 / 0.9 from both"
    pairs.measure(2, 5, 0.43)
    assert not pairs.clear_match(1, 2, 0.40, 0.1), "5 is nearly as near to 2"
    assert pairs.clear_match(1, 2, 0.40, 0.0)


def test_junk_is_stored_but_never_in_a_cluster(faces, conn):
    vectors = person(0)
    junk_id = store(faces, sequence("junk", vectors))
    first = faces.decide(Query(junk_id, vectors, junk="median detector score 0.52 < junk_score 0.6"), S)
    again = faces.decide(Query(junk_id, vectors), S)  # a replay decides the same
    assert (first.status, first.cluster_id, again.status) == ("junk", None, "junk")
    assert conn.execute("SELECT count(*) FROM faces WHERE sequence_id = %s", (junk_id,)).fetchone()[0] == 12
    person_seq = decide(faces, store(faces, sequence("person", person(0))), person(0), S)
    assert person_seq.status == "new", "junk is no cluster to join"
    assert conn.execute("SELECT junk FROM sequences WHERE id = %s", (junk_id,)).fetchone()[0].startswith("median")


def test_a_store_keeps_one_embedding_model(faces, conn):
    from dataclasses import replace

    from nodes.store.schema import ModelMismatch

    faces.write_sequences([replace(sequence("a", person(0)), model="mfn128")])
    with pytest.raises(ModelMismatch, match="store holds embeddings of model 'mfn128' but these come from 'dlib'"):
        faces.write_sequences([replace(sequence("b", person(1)), model="dlib")])
    with pytest.raises(ModelMismatch):  # photos enrolled with another model neither
        faces.enroll("Ann", [("ann.jpg", "ann.jpg", person(2, 1)[0], np.zeros(4, np.float32), np.zeros((5, 2), np.float32),
                              0.9)], model="dlib")
    assert conn.execute("SELECT count(*) FROM sequences").fetchone()[0] == 1
    assert faces.identities() == []


def test_people_on_screen_together_are_never_one_cluster(faces, conn):
    a_vectors = person(0)
    b_vectors = a_vectors.copy()  # look-alikes the embedding cannot tell apart
    a = sequence("a", a_vectors)
    b = Sequence(**{**sequence("b", b_vectors).__dict__, "frames": a.frames.copy(), "face_index": np.ones(12, np.int32)})
    first = decide(faces, store(faces, a), a_vectors, S)
    second = decide(faces, store(faces, b), b_vectors, S)
    assert first.cluster_id != second.cluster_id and second.status == "new"
    report = faces.maintain(ReidSettings(threshold=1.5, named_threshold=1.5))  # anything close enough to merge
    assert report.merges == []
    later = sequence("later", person(0))  # as near to either of two people: it could be both, so it joins neither
    assert decide(faces, store(faces, later), later.embeddings, S).status == "new"
    again = sequence("again", person(0))
    calibrated_only = S.model_copy(update={"margin": 0, "adapt_rate": 0})
    assert decide(faces, store(faces, again), again.embeddings, calibrated_only).status == "recognised"


def at_cosine(cosine: float, towards: int, n: int = 12) -> np.ndarray:
    """n near-copies of the unit vector at `cosine` from axis 0, turned towards axis `towards`."""
    v = np.zeros(DIM, np.float32)
    v[0], v[towards] = cosine, np.sqrt(1 - cosine**2)
    jitter = np.random.default_rng(towards).normal(scale=0.002, size=(n, DIM))
    return ((v + jitter) / np.linalg.norm(v + jitter, axis=1, keepdims=True)).astype(np.float32)


def together(first: Sequence, key: str, vectors: np.ndarray, face: int = 1) -> Sequence:
    """A sequence on screen with `first` (same frames, the `face`-th face of them)."""
    return Sequence(**{**sequence(key, vectors, first.video).__dict__, "frames": first.frames.copy(),
                       "face_index": np.full(len(vectors), face, np.int32)})


def test_a_source_whose_people_look_alike_tightens_its_own_threshold_and_no_other(faces, conn):
    mother = sequence("mother", at_cosine(1.0, 1), "family")
    son = together(mother, "son", at_cosine(0.70, 1))  # on screen with her, at distance 0.30: relatives
    decide(faces, store(faces, mother), mother.embeddings, S)
    assert decide(faces, store(faces, son), son.embeddings, S).status == "new"
    assert conn.execute("SELECT count(*), min(distance) FROM apart_distances").fetchone()[0] == 1
    daughter = sequence("daughter", at_cosine(0.64, 2), "family")  # alone, at 0.36 from the mother, under 0.45
    assert decide(faces, store(faces, daughter), daughter.embeddings, S).status == "new", "not made the mother"
    assert faces.maintain(S).merges == [], "nor merged into her later"
    elsewhere = sequence("elsewhere", at_cosine(0.64, 3), "street")  # the same distance where no one looks alike
    assert decide(faces, store(faces, elsewhere), elsewhere.embeddings, S).status == "recognised"
    (family,) = faces.source_thresholds(S)  # what `zdg calibrate --store` prints; the street learnt nothing
    assert family["source"] == "family" and family["different_pairs"] == 1
    assert family["join"] == pytest.approx(0.9 * 0.30, abs=0.01)
    calibrated_only = S.model_copy(update={"margin": 0, "adapt_rate": 0})
    cousin = sequence("cousin", at_cosine(0.64, 4), "family")
    assert decide(faces, store(faces, cousin), cousin.embeddings, calibrated_only).status == "recognised", \
        "the calibration alone makes her the mother"


def test_someone_in_another_scene_is_merged_only_when_each_is_the_others_clear_nearest(faces, conn):
    s = S.model_copy(update={"cross_threshold": 0.6})
    ann = sequence("ann", at_cosine(1.0, 1), "first")
    ann_id = decide(faces, store(faces, ann), ann.embeddings, s).cluster_id
    bob = together(ann, "bob", at_cosine(0.0, 2))
    decide(faces, store(faces, bob), bob.embeddings, s)
    again = sequence("again", at_cosine(0.5, 6), "first")  # 0.5 from her in the same scene: over the join
    again_id = decide(faces, store(faces, again), again.embeddings, s).cluster_id
    later = sequence("later", at_cosine(0.5, 3), "second")  # as far, in another scene, with no one else as near
    later_id = decide(faces, store(faces, later), later.embeddings, s).cluster_id
    assert len({ann_id, again_id, later_id}) == 3, "each decided new: over the join"
    assert faces.maintain(s).merges == [(later_id, ann_id)], "across scenes only, where the match is clear"
    cid = sequence("cid", at_cosine(0.49, 4), "third")  # two people of a third scene, both about as near to her
    dan = together(cid, "dan", at_cosine(0.47, 5))
    for seq in (cid, dan):
        decide(faces, store(faces, seq), seq.embeddings, s)
    assert faces.maintain(s).merges == [], "neither is clearly her"


def test_a_pass_over_what_changed_still_sees_every_rival_of_a_cluster_that_did_not(faces, conn):
    s = S.model_copy(update={"cross_threshold": 0.6})
    ann = sequence("ann", at_cosine(1.0, 1), "first")
    ann_id = decide(faces, store(faces, ann), ann.embeddings, s).cluster_id
    rival = sequence("rival", at_cosine(0.45, 2), "second")  # 0.55 from her: decided new, never looked at since
    decide(faces, store(faces, rival), rival.embeddings, s)
    conn.execute("INSERT INTO zdg_meta VALUES ('maintained_at', now()::text) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
    later = sequence("later", at_cosine(0.5, 3), "third")  # 0.5 from her: nearer, but not by the margin
    later_id = decide(faces, store(faces, later), later.embeddings, s).cluster_id
    assert faces.maintain(s).merges == [], "she has someone of another scene nearly as near"
    assert ann_id != later_id


def test_a_small_store_scores_every_identity_so_a_runner_up_of_many_poses_is_not_missed(faces, conn):
    s = S.model_copy(update={"threshold": 0.6, "max_candidates": 1, "centroid_candidates": 1})  # an ANN of one
    ann = sequence("ann", at_cosine(0.6, 1), "first")  # 0.4 from the later sequence
    # bea: half her faces about as near as ann's, half turned away, so her centroid is far and her nearest faces are not
    bea = sequence("bea", np.concatenate([at_cosine(0.58, 2, 6), at_cosine(0.0, 3, 6)]), "first")
    ann_id, _ = (decide(faces, store(faces, seq), seq.embeddings, s).cluster_id for seq in (ann, bea))
    later = sequence("later", at_cosine(1.0, 4), "second")
    ann_only = s.model_copy(update={"exact_clusters": 0})
    assert [c.cluster_id for c in faces.candidates(later.embeddings, ann_only, None)] == [ann_id], \
        "the ANN on centroids alone sees only ann"
    assert decide(faces, store(faces, later), later.embeddings, s).status == "new", \
        "bea of the same other scene is nearly as near: not clearly ann (precision)"


def test_forgetting_caps_vectors_and_drops_the_least_cohesive(faces, conn):
    vectors = np.concatenate([person(0, 30), person(3, 5)])  # 5 outliers that belong elsewhere
    decision = decide(faces, store(faces, sequence("1", vectors)), vectors, S)
    report = faces.maintain(S, max_vectors=30)
    assert report.forgotten == 5
    kept = np.array([np.asarray(r[0].to_numpy()) for r in conn.execute(
        "SELECT embedding FROM faces WHERE cluster_id = %s", (decision.cluster_id,))])
    assert (kept @ CENTRES[0] > 0.5).all()


def test_identities_merge_and_delete_remove_every_vector(faces, conn):
    s = S
    a = decide(faces, store(faces, sequence("1", person(0))), person(0), s).cluster_id
    b = decide(faces, store(faces, sequence("2", person(1))), person(1), s).cluster_id
    faces.merge(b, a)
    assert [i.id for i in faces.identities()] == [a]
    assert faces.delete(a).faces == 24
    assert conn.execute("SELECT count(*) FROM faces").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM sequences").fetchone()[0] == 0


def test_set_distances_order_same_before_different():
    a, a2, b = person(0), person(0), person(1)
    for method in get_args(SetDistance):
        assert set_distance(a, a2, method) < set_distance(a, b, method), method


def test_faces_without_a_sequence_are_candidates(faces, conn):
    """Enrolled photos have no sequence; nothing excluded must mean nothing filtered."""
    from nodes.store.clusters import cluster_by_name
    from nodes.store.writes import ensure_source

    with conn.transaction():
        cluster = cluster_by_name(conn, "Ann")
        source = ensure_source(conn, "photo:ann.jpg", "ann.jpg")
        conn.execute("INSERT INTO faces (source_id, frame, face_index, bbox, embedding, cluster_id) "
                     "VALUES (%s, 0, 0, '{0,0,1,1}', %s, %s)", (source, person(4, 1)[0], cluster))
    assert [c.cluster_id for c in faces.candidates(person(4), S, None)] == [cluster]


def test_reid_node_publishes_each_sequence_maintenance_moves_and_the_old_id_stays_reachable(faces, store_dsn):
    from dataclasses import replace

    from nodes.reid import ReidNode
    from zdg.testing import NodeHarness

    seen = sequence("seen", person(0))
    # half of it looks like someone else and those faces are the good ones: the decision (quality-weighted)
    # starts a cluster; maintenance (the clusters as sets) finds it is the same person and merges
    mixed = replace(sequence("mixed", np.concatenate([person(0, 6), person(2, 6)])),
                    quality=np.array([0.01] * 6 + [1.0] * 6, np.float32))
    with NodeHarness(ReidNode, dsn=store_dsn, threshold=0.75, named_threshold=0.75, maintain_every=0) as node:
        first, second = (node.feed(replace(s, sequence_db_id=store(faces, s)))[0] for s in (seen, mixed))
        assert (first.fields["status"], second.fields["status"]) == ("new", "new")
        moved = [m for m in node.finish() if m.fields["status"] == "merged"]
    assert [(m.fields["sequence_id"], m.fields["merged_from"], m.fields["cluster_id"]) for m in moved] == \
        [("v:mixed", second.fields["cluster_id"], first.fields["cluster_id"])]
    assert faces.resolve(second.fields["cluster_id"]) == first.fields["cluster_id"]


def test_maintenance_joins_a_cluster_to_a_named_identity_within_the_named_tolerance(faces, conn):
    photo = person(5, 1)[0]
    named = faces.enroll("Ann", [("ann.jpg", "ann.jpg", photo, np.array([0, 0, 9, 9], np.float32),
                                  np.zeros((5, 2), np.float32), 0.9)])
    strict = ReidSettings(threshold=0.01, named_threshold=0.01)
    sets = {"ann_seen": person(5), "stranger": person(4, noise=0.05), "stranger_again": person(4, noise=0.05)}
    for key, vectors in sets.items():
        decide(faces, store(faces, sequence(key, vectors)), vectors, strict)
    # the stranger's two clusters are the closest pair, but beyond the (tiny) join threshold: the named pair,
    # farther apart but within the named tolerance, still merges
    report = faces.maintain(ReidSettings(threshold=0.02, named_threshold=0.6))
    clusters = dict(conn.execute("SELECT seq_key, cluster_id FROM sequences").fetchall())
    assert clusters["v:ann_seen"] == named and clusters["v:stranger"] != named != clusters["v:stranger_again"]
    assert [m.name for m in report.moved] == ["Ann"]


def test_clusters_on_screen_together_or_marked_different_are_known_apart_and_no_others(faces, conn):
    from nodes.store.apart import apart_pairs

    first = sequence("first", person(0), "hall")
    beside = together(first, "beside", person(1))
    later = sequence("later", person(2), "hall")  # on frames of its own: with nobody
    elsewhere = Sequence(**{**sequence("elsewhere", person(3), "door").__dict__, "frames": first.frames.copy()})
    ids = [decide(faces, store(faces, s), s.embeddings, S).cluster_id for s in (first, beside, later, elsewhere)]
    assert len(set(ids)) == 4
    assert apart_pairs(conn, ids) == {(min(ids[0], ids[1]), max(ids[0], ids[1]))}, \
        "same frames of another source are not on screen together"
    faces.mark_different(ids[2], ids[3])
    assert apart_pairs(conn, ids) == {(min(ids[0], ids[1]), max(ids[0], ids[1])), (min(ids[2], ids[3]), max(ids[2], ids[3]))}
    assert apart_pairs(conn, ids[1:3]) == set(), "only pairs among the clusters asked about"


def test_one_face_tracked_twice_at_once_teaches_the_source_nothing(faces, conn):
    face = sequence("face", at_cosine(1.0, 1), "mirror")
    double = together(face, "double", at_cosine(0.99, 1))  # a double detection, a reflection: distance 0.01
    cousin = together(face, "cousin", at_cosine(0.70, 2), face=2)
    for seq in (face, double, cousin):
        decide(faces, store(faces, seq), seq.embeddings, S)
    recorded = [round(d, 2) for (d,) in conn.execute("SELECT distance FROM apart_distances ORDER BY distance")]
    assert recorded == [0.30, 0.31], "the cousin's two distances; the double's 0.01 would make every join impossible"
