"""Face sets for calibration: a clip's sequences (as the graph makes them) and photo folders' variants."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2

from nodes.matching.decision import ReidSettings
from nodes.matching.quality import junk_reason
from nodes.matching.truth import Truth
from nodes.messages import Sequence
from nodes.tools.calibrate import FaceSet
from nodes.tools.evaluate import embed_set, identity_folders, variations

if TYPE_CHECKING:
    from nodes.detector import DetectorNode
    from nodes.embedder import EmbedderNode

NOT_INCOHERENT = ReidSettings(threshold=2.0, named_threshold=2.0)  # junk by score and frame edge only


def sequence_sets(video_id: str, sequences: list[Sequence], truth: Truth | None) -> list[FaceSet]:
    """The sequences that are not junk, labelled from the truth when there is one."""
    out = []
    for seq in sequences:
        if junk_reason(seq, NOT_INCOHERENT):
            continue
        box = seq.boxes_xyxy[0]
        label = truth.name_at(seq.first_frame, float(box[0] + box[2]) / 2) if truth else None
        out.append(FaceSet(video_id, label, seq.embeddings, (seq.first_frame, seq.last_frame)))
    return out


def photo_sets(root: Path, detector: DetectorNode, embedder: EmbedderNode) -> list[FaceSet]:
    """One set per photo (frame-like variants of it), labelled by its identity folder."""
    out = []
    for i, (name, photos) in enumerate(identity_folders(root).items()):
        for j, photo in enumerate(photos):
            vectors = embed_set(detector, embedder, variations(cv2.imread(str(photo)), 100 * i + j))
            if len(vectors):
                out.append(FaceSet(f"photos:{root}", name, vectors, photo=True))
    return out
