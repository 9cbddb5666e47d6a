"""`zdg models quantize`: an int8 copy of a model pack (onnxruntime static quantisation, QDQ, per channel;
the output heads stay fp32).

Detectors are calibrated on frames of a clip at the input the detector node feeds them (nodes.detector's
aspect-following size); recognisers on the aligned face crops the fp32 detector finds in the same frames.
The copy is a pack of its own (`<pack>_int8`): its embeddings are another model's, with their own
calibration (`zdg calibrate --set embedder.pack=<pack>_int8`) and their own store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from nodes.detector import detector_input
from nodes.vision.models import find_model_files, load_model
from zdg.node import CommandError

MIN_OPSET = 13  # per-channel QDQ needs DequantizeLinear's axis


def clip_frames(clip: str, count: int) -> list[np.ndarray]:
    """`count` frames spread evenly over the clip."""
    cap = cv2.VideoCapture(clip)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for index in np.linspace(0, max(total - 1, 0), count).round().astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, image = cap.read()
        if ok:
            frames.append(image)
    if not frames:
        raise CommandError(f"{clip}: no frame could be read")
    return frames


def detector_blob(model, image: np.ndarray, size: int) -> np.ndarray:
    """The SCRFD input for `image`, as insightface's SCRFD prepares it at the detector node's input size."""
    width, height = detector_input(image.shape, size, "aspect")
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)))
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[:resized.shape[0], :resized.shape[1]] = resized
    return cv2.dnn.blobFromImage(canvas, 1.0 / model.input_std, (width, height), (model.input_mean,) * 3, swapRB=True)


def recogniser_blob(model, crop: np.ndarray) -> np.ndarray:
    return cv2.dnn.blobFromImages([crop], 1.0 / model.input_std, model.input_size, (model.input_mean,) * 3, swapRB=True)


class Blobs(CalibrationDataReader):
    """Calibration inputs, prepared, for onnxruntime."""

    def __init__(self, input_name: str, blobs: list[np.ndarray]) -> None:
        self.feeds: Iterator[dict] = iter({input_name: b} for b in blobs)

    def get_next(self) -> dict | None:
        return next(self.feeds, None)


def without_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model at opset >= 13 with inferred and output shapes dropped: a detector's outputs follow its input size."""
    if model.opset_import[0].version < MIN_OPSET:
        model = onnx.version_converter.convert_version(model, MIN_OPSET)
    del model.graph.value_info[:]
    for output in model.graph.output:
        output.type.tensor_type.ClearField("shape")
    return model


def output_heads(model: onnx.ModelProto) -> list[str]:
    """The nodes from each graph output back to, and with, its last Conv or Gemm: the heads that make scores,
    boxes and keypoints (a detector's are unusable in int8: it found 1 face in 551) or the embedding."""
    producer = {out: node for node in model.graph.node for out in node.output}
    heads: set[str] = set()
    for output in model.graph.output:
        node = producer.get(output.name)
        while node is not None and node.name not in heads:
            heads.add(node.name)
            if node.op_type in ("Conv", "Gemm") or not node.input:
                break
            node = producer.get(node.input[0])
    return sorted(heads)


def quantize_file(source: Path, target: Path, input_name: str, blobs: list[np.ndarray]) -> None:
    prepared = target.with_suffix(".fp32.onnx")
    model = without_shapes(onnx.load(str(source)))
    onnx.save(model, str(prepared))
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # the quantiser logs each tensor it touches, and advice, on the root logger
    try:
        quantize_static(str(prepared), str(target), Blobs(input_name, blobs), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=output_heads(model))
    finally:
        root.setLevel(level)
        prepared.unlink(missing_ok=True)


def quantize_pack(pack: str, model_root: str | None, clip: str, out_root: Path, frames: int = 48,
                  detector_size: int = 640) -> Path:
    """Write `<out_root>/<pack>_int8/` with every detector and recogniser of the pack quantised; returns the folder."""
    images = clip_frames(clip, frames)
    models = {source: load_model(pack, str(source), model_root, 1, "SCRFD" if source.name.startswith("det_") else "ArcFaceONNX")
              for source in find_model_files(pack, None, model_root)}
    detectors = [source for source in models if source.name.startswith("det_")]
    crops: list[np.ndarray] = []
    if len(detectors) < len(models):  # a recogniser: calibrated on the faces the pack's (or buffalo_sc's) detector finds
        finder = models[detectors[0]] if detectors else load_model("buffalo_sc", "det_*.onnx", model_root, 1, "SCRFD")
        crops = face_crops(finder, images, detector_size)
    target = out_root / f"{pack}_int8"
    target.mkdir(parents=True, exist_ok=True)
    lines = []
    for source, model in models.items():
        if source in detectors:
            blobs = [detector_blob(model, image, detector_size) for image in images]
            what = f"{len(blobs)} frames at the detector's input for {detector_size}"
        else:
            blobs = [recogniser_blob(model, crop) for crop in crops]
            what = f"{len(blobs)} aligned face crops the fp32 detector found in those frames"
        if not blobs:
            raise CommandError(f"{clip}: no face found to calibrate {source.name} on; use a clip with faces")
        quantize_file(source, target / source.name, model.session.get_inputs()[0].name, blobs)
        lines.append(f"- `{source.name}`: int8 of {source}, calibrated on {what}")
    (target / "SOURCES.md").write_text(
        f"# {pack}_int8\n\nMade by `zdg models quantize {pack} --clip {clip}` (onnxruntime static quantisation, QDQ, "
        f"per-channel int8 weights, uint8 activations; the output heads stay fp32) from {len(images)} frames of "
        f"{clip}:\n" + "\n".join(lines) + "\n")
    return target


def face_crops(detector, images: list[np.ndarray], size: int) -> list[np.ndarray]:
    """The aligned 112x112 crops of every face the detector finds in the images."""
    from insightface.utils.face_align import norm_crop

    crops = []
    for image in images:
        _, kps = detector.detect(image, input_size=detector_input(image.shape, size, "aspect"))
        crops += [norm_crop(image, k) for k in (kps if kps is not None else [])]
    return crops
