"""`zdg eval video`: a store's re-identification of a clip scored against positional truth (nodes.matching.truth).

For a visit (the `video_id` the clip was stored under), from the store as it is now:
  reappearances found   later sequences of a person whose cluster also holds an earlier sequence of them
  pair precision/recall "same cluster" against "same person", over the person-sequences
  false merges          clusters holding two different people
  junk in a person      sequences matching no one that sit in a cluster holding a person
  named right / wrong   person-sequences whose cluster carries their name / another name
  separation            how well the stored embeddings tell the person-sequences apart, before any decision: the
                        set distances of same-person and different-person pairs (median, closest different pair)
                        and the pair AUC (1: every same pair nearer than every different pair)
  clothing              the same pairs by what they wear (torso colours): how many are over reid.torso_apart (a
                        different pair there is kept apart; a same pair there is split by clothing)
With a first visit (another video_id of the same people), also the second visit's person-sequences whose
cluster holds the same person from the first visit (recall, out of those whose person the first visit shows) or
someone else (errors), and the decisions as they were published (status, and the name they carried).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import combinations, product

import numpy as np
import psycopg

from nodes.matching.appearance import torso_distance
from nodes.matching.setdist import l2_normalise, nearer_side_distance
from nodes.matching.truth import Truth
from nodes.store.db import to_numpy


@dataclass(frozen=True)
class Row:
    first_frame: int
    cluster_id: int | None
    person: str | None  # from the truth
    sequence_db_id: int
    name: str | None  # the cluster's name
    junk: bool


def visit_rows(conn: psycopg.Connection, video: str, truth: Truth) -> list[Row]:
    """Every sequence of a visit, in time order."""
    rows = conn.execute(
        "SELECT s.first_frame, (f.bbox[1] + f.bbox[3]) / 2, s.cluster_id, s.id, c.name, s.junk IS NOT NULL "
        "FROM sequences s JOIN sources so ON so.id = s.source_id LEFT JOIN clusters c ON c.id = s.cluster_id "
        "JOIN LATERAL (SELECT bbox FROM faces WHERE sequence_id = s.id ORDER BY frame, face_index LIMIT 1) f ON true "
        "WHERE so.name = %s ORDER BY s.first_frame, s.id", (video,)).fetchall()
    if not rows:
        raise LookupError(f"the store holds no sequence of video_id {video!r}")
    return [Row(ff, cid, truth.name_at(ff, x), sid, name, junk) for ff, x, cid, sid, name, junk in rows]


def score_visit(rows: list[Row]) -> dict:
    people = [r for r in rows if r.person]
    later = found = 0
    for i, r in enumerate(people):
        if any(p.person == r.person for p in people[:i]):
            later += 1
            found += any(p.cluster_id == r.cluster_id is not None and p.person == r.person for p in people[:i])
    same_cluster = same_person = both = 0
    for a, b in combinations(people, 2):
        together = a.cluster_id is not None and a.cluster_id == b.cluster_id
        same_cluster += together
        same_person += a.person == b.person
        both += together and a.person == b.person
    held = people_by_cluster(rows)
    return {
        "sequences": len(rows), "person_sequences": len(people), "people": len({r.person for r in people}),
        "clusters": len({r.cluster_id for r in rows if r.cluster_id is not None}),
        "junk_sequences": sum(r.junk for r in rows), "person_sequences_marked_junk": sum(r.junk for r in people),
        "reappearances": later, "reappearances_found": found,
        "pair_precision": both / same_cluster if same_cluster else 1.0,
        "pair_recall": both / same_person if same_person else 1.0,
        "false_merges": sum(1 for names in held.values() if len(names) > 1),
        "junk_in_a_person_cluster": sum(1 for r in rows if not r.person and r.cluster_id in held),
        "named_right": sum(1 for r in people if r.name == r.person),
        "named_wrong": sum(1 for r in people if r.name and r.name != r.person),
        "others_named": sum(1 for r in rows if not r.person and r.name),
    }


def people_by_cluster(rows: list[Row]) -> dict[int, set[str]]:
    """Who (by the truth) each cluster holds."""
    held: dict[int, set[str]] = {}
    for r in rows:
        if r.person and r.cluster_id is not None:
            held.setdefault(r.cluster_id, set()).add(r.person)
    return held


def named_when_published(rows: list[Row], decisions: dict[int, dict]) -> int:
    """Person-sequences whose decision carried their name when it was published."""
    return sum(1 for r in rows if r.person and decisions.get(r.sequence_db_id, {}).get("name") == r.person)


def published(conn: psycopg.Connection, rows: list[Row]) -> dict[int, dict]:
    """The decision each sequence got when it was published: status and name."""
    found = conn.execute(
        "SELECT (detail->>'sequence')::bigint, kind, detail->>'name' FROM cluster_events "
        "WHERE kind IN ('new', 'recognised', 'junk') AND (detail->>'sequence')::bigint = ANY(%s)",
        ([r.sequence_db_id for r in rows],)).fetchall()
    return {sid: {"status": kind, "name": name} for sid, kind, name in found}


def score_second_visit(first: list[Row], second: list[Row], decisions: dict[int, dict]) -> dict:
    """How the second visit's person-sequences joined the first visit's clusters; `decisions` as published."""
    held = people_by_cluster(first)
    people = [r for r in second if r.person]
    seen = {r.person for r in first if r.person}
    return {
        "person_sequences": len(people),
        "person_sequences_seen_in_first_visit": sum(1 for r in people if r.person in seen),
        "joined_same_person_from_first_visit": sum(1 for r in people if r.person in held.get(r.cluster_id, ())),
        "joined_someone_else": sum(1 for r in people if held.get(r.cluster_id) and r.person not in held[r.cluster_id]),
        "published": dict(Counter(d["status"] for d in decisions.values())),
        "person_decisions_published_with_their_name": named_when_published(second, decisions),
    }


def separation(conn: psycopg.Connection, rows: list[Row], later: list[Row] | None = None) -> dict:
    """Same-person against different-person set distances (mean_min, from the nearer side) over the
    person-sequences' stored faces: pairs within `rows`, or with `later`, pairs of one from each."""
    people = [r for r in rows if r.person]
    others = [r for r in later or [] if r.person]
    vectors = {r.sequence_db_id: l2_normalise(np.stack([to_numpy(e) for (e,) in conn.execute(
        "SELECT embedding FROM faces WHERE sequence_id = %s ORDER BY frame, face_index", (r.sequence_db_id,))]))
        for r in people + others}
    same, different = [], []
    for a, b in product(people, others) if later is not None else combinations(people, 2):
        d = nearer_side_distance(vectors[a.sequence_db_id], vectors[b.sequence_db_id], "mean_min")
        (same if a.person == b.person else different).append(d)
    if not same or not different:
        return {"same_pairs": len(same), "different_pairs": len(different)}
    nearer = np.array(same)[:, None] < np.array(different)[None, :]
    ties = np.array(same)[:, None] == np.array(different)[None, :]
    return {"same_pairs": len(same), "different_pairs": len(different),
            "same_median": round(float(np.median(same)), 4), "different_median": round(float(np.median(different)), 4),
            "closest_different": round(min(different), 4), "farthest_same": round(max(same), 4),
            "pair_auc": round(float(nearer.mean() + ties.mean() / 2), 4)}


def clothing(conn: psycopg.Connection, rows: list[Row], limit: float) -> dict:
    """Torso distances (nodes.matching.appearance) of same-person and different-person pairs within the visit, and
    how many of each are over `limit` (reid.torso_apart): different ones kept apart, same ones wrongly so."""
    torsos = dict(conn.execute("SELECT id, torso FROM sequences WHERE id = ANY(%s) AND torso IS NOT NULL",
                               ([r.sequence_db_id for r in rows if r.person],)).fetchall())
    seen = [r for r in rows if r.person and r.sequence_db_id in torsos]
    same, different = [], []
    for a, b in combinations(seen, 2):
        d = torso_distance(np.asarray(torsos[a.sequence_db_id], np.float32), np.asarray(torsos[b.sequence_db_id], np.float32))
        (same if a.person == b.person else different).append(d)
    out = {"person_sequences_seen": len(seen), "same_pairs": len(same), "different_pairs": len(different),
           "limit": limit, "same_over_limit": sum(d > limit for d in same),
           "different_over_limit": sum(d > limit for d in different)}
    if same:
        out["same_max"] = round(max(same), 4)
    if different:
        out |= {"different_min": round(min(different), 4), "different_median": round(float(np.median(different)), 4)}
    return out


def evaluate_video(conn: psycopg.Connection, truth: Truth, video: str, first_visit: str | None = None, *,
                   torso_apart: float) -> dict:
    rows = visit_rows(conn, video, truth)
    decisions = published(conn, rows)
    report = {video: score_visit(rows)}
    report[video]["person_decisions_published_with_their_name"] = named_when_published(rows, decisions)
    report[video]["separation"] = separation(conn, rows)
    report[video]["clothing"] = clothing(conn, rows, torso_apart)
    if first_visit:
        first = visit_rows(conn, first_visit, truth)
        report[first_visit] = score_visit(first)
        report["second_visit"] = score_second_visit(first, rows, decisions)
        report["second_visit"]["separation"] = separation(conn, first, rows)
    return report
