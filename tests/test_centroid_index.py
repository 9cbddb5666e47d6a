"""The centroid index follows the store's size: HNSW while identities are few, IVFFlat (its lists trained on the
stored centroids) from IVF_FROM on, retrained as they double or halve, and HNSW again when the store shrinks."""

from __future__ import annotations

import numpy as np

from nodes.matching.decision import ReidSettings
from nodes.matching.setdist import l2_normalise
from nodes.store import centroid_index
from nodes.store.centroid_index import TABLES, current_lists, rebuild_needed, wanted_lists
from nodes.store.reid import candidate_ids
from tests.stored import DIM

S = ReidSettings(threshold=0.45, named_threshold=0.6)


def add_people(conn, first_id: int, centroids: np.ndarray) -> None:
    """One cluster and one stored sequence per centroid, ids from `first_id` on."""
    source = conn.execute("INSERT INTO sources (name) VALUES ('bulk') ON CONFLICT (name) DO UPDATE SET name = "
                          "excluded.name RETURNING id").fetchone()[0]
    ids = range(first_id, first_id + len(centroids))
    with conn.cursor().copy("COPY clusters (id, size, centroid) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "int4", "vector"])
        for cluster_id, centroid in zip(ids, centroids, strict=True):
            copy.write_row((cluster_id, 1, centroid))
    with conn.cursor().copy("COPY sequences (id, source_id, seq_key, first_frame, last_frame, size, centroid, cluster_id) "
                            "FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "int8", "text", "int4", "int4", "int4", "vector", "int8"])
        for cluster_id, centroid in zip(ids, centroids, strict=True):
            copy.write_row((cluster_id, source, f"bulk:{cluster_id}", cluster_id, cluster_id, 1, centroid, cluster_id))


def test_lists_follow_pgvectors_advice_and_a_rebuild_waits_for_a_doubling_or_halving():
    assert [wanted_lists(n) for n in (99_999, 100_000, 1_000_000, 4_000_000)] == [0, 100, 1000, 2000]
    assert rebuild_needed(False, 0, 10, 0, 100_000), "a table without a centroid index gets one"
    assert not rebuild_needed(True, 0, 99_999, 0, 100_000) and rebuild_needed(True, 0, 100_000, 100, 100_000)
    assert not rebuild_needed(True, 100, 199_000, 199, 100_000) and rebuild_needed(True, 100, 201_000, 201, 100_000)
    assert not rebuild_needed(True, 1000, 501_000, 501, 100_000) and rebuild_needed(True, 1000, 499_000, 499, 100_000)
    assert not rebuild_needed(True, 100, 50_000, 0, 100_000), "IVFFlat stays down to half of IVF_FROM"
    assert rebuild_needed(True, 100, 49_999, 0, 100_000)


def test_a_grown_store_answers_from_ivfflat_probing_as_many_lists_as_the_decision_is_told(faces, conn, monkeypatch):
    monkeypatch.setattr(centroid_index, "IVF_FROM", 1000)
    rng = np.random.default_rng(3)
    centroids = l2_normalise(rng.normal(size=(3000, DIM)))
    add_people(conn, 1, centroids[:900])
    assert faces.maintain(S).reindexed == []
    assert [current_lists(conn, t) for t in TABLES] == [(["sequences_centroid_hnsw"], 0), (["clusters_centroid_hnsw"], 0)]
    add_people(conn, 901, centroids[900:])
    conn.execute("SET maintenance_work_mem = '1MB'")  # under what k-means over 10,000 samples needs
    assert len(faces.maintain(S).reindexed) == 2
    assert [current_lists(conn, t) for t in TABLES] == [(["sequences_centroid_ivfflat"], 3),
                                                         (["clusters_centroid_ivfflat"], 3)]

    picks = rng.integers(0, len(centroids), 200)
    probes = l2_normalise(centroids[picks] + rng.normal(scale=0.6 / np.sqrt(DIM), size=(len(picks), DIM)))
    truth = np.argmax(probes @ centroids.T, axis=1) + 1
    conn.execute("SET enable_seqscan = off")  # tables this small would be read whole

    def found(**settings: int) -> int:
        s = S.model_copy(update={"exact_clusters": 0, "neighbours": 1, "max_candidates": 1, **settings})
        hits = 0
        for probe, best in zip(probes, truth, strict=True):
            with conn.transaction():
                hits += candidate_ids(conn, probe[None], s, None) == [best]
        return hits

    by_centroids, by_sequences = {"query_vectors": 0, "centroid_candidates": 1}, {"query_vectors": 1, "centroid_candidates": 0}
    assert found(**by_centroids, centroid_probes=3) == found(**by_sequences, probes=3) == len(picks), \
        "every list probed: each nearest identity found, by its centroid and by its sequence (recall)"
    assert found(**by_centroids, centroid_probes=1) < len(picks) and found(**by_sequences, probes=1) < len(picks), \
        "one list probed: some missed, so each of the decision's settings reaches its index"

    conn.execute("DELETE FROM sequences WHERE id > 400")
    conn.execute("DELETE FROM clusters WHERE id > 400")
    conn.execute("ANALYZE clusters, sequences")
    assert faces.maintain(S).reindexed == ["sequences_centroid_hnsw", "clusters_centroid_hnsw"]
    assert [current_lists(conn, t) for t in TABLES] == [(["sequences_centroid_hnsw"], 0), (["clusters_centroid_hnsw"], 0)]
