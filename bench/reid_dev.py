"""Re-identification on labelled clips, clean and in a harder "other scene", with the figures the hidden
evaluation reports: within-clip reappearances found, cross-video joins, false merges, pair precision; and what
clothing says within each visit: the different-person and same-person pairs dressed apart (reid.torso_apart).

For each clip with positional truth (tests/data/*_truth.json format) it runs the default graph, each case
into a fresh embedded store:
  clean     the clip as it is
  degraded  the clip at `--scale` of its resolution (scaled back up), darker (gamma) and with a blue cast:
            small, soft faces in other light, where different people's embeddings come closer
  cross     the clip's first part (before `--split-s`) clean, then its second part degraded as a second
            visit of the same people into the same store: other shots, other light
  strangers the clip, then clips of other people (`--stranger`; default: the other clips beside the shared
            sample) degraded the same way, into one store: other people in another scene, where the looser
            join across sources applies; a cluster holding two of the clips is a false merge
and prints each case's figures, then the totals. `--set` overrides go to every run (compare rules side by
side: `--set reid.margin=0`).
    python bench/reid_dev.py [--clip CLIP --truth TRUTH [--split-s S]]... [--stranger CLIP]... [--set node.param=value]...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ZDG_DATA_ROOT", ROOT.parent / "shared" / "data"))
FIGURES = ("reappearances_found", "reappearances", "false_merges", "pair_precision", "pair_recall")


def degrade(clip: Path, out: Path, scale: float, gamma: float) -> Path:
    """The clip at `scale` of its resolution (scaled back up), through `gamma`, with a blue cast."""
    cap = cv2.VideoCapture(str(clip))
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), cap.get(cv2.CAP_PROP_FPS), (width, height))
    lut = (np.linspace(0, 1, 256) ** gamma * 255).astype(np.uint8)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        small = cv2.resize(frame, (int(width * scale), int(height * scale)), interpolation=cv2.INTER_AREA)
        frame = cv2.LUT(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), lut)
        frame[..., 0] = cv2.add(frame[..., 0], 25)
        writer.write(frame)
    writer.release()
    return out


def zdg(*args: str, store: Path) -> str:
    env = {**os.environ, "ZDG_STORE_DIR": str(store)}
    done = subprocess.run([sys.executable, "-m", "zdg", *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"zdg {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def visit(clip: Path, video_id: str, store: Path, overrides: list[str], *extra: str) -> None:
    zdg("run", str(ROOT / "graphs" / "video_reid.yaml"), "--no-progress", "--set", f"source.path={clip}",
        "--set", f"source.video_id={video_id}", "--set", "gallery.annotate_video=false",
        *extra, *(f"--set={o}" for o in overrides), store=store)


def scores(clip: Path, truth: Path, video_id: str, store: Path, first_visit: str | None = None) -> dict:
    args = ["eval", "video", str(clip), str(truth), "--video-id", video_id]
    return json.loads(zdg(*args, *(["--first-visit", first_visit] if first_visit else []), store=store))


def run_clip(clip: Path, truth: Path, split_s: float, work: Path, overrides: list[str], scale: float,
             gamma: float) -> list[dict]:
    low = degrade(clip, work / f"{clip.stem}_degraded.mp4", scale, gamma)
    rows = []
    for case, source in (("clean", clip), ("degraded", low)):
        store = work / f"{clip.stem}_{case}"
        visit(source, case, store, overrides)
        rows.append({"clip": clip.stem, "case": case, **scores(source, truth, case, store)[case]})
    store = work / f"{clip.stem}_cross"
    visit(clip, "first", store, overrides, "--set", f"source.end_s={split_s}")
    visit(low, "second", store, overrides, "--set", f"source.start_s={split_s}")
    found = scores(low, truth, "second", store, "first")
    for video_id in ("first", "second"):
        rows.append({"clip": clip.stem, "case": f"cross:{video_id}", **found[video_id]})
    rows.append({"clip": clip.stem, "case": "cross", **found["second_visit"]})
    return rows


def strangers(clip: Path, others: list[Path], work: Path, overrides: list[str], scale: float, gamma: float) -> dict:
    """The clip and degraded clips of other people in one store: its clusters, and those holding two clips."""
    store = work / f"{clip.stem}_strangers"
    for video in (clip, *(degrade(other, work / f"{other.stem}_degraded.mp4", scale, gamma) for other in others)):
        visit(video, video.stem, store, overrides)
    held: dict[int, set[str]] = defaultdict(set)
    for line in zdg("export", store=store).splitlines():
        row = json.loads(line)
        if row["cluster_id"] is not None:
            held[row["cluster_id"]].add(row["source"])
    return {"clip": clip.stem, "clips": 1 + len(others), "clusters": len(held),
            "cross_cast_merges": sum(len(sources) > 1 for sources in held.values())}


def fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def table(rows: list[dict]) -> None:
    print(f"{'clip':<16} {'case':<14} {'reappear.':>9} {'false m.':>8} {'precision':>9} {'recall':>6} "
          f"{'cross same/else/of':>18} {'pair AUC':>8} {'closest diff':>12} {'dressed apart: diff / same':>26}")
    apart = [r for r in rows if "cross_cast_merges" in r]
    for r in (r for r in rows if r not in apart):
        sep = r.get("separation", {})
        cross = (f"{r['joined_same_person_from_first_visit']}/{r['joined_someone_else']}/"
                 f"{r['person_sequences_seen_in_first_visit']}"
                 if "joined_someone_else" in r else "")
        within = f"{r['reappearances_found']}/{r['reappearances']}" if "reappearances" in r else ""
        dress = r.get("clothing", {})
        dressed = (f"{dress['different_over_limit']}/{dress['different_pairs']} / {dress['same_over_limit']}/"
                   f"{dress['same_pairs']}" if dress else "")
        print(f"{r['clip']:<16} {r['case']:<14} {within:>9} {r.get('false_merges', ''):>8} "
              f"{fmt(r.get('pair_precision')):>9} {fmt(r.get('pair_recall')):>6} "
              f"{cross:>18} {sep.get('pair_auc', ''):>8} {sep.get('closest_different', ''):>12} {dressed:>26}")
    visits = [r for r in rows if "reappearances" in r]
    crosses = [r for r in rows if "joined_someone_else" in r]
    found, later = sum(r["reappearances_found"] for r in visits), sum(r["reappearances"] for r in visits)
    joined, wrong = sum(r["joined_same_person_from_first_visit"] for r in crosses), sum(r["joined_someone_else"] for r in crosses)
    of = sum(r["person_sequences_seen_in_first_visit"] for r in crosses)
    for r in apart:
        print(f"{r['clip']:<16} {'strangers':<14} {r['clips']} clips of different people (the others degraded), "
              f"{r['clusters']} clusters, {r['cross_cast_merges']} holding two clips")
    print(f"totals: within-clip reappearances {found}/{later} = {found / max(later, 1):.2f}; cross-video {joined}/{of} "
          f"= {joined / max(of, 1):.2f} ({wrong} joined someone else); false merges "
          f"{sum(r['false_merges'] for r in visits) + sum(r['cross_cast_merges'] for r in apart)}; worst pair precision "
          f"{min(r['pair_precision'] for r in visits):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, action="append", help="a labelled clip (default: friends_poker)")
    ap.add_argument("--truth", type=Path, action="append", help="its truth file, one per --clip")
    ap.add_argument("--split-s", type=float, action="append", help="where the clip's second scene starts (default: "
                    "its middle)")
    ap.add_argument("--scale", type=float, default=0.18, help="resolution of the degraded copy")
    ap.add_argument("--gamma", type=float, default=1.6, help="gamma of the degraded copy (>1: darker)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE")
    ap.add_argument("--stranger", type=Path, action="append", help="a clip of people in none of the labelled "
                    "clips (default: the other clips beside the shared sample)")
    ap.add_argument("--no-strangers", action="store_true", help="skip the strangers case")
    ap.add_argument("--work", type=Path, help="folder for the degraded clips and stores (default: a temporary one)")
    args = ap.parse_args()
    clips = args.clip or [DATA / "videos" / "friends_poker.mp4"]
    truths = args.truth or [ROOT / "tests" / "data" / "friends_poker_truth.json"]
    if len(clips) != len(truths):
        ap.error("give one --truth per --clip")
    splits = args.split_s or [None] * len(clips)
    with tempfile.TemporaryDirectory(prefix="zdg-reid-dev-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for clip, truth, split in zip(clips, truths, splits, strict=True):
            cap = cv2.VideoCapture(str(clip))
            middle = cap.get(cv2.CAP_PROP_FRAME_COUNT) / max(cap.get(cv2.CAP_PROP_FPS), 1) / 2
            rows += run_clip(clip, truth, split or middle, work, args.overrides, args.scale, args.gamma)
            others = args.stranger or sorted(p for p in (DATA / "videos").glob("*.mp4") if p.name != clip.name)
            if others and not args.no_strangers:
                rows.append(strangers(clip, others, work, args.overrides, args.scale, args.gamma))
        print(f"overrides: {' '.join(args.overrides) or '(none)'}")
        table(rows)


if __name__ == "__main__":
    main()
