"""A TensorFlow.js graph model (model.json + weight shards) as an ONNX model, without TensorFlow.

Covers the ops of the face descriptors `zdg models` builds (convolutions with TF.js's fused bias/ReLU,
ReLU6 as Maximum/Minimum, PReLU written out as Relu/Abs/Sub/Mul/Add, spatial mean, L2 normalisation).
Activations are turned from NHWC into NCHW, the layout insightface's ArcFaceONNX feeds; an op it does
not know is a clear error.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ELEMENTWISE = {"Relu": "Relu", "Abs": "Abs", "Sub": "Sub", "Mul": "Mul", "Add": "Add", "AddV2": "Add",
               "Maximum": "Max", "Minimum": "Min", "Sigmoid": "Sigmoid"}
OPSET = 13


class UnsupportedModel(ValueError):
    """The graph uses an op or a form this converter does not handle."""


def text(attr: dict, key: str) -> str:
    return base64.b64decode(attr[key]["s"]).decode()


def texts(attr: dict, key: str) -> list[str]:
    return [base64.b64decode(s).decode() for s in attr.get(key, {}).get("list", {}).get("s", [])]


def ints(attr: dict, key: str) -> list[int]:
    return [int(i) for i in attr.get(key, {}).get("list", {}).get("i", [])]


def read_weights(model_json: Path) -> dict[str, np.ndarray]:
    """Every weight of the manifest, from its shards, as float32 (float16-quantised ones widened)."""
    manifest = json.loads(model_json.read_text())["weightsManifest"]
    weights = {}
    for group in manifest:
        data = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            stored = w.get("quantization", {}).get("dtype", w["dtype"])
            dtype = np.dtype({"float32": np.float32, "int32": np.int32, "float16": np.float16}[stored])
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            values = np.frombuffer(data, dtype, count, offset).reshape(w["shape"])
            offset += count * dtype.itemsize
            weights[w["name"]] = values.astype(np.float32) if stored == "float16" else values
    return weights


@dataclass
class Converter:
    weights: dict[str, np.ndarray]
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    rank: dict[str, int] = field(default_factory=dict)  # of each activation (4: NCHW in the ONNX graph)

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def add(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def operand(self, name: str, other_rank: int) -> str:
        """An input of an elementwise op: a weight reshaped to broadcast over NCHW, or an activation."""
        name = name.split(":")[0]
        if name not in self.weights:
            return name
        value = self.weights[name].astype(np.float32)
        if other_rank == 4 and value.ndim == 1 and value.size > 1:
            value = value.reshape(-1, 1, 1)
        elif other_rank == 4 and value.ndim == 4:
            value = value.transpose(0, 3, 1, 2)
        return self.const(f"{name}__nchw" if value.ndim else name, value)

    def conv(self, n: dict, depthwise: bool) -> None:
        attr = n.get("attr", {})
        if text(attr, "data_format") != "NHWC" or any(d != 1 for d in ints(attr, "dilations")):
            raise UnsupportedModel(f"{n['name']}: only NHWC convolutions without dilation")
        fused = texts(attr, "fused_ops")
        x, w_name, *extra = (i.split(":")[0] for i in n["input"])
        w = self.weights[w_name]
        if depthwise:  # (h, w, channels, multiplier) -> (channels * multiplier, 1, h, w), one group per channel
            kernel = w.transpose(2, 3, 0, 1).reshape(w.shape[2] * w.shape[3], 1, *w.shape[:2])
        else:  # (h, w, in, out) -> (out, in, h, w)
            kernel = w.transpose(3, 2, 0, 1)
        inputs = [x, self.const(f"{w_name}__oihw", kernel)]
        if fused[:1] == ["BiasAdd"]:
            inputs.append(self.const(f"{extra[0]}__bias", self.weights[extra[0]].astype(np.float32)))
            fused = fused[1:]
        padding = text(attr, "padding")
        if padding not in ("SAME", "VALID"):
            raise UnsupportedModel(f"{n['name']}: padding {padding}")
        out = n["name"] if not fused else f"{n['name']}__conv"
        self.add("Conv", inputs, out, strides=ints(attr, "strides")[1:3], group=w.shape[2] if depthwise else 1,
                 auto_pad="SAME_UPPER" if padding == "SAME" else "VALID")
        if fused == ["Relu"]:
            self.add("Relu", [out], n["name"])
        elif fused:
            raise UnsupportedModel(f"{n['name']}: fused ops {fused}")
        self.rank[n["name"]] = 4

    def node(self, n: dict) -> None:
        op, name, attr = n["op"], n["name"], n.get("attr", {})
        inputs = [i.split(":")[0] for i in n.get("input", []) if not i.startswith("^")]
        if op in ("_FusedConv2D", "Conv2D"):
            self.conv(n, depthwise=False)
        elif op in ("FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"):
            self.conv(n, depthwise=True)
        elif op in ELEMENTWISE:
            rank = max(self.rank.get(i, 0) for i in inputs)
            self.add(ELEMENTWISE[op], [self.operand(i, rank) for i in inputs], name)
            self.rank[name] = rank
        elif op == "Square":
            self.add("Mul", [inputs[0], inputs[0]], name)
            self.rank[name] = self.rank[inputs[0]]
        elif op == "Rsqrt":
            self.add("Reciprocal", [self.add("Sqrt", inputs, f"{name}__sqrt")], name)
            self.rank[name] = self.rank[inputs[0]]
        elif op == "Squeeze":
            axes = ints(attr, "squeeze_dims")
            if self.rank[inputs[0]] != 4 or sorted(axes) != [1, 2]:
                raise UnsupportedModel(f"{name}: only the spatial squeeze of a 4-d tensor")
            self.add("Squeeze", [inputs[0], self.const(f"{name}__axes", np.array([2, 3], np.int64))], name)
            self.rank[name] = 2
        elif op == "Mean":
            axes = np.atleast_1d(self.weights[inputs[1]]).astype(np.int64)
            keep = int(attr.get("keep_dims", {}).get("b", False))
            if self.rank[inputs[0]] != 4 or sorted(axes.tolist()) != [1, 2]:
                raise UnsupportedModel(f"{name}: only the spatial mean of a 4-d tensor")
            self.add("ReduceMean", [inputs[0]], name, axes=[2, 3], keepdims=keep)
            self.rank[name] = 4 if keep else 2
        elif op == "Sum":
            if self.rank[inputs[0]] == 4:
                raise UnsupportedModel(f"{name}: a sum over a 4-d tensor")
            axes = np.atleast_1d(self.weights[inputs[1]]).astype(np.int64)
            keep = int(attr.get("keep_dims", {}).get("b", False))
            self.add("ReduceSum", [inputs[0], self.const(f"{name}__axes", axes)], name, keepdims=keep)
            self.rank[name] = self.rank[inputs[0]] - (0 if keep else len(axes))
        else:
            raise UnsupportedModel(f"{name}: op {op} is not supported")


@dataclass(frozen=True)
class Pixels:
    """What the model expects of its input: (pixel - mean) * scale, in RGB or BGR order."""

    mean: float
    scale: float
    bgr: bool


def convert(model_json: Path, output: str, pixels: Pixels) -> Any:
    """The ONNX model: raw RGB pixels (0-255, NCHW, as insightface feeds a model that normalises its own
    input) in; the graph's `output` out as `embedding`."""
    from onnx import TensorProto, helper

    graph = json.loads(model_json.read_text())["modelTopology"]["node"]
    converter = Converter(read_weights(model_json))
    placeholders = [n for n in graph if n["op"] == "Placeholder"]
    if len(placeholders) != 1:
        raise UnsupportedModel(f"{model_json}: {len(placeholders)} inputs; one image input expected")
    dims = [int(d["size"]) for d in placeholders[0]["attr"]["shape"]["shape"]["dim"]]
    source = "pixels"
    if pixels.bgr:  # insightface feeds RGB: the graph sees the channels reversed
        source = converter.add("Gather", ["pixels", converter.const("zdg_bgr", np.array([2, 1, 0], np.int64))], "zdg_bgr_pixels",
                               axis=1)
    # named Sub…/Mul… so insightface sees a model that normalises its own input and feeds it raw pixels
    centred = converter.add("Sub", [source, converter.const("zdg_pixel_mean", np.float32(pixels.mean))], "Sub_pixel_mean")
    converter.add("Mul", [centred, converter.const("zdg_pixel_scale", np.float32(pixels.scale))], "Mul_pixel_scale")
    converter.add("Identity", ["Mul_pixel_scale"], placeholders[0]["name"])
    converter.rank[placeholders[0]["name"]] = 4
    by_name = {n["name"]: n for n in graph}
    done: set[str] = set()

    def visit(name: str) -> None:  # the graph's nodes in dependency order (the JSON is not sorted)
        if name in done or name not in by_name:
            return
        done.add(name)
        n = by_name[name]
        for i in n.get("input", []):
            visit(i.split(":")[0].lstrip("^"))
        if n["op"] not in ("Const", "Placeholder"):
            converter.node(n)

    visit(output)
    converter.add("Identity", [output], "embedding")
    nchw = ["N", dims[3], dims[1], dims[2]]
    model = helper.make_model(
        helper.make_graph(converter.nodes, model_json.stem,
                          [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, nchw)],
                          [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", None])],
                          converter.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="zdg models")
    model.ir_version = 8
    return model
