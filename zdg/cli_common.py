"""What the `zdg` command line's modules share: a graph argument, and generated text written or printed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_graph_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("graph", type=Path, help="graph YAML file (see graphs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a node parameter (value parsed as YAML); repeatable")


def write_or_print(text: str, output: Path | None, what: str) -> int:
    """Generated text to `output` (saying so on stderr), or to stdout."""
    if output:
        output.write_text(text)
        print(f"wrote {output} ({what})", file=sys.stderr)
    else:
        print(text, end="")
    return 0
