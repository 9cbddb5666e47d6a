"""Score a store's re-identification of a clip against positional truth: recall as well as precision.

Truth (tests/data/friends_poker_truth.json format): a sequence is person P when its first frame lies in
P's [first, last] and the x centre of its first box in [x_min, x_max]; other sequences are nobody.
For each visit (a `video_id` in the store), from the store as it is now:
  reappearances found  later sequences of a person whose cluster also holds an earlier sequence of them
  pair precision/recall "same cluster" against "same person", over the person-sequences of the visit
  false merges          clusters holding two different people
  nobody in a person    sequences matching no one that sit in a cluster holding a person
With two visits (the same footage under two video_ids), also: second-visit sequences whose cluster holds
the same person from the first visit (recall), and those whose cluster holds someone else (errors), and
the decision each got when it was published (new / recognised).

    zdg run graphs/video_reid.yaml --set source.video_id=a; zdg run graphs/video_reid.yaml --set source.video_id=b
    python bench/reid_truth.py a b [--dsn DSN | --store-dir .zdg/store] [--truth tests/data/friends_poker_truth.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from itertools import combinations
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]


def truth_name(people: list[dict], first_frame: int, x_centre: float) -> str | None:
    for p in people:
        if p["first"] <= first_frame <= p["last"] and p["x_min"] <= x_centre <= p["x_max"]:
            return p["name"]
    return None


def visit_rows(conn: psycopg.Connection, video: str, people: list[dict]) -> list[tuple[int, int, str | None, int]]:
    """(first frame, cluster id, truth name, sequence id) of every sequence of a visit, in time order."""
    rows = conn.execute(
        "SELECT s.first_frame, (f.bbox[1] + f.bbox[3]) / 2, s.cluster_id, s.id FROM sequences s "
        "JOIN sources so ON so.id = s.source_id "
        "JOIN LATERAL (SELECT bbox FROM faces WHERE sequence_id = s.id ORDER BY frame, face_index LIMIT 1) f ON true "
        "WHERE so.name = %s ORDER BY s.first_frame, s.id", (video,)).fetchall()
    return [(ff, cid, truth_name(people, ff, x), sid) for ff, x, cid, sid in rows]


def score_visit(rows: list[tuple[int, int, str | None, int]]) -> dict:
    named = [(cid, name) for _, cid, name, _ in rows if name]
    later = found = 0
    for i, (cid, name) in enumerate(named):
        if any(n == name for _, n in named[:i]):
            later += 1
            found += any(c == cid and n == name for c, n in named[:i])
    same_cluster = same_person = both = 0
    for (c1, n1), (c2, n2) in combinations(named, 2):
        same_cluster += c1 == c2
        same_person += n1 == n2
        both += c1 == c2 and n1 == n2
    people_in = {}
    for cid, name in named:
        people_in.setdefault(cid, set()).add(name)
    nobody_in_person = sum(1 for _, cid, name, _ in rows if not name and cid in people_in)
    return {"sequences": len(rows), "person_sequences": len(named), "people": len({n for _, n in named}),
            "clusters": len({cid for _, cid, _, _ in rows}), "reappearances": later, "reappearances_found": found,
            "pair_precision": both / same_cluster if same_cluster else 1.0,
            "pair_recall": both / same_person if same_person else 1.0,
            "false_merges": sum(1 for names in people_in.values() if len(names) > 1),
            "nobody_in_a_person_cluster": nobody_in_person}


def score_second_visit(conn: psycopg.Connection, first: list, second: list) -> dict:
    holds = {}
    for _, cid, name, _ in first:
        if name:
            holds.setdefault(cid, set()).add(name)
    named = [(cid, name, sid) for _, cid, name, sid in second if name]
    right = sum(1 for cid, name, _ in named if name in holds.get(cid, ()))
    wrong = sum(1 for cid, name, _ in named if holds.get(cid) and name not in holds[cid])
    events = dict(conn.execute(
        "SELECT (detail->>'sequence')::bigint, kind FROM cluster_events WHERE kind IN ('new', 'recognised') "
        "AND (detail->>'sequence')::bigint = ANY(%s)", ([sid for _, _, _, sid in second],)).fetchall())
    return {"person_sequences": len(named), "joined_same_person_from_first_visit": right,
            "joined_someone_else": wrong, "published_decisions": dict(Counter(events.values()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("visits", nargs="+", help="video_id of the first visit (and of a second one)")
    parser.add_argument("--dsn", help="default: the embedded store in --store-dir")
    parser.add_argument("--store-dir", default=".zdg/store")
    parser.add_argument("--truth", type=Path, default=REPO / "tests/data/friends_poker_truth.json")
    args = parser.parse_args()
    if args.dsn:
        dsn = args.dsn
    else:
        from nodes.store.db import embedded_dsn

        dsn = embedded_dsn(args.store_dir)
    people = json.loads(args.truth.read_text())["people"]
    with psycopg.connect(dsn) as conn:
        rows = {v: visit_rows(conn, v, people) for v in args.visits}
        report = {v: score_visit(r) for v, r in rows.items()}
        if len(args.visits) == 2:
            report["second_visit"] = score_second_visit(conn, *rows.values())
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
