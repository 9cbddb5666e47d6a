"""Face commands of the `zdg` CLI: enroll, identities, summary, maintain (store and models from a graph)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nodes.environment import FaceEnvironment
from zdg.config import Graph, NodeDef, load_graph
from zdg.node import zdg_environment

if TYPE_CHECKING:
    from nodes.detector import DetectorNode
    from nodes.embedder import EmbedderNode
    from nodes.store.pg import PgFaceStore

DEFAULT_GRAPH = Path("graphs/video_reid.yaml")


def _nodes_of_type(graph: Graph, type_name: str) -> NodeDef:
    found = [n for n in graph.nodes.values() if n.type == type_name]
    if not found:
        raise SystemExit(f"{graph.path}: no {type_name} node (the graph gives the models and the store)")
    return found[0]


def open_store(graph: Graph, dim: int | None = None) -> PgFaceStore:
    """The store the graph's reid node uses (with `dim`: created or checked for that embedding dimension)."""
    from nodes.store.db import resolve_dsn
    from nodes.store.pg import PgFaceStore

    params = _nodes_of_type(graph, "reid").params
    return PgFaceStore.open(resolve_dsn(params.dsn, params.store_dir, FaceEnvironment.of(zdg_environment())), dim)


def _models(graph: Graph) -> tuple[DetectorNode, EmbedderNode]:
    from zdg.node import NodeContext

    made = []
    for type_name in ("detector", "embedder"):
        ndef = _nodes_of_type(graph, type_name)
        node = ndef.cls(ndef.params, NodeContext(graph.name, ndef.name, env=zdg_environment()))
        node.setup()
        made.append(node)
    return made


def cmd_enroll(args: argparse.Namespace) -> int:
    from nodes.identities import enroll
    from nodes.photos import photo_files

    graph = load_graph(args.graph)
    photos = photo_files(args.photos)
    detector, embedder = _models(graph)
    store = open_store(graph, embedder.recogniser.dim)
    cluster_id, skipped = enroll(store, args.name, photos, detector, embedder)
    print(f"{args.name}: identity {cluster_id}, {len(photos) - len(skipped)} photo(s) enrolled")
    for path in skipped:
        print(f"  no face found in {path}", file=sys.stderr)
    return 0 if len(skipped) < len(photos) else 1


def cmd_identities(args: argparse.Namespace) -> int:
    store = open_store(load_graph(args.graph))
    if args.action == "list":
        rows = store.identities()
        print(f"{'id':>5}  {'name':<16} {'vectors':>7} {'sequences':>9} {'sources':>7} {'silhouette':>10}")
        for r in rows:
            sil = "-" if r.silhouette is None else f"{r.silhouette:.2f}"
            print(f"{r.id:>5}  {(r.name or '-'):<16} {r.size:>7} {r.sequences:>9} {r.sources:>7} {sil:>10}")
    elif args.action == "rename":
        store.rename(int(args.args[0]), args.args[1])
    elif args.action == "merge":
        store.merge(int(args.args[0]), int(args.args[1]))
    elif args.action == "delete":
        print(f"deleted identity {args.args[0]} and {store.delete(int(args.args[0]))} face vectors")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    stats = open_store(load_graph(args.graph)).summary()
    print(json.dumps(stats) if args.json else "\n".join(f"{k.replace('_', ' ')}: {v}" for k, v in stats.items()))
    return 0


def cmd_maintain(args: argparse.Namespace) -> int:
    graph = load_graph(args.graph)
    settings = _nodes_of_type(graph, "reid").params  # ReidParams extends ReidSettings
    report = open_store(graph).maintain(settings, args.max_vectors)
    print(f"merged: {report.merges}  forgotten vectors: {report.forgotten}  silhouette: {report.silhouette}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from nodes.store.export import render_rows
    from zdg.cli import write_or_print

    rows = open_store(load_graph(args.graph)).export()
    return write_or_print(render_rows(rows, args.format), args.output, f"{len(rows)} sequences")


def cmd_report(args: argparse.Namespace) -> int:
    from nodes.report import write_report

    page = write_report(open_store(load_graph(args.graph)), args.out, args.videos)
    print(f"report: {page}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from nodes.evaluate import evaluate

    detector, embedder = _models(load_graph(args.graph))
    levels = [(1.0, 0.0)] + [(d, b) for d, b in zip(args.downscale, args.blur, strict=True)]
    rows = evaluate(args.dir, detector, embedder, levels, args.distance)
    print(f"{'probe':<26} {'identities':>10} {'no face':>8} {'single-image top-1':>19} {'set-to-set top-1':>17}")
    for r in rows:
        print(f"{r.degradation:<26} {r.identities:>10} {r.no_face:>8} {r.single_top1:>19.3f} {r.set_top1:>17.3f}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    def graph_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--graph", type=Path, default=DEFAULT_GRAPH, help="graph whose models and store to use")

    p = sub.add_parser("enroll", help="add photos of a named person to the store (a named identity)")
    p.add_argument("--name", required=True)
    p.add_argument("photos", nargs="+", type=Path, help="photo files or folders")
    graph_arg(p)
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("identities", help="list | rename ID NAME | merge FROM_ID INTO_ID | delete ID")
    p.add_argument("action", choices=("list", "rename", "merge", "delete"))
    p.add_argument("args", nargs="*")
    graph_arg(p)
    p.set_defaults(func=cmd_identities)

    p = sub.add_parser("summary", help="what the store holds: sequences, clusters, re-appearances")
    p.add_argument("--json", action="store_true")
    graph_arg(p)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("maintain", help="recompute silhouettes, merge weak clusters, forget beyond a cap")
    p.add_argument("--max-vectors", type=int, default=500, help="vectors kept per cluster")
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

    p = sub.add_parser("eval", help="single-image vs set-to-set identification on a labelled photo folder")
    p.add_argument("what", choices=("faces",))
    p.add_argument("dir", type=Path, help="DIR/<identity>/*.jpg (identity folders may be nested)")
    p.add_argument("--downscale", type=float, nargs="*", default=[4.0, 8.0], help="degradation levels (with --blur)")
    p.add_argument("--blur", type=float, nargs="*", default=[1.0, 2.0], help="Gaussian sigma per level")
    p.add_argument("--distance", default="mean_min", choices=("mean_min", "hausdorff", "modified_hausdorff", "centroid"))
    graph_arg(p)
    p.set_defaults(func=cmd_eval)
