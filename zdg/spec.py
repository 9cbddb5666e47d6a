"""The graph file's schema (pydantic models) and how problems in it are reported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, ValidationError

from zdg.yamlsrc import Loc, YamlSource

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
HOST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Policy = Literal["block", "drop"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Settings(Strict):
    """Graph-wide defaults."""

    hwm: int = Field(16, ge=1, le=100_000, description="messages in flight per edge")
    policy: Policy = Field("block", description="block = backpressure (files); drop = drop and count (live cameras)")
    max_message_mb: float = Field(64, gt=0, description="largest frame a socket accepts (ZMQ_MAXMSGSIZE)")
    connect_timeout_s: float = Field(
        120, gt=0, description="how long a publisher waits for its internal subscribers, and a sender for its "
                               "receivers, to connect (one that connects later misses what came before)")
    eos_timeout_s: float = Field(600, gt=0, description="how long a node waits for downstream to confirm end of stream")
    on_crash: Literal["restart_node", "restart_graph"] = Field(
        "restart_node", description="restart_node: restart the crashed replica; restart_graph: restart every node, "
                                    "sources resume from their checkpoints (graphs whose effects are idempotent; with a "
                                    "store, the nodes do it through its graph epoch, in containers too)")
    publish_address: IPvAnyAddress = Field(
        "127.0.0.1", description="where `zdg compose` publishes plaintext outside topics on the host: 127.0.0.1 "
                                 "(this box only), 0.0.0.0 for every interface (prefer `secure: true` on the edge)")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="serve Prometheus /metrics on this port: "
                                     "`zdg run` for every local replica (on 127.0.0.1), each container for itself")


class NodeSpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    replicas: int = Field(1, ge=1, le=64)
    host: str | None = Field(None, pattern=HOST_PATTERN, description="the box this node runs on (`zdg compose --host`)")


class EdgeSpec(Strict):
    from_: str = Field(alias="from")
    to: str | None = None
    pattern: Literal["push", "pub"] = "push"
    topic: str | None = Field(None, pattern=r"^[A-Za-z0-9_.\-/]+$")
    hwm: int | None = Field(None, ge=1, le=100_000)
    policy: Policy | None = None
    secure: bool = Field(False, description="an outside topic (no `to`) only CURVE clients with a key of the box's "
                         "folder may read (`zdg keys GRAPH --client NAME`, `zdg sub --keys`); needs --keys")


class GraphSpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    settings: Settings = Settings()
    hosts: dict[str, str] = Field(default_factory=dict, description="box name -> address other boxes reach it at")
    nodes: list[NodeSpec] = Field(min_length=1)
    edges: list[EdgeSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class Issue:
    loc: Loc
    message: str


class GraphError(ValueError):
    """One or more problems in a graph file; str() lists them as `file:line: path: message`."""

    def __init__(self, source: YamlSource | None, issues: list[Issue], path: Path | None = None) -> None:
        self.issues = issues
        self.source = source
        self.path = path or (source.path if source else None)
        super().__init__("\n".join(self.format(i) for i in issues))

    def format(self, issue: Issue) -> str:
        line = self.source.line_of(issue.loc) if self.source else None
        where = f"{self.path}:{line}" if line else f"{self.path}"
        return f"{where}: {format_loc(issue.loc) or '(top)'}: {issue.message}"


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def pydantic_issues(exc: ValidationError, prefix: Loc = ()) -> list[Issue]:
    issues = []
    for err in exc.errors():
        loc = tuple("from" if p == "from_" else p for p in err["loc"])
        issues.append(Issue(prefix + loc, err["msg"]))
    return issues


def split_ref(ref: str, default_port: str) -> tuple[str, str]:
    """`node.port` -> (node, port); a bare node name uses `default_port`."""
    node, _, port = ref.partition(".")
    return node, port or default_port
