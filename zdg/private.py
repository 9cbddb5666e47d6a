"""Files only their user reads: zdg writes with umask 077, and the folders it keeps sockets, keys and faces in are
0700, really a folder (no symbolic link) and owned by the user running zdg, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077  # every file zdg writes (faces, crops, videos, reports, sockets) is its user's alone


class UnsafeFolder(PermissionError):
    """A folder zdg would keep private files in is a link, not a folder, or another user's."""


def default_run_root() -> Path:
    """Where local runs keep sockets and metrics: $XDG_RUNTIME_DIR/zdg (a per-user folder the system made), else
    /tmp/zdg-UID, a name per user that private_dir refuses when someone else made it first."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "zdg"
    return Path("/tmp") / f"zdg-{os.getuid()}"


def private_dir(path: Path, owner: int | None = None) -> Path:
    """Make `path` (and missing parents) a folder only this user can enter (mode 0700); raises UnsafeFolder when
    it is a symbolic link, not a folder, or owned by another user than this one (or `owner`)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = os.lstat(path)
    if not stat.S_ISDIR(found.st_mode):
        raise UnsafeFolder(f"{path}: is a symbolic link or not a folder; zdg keeps private files only in a folder of its own")
    if found.st_uid not in (os.getuid(), owner):
        raise UnsafeFolder(f"{path}: belongs to uid {found.st_uid}, not to you (uid {os.getuid()}): another user could read "
                           "or plant files there; remove it or choose another folder")
    os.chmod(path, 0o700, follow_symlinks=False)
    return path


def private_file(path: Path, data: bytes) -> Path:
    """Write `path` with mode 0600 from its creation on (an existing file is replaced, never followed if a link)."""
    if path.is_symlink():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)
    return path
