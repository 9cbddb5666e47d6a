"""Load YAML while remembering the line of every key, so errors can point at the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]


@dataclass
class YamlSource:
    """A parsed YAML document plus the 1-based line of each path in it."""

    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest known prefix of `loc` (pydantic locs may go deeper than YAML)."""
        for cut in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:cut]))
            if line is not None:
                return line
        return None


class YamlSyntaxError(ValueError):
    """The file is not valid YAML; the message names file and line."""


def _build(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            lines[loc + (key,)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, loc + (key,), lines)
            lines[loc + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, loc + (i,), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def parse_yaml(text: str, path: Path) -> YamlSource:
    """Parse `text` (read from `path`) into data plus a line map."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise YamlSyntaxError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    lines: dict[Loc, int] = {}
    data = _build(root, (), lines) if root is not None else None
    return YamlSource(path=path, data=data, lines=lines)


def load_yaml(path: str | Path) -> YamlSource:
    """Read and parse a YAML file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise YamlSyntaxError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_yaml(text, path)
