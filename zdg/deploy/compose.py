"""`zdg compose`: a Compose-spec file from a graph, wired by the same rules as `zdg run`.

One service per node (replicas -> deploy.replicas), TCP endpoints from zdg.wiring, the store's service (as
its plugin describes it, zdg.shared_store) when a node uses the store, and published ports only for topics meant for the
outside and for edges that cross boxes (those are CURVE-encrypted with the box's key folder).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from zdg import __version__
from zdg.config import Graph, NodeDef
from zdg.curve import LOCAL_BOX
from zdg.shared_store import StoreService, store_service
from zdg.wiring import Link, Plan, compile_plan, service_name, tcp_port

GRAPH_IN_CONTAINER = "/etc/zdg/graph.yaml"
# No default password: compose reads it from .env beside the file (`zdg compose -o` writes a random one there)
DB_PASSWORD = "${ZDG_DB_PASSWORD:?no password: zdg compose -o FILE writes one to .env}"
BASE_IMAGE = f"zdg:{__version__}"
MAX_RESTARTS = 5
STORE_VOLUME = "zdg-store"
NODE_HEALTHCHECK = {"test": ["CMD", "zdg", "health"], "interval": "10s", "timeout": "5s", "retries": 3,
                    "start_period": "30s"}


class ComposeError(ValueError):
    """The graph cannot be turned into a compose file as asked (e.g. a box that does not exist)."""


@dataclass(frozen=True)
class ComposeFiles:
    """Where the compose file lives and the paths (relative to it) of what its services mount."""

    out_dir: Path
    graph: Path
    db_init: Path

    def rel(self, path: Path) -> str:
        rel = os.path.relpath(path.resolve(), self.out_dir.resolve())
        return rel if rel.startswith("..") else f"./{rel}"


def image_of(ndef: NodeDef) -> str:
    """The image the node class asks for (`Deploy.image`), tagged with zdg's version unless it has a tag."""
    return tagged(ndef.cls.deployment(ndef.params).image)


def tagged(image: str) -> str:
    return image if ":" in image.rsplit("/", 1)[-1] else f"{image}:{__version__}"


def image_variable(image: str) -> str:
    """The environment variable that overrides an image: zdg -> ZDG_IMAGE, zdg-faces -> ZDG_FACES_IMAGE."""
    name = image.rsplit("/", 1)[-1].split(":")[0].upper().replace("-", "_").replace(".", "_")
    return "ZDG_IMAGE" if name == "ZDG" else f"ZDG_{name.removeprefix('ZDG_')}_IMAGE"


def recovers(graph: Graph) -> bool:
    """settings.on_crash: restart_graph: every node takes part in graph recovery through the store (zdg.recovery)."""
    return graph.settings.on_crash == "restart_graph"


def uses_store(ndef: NodeDef, graph: Graph) -> bool:
    """The node talks to the store: for its own work, or for the graph's epoch."""
    return ndef.cls.deployment(ndef.params).store or recovers(graph)


def boxes(graph: Graph) -> list[str]:
    return sorted({n.host for n in graph.nodes.values() if n.host})


def _published(plan: Plan, node: str, host: str | None) -> list[Link]:
    """Links this node binds that someone outside its box connects to."""
    return [link for link in plan.links if link.binder_node == node
            and (link.dst is None or (host is not None and link.crosses_boxes))]


def _port(plan: Plan, link: Link) -> str:
    """A published port: a plaintext outside topic on settings.publish_address (127.0.0.1 unless the graph says
    otherwise); CURVE ones (secure topics, edges between boxes) on every interface."""
    port = tcp_port(link)
    if link.secure or link.crosses_boxes:
        return f"{port}:{port}"
    address = ipaddress.ip_address(str(plan.graph.settings.publish_address))
    return f"{f'[{address}]' if address.version == 6 else address}:{port}:{port}"


def node_command(graph: Graph, ndef: NodeDef, overrides: list[str], *extra: str) -> list[str]:
    """`zdg node` arguments of a node's container (the image's entrypoint is `zdg node`)."""
    command = [GRAPH_IN_CONTAINER, ndef.name, "--transport", "tcp", *(["--graph-recovery"] if recovers(graph) else []),
               *extra]
    for item in overrides:
        command += ["--set", item]
    return command


def needs_keys(plan: Plan, node: str) -> bool:
    """The node is an end of an edge that crosses boxes, or publishes a secure topic."""
    return any((link.crosses_boxes and node in (link.src, link.dst)) or (link.secure and link.src == node)
               for link in plan.links)


def key_boxes(plan: Plan) -> list[str]:
    """The boxes (sorted) with a node that needs keys; nodes without `host:` are box `local`."""
    return sorted({n.host or LOCAL_BOX for n in plan.nodes.values() if needs_keys(plan, n.name)})


def outside_links(plan: Plan, node: str) -> list[Link]:
    """The outside topics this node binds (published ports)."""
    return [link for link in plan.links if link.binder_node == node and link.dst is None]


def _node_service(plan: Plan, ndef: NodeDef, files: ComposeFiles, overrides: list[str], host: str | None) -> dict[str, Any]:
    deploy = ndef.cls.deployment(ndef.params)
    image = tagged(deploy.image)
    crossing = [link for link in plan.links if link.crosses_boxes and ndef.name in (link.src, link.dst)]
    command = node_command(plan.graph, ndef, overrides)
    env: dict[str, str] = {}
    volumes = [f"{files.rel(files.graph)}:{GRAPH_IN_CONTAINER}:ro", "${ZDG_OUT:-./out}:/work/out"]
    if deploy.models:
        env |= {"ZDG_MODEL_ROOT": "/models", "ZDG_DATA_ROOT": "/data"}
        volumes += ["${ZDG_MODEL_ROOT:-./models}:/models:ro", "${ZDG_DATA_ROOT:-./data}:/data:ro"]
    if uses_store(ndef, plan.graph):
        env["ZDG_DSN"] = store_service().address(DB_PASSWORD)
    if needs_keys(plan, ndef.name):
        env["ZDG_KEYS"] = "/keys"
        volumes.append(f"${{ZDG_KEYS:-./keys/{host or LOCAL_BOX}}}:/keys:ro")
    if crossing:
        for other in sorted(({link.src_host for link in crossing} | {link.dst_host for link in crossing}) - {host}):
            variable = f"ZDG_ADDRESS_{other.upper().replace('-', '_').replace('.', '_')}"
            command += ["--address", f"{other}=${{{variable}:-{plan.graph.address_of(other)}}}"]
    service: dict[str, Any] = {
        "image": f"${{{image_variable(image)}:-{image}}}",
        "command": command,
        **({"environment": env} if env else {}),
        "volumes": volumes,
        "restart": f"on-failure:{MAX_RESTARTS}",  # a crash is restarted; a node that keeps failing is left down
        "healthcheck": NODE_HEALTHCHECK,
    }
    if ndef.replicas > 1:
        service["deploy"] = {"replicas": ndef.replicas}
    if deploy.gpu:
        gpu = {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
        service.setdefault("deploy", {})["resources"] = {"reservations": {"devices": [gpu]}}
    if plan.graph.settings.metrics_port:  # scraped on the compose network as SERVICE:PORT/metrics
        service["expose"] = [str(plan.graph.settings.metrics_port)]
    ports = [_port(plan, link) for link in _published(plan, ndef.name, host)]
    if ports:
        service["ports"] = ports
    if uses_store(ndef, plan.graph):
        service["depends_on"] = {store_service().service: {"condition": "service_healthy"}}
    return service


def store_healthcheck(store: StoreService) -> dict[str, Any]:
    return {"test": ["CMD-SHELL", " ".join(store.ready)], "interval": "5s", "timeout": "5s", "retries": 20}


def _store_service(files: ComposeFiles, store_image: str | None) -> dict[str, Any]:
    store = store_service()
    return {
        "image": f"${{ZDG_STORE_IMAGE:-{store_image or store.image}}}",
        "environment": store.server_environment(DB_PASSWORD),
        "volumes": [f"{STORE_VOLUME}:{store.data}", f"{files.rel(files.db_init)}:{store.init}:ro"],
        "restart": "unless-stopped",
        "healthcheck": store_healthcheck(store),
    }


def clashes(graph: Graph, ndef: NodeDef) -> ComposeError:
    return ComposeError(f"{graph.path}: node {ndef.name!r} clashes with the {store_service().service} service's name")


def build_compose(graph: Graph, files: ComposeFiles, overrides: list[str], host: str | None = None,
                  store_image: str | None = None) -> dict[str, Any]:
    """The Compose-spec document for the whole graph, or for one box of it (`host`)."""
    placed = boxes(graph)
    if placed and host is None:
        raise ComposeError(f"{graph.path}: nodes are placed on boxes {', '.join(placed)}: pass --host NAME")
    if host is not None and host not in placed:
        raise ComposeError(f"{graph.path}: no node has host: {host} (boxes: {', '.join(placed) or 'none'})")
    plan = compile_plan(graph)
    mine = [n for n in plan.nodes.values() if host is None or n.host == host]
    services: dict[str, Any] = {}
    store = any(uses_store(n, graph) for n in mine)
    if store:
        services[store_service().service] = _store_service(files, store_image)
    for ndef in mine:
        if service_name(ndef.name) in services:
            raise clashes(graph, ndef)
        services[service_name(ndef.name)] = _node_service(plan, ndef, files, overrides, host)
    doc: dict[str, Any] = {"services": services}
    if store:
        doc["volumes"] = {STORE_VOLUME: {}}
    return doc


def runs_store(doc: dict[str, Any]) -> bool:
    """The compose or stack document runs the graph's store (it has the store's volume)."""
    return STORE_VOLUME in doc.get("volumes", {})


def ensure_db_password(folder: Path) -> Path | None:
    """Give the compose project in `folder` a random database password in its .env (0600), unless it has one;
    the .env file when one was added, else None."""
    import secrets

    from zdg.private import private_file

    env = folder / ".env"
    text = env.read_text() if env.exists() else ""
    if any(line.startswith("ZDG_DB_PASSWORD=") for line in text.splitlines()):
        return None
    line = f"ZDG_DB_PASSWORD={secrets.token_urlsafe(24)}\n"
    return private_file(env, (text + ("\n" if text and not text.endswith("\n") else "") + line).encode())


def images_of(graph: Graph, host: str | None = None, store_image: str | None = None) -> list[str]:
    """The images a graph's (or one box's) services run."""
    mine = [n for n in compile_plan(graph).nodes.values() if host is None or n.host == host]
    images = {image_of(n) for n in mine}
    if any(uses_store(n, graph) for n in mine):
        images.add(store_image or store_service().image)
    return sorted(images)


def published_topics(graph: Graph, host: str | None = None) -> list[str]:
    """`zdg sub` endpoints of the outside topics a compose file publishes."""
    plan = compile_plan(graph)
    return [f"tcp://localhost:{tcp_port(link)} {link.topic}" for link in plan.external_topics()
            if host is None or link.src_host == host]


class _PlainDumper(yaml.SafeDumper):
    """Writes shared objects out in full: no &anchors and *aliases in files people read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(*docs: Any) -> str:
    return yaml.dump_all(docs, Dumper=_PlainDumper, sort_keys=False, width=120)


def generated_header(graph: Graph, command: str) -> str:
    """The first lines of every generated file: where it came from, and what differs from `zdg run`."""
    header = f"# Generated from {graph.path.name} by `{command}`: regenerate, don't edit.\n"
    if recovers(graph):
        header += ("# settings.on_crash: restart_graph, as under `zdg run`: the engine restarts a crashed node, which moves the\n"
                   "# graph's epoch in the store; every node starts afresh and the source resumes at its checkpoint (a live\n"
                   "# stream replays its buffer). Until it is back, work that lacks what it held waits rather than being\n"
                   "# stored (README, \"What survives what\").\n")
    return header


def render(doc: dict[str, Any], graph: Graph, command: str, host: str | None = None) -> str:
    """YAML text with a header saying where it came from (regenerate, don't edit)."""
    topics = ", ".join(published_topics(graph, host)) or "none"
    header = (generated_header(graph, command) +
              f"# Build the images first (`zdg build`). Topics for `zdg sub`: {topics}\n")
    return header + dump_yaml(doc)
