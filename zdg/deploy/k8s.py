"""`zdg k8s`: Kubernetes manifests for a graph, wired by the same rules as `zdg run`.

One Deployment per node (replicas), a headless Service per node that binds an edge (its pods' DNS name is the
node's service name, so every edge, crossing boxes or not, is reached by name; crossing edges stay CURVE-
encrypted with keys from Secrets), `nodeSelector: {zdg.box: NAME}` from `host:`, the store as a StatefulSet
with a PersistentVolumeClaim (or an external DSN from a Secret), and `nvidia.com/gpu` for nodes that ask for a
GPU. A node whose stream is complete stays up and healthy (`--after-end wait`): a Deployment restarts whatever
exits, and must not read a finished file again. A kustomization.yaml lists everything for `kubectl apply -k`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zdg.config import Graph, NodeDef
from zdg.curve import LOCAL_BOX
from zdg.deploy.compose import (
    GRAPH_IN_CONTAINER,
    clashes,
    dump_yaml,
    generated_header,
    key_boxes,
    needs_keys,
    node_command,
    tagged,
    uses_store,
)
from zdg.deploy.stack import BOX_LABEL, HOST_ROOT
from zdg.shared_store import PASSWORD, store_service
from zdg.wiring import Plan, compile_plan, service_name, tcp_port

KEYS_IN_CONTAINER = "/keys"
DB_SECRET = "zdg-db"  # kubectl create secret generic zdg-db --from-literal=password=...
DSN_SECRET = "zdg-dsn"  # external store: kubectl create secret generic zdg-dsn --from-literal=dsn=ADDRESS
STORE_SIZE = "20Gi"
# Starting points, not measurements: a face node holds a model pack and frames; the others are small.
MODEL_NODE_REQUESTS = {"cpu": "1", "memory": "1Gi"}
NODE_REQUESTS = {"cpu": "100m", "memory": "128Mi"}


@dataclass(frozen=True)
class K8sOptions:
    store_image: str | None = None  # None: the store plugin's
    external_store: bool = False
    host_root: str = HOST_ROOT  # on every Kubernetes node: models/, data/ (read-only) and out/
    clients: tuple[str, ...] = ()  # subscribers of secure topics: their public keys go in the Secrets


def _labels(graph: Graph, service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": service_name(graph.name)}


def _selector(graph: Graph, service: str) -> dict[str, str]:
    return {"zdg.graph": service_name(graph.name), "zdg.node": service}


def _graph_config(graph: Graph) -> str:
    return f"zdg-{service_name(graph.name)}-graph"


def _keys_secret(box: str) -> str:
    return f"zdg-keys-{box}"


def _host_path(name: str, path: str, kind: str) -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": path, "type": kind}}


def _store_env(options: K8sOptions) -> list[dict[str, Any]]:
    if options.external_store:
        return [{"name": "ZDG_DSN", "valueFrom": {"secretKeyRef": {"name": DSN_SECRET, "key": "dsn"}}}]
    return [{"name": "ZDG_DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": DB_SECRET, "key": "password"}}},
            {"name": "ZDG_DSN", "value": store_service().address("$(ZDG_DB_PASSWORD)")}]


def _bound_ports(plan: Plan, graph: Graph, node: str) -> list[dict[str, Any]]:
    ports = [{"name": link.id.lower(), "port": tcp_port(link)} for link in plan.links if link.binder_node == node]
    if ports and graph.settings.metrics_port:
        ports.append({"name": "metrics", "port": graph.settings.metrics_port})
    return ports


def _deployment(plan: Plan, ndef: NodeDef, overrides: list[str], options: K8sOptions,
                ports: list[dict[str, Any]]) -> dict[str, Any]:
    graph = plan.graph
    deploy = ndef.cls.deployment(ndef.params)
    service = service_name(ndef.name)
    env: list[dict[str, Any]] = []
    # whole folders, not subPath: a configMap's files then follow its updates (and Podman plays it too)
    mounts = [{"name": "graph", "mountPath": str(Path(GRAPH_IN_CONTAINER).parent), "readOnly": True},
              {"name": "out", "mountPath": "/work/out"}]
    volumes = [{"name": "graph", "configMap": {"name": _graph_config(graph)}},
               _host_path("out", f"{options.host_root}/out", "DirectoryOrCreate")]
    if deploy.models:
        env += [{"name": "ZDG_MODEL_ROOT", "value": "/models"}, {"name": "ZDG_DATA_ROOT", "value": "/data"}]
        mounts += [{"name": "models", "mountPath": "/models", "readOnly": True},
                   {"name": "data", "mountPath": "/data", "readOnly": True}]
        volumes += [_host_path("models", f"{options.host_root}/models", "Directory"),
                    _host_path("data", f"{options.host_root}/data", "Directory")]
    if uses_store(ndef, plan.graph):
        env += _store_env(options)
    if needs_keys(plan, ndef.name):
        env.append({"name": "ZDG_KEYS", "value": KEYS_IN_CONTAINER})
        mounts.append({"name": "keys", "mountPath": KEYS_IN_CONTAINER, "readOnly": True})
        volumes.append({"name": "keys", "secret": {"secretName": _keys_secret(ndef.host or LOCAL_BOX)}})
    resources: dict[str, Any] = {"requests": dict(MODEL_NODE_REQUESTS if deploy.models else NODE_REQUESTS)}
    if deploy.gpu:
        resources["limits"] = {"nvidia.com/gpu": 1}
    container: dict[str, Any] = {
        "name": "node",
        "image": tagged(deploy.image),
        "imagePullPolicy": "IfNotPresent",
        "args": node_command(plan.graph, ndef, overrides, "--one-network", "--after-end", "wait"),
        **({"env": env} if env else {}),
        "ports": [{"name": p["name"], "containerPort": p["port"]} for p in ports],
        "volumeMounts": mounts,
        "resources": resources,
        "livenessProbe": {"exec": {"command": ["zdg", "health"]}, "initialDelaySeconds": 30, "periodSeconds": 10,
                          "timeoutSeconds": 5, "failureThreshold": 3},
    }
    if not container["ports"]:
        del container["ports"]
    pod: dict[str, Any] = {"containers": [container], "volumes": volumes}
    if ndef.host:
        pod["nodeSelector"] = {BOX_LABEL: ndef.host}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": service, "labels": _labels(graph, service)},
        "spec": {"replicas": ndef.replicas, "selector": {"matchLabels": _selector(graph, service)},
                 "template": {"metadata": {"labels": {**_selector(graph, service), **_labels(graph, service)}},
                              "spec": pod}},
    }


def _headless_service(graph: Graph, service: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": service, "labels": _labels(graph, service)},
        "spec": {"clusterIP": "None", "selector": _selector(graph, service),
                 "ports": [{"name": p["name"], "port": p["port"], "targetPort": p["port"]} for p in ports]},
    }


def _store(graph: Graph, nodes: list[NodeDef], options: K8sOptions) -> list[dict[str, Any]]:
    """The store's StatefulSet (its data on a PersistentVolumeClaim), its headless Service and init SQL."""
    store = store_service()
    hosts = sorted({n.host for n in nodes if uses_store(n, graph) and n.host})
    password = {"valueFrom": {"secretKeyRef": {"name": DB_SECRET, "key": "password"}}}
    env = [{"name": key, **(password if value == PASSWORD else {"value": value})}
           for key, value in {**store.environment, **store.kubernetes_environment}.items()]
    container = {
        "name": store.service,
        "image": options.store_image or store.image,
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "ports": [{"name": store.service, "containerPort": store.port}],
        "volumeMounts": [{"name": "data", "mountPath": store.data},
                         {"name": "init", "mountPath": str(Path(store.init).parent), "readOnly": True}],
        "readinessProbe": {"exec": {"command": list(store.ready)}, "periodSeconds": 5, "timeoutSeconds": 5},
    }
    pod: dict[str, Any] = {"containers": [container], "volumes": [{"name": "init", "configMap": {"name": "zdg-db-init"}}],
                           "securityContext": {"fsGroup": store.uid}}  # the volume writable by the store's user
    if len(hosts) == 1:
        pod["nodeSelector"] = {BOX_LABEL: hosts[0]}
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": store.service, "labels": _labels(graph, store.service)},
        "spec": {
            "serviceName": store.service, "replicas": 1, "selector": {"matchLabels": _selector(graph, store.service)},
            "template": {"metadata": {"labels": {**_selector(graph, store.service), **_labels(graph, store.service)}},
                         "spec": pod},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                      "spec": {"accessModes": ["ReadWriteOnce"],
                                               "resources": {"requests": {"storage": STORE_SIZE}}}}],
        },
    }
    return [statefulset, _headless_service(graph, store.service, [{"name": store.service, "port": store.port}])]


def _config_map(name: str, key: str, text: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {key: text}}


def build_manifests(graph: Graph, db_init: Path, overrides: list[str], options: K8sOptions) -> dict[str, list[dict[str, Any]]]:
    """File name -> the Kubernetes objects it holds, kustomization.yaml included."""
    plan = compile_plan(graph)
    nodes = list(plan.nodes.values())
    graph_config = _config_map(_graph_config(graph), Path(GRAPH_IN_CONTAINER).name, graph.path.read_text())
    files: dict[str, list[dict[str, Any]]] = {"graph.yaml": [graph_config]}
    if any(uses_store(n, graph) for n in nodes) and not options.external_store:
        init = _config_map("zdg-db-init", Path(store_service().init).name, db_init.read_text())
        files["store.yaml"] = [*_store(graph, nodes, options), init]
    for ndef in nodes:
        service = service_name(ndef.name)
        if "store.yaml" in files and service == store_service().service:
            raise clashes(graph, ndef)
        ports = _bound_ports(plan, graph, ndef.name)
        objects = [_deployment(plan, ndef, overrides, options, ports)]
        if ports:
            objects.append(_headless_service(graph, service, ports))
        files[f"{service}.yaml"] = objects
    files["kustomization.yaml"] = [_kustomization(plan, list(files), options)]
    return files


def _kustomization(plan: Plan, resources: list[str], options: K8sOptions) -> dict[str, Any]:
    """`kubectl apply -k`: every file, and the key Secrets made from `zdg keys -o keys` beside it."""
    doc: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                           "resources": resources}
    boxes_with_keys = key_boxes(plan)
    if boxes_with_keys:
        public = boxes_with_keys + sorted(options.clients)
        doc["secretGenerator"] = [{"name": _keys_secret(box),
                                   "files": [f"keys/{box}/{box}.key_secret", *(f"keys/{box}/{name}.key" for name in public)]}
                                  for box in boxes_with_keys]
        doc["generatorOptions"] = {"disableNameSuffixHash": True}
    return doc


def write_manifests(files: dict[str, list[dict[str, Any]]], graph: Graph, out_dir: Path, command: str) -> list[Path]:
    """Each file with a header saying where it came from; files of an earlier run that no longer belong are removed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    header = generated_header(graph, command)
    for stale in out_dir.glob("*.yaml"):
        if stale.name not in files and stale.read_text().startswith(header):
            stale.unlink()
    written = []
    for name, objects in files.items():
        path = out_dir / name
        path.write_text(header + dump_yaml(*objects))
        written.append(path)
    return written
