"""`zdg stack` (Docker Swarm) and `zdg k8s` (Kubernetes): what they write, checked against the Kubernetes API's
own models, and the committed examples kept fresh. The container suites run them for real."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.conftest import REPO, zdg

EXAMPLES = REPO / "docker" / "examples"
EXAMPLE_GRAPHS = {"video_reid": "graphs/video_reid.yaml", "two_boxes": "tests/containers/two_boxes.yaml"}
K8S_MODELS = {"Deployment": "V1Deployment", "Service": "V1Service", "StatefulSet": "V1StatefulSet",
              "ConfigMap": "V1ConfigMap"}


def without_nones(value):
    if isinstance(value, dict):
        return {k: without_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nones(v) for v in value]
    return value


def k8s_objects(folder: Path) -> dict[str, list[dict]]:
    return {p.name: list(yaml.safe_load_all(p.read_text())) for p in sorted(folder.glob("*.yaml"))}


def stack(*args: str) -> dict:
    done = zdg("stack", *args)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_stack_places_boxes_by_label_and_keeps_keys_in_secrets():
    doc = stack("tests/containers/two_boxes.yaml")
    services = doc["services"]
    assert services["counter"]["deploy"]["placement"] == {"constraints": ["node.labels.zdg.box == edge"]}
    assert services["collect"]["deploy"]["placement"] == {"constraints": ["node.labels.zdg.box == central"]}
    assert services["square"]["deploy"]["replicas"] == 2
    for service in services.values():
        assert service["deploy"]["endpoint_mode"] == "dnsrr"  # Swarm's virtual IPs need IPVS
        assert service["deploy"]["restart_policy"]["condition"] == "on-failure"  # a finished source stays done
        assert "--one-network" in service["command"]
    # the crossing edge's ends get their own box's secret key and the public keys, as secrets; no key in the YAML
    assert [s["source"] for s in services["collect"]["secrets"]] == ["central.key_secret", "central.key", "edge.key"]
    assert [s["source"] for s in services["square"]["secrets"]] == ["edge.key_secret", "central.key", "edge.key"]
    assert "secrets" not in services["counter"]
    assert doc["secrets"]["edge.key_secret"] == {"file": "${ZDG_KEY_PAIRS:-./keys/pairs}/edge.key_secret"}


def test_stack_of_the_face_graph_has_its_store_and_publishes_in_host_mode():
    doc = stack("graphs/video_reid.yaml")
    services = doc["services"]
    assert services["reid"]["ports"] == [{"target": 5606, "published": 5606, "protocol": "tcp", "mode": "host"}]
    assert services["postgres"]["deploy"]["placement"] == {"constraints": ["node.role == manager"]}
    assert services["db"]["environment"]["ZDG_DSN"].endswith("@postgres:5432/zdg")
    assert doc["volumes"] == {"zdg-store": {}} and "secrets" not in doc
    external = stack("graphs/video_reid.yaml", "--external-store")
    assert "postgres" not in external["services"]
    assert external["services"]["db"]["environment"]["ZDG_DSN"].startswith("${ZDG_DSN:?")


def test_stack_and_k8s_ask_for_a_gpu_only_for_nodes_that_run_on_one(tmp_path):
    gpu = ["--set", "detector.providers=cuda"]
    services = stack("graphs/video_reid.yaml", *gpu)["services"]
    assert services["detector"]["deploy"]["resources"]["reservations"]["generic_resources"] == [
        {"discrete_resource_spec": {"kind": "NVIDIA-GPU", "value": 1}}]
    assert "resources" not in services["embedder"]["deploy"]
    assert zdg("k8s", "graphs/video_reid.yaml", *gpu, "-o", str(tmp_path)).returncode == 0
    limits = {name: objects[0]["spec"]["template"]["spec"]["containers"][0]["resources"].get("limits")
              for name, objects in k8s_objects(tmp_path).items() if objects[0]["kind"] == "Deployment"}
    assert limits.pop("detector.yaml") == {"nvidia.com/gpu": 1}
    assert set(limits.values()) == {None}


def test_a_partly_placed_graph_is_refused_naming_the_node(tmp_path):
    graph = yaml.safe_load((REPO / "tests/containers/two_boxes.yaml").read_text())
    del graph["nodes"][2]["host"]
    path = tmp_path / "partly.yaml"
    path.write_text(yaml.safe_dump(graph))
    for command in (["stack", str(path)], ["k8s", str(path), "-o", str(tmp_path / "k8s")]):
        done = zdg(*command)
        assert done.returncode == 2 and "partly.yaml:" in done.stderr and "node 'collect' has no host:" in done.stderr


@pytest.mark.parametrize("name", EXAMPLE_GRAPHS)
def test_every_k8s_manifest_is_a_valid_kubernetes_object(name, tmp_path):
    assert zdg("k8s", EXAMPLE_GRAPHS[name], "-o", str(tmp_path)).returncode == 0
    files = k8s_objects(tmp_path)
    api = client.ApiClient()
    kinds = []
    for objects in files.values():
        for obj in objects:
            kinds.append(obj["kind"])
            if obj["kind"] == "Kustomization":
                assert sorted(obj["resources"]) == sorted(set(files) - {"kustomization.yaml"})
                continue
            model = api._ApiClient__deserialize(obj, K8S_MODELS[obj["kind"]])  # the client's own models
            assert without_nones(api.sanitize_for_serialization(model)) == obj, "a field the API does not know"
    deployments = {o["metadata"]["name"]: o for objs in files.values() for o in objs if o["kind"] == "Deployment"}
    services = {o["metadata"]["name"] for objs in files.values() for o in objs if o["kind"] == "Service"}
    if name == "video_reid":
        assert kinds.count("StatefulSet") == 1 and deployments["detector"]["spec"]["replicas"] == 2
        assert "postgres" in services and "detector" not in services  # a replicated node never binds
    else:
        pod = deployments["collect"]["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"zdg.box": "central"}
        assert pod["volumes"][-1] == {"name": "keys", "secret": {"secretName": "zdg-keys-central"}}
        kustomization = files["kustomization.yaml"][0]
        assert [g["name"] for g in kustomization["secretGenerator"]] == ["zdg-keys-central", "zdg-keys-edge"]
    for deployment in deployments.values():
        assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == ["--after-end", "wait"]


@pytest.mark.parametrize("name", EXAMPLE_GRAPHS)
def test_committed_examples_are_generated_from_their_graphs(name, tmp_path):
    """docker/examples/<graph>.stack.yml and docker/examples/k8s/<graph>/ are what the commands write today."""
    command = f"zdg stack {EXAMPLE_GRAPHS[name]} -o docker/examples/{name}.stack.yml; " \
              f"zdg k8s {EXAMPLE_GRAPHS[name]} -o docker/examples/k8s/{name}"
    stack_file = EXAMPLES / f"{name}.stack.yml"
    check = EXAMPLES / f".{name}.stack.check.yml"  # beside the committed file, so relative paths match
    try:
        assert zdg("stack", EXAMPLE_GRAPHS[name], "-o", str(check)).returncode == 0
        assert check.read_text() == stack_file.read_text(), f"stale example: run `{command}`"
    finally:
        check.unlink(missing_ok=True)
    assert zdg("k8s", EXAMPLE_GRAPHS[name], "-o", str(tmp_path / "k8s")).returncode == 0
    committed = EXAMPLES / "k8s" / name
    assert sorted(p.name for p in committed.iterdir()) == sorted(p.name for p in (tmp_path / "k8s").iterdir()), command
    for path in (tmp_path / "k8s").iterdir():
        assert path.read_text() == (committed / path.name).read_text(), f"stale example {path.name}: run `{command}`"


def test_on_one_network_an_edge_between_boxes_is_reached_by_service_name():
    from zdg.config import load_graph
    from zdg.wiring import Transport, compile_plan

    graph = load_graph(REPO / "tests/containers/two_boxes.yaml")
    crossing = next(link for link in compile_plan(graph).links if link.crosses_boxes)
    assert Transport("tcp", addresses=graph.hosts).connect_address(crossing) == "tcp://central.example:5601"
    assert Transport("tcp", addresses=graph.hosts, one_network=True).connect_address(crossing) == "tcp://collect:5601"
