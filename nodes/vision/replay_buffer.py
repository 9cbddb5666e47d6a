"""A live stream's replay buffer: the frames since the store's checkpoint, bounded in seconds and bytes.

A stream cannot be read twice. When the graph restarts (graph recovery), the source replays these
frames from the checkpoint (the first frame of the oldest sequence still open), so a crash downstream
loses nothing the buffer still holds. Frames the bounds push out while still needed are counted, and
so is the gap when a replay must start after the checkpoint.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from nodes.messages import Frame


class ReplayBuffer:
    def __init__(self, max_s: float, max_bytes: int, count: Callable[[str, int], None]) -> None:
        self.max_s, self.max_bytes = max_s, max_bytes
        self.count = count
        self.frames: deque[Frame] = deque()
        self.bytes = 0

    def add(self, frame: Frame, checkpoint: int) -> None:
        """Keep `frame`; forget frames before `checkpoint` (durable), then the oldest beyond the bounds (counted)."""
        self.frames.append(frame)
        self.bytes += frame.image.nbytes
        while self.frames and self.frames[0].frame < checkpoint:
            self._pop()
        while len(self.frames) > 1 and (self.bytes > self.max_bytes or self.frames[-1].ts - self.frames[0].ts > self.max_s):
            self._pop()
            self.count("replay_frames_pushed_out", 1)

    def _pop(self) -> None:
        self.bytes -= self.frames.popleft().image.nbytes

    def since(self, checkpoint: int) -> list[Frame]:
        """The frames to replay from `checkpoint`; frames it needs that were pushed out are counted as lost."""
        frames = [f for f in self.frames if f.frame >= checkpoint]
        if frames and frames[0].frame > checkpoint and self.frames[0].frame > checkpoint:
            self.count("replay_frames_lost", frames[0].frame - checkpoint)
        return frames
