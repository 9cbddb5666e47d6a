"""Which onnxruntime execution providers a face node runs on: the `providers` param and the choice it makes.
Pure (no onnxruntime import), so graphs validate and compose where only the framework is installed."""

from __future__ import annotations

from typing import Literal

from zdg.node import FatalNodeError

Providers = Literal["auto", "cpu", "cuda", "tensorrt"]
ORT_PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
GPU_PROVIDERS = ("cuda", "tensorrt")  # a node asking for one of these asks its container engine for a GPU


def choose_providers(asked: Providers, available: list[str]) -> list[str]:
    """onnxruntime execution providers for a node's `providers` param, best first, CPU always last: `auto`
    takes TensorRT and CUDA where this onnxruntime has them; `cuda`/`tensorrt` insist (FatalNodeError if absent)."""
    cpu = ORT_PROVIDERS["cpu"]
    if asked == "cpu":
        return [cpu]
    if asked != "auto" and ORT_PROVIDERS[asked] not in available:
        raise FatalNodeError(f"providers: {asked}: this onnxruntime offers only {available}; use the GPU image "
                             "(zdg build --gpu, onnxruntime-gpu) on a machine with a GPU, or providers: auto | cpu")
    wanted = ["cuda"] if asked == "cuda" else ["tensorrt", "cuda"]
    return [ORT_PROVIDERS[w] for w in wanted if ORT_PROVIDERS[w] in available] + [cpu]
