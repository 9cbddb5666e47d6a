"""A source's path as a string, without opening it (no OpenCV here): whether it is a live stream, and how it is
shown without a camera's password."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def is_stream(path: str) -> bool:
    return path.isdigit() or "://" in path


def redacted(path: str) -> str:
    """A stream URL without its password (`rtsp://user:pass@host/x` → `rtsp://user@host/x`): what logs, video ids and
    the store see; only the reader gets the URL itself."""
    if "://" not in path:
        return path
    parts = urlsplit(path)
    if parts.password is None:
        return path
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.netloc.rsplit('@', 1)[1]}"))
