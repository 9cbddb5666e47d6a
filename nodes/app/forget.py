"""The files that show a deleted identity: its sequences' crop strips in the gallery and the report that named it."""

from __future__ import annotations

from pathlib import Path

from nodes.store.clusters import Deleted
from nodes.vision.annotate import remove_strips

REPORT_PAGES = ("index.html", "silhouette.png")  # they name every identity: stale once one is deleted


def remove_files_of(gone: Deleted, videos_dir: Path, report_dir: Path | None) -> tuple[int, bool]:
    """Delete the crop strips of the deleted sequences, and the report's crops of each deleted id with its pages;
    (strips removed, whether a report was removed: `zdg report` writes it again)."""
    strips = remove_strips(videos_dir, gone.sequences)
    if report_dir is None or not gone.ids:
        return strips, False
    crops = [p for cid in gone.ids for p in (report_dir / "crops").glob(f"{cid}_*.png")]
    pages = [report_dir / name for name in REPORT_PAGES if (report_dir / name).exists()]
    for path in crops + pages:
        path.unlink(missing_ok=True)
    return strips, bool(crops or pages)
