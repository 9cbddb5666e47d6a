"""What a person wears: a colour histogram of the body below the face, to tell people dressed differently apart
within one visit of one source (nodes.matching.appearance). No model: HSV colours of a box under the face."""

from __future__ import annotations

import numpy as np

BINS = (8, 4, 4)  # hue, saturation, value
TORSO_BINS = int(np.prod(BINS))
WIDTH = 0.9  # the box spans the face's centre +- WIDTH face widths
TOP, BOTTOM = 0.3, 1.6  # from TOP to BOTTOM face heights below the chin
SAMPLE = 16  # the box is averaged down to SAMPLE x SAMPLE colours first: the cost does not grow with the face
MIN_VISIBLE = 0.5  # at least this share of the box's height inside the frame, else not seen
CORNERS = np.array([[(corner >> axis) & 1 for axis in range(3)] for corner in range(8)])[None]  # (1, 8, 3)


def torso_histogram(image: np.ndarray, face_box: np.ndarray) -> np.ndarray:
    """The L1-normalised HSV histogram (TORSO_BINS) of the body box under `face_box` (x1, y1, x2, y2 in the
    frame's pixels); zeros when too little of it is in the frame."""
    import cv2

    x1, y1, x2, y2 = (float(v) for v in face_box[:4])
    w, h = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2
    left, right = int(max(0.0, cx - WIDTH * w)), int(min(image.shape[1], cx + WIDTH * w))
    top, bottom = int(max(0.0, min(image.shape[0], y2 + TOP * h))), int(min(image.shape[0], y2 + BOTTOM * h))
    if w <= 0 or right - left < 4 or bottom - top < max(4.0, MIN_VISIBLE * (BOTTOM - TOP) * h):
        return np.zeros(TORSO_BINS, np.float32)
    body = cv2.resize(image[top:bottom, left:right], (SAMPLE, SAMPLE), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(body, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.float32)
    hist = soft_histogram(hsv / np.array([180, 256, 256], np.float32))
    return (hist / max(float(hist.sum()), 1.0)).astype(np.float32)


def soft_histogram(hsv: np.ndarray) -> np.ndarray:
    """A histogram of (n, 3) colours scaled to [0, 1) where each colour spreads over its two nearest bins per axis
    (linearly; hue wraps round): a colour near a bin edge counts nearly the same on either side, so two shirts of
    one colour land in the same bins (hard bins split pure reds between 0 and 179)."""
    sizes = np.array(BINS)
    position = hsv * sizes - 0.5
    low = np.floor(position)
    frac = (position - low)[:, None, :]
    index = low.astype(int)[:, None, :] + CORNERS  # (n, 8, 3): the 8 bins each colour spreads over
    index[..., 0] %= sizes[0]  # hue is a circle
    index[..., 1:] = np.clip(index[..., 1:], 0, sizes[1:] - 1)
    weight = np.prod(np.where(CORNERS, frac, 1 - frac), axis=2)
    flat = (index[..., 0] * sizes[1] + index[..., 1]) * sizes[2] + index[..., 2]
    return np.bincount(flat.ravel(), weights=weight.ravel(), minlength=TORSO_BINS)
