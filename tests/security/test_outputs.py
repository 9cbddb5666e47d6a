"""What leaves the store for other programs is inert: a name is text in `zdg report`'s plot (a `$` is no TeX) and no
formula in `zdg export --format csv`."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import pytest

from nodes.matching.decision import ReidSettings
from nodes.store.pg import PgFaceStore
from tests.conftest import REPO
from tests.stored import DIM, decide, person, sequence, store

pytestmark = pytest.mark.security
S = ReidSettings(threshold=0.45, named_threshold=0.6)
NAMES = ["Cost $5 $\\alpha$", '=HYPERLINK("http://evil.example","x")', "+1", "@SUM(A1)"]


def test_names_from_users_are_text_in_the_report_and_the_csv(store_dsn, tmp_path):
    faces = PgFaceStore.open(store_dsn, DIM)
    for i, name in enumerate(NAMES):
        seq = sequence(f"p{i}", person(i, 5))
        faces.rename(decide(faces, store(faces, seq), seq.embeddings, S).cluster_id, name)
    faces.close()
    env = {**os.environ, "ZDG_DSN": store_dsn}
    report = subprocess.run([sys.executable, "-m", "zdg", "report", "--out", str(tmp_path / "report")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr[-2000:]
    exported = subprocess.run([sys.executable, "-m", "zdg", "export", "--format", "csv"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
    assert exported.returncode == 0, exported.stderr
    cells = {row["cluster_name"] for row in csv.DictReader(io.StringIO(exported.stdout))}
    assert cells == {NAMES[0], *(f"'{n}" for n in NAMES[1:])}, "formulas start with an apostrophe; other text is kept"
