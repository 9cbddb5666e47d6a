"""GPU-ready face nodes: which onnxruntime providers a node asks for, what it runs on here (no GPU machine is
lent to this project: the CUDA/TensorRT paths are chosen by this logic but were never run), and the GPU the
compose file requests for it."""

from __future__ import annotations

import pytest
import yaml

from nodes.vision.providers import choose_providers
from tests.conftest import REPO, zdg
from zdg.node import FatalNodeError

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


@pytest.mark.parametrize(("asked", "available", "chosen"), [
    ("auto", ["AzureExecutionProvider", CPU], [CPU]),
    ("auto", [TRT, CUDA, CPU], [TRT, CUDA, CPU]),
    ("auto", [CUDA, CPU], [CUDA, CPU]),
    ("cuda", [TRT, CUDA, CPU], [CUDA, CPU]),
    ("tensorrt", [CUDA, TRT, CPU], [TRT, CUDA, CPU]),
    ("cpu", [TRT, CUDA, CPU], [CPU]),
])
def test_providers_are_chosen_best_first_with_the_cpu_last(asked, available, chosen):
    assert choose_providers(asked, available) == chosen


@pytest.mark.parametrize("asked", ["cuda", "tensorrt"])
def test_asking_for_a_gpu_onnxruntime_lacks_is_one_clear_error(asked):
    with pytest.raises(FatalNodeError, match=f"providers: {asked}: .*GPU image"):
        choose_providers(asked, ["AzureExecutionProvider", CPU])


def test_auto_runs_on_the_best_device_here_and_says_so():
    import onnxruntime

    from nodes.detector import DetectorNode
    from zdg.testing import NodeHarness

    expected = choose_providers("auto", onnxruntime.get_available_providers())
    with NodeHarness(DetectorNode, pack="buffalo_sc") as node:
        assert node.node.model.session.get_providers()[0] == expected[0]
        on = "cpu" if expected[0] == CPU else "gpu"
        assert node.node.context.counters[f"on_{on}"] == 1


def test_a_node_that_asks_for_cuda_gets_a_gpu_in_the_compose_file(tmp_path):
    out = tmp_path / "compose.yml"
    zdg("compose", str(REPO / "graphs/video_reid.yaml"), "-o", str(out), "--set", "detector.providers=cuda")
    services = yaml.safe_load(out.read_text())["services"]
    gpu = {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    assert services["detector"]["deploy"]["resources"]["reservations"]["devices"] == [gpu]
    assert "resources" not in services["embedder"].get("deploy", {}), "auto asks for no device"
