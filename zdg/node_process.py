"""One node replica's process, whoever starts it: `zdg node` in a container, or `zdg run`'s forker (which calls
`run_forked` in a child it forked, with no command line to parse)."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from zdg.config import GraphError, load_graph
from zdg.node import CommandError
from zdg.private import PRIVATE_UMASK, UnsafeFolder, private_dir
from zdg.wiring import default_run_dir
from zdg.yamlsrc import YamlSyntaxError

EXIT_INVALID = 2  # a graph file with problems (each printed as file:line: path: message)
USER_ERRORS = (LookupError, FileNotFoundError, UnsafeFolder, CommandError)  # printed as one line, exit 1


@dataclass(frozen=True)
class NodeLaunch:
    """What `zdg node` is given: the graph, which replica of which node, and how it reaches the others."""

    graph: Path
    node: str
    replica: int = 0
    overrides: list[str] = field(default_factory=list)
    run_dir: Path | None = None
    transport: str = "ipc"
    keys: Path | None = None
    addresses: dict[str, str] = field(default_factory=dict)
    one_network: bool = False
    after_end: str = "exit"  # or "wait": stay up and healthy after a complete stream
    graph_recovery: bool = False

    def argv(self) -> list[str]:
        """The same launch as `zdg node` arguments."""
        args = ["node", str(self.graph), self.node, "--replica", str(self.replica), "--transport", self.transport,
                "--after-end", self.after_end]
        args += [a for item in self.overrides for a in ("--set", item)]
        args += [a for box, address in self.addresses.items() for a in ("--address", f"{box}={address}")]
        args += ["--run-dir", str(self.run_dir)] if self.run_dir else []
        args += ["--keys", str(self.keys)] if self.keys else []
        return args + ["--one-network"] * self.one_network + ["--graph-recovery"] * self.graph_recovery


def run_node_process(launch: NodeLaunch) -> int:
    """Load the graph, wire this replica and run it; its exit code."""
    from zdg.curve import LOCAL_BOX, CurveKeys
    from zdg.wiring import Transport, compile_plan
    from zdg.worker import run_node

    graph = load_graph(launch.graph, launch.overrides)
    run_dir = launch.run_dir or default_run_dir(graph)
    metrics_dir = private_dir(run_dir / "metrics")
    ndef = compile_plan(graph).nodes.get(launch.node)
    keys = CurveKeys(launch.keys, ndef.host or LOCAL_BOX) if launch.keys and ndef else None
    transport = Transport(launch.transport, run_dir, {**graph.hosts, **launch.addresses}, keys, launch.one_network)
    if launch.transport == "tcp" and graph.settings.metrics_port:  # a container: it serves its own /metrics
        from zdg.metrics import read_all
        from zdg.prometheus import serve

        serve(graph.name, lambda: read_all(metrics_dir), graph.settings.metrics_port)
    recovery_dsn = None
    if launch.graph_recovery:
        recovery_dsn = os.environ.get("ZDG_DSN")
        if not recovery_dsn:
            raise LookupError("--graph-recovery keeps the graph's epoch in the store: set ZDG_DSN")
    code = run_node(graph, launch.node, launch.replica, transport, metrics_dir, recovery_dsn)
    if code == 0 and launch.after_end == "wait":
        wait_after_end(metrics_dir)
    return code


def wait_after_end(metrics_dir: Path, every_s: float = 1.0) -> None:
    """A finished node that stays up until SIGTERM/SIGINT, its metrics kept fresh so `zdg health` passes."""
    stopped: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: stopped.append(number))
    logging.getLogger("zdg.worker").info("stream complete; staying up until stopped (--after-end wait)")
    while not stopped:
        for path in metrics_dir.glob("*.json"):
            os.utime(path)
        time.sleep(every_s)


def exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def start_process(verbose: bool) -> None:
    """What every `zdg` process sets first: private files, exit handlers run on SIGTERM (a store this process
    started is stopped), every thread's stack on stderr at SIGUSR1 (a process that seems stuck), log lines with
    time and logger."""
    os.umask(PRIVATE_UMASK)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if not verbose:  # an application quiets its own libraries where it imports them
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def reported(run: Callable[[], int], user_errors: tuple[type[Exception], ...] = USER_ERRORS) -> int:
    """`run()`'s exit code; a bad graph file or a user's mistake is printed (no traceback) as its exit code, and
    Ctrl-C is 130."""
    try:
        return run()
    except (GraphError, YamlSyntaxError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    except user_errors as exc:
        print(f"zdg: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run_forked(launch: dict, verbose: bool = False) -> int:
    """In a child of `zdg run`'s forker: what `zdg node` does after parsing its arguments, errors printed alike."""
    start_process(verbose)
    paths = {k: Path(v) for k in ("graph", "run_dir", "keys") if (v := launch.get(k))}
    node = NodeLaunch(**{**launch, **paths})
    sys.argv = ["zdg", *node.argv()]  # a node that restarts itself in place (zdg.recovery.reexecute) runs it again
    return reported(lambda: run_node_process(node))
