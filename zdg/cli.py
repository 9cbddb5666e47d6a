"""The `zdg` command line."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from zdg.cli_common import add_graph_args, write_or_print
from zdg.config import GraphError, load_graph
from zdg.deploy.commands import add_deploy_commands
from zdg.deploy.compose import ComposeError
from zdg.deploy.images import DockerError
from zdg.node_process import EXIT_INVALID, USER_ERRORS, NodeLaunch, reported, run_node_process, start_process
from zdg.registry import StalePlugin, command_plugins
from zdg.wiring import RUN_ROOT, default_run_dir
from zdg.yamlsrc import YamlSyntaxError


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


def launch_of(args: argparse.Namespace) -> NodeLaunch:
    return NodeLaunch(args.graph, args.node, args.replica, args.overrides, args.run_dir, args.transport, args.keys,
                      _addresses(args.address), args.one_network, args.after_end, args.graph_recovery)


def cmd_node(args: argparse.Namespace) -> int:
    return run_node_process(launch_of(args))


def cmd_health(args: argparse.Namespace) -> int:
    """Healthy while some node of this container wrote its metrics lately (the worker writes them twice a second)."""
    fresh = [p for p in args.run_dir.glob("*/metrics/*.json") if time.time() - p.stat().st_mtime < args.max_age]
    return 0 if fresh else 1


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zdg", description="ZeroMQ directed-graph network that re-identifies faces in video.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check graph files; exit 2 with file:line errors")
    p.add_argument("graphs", nargs="+", type=Path)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run a graph locally, one process per node replica")
    add_graph_args(p)
    p.add_argument("--run-dir", type=Path, help=f"sockets and metrics go here (default {RUN_ROOT}/GRAPH_NAME)")
    p.add_argument("--max-restarts", type=int, default=5, help="restarts in a row before a crashing node is given up")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to drain after Ctrl-C before stopping nodes")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--keys", type=Path, default=os.environ.get("ZDG_KEYS") or None,
                   help="the CURVE key folder of box 'local' (`zdg keys GRAPH --client NAME`), for secure topics "
                   "(default $ZDG_KEYS)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("node", help="run one replica of one node (what containers and `zdg run` start)")
    add_graph_args(p)
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
    p.add_argument("--graph-recovery", action="store_true",
                   help="settings.on_crash: restart_graph without a supervisor: the graph's epoch in the store at "
                   "$ZDG_DSN (what containers and `zdg run` pass)")
    p.set_defaults(func=cmd_node)

    p = sub.add_parser("health", help="container healthcheck: exit 0 while a node here is alive")
    p.add_argument("--run-dir", type=Path, default=RUN_ROOT)
    p.add_argument("--max-age", type=float, default=30.0, help="seconds since the last metrics write")
    p.set_defaults(func=cmd_health)

    add_deploy_commands(sub)

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
    add_graph_args(p)
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


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
    except StalePlugin as exc:
        print(f"zdg: {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    start_process(args.verbose)
    return reported(lambda: args.func(args), (*USER_ERRORS, ComposeError, DockerError))


if __name__ == "__main__":
    sys.exit(main())
