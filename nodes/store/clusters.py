"""Face clusters in SQL: their vectors, statistics, names, merges and deletion, and what a report lists."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import psycopg

from nodes.store import links


@dataclass
class Identity:
    id: int
    name: str | None
    size: int
    sequences: int
    sources: int
    silhouette: float | None
    first_seen: datetime | None = None  # when its first / last sequence was on screen (wall clock), else stored
    last_seen: datetime | None = None
    source_names: list[str] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)


def windowed_sets(conn: psycopg.Connection, per_cluster: int, ids: list[int] | None = None) -> dict[int, np.ndarray]:
    """Up to `per_cluster` best-quality face vectors of each cluster (of `ids`, or of all), an array per cluster. Each
    cluster's vectors come as one value in pgvector's binary form and are decoded at once: decoding them row by row
    took most of a decision that scores many clusters."""
    where = "cluster_id = ANY(%s)" if ids is not None else "cluster_id IS NOT NULL"
    args: tuple = (ids, per_cluster) if ids is not None else (per_cluster,)
    rows = conn.execute(
        "SELECT cluster_id, string_agg(vector_send(embedding), ''::bytea) FROM (SELECT cluster_id, embedding, "
        "row_number() OVER (PARTITION BY cluster_id ORDER BY quality DESC NULLS LAST, id) AS rn "
        f"FROM faces WHERE {where}) t WHERE rn <= %s GROUP BY cluster_id ORDER BY cluster_id", args, binary=True).fetchall()
    return {cluster_id: unpack_vectors(bytes(packed)) for cluster_id, packed in rows}


def unpack_vectors(packed: bytes) -> np.ndarray:
    """Vectors one after the other in pgvector's binary form (each: its dimension and an unused int16, then that many
    big-endian float32) as an (n, dim) float32 array."""
    dim = int.from_bytes(packed[:2], "big")
    return np.frombuffer(packed, ">f4").reshape(-1, dim + 1)[:, 1:].astype(np.float32)


def names_of(conn: psycopg.Connection, ids: list[int] | None = None) -> dict[int, str | None]:
    if ids is None:
        return dict(conn.execute("SELECT id, name FROM clusters").fetchall())
    return dict(conn.execute("SELECT id, name FROM clusters WHERE id = ANY(%s)", (ids,)).fetchall())


def refresh_cluster(conn: psycopg.Connection, cluster_id: int, silhouette: float | None = None) -> None:
    conn.execute(
        "UPDATE clusters c SET size = s.n, centroid = s.centroid, cohesion = s.cohesion, updated_at = now(), "
        "silhouette = COALESCE(%s, c.silhouette) FROM (SELECT count(*) AS n, avg(embedding) AS centroid, "
        "1 - avg(embedding <=> (SELECT avg(embedding) FROM faces WHERE cluster_id = %s)) AS cohesion "
        "FROM faces WHERE cluster_id = %s) s WHERE c.id = %s",
        (silhouette, cluster_id, cluster_id, cluster_id))


def new_cluster(conn: psycopg.Connection, name: str | None = None) -> int:
    return conn.execute("INSERT INTO clusters (name) VALUES (%s) RETURNING id", (name,)).fetchone()[0]


def cluster_by_name(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute("SELECT id FROM clusters WHERE name = %s", (name,)).fetchone()
    return row[0] if row else new_cluster(conn, name)


def record_event(conn: psycopg.Connection, kind: str, cluster_id: int | None, other_id: int | None = None,
                 detail: dict | None = None, actor: str | None = None) -> None:
    """Append to the store's history; `actor` is who made a change by hand (None: zdg itself)."""
    conn.execute("INSERT INTO cluster_events (kind, cluster_id, other_id, detail, actor) VALUES (%s, %s, %s, %s, %s)",
                 (kind, cluster_id, other_id, None if detail is None else json.dumps(detail), actor))


class KeptApart(ValueError):
    """The two identities were marked as different people: they are not merged."""


def merge_clusters(conn: psycopg.Connection, source: int, target: int, detail: dict | None = None,
                   actor: str | None = None) -> None:
    """Move every face and sequence of `source` into `target`; the target keeps its name, else takes the source's.
    Raises KeptApart for two identities marked as different people."""
    names = names_of(conn, [source, target])
    missing = {source, target} - set(names)
    if missing:
        raise LookupError(f"no identity {sorted(missing)}")
    if source == target:
        raise ValueError(f"identity {source} is already that identity")
    if links.linked(conn, source, target):
        raise KeptApart(f"identities {source} and {target} were marked as different people; not merged")
    links.carry(conn, source, target)
    conn.execute("UPDATE faces SET cluster_id = %s WHERE cluster_id = %s", (target, source))
    conn.execute("UPDATE faces SET forgotten_from = %s WHERE forgotten_from = %s", (target, source))
    conn.execute("UPDATE sequences SET cluster_id = %s WHERE cluster_id = %s", (target, source))
    conn.execute("UPDATE cluster_aliases SET new_id = %s WHERE new_id = %s", (target, source))
    conn.execute("INSERT INTO cluster_aliases (old_id, new_id) VALUES (%s, %s)", (source, target))
    conn.execute("DELETE FROM clusters WHERE id = %s", (source,))
    if not names[target] and names[source]:
        conn.execute("UPDATE clusters SET name = %s WHERE id = %s", (names[source], target))
    refresh_cluster(conn, target)
    record_event(conn, "merge", target, source, detail, actor)


def resolve(conn: psycopg.Connection, cluster_id: int) -> int:
    """The cluster an id names now: itself, or the one it was merged into."""
    row = conn.execute("SELECT new_id FROM cluster_aliases WHERE old_id = %s", (cluster_id,)).fetchone()
    return row[0] if row else cluster_id


def moved_sequences(conn: psycopg.Connection, cluster_id: int) -> list[tuple]:
    """(sequence id, key, source, first frame, last frame) of the sequences a cluster holds."""
    return conn.execute(
        "SELECT s.id, s.seq_key, so.name, s.first_frame, s.last_frame FROM sequences s JOIN sources so "
        "ON so.id = s.source_id WHERE s.cluster_id = %s ORDER BY s.id", (cluster_id,)).fetchall()


def delete_sequences(conn: psycopg.Connection, condition: str, args: tuple) -> list[tuple[str, str]]:
    """Delete the sequences matching an SQL condition on `s` (their faces and crops cascade); their (source, key)."""
    return conn.execute(f"DELETE FROM sequences s USING sources so WHERE so.id = s.source_id AND {condition} "
                        "RETURNING so.name, s.seq_key", args).fetchall()


@dataclass
class Deleted:
    """What removing identities took: faces, the (source, key) of each sequence (their files go too), and every id
    the identity had (its own and those merged into it: files named by them go too)."""

    faces: int = 0
    sequences: list[tuple[str, str]] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)


def delete_cluster(conn: psycopg.Connection, cluster_id: int, actor: str | None = None, kind: str = "delete") -> Deleted:
    """Remove the identity and every trace of it (`delete_clusters`); LookupError if there is none."""
    if not conn.execute("SELECT 1 FROM clusters WHERE id = %s", (cluster_id,)).fetchone():
        raise LookupError(f"no identity {cluster_id}")
    return delete_clusters(conn, [cluster_id], actor, kind)


def delete_clusters(conn: psycopg.Connection, cluster_ids: list[int], actor: str | None = None,
                    kind: str = "delete") -> Deleted:
    """Remove these identities and every trace of them: the identities merged into them, every face ever assigned
    to them (those maintenance forgot and enrolment photos too), sequences, crops, enrolment photo paths, and
    their history; one `kind` event (delete, purge) each without detail is left, and others' history keeps no
    detail about them. A few statements whatever their number (a retention purge of a million faces)."""
    ids = [*cluster_ids, *(r[0] for r in conn.execute(
        "SELECT old_id FROM cluster_aliases WHERE new_id = ANY(%s) ORDER BY old_id", (cluster_ids,)))]
    faces = conn.execute(
        "SELECT count(*) FROM (SELECT id FROM faces WHERE cluster_id = ANY(%s) UNION SELECT id FROM faces WHERE "
        "forgotten_from = ANY(%s) UNION SELECT f.id FROM faces f JOIN sequences s ON s.id = f.sequence_id WHERE "
        "s.cluster_id = ANY(%s)) gone", (cluster_ids, ids, cluster_ids)).fetchone()[0]
    sequences = delete_sequences(conn, "s.cluster_id = ANY(%s)", (cluster_ids,))
    conn.execute("DELETE FROM faces WHERE cluster_id = ANY(%s)", (cluster_ids,))
    conn.execute("DELETE FROM faces WHERE forgotten_from = ANY(%s)", (ids,))
    conn.execute("DELETE FROM clusters WHERE id = ANY(%s)", (cluster_ids,))  # their aliases and cannot-links cascade
    conn.execute("DELETE FROM sources s WHERE s.name LIKE 'photo:%%' AND NOT EXISTS "
                 "(SELECT 1 FROM faces f WHERE f.source_id = s.id)")  # their enrolment photos' paths
    conn.execute("DELETE FROM cluster_events WHERE cluster_id = ANY(%s)", (ids,))
    conn.execute("UPDATE cluster_events SET detail = NULL WHERE other_id = ANY(%s)", (ids,))
    conn.execute("INSERT INTO cluster_events (kind, cluster_id, actor) SELECT %s, unnest(%s::bigint[]), %s",
                 (kind, cluster_ids, actor))
    return Deleted(faces, sorted(sequences), ids)


PEOPLE_TABLES = ("faces", "sequences", "crops", "clusters", "cluster_events", "cluster_aliases", "cannot_links",
                 "apart_distances", "sources")


def rewrite_tables(conn: psycopg.Connection) -> list[str]:
    """VACUUM FULL every table that holds faces, names or paths (and the planner's statistics, which sample column
    values), so deleted rows are not left in the data files; the tables rewritten."""
    done = []
    for table in PEOPLE_TABLES:
        conn.execute(f"VACUUM (FULL, ANALYZE) {table}")
        done.append(table)
    if is_superuser(conn):  # another role cannot rewrite the catalog; its old statistics rows wait for autovacuum
        conn.execute("VACUUM FULL pg_catalog.pg_statistic")
        done.append("pg_statistic")
    return done


def is_superuser(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]


def rename_cluster(conn: psycopg.Connection, cluster_id: int, name: str, actor: str | None = None) -> None:
    taken = conn.execute("SELECT id FROM clusters WHERE name = %s AND id <> %s", (name, cluster_id)).fetchone()
    if taken:
        raise ValueError(f"the name {name!r} is identity {taken[0]}'s; merge the two instead")
    # updated_at: a named identity merges by its own threshold, so the next maintenance pass looks at it again
    if conn.execute("UPDATE clusters SET name = %s, updated_at = now() WHERE id = %s", (name, cluster_id)).rowcount != 1:
        raise LookupError(f"no identity {cluster_id}")
    record_event(conn, "rename", cluster_id, detail={"name": name}, actor=actor)


def list_identities(conn: psycopg.Connection, ids: list[int] | None = None, after: int = 0,
                    limit: int | None = None) -> list[Identity]:
    """The identities of `ids`, or every one after id `after` (up to `limit`, by id: a page by key), with where and
    when each was seen."""
    rows = conn.execute(
        "WITH page AS (SELECT id FROM clusters WHERE (%s::bigint[] IS NULL OR id = ANY(%s)) AND id > %s "
        "ORDER BY id LIMIT %s) "
        "SELECT c.id, c.name, c.size, count(s.id), count(DISTINCT s.source_id), c.silhouette, "
        "min(coalesce(s.seen_at, s.created_at)), max(coalesce(s.seen_at, s.created_at)), "
        "coalesce(array_agg(DISTINCT so.name) FILTER (WHERE so.name IS NOT NULL), '{}'), "
        "coalesce(array_agg(DISTINCT so.camera) FILTER (WHERE so.camera IS NOT NULL), '{}') "
        "FROM page JOIN clusters c ON c.id = page.id LEFT JOIN sequences s ON s.cluster_id = c.id "
        "LEFT JOIN sources so ON so.id = s.source_id GROUP BY c.id ORDER BY c.id", (ids, ids, after, limit)).fetchall()
    return [Identity(*row) for row in rows]


def likely_targets(conn: psycopg.Connection, cluster_id: int, k: int) -> list[int]:
    """The clusters a person would merge this one into or tell apart from it: its `k` nearest by centroid, and up
    to `k` named ones."""
    centroid = conn.execute("SELECT centroid FROM clusters WHERE id = %s", (cluster_id,)).fetchone()
    near = [] if centroid is None or centroid[0] is None else [r[0] for r in conn.execute(
        "SELECT id FROM clusters WHERE id <> %s AND size > 0 ORDER BY centroid <=> %s LIMIT %s",
        (cluster_id, centroid[0], k))]
    named = [r[0] for r in conn.execute("SELECT id FROM clusters WHERE name IS NOT NULL AND id <> %s ORDER BY name "
                                        "LIMIT %s", (cluster_id, k))]
    return sorted(set(near) | set(named))


def clusters_for_report(conn: psycopg.Connection) -> list[tuple]:
    """(id, name, size, silhouette, cohesion) of every cluster."""
    return conn.execute("SELECT id, name, size, silhouette, cohesion FROM clusters ORDER BY id").fetchall()


def appearances(conn: psycopg.Connection, cluster_id: int) -> list[tuple]:
    """(source, first frame, last frame, first ts, last ts, sequence id) of the cluster's sequences."""
    return conn.execute(
        "SELECT so.name, s.first_frame, s.last_frame, s.first_ts, s.last_ts, s.id FROM sequences s "
        "JOIN sources so ON so.id = s.source_id WHERE s.cluster_id = %s ORDER BY so.name, s.first_frame",
        (cluster_id,)).fetchall()


def crops_of(conn: psycopg.Connection, cluster_id: int, limit: int) -> list[tuple[bytes, int]]:
    """(PNG bytes, frame) of the cluster's stored crops."""
    return conn.execute(
        "SELECT c.png, c.frame FROM crops c JOIN sequences s ON s.id = c.sequence_id WHERE s.cluster_id = %s "
        "ORDER BY s.id, c.frame LIMIT %s", (cluster_id, limit)).fetchall()


def summary(conn: psycopg.Connection) -> dict[str, int]:
    one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    return {
        "sources": one("SELECT count(*) FROM sources WHERE name NOT LIKE 'photo:%'"),
        "sequences": one("SELECT count(*) FROM sequences"),
        "junk_sequences": one("SELECT count(*) FROM sequences WHERE junk IS NOT NULL"),
        "faces": one("SELECT count(*) FROM faces WHERE sequence_id IS NOT NULL"),
        "clusters": one("SELECT count(*) FROM clusters"),
        "named_clusters": one("SELECT count(*) FROM clusters WHERE name IS NOT NULL"),
        "recognised_sequences": one("SELECT count(*) FROM cluster_events WHERE kind = 'recognised'"),
        "reappearing_clusters": one("SELECT count(*) FROM (SELECT cluster_id FROM sequences WHERE cluster_id IS NOT NULL "
                                    "GROUP BY cluster_id HAVING count(*) > 1) t"),
        "clusters_in_several_sources": one("SELECT count(*) FROM (SELECT cluster_id FROM sequences WHERE cluster_id IS NOT NULL "
                                           "GROUP BY cluster_id HAVING count(DISTINCT source_id) > 1) t"),
    }
