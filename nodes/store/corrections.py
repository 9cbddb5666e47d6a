"""Corrections a person makes: split sequences out of an identity, move one sequence, mark two identities as
different people. Each is one transaction under the decision lock, recorded with who made it."""

from __future__ import annotations

import psycopg

from nodes.store import links
from nodes.store.clusters import new_cluster, record_event, refresh_cluster, resolve
from nodes.store.reid import lock_decisions


def _cluster_of_sequences(conn: psycopg.Connection, sequence_ids: list[int]) -> dict[int, int | None]:
    rows = conn.execute("SELECT id, cluster_id FROM sequences WHERE id = ANY(%s)", (sequence_ids,)).fetchall()
    missing = set(sequence_ids) - {r[0] for r in rows}
    if missing:
        raise LookupError(f"no sequence {sorted(missing)}")
    return dict(rows)


def _assign(conn: psycopg.Connection, sequence_ids: list[int], cluster_id: int) -> None:
    """Put sequences (and their faces) into a cluster by hand: no distance, not junk any more."""
    conn.execute("UPDATE faces SET cluster_id = %s, forgotten_from = NULL WHERE sequence_id = ANY(%s)",
                 (cluster_id, sequence_ids))
    conn.execute("UPDATE sequences SET cluster_id = %s, distance = NULL, junk = NULL WHERE id = ANY(%s)",
                 (cluster_id, sequence_ids))


def _drop_if_empty(conn: psycopg.Connection, cluster_id: int) -> None:
    """An unnamed identity left with no face is removed; a named one stays (it is someone's name)."""
    conn.execute("DELETE FROM clusters c WHERE id = %s AND name IS NULL AND NOT EXISTS "
                 "(SELECT 1 FROM faces f WHERE f.cluster_id = c.id)", (cluster_id,))


def split(conn: psycopg.Connection, cluster_id: int, sequence_ids: list[int], actor: str | None = None) -> int:
    """Move the chosen sequences of an identity into a new identity, marked as a different person than the
    rest; returns the new identity's id."""
    if not sequence_ids:
        raise ValueError("choose at least one sequence to split off")
    with conn.transaction():
        lock_decisions(conn)
        cluster_id = resolve(conn, cluster_id)
        owners = _cluster_of_sequences(conn, sequence_ids)
        strays = sorted(s for s, c in owners.items() if c != cluster_id)
        if strays:
            raise ValueError(f"sequences {strays} are not in identity {cluster_id}")
        left = conn.execute("SELECT count(*) FROM sequences WHERE cluster_id = %s AND NOT id = ANY(%s)",
                            (cluster_id, sequence_ids)).fetchone()[0]
        if not left:
            raise ValueError(f"a split must leave identity {cluster_id} at least one sequence")
        new_id = new_cluster(conn)
        _assign(conn, sequence_ids, new_id)
        refresh_cluster(conn, cluster_id)
        refresh_cluster(conn, new_id)
        links.link(conn, cluster_id, new_id)
        record_event(conn, "split", new_id, cluster_id, {"sequences": sorted(sequence_ids)}, actor)
        return new_id


def move_sequence(conn: psycopg.Connection, sequence_id: int, target: int, actor: str | None = None) -> int:
    """Put one sequence (a junk one too) into another identity; returns that identity's current id."""
    with conn.transaction():
        lock_decisions(conn)
        target = resolve(conn, target)
        if not conn.execute("SELECT 1 FROM clusters WHERE id = %s", (target,)).fetchone():
            raise LookupError(f"no identity {target}")
        old = _cluster_of_sequences(conn, [sequence_id])[sequence_id]
        _assign(conn, [sequence_id], target)
        refresh_cluster(conn, target)
        if old is not None and old != target:
            refresh_cluster(conn, old)
            _drop_if_empty(conn, old)
        record_event(conn, "move", target, old, {"sequence": sequence_id}, actor)
        return target


def mark_different(conn: psycopg.Connection, a: int, b: int, actor: str | None = None) -> None:
    """Two identities are different people: maintenance and merges never join them."""
    with conn.transaction():
        lock_decisions(conn)
        a, b = resolve(conn, a), resolve(conn, b)
        if a == b:
            raise ValueError(f"identity {a} cannot be marked as different from itself")
        found = {r[0] for r in conn.execute("SELECT id FROM clusters WHERE id = ANY(%s)", ([a, b],))}
        if {a, b} - found:
            raise LookupError(f"no identity {sorted({a, b} - found)}")
        links.link(conn, a, b)
        record_event(conn, "different", a, b, actor=actor)
