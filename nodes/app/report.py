"""`zdg report`: an HTML page of the store: clusters with crops, appearances over time, silhouette plot."""

from __future__ import annotations

import html
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nodes.matching.clustering import by_cluster, silhouettes  # noqa: E402
from nodes.store.face_store import FaceStore  # noqa: E402

MAX_CROPS = 6


def plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def silhouette_plot(store: FaceStore, path: Path) -> float | None:
    """The seed's plot: per-cluster silhouette values, sorted, stacked; returns the mean."""
    vectors, labels, names = store.sampled_vectors()
    scores = silhouettes(by_cluster(vectors, labels))
    mean = None if scores is None else float(np.concatenate(list(scores.values())).mean())
    fig, ax = plt.subplots(figsize=(7, max(3, len(set(labels.tolist())) * 0.35)))
    if scores is not None:
        y = 0
        for c, unsorted in scores.items():
            values = np.sort(unsorted)
            ax.barh(np.arange(y, y + len(values)), values, height=1.0)
            ax.text(-0.05, y + len(values) / 2, names.get(int(c)) or f"face {c}", ha="right", va="center", fontsize=7,
                    parse_math=False)  # a name is text: "$" is not TeX
            y += len(values) + 2
        for band in (0.25, 0.5, 0.7):
            ax.axvline(band, color="grey", lw=0.6, ls="--")
        ax.axvline(mean, color="red", lw=1)
    ax.set_xlim(-1, 1)
    ax.set_yticks([])
    ax.set_xlabel("silhouette (cosine); dashed: 0.25 weak, 0.5 reasonable, 0.7 strong; red: mean")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return mean


def write_report(store: FaceStore, out_dir: Path, videos_dir: Path | None = None) -> Path:
    """Write out_dir/index.html with crops under out_dir/crops/; returns the page's path."""
    crops_dir = out_dir / "crops"
    crops_dir.mkdir(parents=True, exist_ok=True)
    mean = silhouette_plot(store, out_dir / "silhouette.png")
    clusters = store.report_clusters()
    parts = [f"<h1>zdg store report</h1><p>{plural(len(clusters), 'identity', 'identities')}; mean silhouette "
             f"{'-' if mean is None else f'{mean:.2f}'}</p><img src='silhouette.png'>"]
    for cid, name, size, sil, coh in clusters:
        title = html.escape(name or f"face {cid}")
        rows = store.appearances(cid)
        images = []
        for i, (png, frame) in enumerate(store.crops(cid, MAX_CROPS)):
            path = crops_dir / f"{cid}_{i}.png"
            path.write_bytes(png)
            images.append(f"<img src='crops/{path.name}' title='frame {frame}'>")
        seen = "".join(f"<li>{html.escape(src)}: frames {ff}–{lf} ({(ft or 0):.1f}–{(lt or 0):.1f} s)</li>"
                       for src, ff, lf, ft, lt, _ in rows)
        stats = f"{plural(size, 'vector')}, {plural(len(rows), 'sequence')}, " \
                f"silhouette {'-' if sil is None else f'{sil:.2f}'}, cohesion {'-' if coh is None else f'{coh:.2f}'}"
        parts.append(f"<section><h2>{title}</h2><p>{stats}</p><div>{''.join(images)}</div><ul>{seen}</ul></section>")
    if videos_dir and videos_dir.is_dir():
        links = "".join(f"<li><a href='{html.escape(os.path.relpath(p, out_dir))}'>{html.escape(p.name)}</a></li>"
                        for p in sorted(videos_dir.glob("*_annotated.mp4")))
        parts.append(f"<h2>Annotated videos</h2><ul>{links}</ul>")
    style = ("<style>body{font-family:sans-serif;max-width:1000px;margin:auto} img{margin:2px} "
             "section{border-top:1px solid #ccc}</style>")
    page = out_dir / "index.html"
    page.write_text(f"<!doctype html><meta charset='utf-8'><title>zdg report</title>{style}{''.join(parts)}")
    return page
