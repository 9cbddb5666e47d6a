"""Versioned migrations, applied at start. The vector dimension is fixed when the store is created."""

from __future__ import annotations

import psycopg

from zdg.node import FatalNodeError

MIGRATIONS: list[str] = [
    # 1: sources, sequences, faces, clusters, crops and merge history
    """
    CREATE TABLE sources (
        id bigserial PRIMARY KEY,
        name text UNIQUE NOT NULL,
        path text,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE clusters (
        id bigserial PRIMARY KEY,
        name text UNIQUE,
        centroid vector({dim}),
        size int NOT NULL DEFAULT 0,
        cohesion real,
        silhouette real,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE sequences (
        id bigserial PRIMARY KEY,
        source_id bigint NOT NULL REFERENCES sources ON DELETE CASCADE,
        seq_key text UNIQUE NOT NULL,
        first_frame int NOT NULL,
        last_frame int NOT NULL,
        first_ts double precision,
        last_ts double precision,
        size int NOT NULL,
        centroid vector({dim}) NOT NULL,
        cluster_id bigint REFERENCES clusters ON DELETE SET NULL,
        distance real,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE faces (
        id bigserial PRIMARY KEY,
        source_id bigint NOT NULL REFERENCES sources ON DELETE CASCADE,
        frame int NOT NULL,
        face_index int NOT NULL,
        sequence_id bigint REFERENCES sequences ON DELETE CASCADE,
        bbox real[] NOT NULL,
        kps real[],
        score real,
        quality real,
        embedding vector({dim}) NOT NULL,
        cluster_id bigint REFERENCES clusters ON DELETE SET NULL,
        UNIQUE (source_id, frame, face_index)
    );
    CREATE INDEX faces_cluster ON faces (cluster_id);
    CREATE INDEX faces_sequence ON faces (sequence_id);
    CREATE INDEX faces_embedding_hnsw ON faces USING hnsw (embedding vector_cosine_ops);
    CREATE TABLE crops (
        sequence_id bigint NOT NULL REFERENCES sequences ON DELETE CASCADE,
        frame int NOT NULL,
        png bytea NOT NULL,
        PRIMARY KEY (sequence_id, frame)
    );
    CREATE TABLE cluster_events (
        id bigserial PRIMARY KEY,
        kind text NOT NULL,
        cluster_id bigint,
        other_id bigint,
        detail jsonb,
        at timestamptz NOT NULL DEFAULT now()
    );
    """,
    # 2: candidate clusters by centroid stay fast when clusters number in the hundred thousands
    """
    CREATE INDEX clusters_centroid_hnsw ON clusters USING hnsw (centroid vector_cosine_ops);
    """,
    # 3: junk sequences (stored, never in a cluster); ids of merged-away clusters stay reachable
    """
    ALTER TABLE sequences ADD COLUMN junk text;
    CREATE TABLE cluster_aliases (
        old_id bigint PRIMARY KEY,
        new_id bigint NOT NULL REFERENCES clusters ON DELETE CASCADE
    );
    """,
    # 4: "these two are different people" (cluster pairs no merge crosses); who made each change
    """
    CREATE TABLE cannot_links (
        a bigint NOT NULL REFERENCES clusters ON DELETE CASCADE,
        b bigint NOT NULL REFERENCES clusters ON DELETE CASCADE,
        at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (a, b),
        CHECK (a < b)
    );
    ALTER TABLE cluster_events ADD COLUMN actor text;
    """,
    # 5: where and when: each source's camera, place and wall-clock start; when each sequence was on screen
    """
    ALTER TABLE sources ADD COLUMN camera text, ADD COLUMN location text, ADD COLUMN start_time timestamptz;
    ALTER TABLE sequences ADD COLUMN seen_at timestamptz;
    CREATE INDEX sequences_seen_at ON sequences (seen_at);
    """,
    # 6: the ANN target is the sequence, not the face: one index entry per stored sequence (its centroid) and per
    # enrolled photo, so writing faces and assigning them maintain no vector index (bench/reid_scale.py); who
    # was on screen at the same time is found by index, not by a scan of every sequence
    """
    DROP INDEX faces_embedding_hnsw;
    CREATE INDEX sequences_centroid_hnsw ON sequences USING hnsw (centroid vector_cosine_ops);
    CREATE INDEX photo_faces_hnsw ON faces USING hnsw (embedding vector_cosine_ops) WHERE sequence_id IS NULL;
    CREATE INDEX sequences_source_last_frame ON sequences (source_id, last_frame);
    """,
    # 7: a face maintenance forgets (no cluster any more) remembers whose it was, so deleting that person finds it
    """
    ALTER TABLE faces ADD COLUMN forgotten_from bigint;
    CREATE INDEX faces_forgotten_from ON faces (forgotten_from) WHERE forgotten_from IS NOT NULL;
    """,
    # 8: a decision asks which of its candidate clusters were on screen together (two people), by cluster, and
    # each source keeps the distances of its sequences to the people on screen with them (nodes/store/apart.py)
    """
    CREATE INDEX sequences_cluster ON sequences (cluster_id);
    CREATE TABLE apart_distances (
        id bigserial PRIMARY KEY,
        source_id bigint NOT NULL REFERENCES sources ON DELETE CASCADE,
        a bigint NOT NULL REFERENCES sequences ON DELETE CASCADE,
        b bigint NOT NULL REFERENCES sequences ON DELETE CASCADE,
        distance real NOT NULL,
        UNIQUE (a, b)
    );
    CREATE INDEX apart_distances_source ON apart_distances (source_id, id);
    CREATE INDEX apart_distances_b ON apart_distances (b);
    """,
    # 9: what a sequence's person wears (the colours below the face), to tell people apart within a visit
    """
    ALTER TABLE sequences ADD COLUMN torso real[];
    """,
    # 10: deleting an identity finds its history, aliases and cannot-links by index, not by reading every row
    """
    CREATE INDEX cluster_events_cluster ON cluster_events (cluster_id);
    CREATE INDEX cluster_events_other ON cluster_events (other_id) WHERE other_id IS NOT NULL;
    CREATE INDEX cluster_aliases_new ON cluster_aliases (new_id);
    CREATE INDEX cannot_links_b ON cannot_links (b);
    """,
]


class DimensionMismatch(FatalNodeError):
    """The model's embedding dimension differs from the store's."""


class ModelMismatch(FatalNodeError):
    """The embeddings come from another model than the store's (same dimension or not, they don't compare)."""


def check_model(conn: psycopg.Connection, model: str) -> None:
    """The store keeps vectors of one embedding model: the first one written; another raises ModelMismatch."""
    if not model:
        return
    conn.execute("INSERT INTO zdg_meta VALUES ('model', %s) ON CONFLICT (key) DO NOTHING", (model,))
    stored = conn.execute("SELECT value FROM zdg_meta WHERE key = 'model'").fetchone()[0]
    if stored != model:
        raise ModelMismatch(f"store holds embeddings of model {stored!r} but these come from {model!r}: their distances "
                            "do not compare; use that model, or a new store (ZDG_DSN / store_dir)")


def migrate(conn: psycopg.Connection, dim: int) -> int:
    """Create or upgrade the schema; returns the store's dimension. Raises DimensionMismatch."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(7243)")
        conn.execute("CREATE TABLE IF NOT EXISTS zdg_meta (key text PRIMARY KEY, value text NOT NULL)")
        rows = dict(conn.execute("SELECT key, value FROM zdg_meta").fetchall())
        stored_dim = int(rows.get("dim", dim))
        if stored_dim != dim:
            raise DimensionMismatch(
                f"store holds {stored_dim}-d embeddings but the model gives {dim}-d; "
                "use the model the store was created with, or a new store (ZDG_DSN / store_dir)")
        version = int(rows.get("schema_version", 0))
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute(sql.format(dim=dim))
            conn.execute("INSERT INTO zdg_meta VALUES ('schema_version', %s) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(number),))
        conn.execute("INSERT INTO zdg_meta VALUES ('dim', %s) ON CONFLICT (key) DO NOTHING", (str(dim),))
    return dim


def store_dim(conn: psycopg.Connection) -> int | None:
    """The dimension recorded in the store, or None for an empty database."""
    exists = conn.execute("SELECT to_regclass('zdg_meta')").fetchone()[0]
    if not exists:
        return None
    row = conn.execute("SELECT value FROM zdg_meta WHERE key = 'dim'").fetchone()
    return int(row[0]) if row else None
