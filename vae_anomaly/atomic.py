"""Files that appear complete or not at all: write a temporary file beside the target,
flush it to disk, then rename it over the target (a rename is atomic on one filesystem).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

# Every temporary this module names carries this tag after ".NAME.tmp-" or ".NAME.old-",
# then 8 random characters, so that the clean-up after a killed writer (which finds them by
# name) never takes a user's ".NAME.tmp-20261129" or ".NAME.old-backup" for one of ours.
TAG = "vae"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{TAG}{uuid.uuid4().hex[:8]}")


def _siblings(path: Path, suffix: str, folders: bool) -> list[Path]:
    """The files (or, with ``folders``, the real folders) beside ``path`` named
    ``.NAME.`` + a match of the regular expression ``suffix``: the names this module
    gives its temporaries, and no other."""
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{suffix}")
    candidates = path.parent.glob(f"{glob.escape(f'.{path.name}.')}*")
    return [
        candidate
        for candidate in candidates
        if pattern.fullmatch(candidate.name)
        and (candidate.is_dir() and not candidate.is_symlink() if folders else candidate.is_file())
    ]


def remove_stale_temporaries(path) -> list[Path]:
    """Remove the temporary files ``atomic_path`` left beside ``path`` (``.NAME.tmp-vae`` and
    8 hex digits) when its process was killed before it could remove them; those removed.

    Only for a path whose writers are locked out (``locks``): another process's
    temporary of the same name would be removed while it writes it."""
    stale = _siblings(real_target(path), f"tmp-{TAG}[0-9a-f]{{8}}", folders=False)
    for candidate in stale:
        candidate.unlink(missing_ok=True)
    return stale


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed to it.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = real_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
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


def real_target(path) -> Path:
    """``path`` with symbolic links resolved, so writing replaces what a link points to and
    keeps the link (a link to a model directory stays a link to the new model)."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


@contextlib.contextmanager
def staged(target):
    """Yield a temporary sibling directory of ``target`` that replaces it when the block
    succeeds (``move_into_place``) and is removed when the block fails: the directory is
    written whole or not at all. A symbolic link is written through (``real_target``)."""
    target = real_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{TAG}", dir=target.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def move_into_place(staging: Path, target: Path) -> None:
    """Rename the finished directory ``staging`` to ``target``, replacing an old one.

    Where the system can (Linux: ``renameat2`` with ``RENAME_EXCHANGE``), the two are
    swapped in one step, so ``target`` is always a whole directory, the old or the new.
    Elsewhere the old one is renamed aside first (``.NAME.old-vaeXXXXXXXX``): a process
    killed between the two renames leaves no ``target``, and ``recover_directory``
    renames the old one back."""
    if not target.exists():
        staging.rename(target)
        return
    if _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # it now holds the old directory
        return
    retired = target.with_name(f".{target.name}.old-{TAG}{uuid.uuid4().hex[:8]}")
    target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (``renameat2(..., RENAME_EXCHANGE)``); False where the
    C library or the file system has no such call."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    done = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def retired_directories(target) -> list[Path]:
    """The old directories ``move_into_place`` renamed aside from ``target`` and did not
    remove (``.NAME.old-vaeXXXXXXXX``), oldest first."""
    return sorted(
        _siblings(real_target(target), f"old-{TAG}[0-9a-f]{{8}}", folders=True),
        key=os.path.getmtime,
    )


def recover_directory(target) -> None:
    """Undo what a process killed while replacing the directory ``target`` left: the old
    directory renamed aside with no new one in its place is renamed back, and stale
    staging (``.NAME.tmp-vae*``) and retired (``.NAME.old-vae*``) directories are removed.

    Only for a ``target`` whose writers are locked out (``locks``)."""
    target = real_target(target)
    retired = retired_directories(target)
    if not target.exists() and retired:
        retired.pop().rename(target)  # the newest: the model the killed fit was replacing
    # staged's folders: tempfile.mkdtemp's 8 characters after the prefix.
    for stale in [*retired, *_siblings(target, f"tmp-{TAG}[a-z0-9_]{{8}}", folders=True)]:
        shutil.rmtree(stale, ignore_errors=True)
