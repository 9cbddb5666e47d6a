"""Face quality measures from the 5 SCRFD keypoints and the aligned crop."""

from __future__ import annotations

import cv2
import numpy as np


def yaw_pitch_from_kps(kps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rough yaw and pitch in degrees for (n,5,2) keypoints (eyes, nose, mouth corners).

    Yaw: the nose's offset from the eye midpoint over half the eye distance is about tan(yaw).
    Pitch: where the nose sits between the eye line and the mouth line (about 0.5 when level).
    """
    if not len(kps):
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    left_eye, right_eye, nose, left_mouth, right_mouth = (kps[:, i] for i in range(5))
    eye_mid = (left_eye + right_eye) / 2
    mouth_mid = (left_mouth + right_mouth) / 2
    half_eye = np.maximum(np.linalg.norm(right_eye - left_eye, axis=1) / 2, 1e-6)
    yaw = np.degrees(np.arctan((nose[:, 0] - eye_mid[:, 0]) / half_eye))
    span = np.maximum(mouth_mid[:, 1] - eye_mid[:, 1], 1e-6)
    ratio = (nose[:, 1] - eye_mid[:, 1]) / span
    pitch = np.degrees(np.arcsin(np.clip((ratio - 0.5) * 2, -1, 1)))
    return yaw.astype(np.float32), pitch.astype(np.float32)


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop: low means blurred."""
    return float(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())
