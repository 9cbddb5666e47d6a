"""Pixels to faces: reading video and photos, the detector and recogniser models, execution providers,
pose, tracking, the live-stream replay buffer and annotated output."""

import warnings

warnings.filterwarnings("ignore", category=FutureWarning, module=r"insightface\..*")  # its own deprecations, not ours
