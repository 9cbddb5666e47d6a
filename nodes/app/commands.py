"""Face commands of the `zdg` CLI: enroll, identities, store, summary, maintain, export, report, ui (the graph's
store and models from nodes/app/service.py); calibrate, eval and models are in nodes/app/tool_commands.py."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nodes.app.corrections import Fields, perform
from nodes.app.offline import node_of_type
from nodes.app.service import annotated_videos_dir, load_models, main_graph, open_store, reid_settings
from nodes.app.tool_commands import add_tool_commands
from nodes.environment import FaceEnvironment
from zdg.config import load_graph
from zdg.node import zdg_environment

if TYPE_CHECKING:
    from nodes.store.pg import PgFaceStore


def cmd_enroll(args: argparse.Namespace) -> int:
    from nodes.app.identities import enroll
    from nodes.vision.photos import photo_files

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
        return identity_change(store, args.action, args.args, annotated_videos_dir(graph), args.report, args.erase)
    return 0


CHANGES = {"rename": ("ID NAME", 2), "merge": ("FROM_ID INTO_ID", 2), "delete": ("ID", 1), "split": ("ID SEQ [SEQ ...]", None),
           "move": ("SEQ ID", 2), "different": ("ID ID", 2)}


def change_fields(action: str, values: list[str]) -> tuple[int, Fields]:
    """The identity a `zdg identities ACTION ...` command changes and its fields, as the workbench's form gives them."""
    usage, count = CHANGES[action]
    if (count is not None and len(values) != count) or (count is None and len(values) < 2) or (
            action != "rename" and not all(v.isdigit() for v in values)) or not values[0].isdigit():
        raise SystemExit(f"usage: zdg identities {action} {usage}")
    first, rest = int(values[0]), values[1:]
    if action == "move":  # SEQ ID: the sequence moves; its identity is whichever holds it now
        return int(rest[0]), Fields(sequence=values[0], into=rest[0])
    field = {"rename": "name", "merge": "into", "different": "other", "split": "sequence"}.get(action)
    return first, Fields(**({field: rest} if field else {}))


def identity_change(store: PgFaceStore, action: str, values: list[str], videos_dir: Path, report_dir: Path | None = None,
                    erase: bool = False) -> int:
    """One correction by hand (nodes.app.corrections), recorded in the store's history as this user's (`videos_dir`:
    the gallery's files; `report_dir`: the report whose crops and pages go with a deleted identity; `erase`: rewrite
    the tables after)."""
    import getpass

    identity, fields = change_fields(action, values)
    try:
        done = perform(store, action, identity, fields, f"cli:{getpass.getuser()}", videos_dir, report_dir)
    except (LookupError, ValueError) as exc:
        print(f"zdg identities {action}: {exc}", file=sys.stderr)
        return 1
    print(done.message)
    if action == "delete" and erase:
        print_erased(store)
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
    from nodes.app.forget import remove_files_of

    graph = load_graph(args.graph, args.overrides)
    settings = reid_settings(graph)
    store = open_store(graph)
    report = store.maintain(settings, args.max_vectors, full=True)
    strips, _ = remove_files_of(report.purged, annotated_videos_dir(graph), args.report)
    print(f"merged: {report.merges}  forgotten vectors: {report.forgotten}  silhouette: {report.silhouette}")
    if settings.retention_hours:
        print(f"purged (older than {settings.retention_hours:g} h, unnamed): {len(report.purged.sequences)} sequences, "
              f"{report.purged.faces} faces, {strips} crop strips")
    for statement in report.reindexed:
        print(f"centroid index rebuilt for the store's size: {statement}")
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
    from nodes.app.report import write_report

    page = write_report(open_store(load_graph(args.graph, args.overrides)), args.out, args.videos)
    print(f"report: {page}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    import os

    from nodes.app.ui.uploads import MAX_PHOTO_PIXELS

    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PHOTO_PIXELS))  # OpenCV's own cap too, before it loads
    import uvicorn

    from nodes.app.ui.app import Workbench, make_app
    from nodes.app.ui.guard import GuardSettings, is_loopback, token_for
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
    if token and not tls and not is_loopback(args.host):
        print("zdg ui: warning: the token travels in plain HTTP beyond this machine; anyone on the network path can "
              "read it and every face: give --certfile and --keyfile", file=sys.stderr, flush=True)
    uvicorn.run(make_app(wb, guard), host=args.host, port=args.port, log_level="warning",
                ssl_certfile=args.certfile, ssl_keyfile=args.keyfile)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    def graph_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--graph", type=Path, default=main_graph(),
                       help="graph whose models and store to use (default graphs/video_reid.yaml here, else the checkout's)")
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

    p = sub.add_parser("ui", help="the identity workbench in a browser: browse, search by photo, correct, live feed; "
                       "a JSON API under /api/ (/api/docs)",
                       description="Serves on localhost by default, with a token only when $ZDG_UI_TOKEN is set; any "
                       "other address needs one: $ZDG_UI_TOKEN, else one is generated and printed in the URL (use "
                       "--certfile/--keyfile there). Answers only to its own address's Host names and --allow-host; "
                       "changes only from its own pages, or with the token as `Authorization: Bearer` (the API, "
                       "described by /api/openapi.json).")
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

    add_tool_commands(sub, graph_arg)
