"""Forgetting a person forgets everything: enrol, merge, let maintenance forget vectors, then `zdg identities delete
--erase`; no table, output folder or data file of the store holds the person's vectors, names, photo paths or crops
afterwards, while another person is untouched. Also: what zdg writes is private (0600 files, 0700 folders)."""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest

from nodes.app.report import write_report
from nodes.matching.decision import ReidSettings
from nodes.store.pg import PgFaceStore
from nodes.vision.annotate import strip_name
from tests.conftest import REPO
from tests.stored import DIM, decide, person, sequence, store

pytestmark = pytest.mark.security
S = ReidSettings(threshold=0.45, named_threshold=0.6)
NAME, OLD_NAME, OTHER = "Joey Tribbiani", "Joey (kid)", "Ross Geller"
PHOTOS = ["/photos/joey/one.jpg", "/photos/joey/two.jpg", "/photos/joey/kid.jpg"]


def photo(vector: np.ndarray, path: str) -> tuple:
    return (path, path, vector, np.zeros(4, np.float32), np.zeros((5, 2), np.float32), 0.9)


def with_crops(seq, seed: int):
    """The sequence with two crops of incompressible pixels (stored as PNG bytes nobody else has)."""
    rng = np.random.default_rng(seed)
    return dataclasses.replace(seq, crops=rng.integers(0, 255, (2, 112, 112, 3), np.uint8), crop_frames=seq.frames[:2].copy())


def data_files(conn: psycopg.Connection) -> list[Path]:
    """The files of this database on the server (the embedded one, or a superuser's view of another)."""
    conn.execute("CHECKPOINT")
    root = Path(conn.execute("SHOW data_directory").fetchone()[0])
    oid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
    return [p for p in (root / "base" / str(oid)).iterdir() if p.is_file()]


def holding(files: list[Path], needles: dict[str, bytes]) -> set[str]:
    """Which needles occur in any of the files."""
    found = set()
    for path in files:
        data = path.read_bytes()
        found |= {what for what, needle in needles.items() if needle in data}
    return found


def rows_mentioning(conn: psycopg.Connection, words: list[str]) -> list[tuple[str, str]]:
    """(table, row as text) of every row of every table of the store that contains one of the words."""
    tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    return [(t, text) for t in tables for (text,) in conn.execute(f"SELECT t::text FROM {t} t")
            if any(w in text for w in words)]


def nearest(conn: psycopg.Connection, vectors: np.ndarray) -> float:
    """The smallest cosine distance from the vectors to anything the store keeps (faces, sequences, clusters)."""
    found = [1.0]
    for table, column in (("faces", "embedding"), ("sequences", "centroid"), ("clusters", "centroid")):
        for v in vectors:
            d = conn.execute(f"SELECT min({column} <=> %s) FROM {table}", (v,)).fetchone()[0]
            found.append(1.0 if d is None else d)
    return min(found)


@pytest.fixture
def superuser(store_dsn):
    with psycopg.connect(store_dsn, autocommit=True) as conn:
        if not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
            pytest.skip("reading the data files needs the embedded server (a superuser)")
    return store_dsn


def test_delete_with_erase_leaves_no_trace_of_the_person(superuser, tmp_path):
    faces = PgFaceStore.open(superuser, DIM)
    conn = faces.conn
    joey_faces = person(0, 12)
    kid = person(0, 1, noise=0.9)[0]  # far from Joey's centre: the first vector maintenance forgets
    joey = faces.enroll(NAME, [photo(joey_faces[0], PHOTOS[0]), photo(joey_faces[1], PHOTOS[1])])
    young = faces.enroll("tmp", [photo(kid, PHOTOS[2])])
    faces.rename(young, OLD_NAME)
    seqs = [with_crops(sequence(f"joey{i}", joey_faces[2 + 5 * i: 7 + 5 * i], video="dinner"), i) for i in range(2)]
    for seq in seqs:
        assert decide(faces, store(faces, seq), seq.embeddings, S).cluster_id == joey
    faces.merge(young, joey)
    ross_seq = with_crops(sequence("ross", person(1, 5), video="dinner"), 9)
    ross = decide(faces, store(faces, ross_seq), ross_seq.embeddings, S).cluster_id
    faces.rename(ross, OTHER)
    forgot = faces.maintain(S, max_vectors=4, full=True).forgotten
    assert forgot >= 1 and conn.execute("SELECT count(*) FROM faces WHERE sequence_id IS NULL AND cluster_id IS NULL "
                                        "AND forgotten_from = %s", (joey,)).fetchone()[0] >= 1, "an enrolment photo forgotten"

    videos, report = tmp_path / "videos", tmp_path / "report"
    for seq in [*seqs, ross_seq]:
        strip = videos / "dinner" / f"{strip_name(seq.sequence_id)}.png"
        strip.parent.mkdir(parents=True, exist_ok=True)
        strip.write_bytes(b"png")
    write_report(faces, report)
    assert list((report / "crops").glob(f"{joey}_*.png"))
    crop = bytes(conn.execute("SELECT png FROM crops c JOIN sequences s ON s.id = c.sequence_id WHERE s.cluster_id = %s "
                              "LIMIT 1", (joey,)).fetchone()[0])
    needles = {"name": NAME.encode(), "old name": OLD_NAME.encode(), "photo path": PHOTOS[2].encode(),
               "vector": joey_faces[3].tobytes()[:32], "crop": crop[len(crop) // 2: len(crop) // 2 + 64]}
    assert holding(data_files(conn), needles) == set(needles), "the scan finds the person before the delete"

    done = subprocess.run([sys.executable, "-m", "zdg", "identities", "delete", str(joey), "--erase", "--report", str(report),
                           "--set", f"gallery.out_dir={videos}", "--graph", str(REPO / "graphs" / "video_reid.yaml")],
                          cwd=tmp_path, env={**os.environ, "ZDG_DSN": superuser}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "erased from the data files" in done.stdout

    assert rows_mentioning(conn, [NAME, OLD_NAME, *PHOTOS]) == []
    assert nearest(conn, joey_faces) > 0.05 and nearest(conn, kid[None]) > 0.05, "no vector of the person is kept"
    events = conn.execute("SELECT kind, detail FROM cluster_events WHERE cluster_id = ANY(%s)", ([joey, young],)).fetchall()
    assert events == [("delete", None)], "one delete event, without detail"
    assert holding(data_files(conn), needles) == set(), "erased from the data files"
    assert not [p for seq in seqs for p in (videos / "dinner").glob(f"{strip_name(seq.sequence_id)}.png")]
    assert not list((report / "crops").glob(f"{joey}_*.png")) and not (report / "index.html").exists()

    assert [i.name for i in faces.identities()] == [OTHER], "the other person is untouched"
    assert (videos / "dinner" / f"{strip_name(ross_seq.sequence_id)}.png").exists()
    assert conn.execute("SELECT count(*) FROM crops").fetchone()[0] == 2
    faces.close()


def test_what_zdg_writes_is_private_whatever_the_umask(store_dsn, tmp_path):
    faces = PgFaceStore.open(store_dsn, DIM)
    seq = with_crops(sequence("p", person(2, 5)), 3)
    decide(faces, store(faces, seq), seq.embeddings, S)
    faces.close()
    old = os.umask(0)
    try:
        done = subprocess.run([sys.executable, "-m", "zdg", "report", "--out", str(tmp_path / "report")], cwd=REPO,
                              env={**os.environ, "ZDG_DSN": store_dsn}, capture_output=True, text=True, timeout=120)
    finally:
        os.umask(old)
    assert done.returncode == 0, done.stderr
    written = [tmp_path / "report", *(tmp_path / "report").rglob("*")]
    assert len(written) > 3
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
