"""Detector: SCRFD through insightface's model zoo; emits boxes, keypoints, scores and aligned crops."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from nodes.environment import FaceEnvironment
from nodes.messages import CROP_SIZE, Faces, Frame
from nodes.vision.providers import GPU_PROVIDERS, Providers
from nodes.vision.torso import torso_histogram
from zdg.node import Deploy, Node, Params


class DetectorParams(Params):
    pack: str = Field("buffalo_sc", description="model pack folder under the model root")
    model: str | None = Field("det_*.onnx", description="file glob in the pack, or a path to an .onnx file")
    model_root: str | None = Field(None, description="default: $ZDG_MODEL_ROOT, then ~/.insightface")
    input_size: int = Field(640, ge=128, le=2048, multiple_of=32, description="detector input's long side")
    input_shape: Literal["aspect", "square"] = Field(
        "aspect", description="aspect: the frame's aspect ratio (short side rounded up to a multiple of 32: a 16:9 "
        "frame is 640x384, 40 % less work than 640x640, same scale); square: input_size x input_size, letterboxed")
    min_score: float = Field(0.5, ge=0, le=1)
    min_size: int = Field(24, ge=0, description="smallest face side in pixels")
    max_yaw: float = Field(60, ge=0, le=90, description="degrees, estimated from the keypoints")
    max_pitch: float = Field(45, ge=0, le=90, description="degrees, estimated from the keypoints")
    min_sharpness: float = Field(10, ge=0, description="Laplacian variance of the aligned crop")
    max_faces: int = Field(0, ge=0, description="keep the N largest faces per frame (0 = all)")
    threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads (1 is fastest per process here)")
    providers: Providers = Field("auto", description="onnxruntime execution providers: auto (TensorRT, CUDA where "
                                 "present, else CPU), cpu, cuda or tensorrt (these two ask the container engine for a GPU)")


def detector_input(shape: tuple[int, ...], size: int, input_shape: str) -> tuple[int, int]:
    """(width, height) of the detector's input for a frame of `shape` (height, width, ...): `size` on the long
    side, the short side following the frame's aspect ratio rounded up to a multiple of 32 (SCRFD's stride)."""
    height, width = shape[:2]
    if input_shape == "square" or not height or not width:
        return size, size
    short = min(size, 32 * math.ceil(size * min(height, width) / max(height, width) / 32))
    return (size, short) if width >= height else (short, size)


class DetectorNode(Node):
    """Frame in, Faces out (every frame yields a message, possibly with no faces)."""

    TYPE = "detector"
    Params = DetectorParams
    inputs = {"in": Frame}
    outputs = {"out": Faces}
    deploy = Deploy(image="zdg-faces", models=True)
    preload = ("nodes.vision.models", "nodes.vision.pose", "insightface.model_zoo", "insightface.utils.face_align")

    @classmethod
    def deployment(cls, params: DetectorParams) -> Deploy:
        return Deploy(image="zdg-faces", models=True, gpu=params.providers in GPU_PROVIDERS)

    def setup(self) -> None:
        from insightface.utils.face_align import norm_crop

        from nodes.vision.models import load_model
        from nodes.vision.pose import sharpness, yaw_pitch_from_kps

        p = self.params
        root = FaceEnvironment.of(self.context.env).model_root_for(p.model_root)
        self.model = load_model(p.pack, p.model, root, p.threads, "SCRFD", p.providers)
        self.model.prepare(self.model.ctx_id, input_size=(p.input_size, p.input_size), det_thresh=p.min_score)
        self.context.counters[f"on_{'cpu' if self.model.ctx_id < 0 else 'gpu'}"] = 1  # what `zdg top` shows
        self.norm_crop, self.sharpness, self.yaw_pitch = norm_crop, sharpness, yaw_pitch_from_kps

    def detect(self, frame: Frame) -> Faces:
        p = self.params
        image = frame.image
        boxes, kps = self.model.detect(image, input_size=detector_input(image.shape, p.input_size, p.input_shape),
                                       max_num=p.max_faces)
        if kps is None or not len(boxes):
            return Faces.empty(frame)
        sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        yaw, pitch = self.yaw_pitch(kps)
        keep = np.ones(len(boxes), bool)
        for reason, rejected in (("small", sizes < p.min_size), ("yaw", np.abs(yaw) > p.max_yaw),
                                 ("pitch", np.abs(pitch) > p.max_pitch)):
            self.context.count(f"rejected_{reason}", int((keep & rejected).sum()))
            keep &= ~rejected
        crops, quality, kept = [], [], []
        for i in np.flatnonzero(keep):
            crop = self.norm_crop(image, kps[i], image_size=CROP_SIZE)
            sharp = self.sharpness(crop)
            if sharp < p.min_sharpness:
                self.context.count("rejected_blur")
                continue
            kept.append(i)
            crops.append(crop)
            frontal = 1 - abs(float(yaw[i])) / 90
            quality.append(float(boxes[i, 4]) * frontal * min(1.0, sharp / 200))
        self.context.count("faces", len(kept))
        if not kept:
            return Faces.empty(frame)
        return Faces(**frame.frame_fields(), boxes_xyxy=boxes[kept, :4].astype(np.float32),
                     kps=kps[kept].astype(np.float32), scores=boxes[kept, 4].astype(np.float32),
                     quality=np.asarray(quality, np.float32), crops=np.stack(crops), width=image.shape[1],
                     height=image.shape[0], torso=np.stack([torso_histogram(image, boxes[i]) for i in kept]))

    def process(self, frame: Frame) -> Faces:
        return self.detect(frame)
