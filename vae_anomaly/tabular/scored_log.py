"""The scored CSV output of a local run, appended chunk by chunk to one log file.

The local engine commits its chunks one at a time, in plan order, so it appends each
chunk's output rows to ``PARTS/scored.csv.log`` (which starts with the header) instead
of writing a part file per chunk, and records the byte range ``[start, end)`` in the
chunk's stats file, which is written after the bytes are on disk (``append``). When the
run ends and the ranges of all chunks follow one another in plan order, the log *is*
the output: a hard link to it replaces the output (``join``), where a join of part
files copies every output byte once more (3.6 GB for the 2 GB input of
``benchmarks/stream.py``). The log itself stays until the part directory is removed,
so a job killed between the join and its report resumes without scoring again.

Chunks committed as part files (by Dask workers, or by an older version kept by
``--resume``) are joined from their part files, in the same plan order, with the same
bytes. After a kill, the log may end with the bytes of a chunk whose stats file was
never written: ``reconcile`` cuts them off before a resumed run appends again, and
gives the log an inode of its own first if the output shares it (a job killed after its
join, resumed with chunks lost from its part directory).
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from pathlib import Path

from ..atomic import atomic_open, atomic_path, write_bytes_atomically

SCORED_LOG = "scored.csv.log"
RANGE_KEY = "scored_log"  # in a chunk's stats: [start, end) of its rows in the log
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}
_appending = threading.Lock()


def append(log: Path, data: bytes) -> list[int]:
    """Append ``data`` to ``log`` and flush it to disk; its byte range ``[start, end)``.

    One process appends at a time (the job's lock on its outputs); its threads take turns."""
    with _appending:
        _detach(log)
        return _append(log, data)


def _append(log: Path, data: bytes) -> list[int]:
    with open(log, "ab") as handle:
        start = handle.tell()
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        end = handle.tell()
    if end - start != len(data):
        raise RuntimeError(f"{log}: {len(data)} bytes appended at {start}, but it ends at {end}.")
    return [start, end]


def reconcile(parts: Path, committed: dict[str, dict], header: bytes) -> set[str]:
    """Make the log hold the header and the committed chunks' ranges, nothing after them.

    ``committed``: the stats of the chunks committed in ``parts`` (by stem). A chunk
    whose range the log no longer holds (the log is missing, shorter, or does not start
    with ``header``) is uncommitted, its stats file removed, so it is scored again. The
    stems uncommitted are returned. Bytes after the last committed range (a chunk killed
    while it was being appended) are cut off.
    """
    log = parts / SCORED_LOG
    size = log.stat().st_size if log.is_file() else -1
    if size >= 0:
        with open(log, "rb") as handle:
            if handle.read(len(header)) != header:
                size = -1
    ranges = {stem: stats[RANGE_KEY] for stem, stats in committed.items() if RANGE_KEY in stats}
    lost = {stem for stem, (_, end) in ranges.items() if end > size}
    for stem in lost:
        (parts / f"{stem}.stats.json").unlink()
    end = max((end for stem, (_, end) in ranges.items() if stem not in lost), default=None)
    if end is None:
        write_bytes_atomically(log, header)
    elif end < size:
        _detach(log)
        with open(log, "rb+") as handle:
            handle.truncate(end)
            os.fsync(handle.fileno())
    return lost


def join(parts: Path, stems: list[str], stats: list[dict], output: Path, header: bytes) -> None:
    """Write the scored output: the header, then every chunk's rows in plan order.

    When every chunk's rows are in the log, one after the other from the header on, a
    hard link to the log replaces ``output``. Otherwise (or when ``output`` is on another
    filesystem, or the filesystem has no hard links) the rows are copied from the log's
    ranges and the part files into a new file, written atomically."""
    log = parts / SCORED_LOG
    position, contiguous = len(header), True
    for chunk in stats:
        start, end = chunk.get(RANGE_KEY, (None, None))
        contiguous = contiguous and start == position
        position = end if end is not None else position
    if contiguous and log.is_file() and log.stat().st_size == position:
        try:
            with atomic_path(output) as linked:
                os.link(log, linked)
            return
        except OSError as error:
            if error.errno not in _NO_LINK:
                raise
    with atomic_open(output, "wb") as handle:
        handle.write(header)
        for stem, chunk in zip(stems, stats, strict=True):
            if RANGE_KEY in chunk:
                start, end = chunk[RANGE_KEY]
                with open(log, "rb") as source:
                    source.seek(start)
                    _copy(source, handle, end - start)
            else:
                with open(parts / f"{stem}.scored.csv", "rb") as part:
                    shutil.copyfileobj(part, handle)


def _detach(path: Path) -> None:
    """Give ``path`` an inode of its own if another name (the output) shares it: a copy
    of it replaces it, so writing to it never changes the output."""
    if not path.is_file() or path.stat().st_nlink == 1:
        return
    with atomic_path(path) as copy:
        shutil.copyfile(path, copy)


def _copy(source, target, length: int, block: int = 1 << 20) -> None:
    while length > 0:
        data = source.read(min(block, length))
        if not data:
            raise OSError(f"{source.name} ends {length} bytes before a committed range.")
        target.write(data)
        length -= len(data)
