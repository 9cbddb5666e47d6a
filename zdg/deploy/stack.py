"""`zdg stack`: one Docker Swarm stack for every box of a graph, wired by the same rules as `zdg run`.

`host:` becomes a placement constraint on the node label `zdg.box`; every service is on one overlay network,
so edges that cross boxes reach the binding node by service name (still CURVE-encrypted, keys as Swarm
secrets). Endpoints are DNS round robin (Swarm's virtual IPs need IPVS, which not every kernel has), a task
is restarted only when it fails (a finished file source stays done), outside topics are published in host
mode, and the graph file travels as a Swarm config.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zdg.config import Graph, NodeDef
from zdg.curve import LOCAL_BOX
from zdg.deploy.compose import (
    GRAPH_IN_CONTAINER,
    MAX_RESTARTS,
    NODE_HEALTHCHECK,
    STORE_VOLUME,
    ComposeFiles,
    boxes,
    clashes,
    dump_yaml,
    generated_header,
    image_variable,
    key_boxes,
    needs_keys,
    node_command,
    outside_links,
    runs_store,
    store_healthcheck,
    tagged,
    uses_store,
)
from zdg.shared_store import store_service
from zdg.wiring import Plan, compile_plan, service_name, tcp_port

BOX_LABEL = "zdg.box"  # docker node update --label-add zdg.box=NAME NODE
NETWORK = "zdg"
SECRETS_IN_CONTAINER = "/run/secrets"
HOST_ROOT = "/opt/zdg"  # default folders on every Swarm node: models/, data/, out/
KEY_PAIRS = "${ZDG_KEY_PAIRS:-./keys/pairs}"  # `zdg keys -o keys` beside the stack file: the secrets' files
DB_PASSWORD = "${ZDG_DB_PASSWORD}"  # required: `docker stack deploy` (20.10) passes ${VAR:?message} on unread


def external_dsn() -> str:
    return f"${{ZDG_DSN:?set ZDG_DSN to the store's {store_service().scheme}:// address}}"


@dataclass(frozen=True)
class StackOptions:
    store_image: str | None = None  # None: the store plugin's
    external_store: bool = False  # nodes use $ZDG_DSN at deploy time; no store service
    clients: tuple[str, ...] = ()  # subscribers of secure topics (`zdg keys --client`): their public keys go in


TASK_HOSTNAME = "{{.Service.Name}}.{{.Task.Slot}}"  # the same for a task and the one replacing it (graph recovery)


def _placement(host: str | None) -> list[str]:
    return [f"node.labels.{BOX_LABEL} == {host}"] if host else []


def _key_secrets(ndef: NodeDef, public: list[str]) -> list[dict[str, str]]:
    """The node's own secret key and the public keys (every box's and client's), as files in /run/secrets."""
    own = ndef.host or LOCAL_BOX
    return ([{"source": f"{own}.key_secret", "target": f"{own}.key_secret"}]
            + [{"source": f"{name}.key", "target": f"{name}.key"} for name in public])


def _node_service(plan: Plan, ndef: NodeDef, overrides: list[str], options: StackOptions,
                  public: list[str]) -> dict[str, Any]:
    deploy = ndef.cls.deployment(ndef.params)
    image = tagged(deploy.image)
    env: dict[str, str] = {}
    volumes = [f"${{ZDG_OUT:-{HOST_ROOT}/out}}:/work/out"]
    if deploy.models:
        env |= {"ZDG_MODEL_ROOT": "/models", "ZDG_DATA_ROOT": "/data"}
        volumes += [f"${{ZDG_MODEL_ROOT:-{HOST_ROOT}/models}}:/models:ro",
                    f"${{ZDG_DATA_ROOT:-{HOST_ROOT}/data}}:/data:ro"]
    if uses_store(ndef, plan.graph):
        env["ZDG_DSN"] = external_dsn() if options.external_store else store_service().address(DB_PASSWORD)
    keyed = needs_keys(plan, ndef.name)
    if keyed:
        env["ZDG_KEYS"] = SECRETS_IN_CONTAINER
    service: dict[str, Any] = {
        "image": f"${{{image_variable(image)}:-{image}}}",
        "command": node_command(plan.graph, ndef, overrides, "--one-network"),
        "hostname": TASK_HOSTNAME,
        **({"environment": env} if env else {}),
        "volumes": volumes,
        "configs": [{"source": "graph", "target": GRAPH_IN_CONTAINER}],
        "networks": [NETWORK],
        "healthcheck": NODE_HEALTHCHECK,
    }
    if keyed:
        service["secrets"] = _key_secrets(ndef, public)
    ports = [{"target": tcp_port(link), "published": tcp_port(link), "protocol": "tcp", "mode": "host"}
             for link in outside_links(plan, ndef.name)]
    if ports:
        service["ports"] = ports
    swarm: dict[str, Any] = {
        "endpoint_mode": "dnsrr",
        "replicas": ndef.replicas,
        "restart_policy": {"condition": "on-failure", "max_attempts": MAX_RESTARTS},
    }
    if ndef.host:
        swarm["placement"] = {"constraints": _placement(ndef.host)}
    if deploy.gpu:
        gpu = {"discrete_resource_spec": {"kind": "NVIDIA-GPU", "value": 1}}  # dockerd --node-generic-resource
        swarm["resources"] = {"reservations": {"generic_resources": [gpu]}}
    service["deploy"] = swarm
    return service


def _store_box(nodes: list[NodeDef]) -> str | None:
    """The box holding most of the store's users (ties: the first by name): its volume stays on that node."""
    users = Counter(n.host for n in nodes if n.cls.deployment(n.params).store and n.host)
    return min(users, key=lambda box: (-users[box], box)) if users else None


def _store_service(nodes: list[NodeDef], store_image: str | None) -> dict[str, Any]:
    store = store_service()
    box = _store_box(nodes)
    constraints = _placement(box) or ["node.role == manager"]  # its volume is local: keep it on one node
    return {
        "image": f"${{ZDG_STORE_IMAGE:-{store_image or store.image}}}",
        "environment": store.server_environment(DB_PASSWORD),
        "volumes": [f"{STORE_VOLUME}:{store.data}"],
        "configs": [{"source": "db-init", "target": store.init}],
        "networks": [NETWORK],
        "healthcheck": store_healthcheck(store),
        "deploy": {"endpoint_mode": "dnsrr", "restart_policy": {"condition": "any"},
                   "placement": {"constraints": constraints}},
    }


def _content_name(prefix: str, path: Path) -> str:
    """Swarm configs cannot change in place: a new content gets a new name, so a redeploy after an edit works."""
    return f"{prefix}-{hashlib.sha256(path.read_bytes()).hexdigest()[:10]}"


def build_stack(graph: Graph, files: ComposeFiles, overrides: list[str], options: StackOptions) -> dict[str, Any]:
    """The stack document (`docker stack deploy -c`) for every box of the graph."""
    plan = compile_plan(graph)
    nodes = list(plan.nodes.values())
    boxes_with_keys = key_boxes(plan)
    public = boxes_with_keys + sorted(options.clients)
    services: dict[str, Any] = {}
    store = any(uses_store(n, graph) for n in nodes) and not options.external_store
    if store:
        services[store_service().service] = _store_service(nodes, options.store_image)
    for ndef in nodes:
        if service_name(ndef.name) in services:
            raise clashes(graph, ndef)
        services[service_name(ndef.name)] = _node_service(plan, ndef, overrides, options, public)
    configs = {"graph": {"name": _content_name(f"zdg-{graph.name}-graph", files.graph), "file": files.rel(files.graph)}}
    if store:
        configs["db-init"] = {"name": _content_name("zdg-db-init", files.db_init), "file": files.rel(files.db_init)}
    doc: dict[str, Any] = {"version": "3.8", "services": services,
                           "networks": {NETWORK: {"driver": "overlay", "attachable": True}}, "configs": configs}
    if boxes_with_keys:
        doc["secrets"] = {f"{name}.key_secret": {"file": f"{KEY_PAIRS}/{name}.key_secret"} for name in boxes_with_keys}
        doc["secrets"] |= {f"{name}.key": {"file": f"{KEY_PAIRS}/{name}.key"} for name in public}
    if store:
        doc["volumes"] = {STORE_VOLUME: {}}
    return doc


def render_stack(doc: dict[str, Any], graph: Graph, command: str) -> str:
    """YAML text with a header: where it came from and how to deploy it."""
    plan = compile_plan(graph)
    topics = ", ".join(f"tcp://NODE:{tcp_port(link)} {link.topic} (on the node running {service_name(link.src)})"
                       for link in plan.external_topics()) or "none"
    placed = boxes(graph)
    labels = "".join(f"#   docker node update --label-add {BOX_LABEL}={box} NODE_OF_{box.upper()}\n" for box in placed)
    keys = ("#   zdg keys GRAPH -o keys   (beside this file, or export ZDG_KEY_PAIRS=DIR/pairs: the secrets' files)\n"
            if "secrets" in doc else "")
    return (generated_header(graph, command) +
            f"# Deploy on a Swarm (docker swarm init; images on every node: zdg bundle / docker load):\n{labels}{keys}"
            f"#   {'ZDG_DB_PASSWORD=(yours: there is no default) ' if runs_store(doc) else ''}"
            f"ZDG_MODEL_ROOT=... ZDG_DATA_ROOT=... ZDG_OUT=... docker stack deploy -c THIS_FILE {graph.name}\n"
            f"# (each folder must exist on every node that runs a service mounting it; default {HOST_ROOT}/...)\n"
            f"# Topics for `zdg sub`: {topics}\n" + dump_yaml(doc))
