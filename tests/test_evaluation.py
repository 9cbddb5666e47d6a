"""`zdg eval video`'s scoring of a second visit against the first."""

from __future__ import annotations

from nodes.store.evaluation import Row, score_second_visit


def row(frame: int, cluster_id: int | None, person: str | None) -> Row:
    return Row(frame, cluster_id, person, sequence_db_id=frame, name=None, junk=False)


def test_a_second_visit_is_scored_against_the_people_the_first_one_showed():
    first = [row(0, 1, "Ann"), row(10, 2, "Bob")]
    second = [row(100, 1, "Ann"), row(110, 5, "Ann"), row(120, 1, "Bob"), row(130, 3, "Cid"), row(140, 2, "Cid"),
              row(150, None, None)]
    scored = score_second_visit(first, second, {})
    assert scored["person_sequences"] == 5
    assert scored["person_sequences_seen_in_first_visit"] == 3, "Cid was not in the first visit: nobody to find"
    assert scored["joined_same_person_from_first_visit"] == 1
    assert scored["joined_someone_else"] == 2, "Bob in Ann's cluster, Cid in Bob's"
