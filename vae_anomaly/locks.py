"""One writer per output: a lock file beside each path a job writes.

    .NAME.lock   {"pid": 4242, "host": "node-7", "since": ISO 8601 UTC, "path": "NAME"}

A job takes the lock by opening the file and holding an exclusive ``flock`` on it for as
long as it runs; it writes its process id and host into the file so that a second job is
refused with a message naming the holder. The operating system releases the ``flock``
when the holder exits, however it exits: a lock file left by a killed job is stale, and
the next job takes it over (it gets the ``flock`` at once) and rewrites the holder.
After taking the ``flock``, a job checks that the path still names the file it locked (a
finishing holder unlinks it), and tries again otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from .atomic import real_target


class JobLockedError(RuntimeError):
    """Another running job holds the lock of a path this job would write."""


def lock_path(path) -> Path:
    """The lock file of ``path``: ``.NAME.lock`` beside it (beside a link's target)."""
    target = real_target(path)
    return target.with_name(f".{target.name}.lock")


class JobLock:
    """Context manager holding the lock of ``path``; ``flag`` names it in messages.

    A job refuses to start while another holds the lock (``JobLockedError``); with
    ``wait`` (``save``, which takes moments) it waits for the holder to finish instead."""

    def __init__(self, path, flag: str, wait: bool = False):
        self.target = Path(path)
        self.path = lock_path(path)
        self.flag = flag
        self.wait = wait
        self._descriptor: int | None = None

    def _holder(self) -> str:
        try:
            holder = json.loads(self.path.read_text())
            return f"process {holder['pid']} on host {holder['host']}, since {holder['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "a job that has not yet written its name"

    def __enter__(self) -> JobLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            descriptor = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(descriptor)
                raise JobLockedError(
                    f"{self.flag} {self.target} is being written by another job: "
                    f"{self._holder()} (lock file {self.path}). Wait for that job to finish."
                ) from None
            try:
                same = os.path.samestat(os.fstat(descriptor), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(descriptor)  # the holder finished and removed it meanwhile: again
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "path": str(self.target),
        }
        os.ftruncate(descriptor, 0)
        os.write(descriptor, json.dumps(record, allow_nan=False).encode())
        self._descriptor = descriptor
        return self

    def __exit__(self, *exc) -> None:
        if self._descriptor is not None:
            self.path.unlink(missing_ok=True)  # while still holding the flock
            os.close(self._descriptor)
            self._descriptor = None


@contextlib.contextmanager
def locked(named):
    """Hold the lock of every (flag, path) pair of ``named`` (None paths skipped)."""
    with contextlib.ExitStack() as stack:
        for flag, path in named:
            if path is not None:
                stack.enter_context(JobLock(path, flag))
        yield
