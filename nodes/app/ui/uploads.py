"""Photos uploaded to the workbench, treated as hostile: the size their header declares is checked before a pixel
is decoded, and they are decoded one at a time."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

MAX_PHOTO_PIXELS = 40_000_000  # a 40 MP photo decodes to 120 MB of BGR; larger ones are refused unread
MAX_UPLOAD_PHOTOS = 20


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


class PhotoTooLarge(ValueError):
    """A photo declares more pixels than MAX_PHOTO_PIXELS."""


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) an image file's header declares, without decoding it; None when it is no image Pillow knows."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # Pillow only reads the header here; MAX_PHOTO_PIXELS is the (lower) cap
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def check_sizes(uploads: list[Upload]) -> set[int]:
    """Positions of the uploads that are no image; raises PhotoTooLarge naming the first photo over the pixel cap."""
    unreadable = set()
    for i, upload in enumerate(uploads):
        size = declared_size(upload.data)
        if size is None:
            unreadable.add(i)
        elif size[0] * size[1] > MAX_PHOTO_PIXELS:
            raise PhotoTooLarge(f"{upload.name}: {size[0]}x{size[1]} pixels is over the {MAX_PHOTO_PIXELS / 1e6:g} MP "
                                "a photo may have")
    return unreadable


def decoded(uploads: list[Upload], skip: set[int]) -> Iterator[tuple[str, np.ndarray | None]]:
    """(name, BGR image or None when OpenCV cannot read it) of each upload not in `skip`, decoded only when asked
    for: one photo in memory at a time."""
    import cv2

    for i, upload in enumerate(uploads):
        if i not in skip:
            yield upload.name, cv2.imdecode(np.frombuffer(upload.data, np.uint8), cv2.IMREAD_COLOR)
