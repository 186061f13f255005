"""Files that appear complete or not at all: write a temporary file beside the target,
flush it to disk, then rename it over the target (a rename is atomic on one filesystem).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed to it.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", **options):
    """``open`` for writing through ``atomic_path`` (text modes default to newline="")."""
    if "b" not in mode:
        options.setdefault("newline", "")
        options.setdefault("encoding", "utf-8")
    with atomic_path(path) as temporary, open(temporary, mode, **options) as handle:
        yield handle


def write_bytes_atomically(path, data: bytes) -> Path:
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)
