"""`zdg models`' converter: a TF.js graph model run as ONNX gives what the graph computes (numpy reference,
NHWC), with TF.js's fused ops, float16-quantised weights and the input normalisation insightface expects."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from nodes.tools.tfjs_onnx import Pixels, UnsupportedModel, convert

RNG = np.random.default_rng(7)
W1 = RNG.normal(size=(3, 3, 3, 4)).astype(np.float32)  # conv, HWIO
B1 = RNG.normal(size=4).astype(np.float32)
W2 = RNG.normal(size=(3, 3, 4, 1)).astype(np.float16)  # depthwise, stored as float16
B2 = RNG.normal(size=4).astype(np.float32)
ALPHA = np.full(4, 0.25, np.float32)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def conv_attrs(fused: list[str], padding: str, stride: int) -> dict:
    return {"fused_ops": {"list": {"s": [b64(f) for f in fused]}}, "padding": {"s": b64(padding)},
            "strides": {"list": {"i": ["1", str(stride), str(stride), "1"]}}, "data_format": {"s": b64("NHWC")},
            "dilations": {"list": {"i": ["1", "1", "1", "1"]}}, "num_args": {"i": "1"}}


def tiny_model(folder: Path, extra_op: str | None = None) -> Path:
    """input (n, 9, 9, 3) -> conv 3x3 stride 2 SAME + bias -> PReLU -> depthwise 3x3 VALID + bias + relu -> mean."""
    nodes = [
        {"name": "image", "op": "Placeholder", "attr": {"shape": {"shape": {"dim": [{"size": "-1"}, {"size": "9"},
                                                                                     {"size": "9"}, {"size": "3"}]}}}},
        {"name": "conv", "op": "_FusedConv2D", "input": ["image", "w1", "b1"], "attr": conv_attrs(["BiasAdd"], "SAME", 2)},
        {"name": "relu", "op": "Relu", "input": ["conv"]}, {"name": "abs", "op": "Abs", "input": ["conv"]},
        {"name": "sub", "op": "Sub", "input": ["conv", "abs"]}, {"name": "mul", "op": "Mul", "input": ["sub", "alpha"]},
        {"name": "prelu", "op": "Add", "input": ["relu", "mul"]},
        {"name": "dw", "op": "FusedDepthwiseConv2dNative", "input": ["prelu", "w2", "b2"],
         "attr": conv_attrs(["BiasAdd", "Relu"], "VALID", 1)},
        {"name": "mean", "op": "Mean", "input": ["dw", "axes"], "attr": {"keep_dims": {"b": False}}},
    ]
    nodes += [{"name": n, "op": "Const"} for n in ("w1", "b1", "w2", "b2", "alpha", "axes")]
    if extra_op:
        nodes.append({"name": "odd", "op": extra_op, "input": ["mean"]})
    weights = [("w1", W1, "float32"), ("b1", B1, "float32"), ("w2", W2, "float16"), ("b2", B2, "float32"),
               ("alpha", ALPHA, "float32"), ("axes", np.array([1, 2], np.int32), "int32")]
    manifest = [{"paths": ["tiny.bin"], "weights": [
        {"name": n, "shape": list(v.shape), "dtype": "float32" if d == "float16" else d,
         **({"quantization": {"dtype": "float16", "original_dtype": "float32"}} if d == "float16" else {})}
        for n, v, d in weights]}]
    (folder / "tiny.bin").write_bytes(b"".join(v.tobytes() for _, v, _ in weights))
    path = folder / "tiny.json"
    path.write_text(json.dumps({"format": "graph-model", "modelTopology": {"node": nodes}, "weightsManifest": manifest}))
    return path


def reference(image: np.ndarray) -> np.ndarray:
    """What the graph computes, in NHWC, by hand."""
    x = np.pad(image, ((0, 0), (1, 1), (1, 1), (0, 0)))  # SAME, stride 2 on 9: one pixel each side
    conv = np.zeros((len(image), 5, 5, 4), np.float32)
    for i in range(5):
        for j in range(5):
            conv[:, i, j] = np.tensordot(x[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3], W1, axes=([1, 2, 3], [0, 1, 2])) + B1
    prelu = np.maximum(conv, 0) + ALPHA * (conv - np.abs(conv))
    w2 = W2.astype(np.float32)[:, :, :, 0]
    dw = np.zeros((len(image), 3, 3, 4), np.float32)
    for i in range(3):
        for j in range(3):
            dw[:, i, j] = (prelu[:, i:i + 3, j:j + 3] * w2).sum(axis=(1, 2)) + B2
    return np.maximum(dw, 0).mean(axis=(1, 2))


def test_a_converted_graph_computes_what_the_tfjs_graph_does(tmp_path):
    import onnxruntime

    pixels = RNG.uniform(0, 255, size=(2, 9, 9, 3)).astype(np.float32)
    for expects in (Pixels(127.5, 1 / 127.5, bgr=False), Pixels(0.0, 1 / 255, bgr=True)):
        model = convert(tiny_model(tmp_path), "mean", expects)
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        seen = pixels[..., ::-1] if expects.bgr else pixels
        want = reference((seen - expects.mean) * expects.scale)
        got = session.run(None, {"pixels": pixels.transpose(0, 3, 1, 2)})[0]  # insightface feeds RGB, NCHW
        assert np.allclose(got, want, atol=1e-4), np.abs(got - want).max()
        first = [n.name for n in model.graph.node[:8]]
        assert any(n.startswith("Sub") for n in first) and any(n.startswith("Mul") for n in first), \
            "insightface must see a model that normalises its own input, or it feeds [-1, 1] instead of pixels"


def test_an_op_the_converter_does_not_know_is_a_clear_error(tmp_path):
    with pytest.raises(UnsupportedModel, match="odd: op Erf is not supported"):
        convert(tiny_model(tmp_path, "Erf"), "odd", Pixels(0, 1, False))
