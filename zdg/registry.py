"""Resolve a node `type:` to its class: a registered plugin name or `package.module:Class`.

Node types are entry points in the `zdg.nodes` group (an application's pyproject lists
`name = "package.module:Class"`); the framework's own small nodes are registered the same way.
App CLI commands come from the `zdg.commands` group: a function that adds subparsers; services the
nodes share, from the `zdg.prepare` group.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from zdg.node import Node

NODE_GROUP = "zdg.nodes"
COMMAND_GROUP = "zdg.commands"
PREPARE_GROUP = "zdg.prepare"


class UnknownNodeType(LookupError):
    """`type:` names nothing importable."""


class StalePlugin(LookupError):
    """An installed entry point names a module that is not there (an update moved it since the install)."""


def load_entry_point(ep: EntryPoint) -> Any:
    try:
        return ep.load()
    except ImportError as exc:
        raise StalePlugin(f"{ep.group} entry point {ep.name!r} ({ep.value}) cannot be imported: {exc}; after an "
                          "update that moved modules, install again (pip install -e . in the checkout)") from None


@cache
def registered_types() -> dict[str, str]:
    """Every registered node type name -> `module:Class` target (read once per process: a scan of the installed
    distributions' metadata, which validation would otherwise repeat for every node)."""
    return {ep.name: ep.value for ep in entry_points(group=NODE_GROUP)}


def command_plugins() -> list[Callable]:
    """The `add_commands(subparsers)` functions of installed applications."""
    return [load_entry_point(ep) for ep in sorted(entry_points(group=COMMAND_GROUP), key=lambda ep: ep.name)]


def prepare_plugins() -> list[Callable]:
    """`prepare(graph, env) -> env` functions that `zdg run` calls once before it starts the nodes: an
    application starts what its nodes share (the embedded store) and hands it to them as ZDG_* variables."""
    return [load_entry_point(ep) for ep in sorted(entry_points(group=PREPARE_GROUP), key=lambda ep: ep.name)]


def resolve(type_name: str) -> type[Node]:
    known = registered_types()
    target = known.get(type_name, type_name)
    if ":" not in target:
        raise UnknownNodeType(f"unknown node type {type_name!r} (registered: {', '.join(sorted(known))}; "
                              "or use package.module:Class)")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownNodeType(f"node type {type_name!r}: cannot import {module_name}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise UnknownNodeType(f"node type {type_name!r}: {target} is not a zdg Node class")
    return cls
