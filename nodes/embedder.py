"""Embedder: ArcFace-family recogniser (insightface ArcFaceONNX) or dlib's ResNet; L2-normalised output.

The embedding dimension comes from the model: nothing here assumes 512.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from nodes.environment import FaceEnvironment
from nodes.matching.setdist import l2_normalise
from nodes.messages import Faces
from nodes.vision.providers import GPU_PROVIDERS, Providers
from zdg.node import Deploy, Node, Params


class EmbedderParams(Params):
    backend: Literal["insightface", "dlib"] = Field("insightface", description="recogniser family")
    pack: str = Field("buffalo_sc", description="model pack folder under the model root (insightface backend)")
    model: str | None = Field(None, description="file glob in the pack, or a path to an .onnx file")
    model_root: str | None = Field(None, description="default: $ZDG_MODEL_ROOT, then ~/.insightface")
    batch_size: int = Field(8, ge=1, le=256, description="frames gathered per call")
    batch_timeout_ms: float = Field(20, ge=0, description="wait at most this long to fill a batch")
    threads: int = Field(1, ge=1, le=64)
    providers: Providers = Field("auto", description="onnxruntime execution providers (insightface backend): auto, "
                                 "cpu, cuda or tensorrt (these two ask the container engine for a GPU)")


class EmbedderNode(Node):
    """Faces in, the same Faces with `embeddings` (n, dim) out; gathers frames into batches."""

    TYPE = "embedder"
    Params = EmbedderParams
    inputs = {"in": Faces}
    outputs = {"out": Faces}
    deploy = Deploy(image="zdg-faces", models=True)
    preload = ("nodes.vision.recognisers", "insightface.model_zoo")

    @classmethod
    def deployment(cls, params: EmbedderParams) -> Deploy:
        return Deploy(image="zdg-faces", models=True, gpu=params.backend == "insightface" and params.providers in GPU_PROVIDERS)

    def setup(self) -> None:
        from nodes.vision.recognisers import DlibRecogniser, InsightfaceRecogniser

        p = self.params
        self.batch_size = p.batch_size
        self.batch_timeout_ms = p.batch_timeout_ms
        if p.backend == "dlib":
            self.recogniser = DlibRecogniser()
        else:
            root = FaceEnvironment.of(self.context.env).model_root_for(p.model_root)
            self.recogniser = InsightfaceRecogniser(p.pack, p.model, root, p.threads, p.providers)
            self.context.counters[f"on_{'cpu' if self.recogniser.model.ctx_id < 0 else 'gpu'}"] = 1
        self.log.info("embedding dimension %d", self.recogniser.dim)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """(len(crops), dim) L2-normalised embeddings."""
        if not crops:
            return np.zeros((0, self.recogniser.dim), np.float32)
        return l2_normalise(self.recogniser.embed(crops))

    def process_batch(self, batch: list[Faces]) -> list[Faces]:
        vectors = self.embed([crop for faces in batch for crop in faces.crops])
        out, start = [], 0
        for faces in batch:
            out.append(faces.embedded(vectors[start:start + len(faces)], self.recogniser.name))
            start += len(faces)
        return out

    def process(self, faces: Faces) -> Faces:
        return self.process_batch([faces])[0]
