"""Corrections by hand on a real Postgres + pgvector: split, move, mark as different; maintenance respects them."""

from __future__ import annotations

import pytest

from nodes.matching.decision import ReidSettings
from nodes.store.clusters import KeptApart
from tests.stored import decide, person, sequence, store

S = ReidSettings(threshold=0.45, named_threshold=0.6)


def stored(faces, key: str, who: int) -> tuple[int, int]:
    """(sequence id, cluster id) of a new sequence of person `who`, decided."""
    vectors = person(who)
    sequence_id = store(faces, sequence(key, vectors))
    return sequence_id, decide(faces, sequence_id, vectors, S).cluster_id


def test_a_split_sequence_stays_apart_through_maintenance_and_merges_carry_the_mark(faces, conn):
    loose = ReidSettings(threshold=1.9, named_threshold=1.9)  # every pair of clusters is close enough to merge
    a1, cluster = stored(faces, "a1", 0)
    a2, same = stored(faces, "a2", 0)
    b1 = store(faces, sequence("b1", person(1)))
    assert decide(faces, b1, person(1), loose).cluster_id == cluster == same, "the machine's mistake: b in a's cluster"
    new = faces.split(cluster, [b1], actor="test:ann")
    assert dict(conn.execute("SELECT id, cluster_id FROM sequences").fetchall()) == {a1: cluster, a2: cluster, b1: new}
    assert {i.id: i.size for i in faces.identities()} == {cluster: 24, new: 12}
    assert faces.maintain(loose).merges == []
    b2, b_cluster = stored(faces, "b2", 1)  # a new visit: b starts a cluster of its own; maintenance would join all
    faces.maintain(loose)
    clusters = dict(conn.execute("SELECT id, cluster_id FROM sequences").fetchall())
    assert clusters[a1] == clusters[a2] != clusters[b1], "never re-merged what was split"
    assert clusters[b2] in (clusters[a1], clusters[b1])
    with pytest.raises(KeptApart, match="marked as different people"):
        faces.merge(clusters[b1], clusters[a1])
    split = [e for e in faces.events() if e.kind == "split"]
    assert [(e.actor, e.cluster_id, e.other_id, e.detail) for e in split] == [("test:ann", new, cluster, {"sequences": [b1]})]


def test_marked_different_identities_are_never_merged_and_others_still_are(faces, conn):
    strict = ReidSettings(threshold=0.01, named_threshold=0.01)
    ids = {}
    for key, who in {"a": 0, "a_again": 0, "b": 1, "b_again": 1}.items():
        vectors = person(who)
        ids[key] = decide(faces, store(faces, sequence(key, vectors)), vectors, strict).cluster_id
    faces.mark_different(ids["a"], ids["a_again"], actor="test")
    report = faces.maintain(S)
    assert report.merges == [(max(ids["b"], ids["b_again"]), min(ids["b"], ids["b_again"]))], "b's halves still join"
    assert faces.resolve(ids["a"]) != faces.resolve(ids["a_again"])
    with pytest.raises(ValueError, match="from itself"):
        faces.mark_different(ids["b"], ids["b_again"])  # one identity now


def test_moving_a_sequence_takes_its_faces_and_removes_an_emptied_identity(faces, conn):
    a1, a = stored(faces, "a1", 0)
    b1, b = stored(faces, "b1", 1)
    assert faces.move_sequence(b1, a, actor="test") == a
    assert conn.execute("SELECT count(*) FROM faces WHERE cluster_id = %s", (a,)).fetchone()[0] == 24
    assert [i.id for i in faces.identities()] == [a], "b's identity had nothing left"
    with pytest.raises(LookupError, match="no identity"):
        faces.move_sequence(a1, b)
    with pytest.raises(ValueError, match="at least one sequence"):
        faces.split(a, [a1, b1])
    with pytest.raises(ValueError, match="not in identity"):
        faces.split(a + 100, [a1])


def test_junk_moved_into_an_identity_counts_as_a_person(faces, conn):
    from nodes.store.reid import Query

    _, a = stored(faces, "a1", 0)
    junk = store(faces, sequence("junk", person(0)))
    assert faces.decide(Query(junk, person(0), junk="blurred"), S).status == "junk"
    faces.move_sequence(junk, a)
    assert conn.execute("SELECT cluster_id, junk FROM sequences WHERE id = %s", (junk,)).fetchone() == (a, None)


def test_a_name_is_one_identity_s_and_every_change_says_who(faces, conn):
    _, a = stored(faces, "a1", 0)
    _, b = stored(faces, "b1", 1)
    faces.rename(a, "Ann", actor="ui:127.0.0.1")
    with pytest.raises(ValueError, match="identity .*'s; merge"):
        faces.rename(b, "Ann")
    faces.delete(b, actor="cli:root")
    assert [(e.kind, e.actor) for e in faces.events()][:2] == [("delete", "cli:root"), ("rename", "ui:127.0.0.1")]


def everything_about(conn, cluster_id: int, sequence_ids: list[int]) -> dict[str, int]:
    """Rows that still speak of an identity or its sequences, by table."""
    one = lambda sql, *args: conn.execute(sql, args).fetchone()[0]  # noqa: E731
    return {
        "clusters": one("SELECT count(*) FROM clusters WHERE id = %s", cluster_id),
        "sequences": one("SELECT count(*) FROM sequences WHERE id = ANY(%s)", sequence_ids),
        "faces": one("SELECT count(*) FROM faces WHERE cluster_id = %s OR sequence_id = ANY(%s)", cluster_id, sequence_ids),
        "crops": one("SELECT count(*) FROM crops WHERE sequence_id = ANY(%s)", sequence_ids),
        "event details": one("SELECT count(*) FROM cluster_events WHERE (cluster_id = %s OR other_id = %s) "
                             "AND detail IS NOT NULL", cluster_id, cluster_id),
        "links": one("SELECT count(*) FROM cannot_links WHERE a = %s OR b = %s", cluster_id, cluster_id),
    }


def test_retention_purges_unnamed_identities_and_old_junk_keeps_named_ones_and_leaves_nothing_behind(faces, conn, tmp_path):
    import numpy as np

    from nodes.store.reid import Query
    from nodes.vision.annotate import remove_strips

    old_seq, old = stored(faces, "old", 0)
    other_seq, other = stored(faces, "other", 4)  # stale too, with an identity merged into it: one purge takes both
    merged_seq, merged = stored(faces, "merged", 5)
    faces.merge(merged, other)
    junk = store(faces, sequence("junk", person(2)))
    faces.decide(Query(junk, person(2), junk="blurred"), S)
    ann = faces.enroll("Ann", [("ann.jpg", "photos/ann.jpg", person(1, 1)[0], np.zeros(4), np.zeros((5, 2)), 0.9)])
    faces.mark_different(old, ann)
    for key in ("v_old", "v_junk"):
        (tmp_path / "v").mkdir(exist_ok=True)
        (tmp_path / "v" / f"{key}.png").write_bytes(b"png")
    conn.execute("UPDATE sequences SET created_at = created_at - interval '2 hours'")  # all so far: 2 hours old
    conn.execute("UPDATE clusters SET updated_at = updated_at - interval '2 hours'")
    recent_seq, recent = stored(faces, "recent", 3)
    report = faces.maintain(ReidSettings(threshold=0.45, named_threshold=0.6, retention_hours=1))
    assert sorted(report.purged.sequences) == [("v", "v:junk"), ("v", "v:merged"), ("v", "v:old"), ("v", "v:other")]
    assert report.purged.faces == 3 * 12 and sorted(report.purged.ids) == sorted([old, other, merged])
    assert remove_strips(tmp_path, report.purged.sequences) == 2 and not list((tmp_path / "v").iterdir())
    assert {i.id for i in faces.identities()} == {ann, recent}, "named Ann and the recent identity are kept"
    assert set(everything_about(conn, old, [old_seq, junk]).values()) == {0}
    assert set(everything_about(conn, other, [other_seq, merged_seq]).values()) == {0}
    assert set(everything_about(conn, merged, []).values()) == {0}
    assert [(e.kind, e.actor) for e in faces.events(old)][:1] == [("purge", "retention")]
    gone = faces.delete(ann)
    assert (gone.faces, gone.sequences) == (1, [])
    assert set(everything_about(conn, ann, []).values()) == {0}
    assert conn.execute("SELECT count(*) FROM sources WHERE name LIKE 'photo:%'").fetchone()[0] == 0, \
        "the enrolment photo's reference goes with the person"
    assert faces.maintain(S).purged.sequences == [] and {i.id for i in faces.identities()} == {recent}


def test_an_open_sequence_gets_a_provisional_decision_that_stores_nothing_and_respects_who_is_on_screen(faces, conn,
                                                                                                      store_dsn):
    from dataclasses import replace

    import numpy as np

    from nodes.reid import ReidNode
    from zdg.testing import NodeHarness

    seen = sequence("seen", person(0))
    with NodeHarness(ReidNode, dsn=store_dsn, threshold=0.45, named_threshold=0.6, maintain_every=0) as node:
        known = node.feed(replace(seen, sequence_db_id=store(faces, seen)))[0].fields["cluster_id"]
        stored_before = conn.execute("SELECT count(*) FROM sequences").fetchone()[0]
        again = replace(sequence("again", person(0)), closed=False)
        stranger = replace(sequence("stranger", person(4)), closed=False)
        beside = replace(again, sequence_id="v:beside", frames=seen.frames.copy())  # on screen with `seen`
        said = [node.feed(s)[0].fields for s in (again, stranger, beside)]
    assert [(d["status"], d["cluster_id"], d["sequence_db_id"]) for d in said] == [
        ("provisional", known, None), ("provisional", None, None), ("provisional", None, None)]
    assert said[1]["label"] == "?" and said[0]["distance"] < 0.45 <= said[1]["distance"]
    assert conn.execute("SELECT count(*) FROM sequences").fetchone()[0] == stored_before, "nothing stored"
    assert np.isfinite(said[2]["distance"]), "the one on screen with `seen` is scored, but not joined to it"


def test_a_later_part_of_a_long_sequence_joins_the_part_before_whatever_the_threshold(faces, conn):
    from dataclasses import replace

    from nodes.store.reid import Query

    first_id, first = stored(faces, "long", 0)
    drifted = person(0, noise=0.5)  # profile, blur: far from the first part's faces
    part = replace(sequence("long_part2", drifted), continues="v:long")
    part_id = store(faces, part)
    strict = ReidSettings(threshold=0.05, named_threshold=0.05)
    assert faces.decide(Query(part_id, drifted, continues="v:long"), strict).cluster_id == first
    also_drifted = person(0, noise=0.5)
    alone = store(faces, sequence("other", also_drifted))
    assert faces.decide(Query(alone, also_drifted), strict).status == "new", "without the link: a new identity"


def test_zdg_identities_does_each_correction_as_the_workbench_does(faces, conn, tmp_path, capsys):
    from nodes.app.commands import identity_change

    a1, a = stored(faces, "a1", 0)
    b1, b = stored(faces, "b1", 1)
    _, c = stored(faces, "c1", 2)
    assert identity_change(faces, "move", [str(b1), str(a)], tmp_path) == 0
    assert conn.execute("SELECT cluster_id FROM sequences WHERE id = %s", (b1,)).fetchone()[0] == a
    assert faces.identities([b]) == [], "the emptied identity is gone"
    assert identity_change(faces, "split", [str(a), str(b1)], tmp_path) == 0
    new = conn.execute("SELECT cluster_id FROM sequences WHERE id = %s", (b1,)).fetchone()[0]
    assert new not in (a, b)
    assert identity_change(faces, "rename", [str(c), "Carol"], tmp_path) == 0
    assert identity_change(faces, "different", [str(c), str(a)], tmp_path) == 0
    assert identity_change(faces, "merge", [str(a), str(c)], tmp_path) == 1, "marked different: refused"
    assert identity_change(faces, "merge", [str(new), str(c)], tmp_path) == 0
    said = capsys.readouterr()
    assert said.out.splitlines() == [f"sequence {b1} moved into identity {a}",
                                     f"split from identity {a}: marked as a different person", "renamed to Carol",
                                     f"marked as a different person than identity {a}",
                                     f"identity {new} merged into this one"]
    assert "zdg identities merge: " in said.err
    assert {i.id: i.name for i in faces.identities()} == {a: None, c: "Carol"}
    by_hand = {e.kind: e.actor for e in faces.events() if e.actor}
    assert set(by_hand) >= {"move", "split", "rename", "merge"} and {a.split(":")[0] for a in by_hand.values()} == {"cli"}
    with pytest.raises(SystemExit, match="usage: zdg identities move SEQ ID"):
        identity_change(faces, "move", [str(b1)], tmp_path)
