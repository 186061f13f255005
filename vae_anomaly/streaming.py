"""Rows that do not fit in memory: held out by position, kept on disk, trained on through tf.data.

A streamed fit (``VAEAnomalyDetector._fit_stream``) reads its rows once, as chunks of
encoded rows, each row with a **position key** (``position_keys``: which input file and
which line). Its share of the rows — training, early-stopping validation or calibration —
is decided by the key alone (``position_uniform``), never by the content or by the order
or size of the chunks, so the same lines are held out however the file is read.

The training rows go to a ``RowStore``: one raw float32 file per chunk in a temporary
folder, which ``StreamedRows.batches`` reads back every epoch through ``tf.data`` (files in
a new random order each epoch, ``INTERLEAVE`` files read at a time, rows mixed in a
shuffle buffer of ``SHUFFLE_ROWS``). Memory holds a few chunks, whatever the file's size;
the disk holds 4 bytes per training value (8 per calibration value).
"""

from __future__ import annotations

import fcntl
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Rows mixed by the shuffle buffer, and chunk files read at once (interleaved row by row).
SHUFFLE_ROWS = 65_536
INTERLEAVE = 4
_LINE_BITS = 40  # a key is file_index << 40 | line: 10^12 lines per file, 2^24 files
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def position_keys(file_index: int, lines) -> np.ndarray:
    """uint64 keys of (input file, line number): ``file_index << 40 | line``."""
    lines = np.asarray(lines, dtype=np.uint64)
    return (np.uint64(file_index) << np.uint64(_LINE_BITS)) | lines


def position_uniform(keys: np.ndarray, seed: int) -> np.ndarray:
    """A number in [0, 1) per key, the same for the same key and seed, spread uniformly.

    The splitmix64 finaliser of ``key + (seed + 1) * golden`` (Steele et al., 2014): a
    bijection of 64-bit words whose output bits pass BigCrush, so neighbouring lines and
    periodic data (hourly records, every k-th line) get independent-looking numbers.
    """
    with np.errstate(over="ignore"):
        z = np.asarray(keys, dtype=np.uint64) + np.uint64(seed + 1) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


class RowStore:
    """Arrays of one width appended chunk by chunk to raw files in a temporary folder."""

    def __init__(self, folder: Path, name: str, width: int, dtype):
        self.folder, self.name, self.width = Path(folder), name, int(width)
        self.dtype = np.dtype(dtype)
        self.paths: list[str] = []
        self.n_rows = 0

    def append(self, rows: np.ndarray) -> None:
        """Write ``rows`` [n, width] as the next file (nothing for n = 0)."""
        if len(rows) == 0:
            return
        path = self.folder / f"{self.name}-{len(self.paths):06d}.raw"
        np.ascontiguousarray(rows, dtype=self.dtype).tofile(path)
        self.paths.append(str(path))
        self.n_rows += len(rows)

    def chunks(self) -> Iterator[np.ndarray]:
        """The stored arrays, one file at a time, in the order written."""
        for path in self.paths:
            yield np.fromfile(path, dtype=self.dtype).reshape(-1, self.width)


SCRATCH_PREFIX = "vae-anomaly-fit-"
# In each scratch folder: a file its fit holds an exclusive flock on while it runs.
SCRATCH_OWNER = "owner.lock"


@contextmanager
def scratch_folder() -> Iterator[Path]:
    """A temporary folder (in ``TMPDIR``) for the row stores of one fit, removed after.

    The fit holds an exclusive ``flock`` on the folder's ``SCRATCH_OWNER`` file while it
    runs, and the kernel lets go of it when the process ends, however it ends. A folder
    whose lock can be taken therefore belongs to a fit that was killed: each new fit
    removes those first (``remove_abandoned_scratch``), so a killed fit's training rows
    do not stay on disk for good."""
    root = Path(tempfile.gettempdir())
    remove_abandoned_scratch(root)
    folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=root))
    # Locked before it has its name, so no other fit ever sees it unlocked.
    owner = open(folder / f".{SCRATCH_OWNER}.new", "w")
    try:
        fcntl.flock(owner, fcntl.LOCK_EX)
        os.replace(folder / f".{SCRATCH_OWNER}.new", folder / SCRATCH_OWNER)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        owner.close()


def remove_abandoned_scratch(root: Path) -> list[Path]:
    """Remove the scratch folders below ``root`` whose fit no longer runs (their
    ``SCRATCH_OWNER`` lock can be taken); the folders removed. A folder without the
    lock file (being created, or written by an older version) is left alone."""
    removed = []
    for folder in sorted(root.glob(f"{SCRATCH_PREFIX}*")):
        owner_path = folder / SCRATCH_OWNER
        if folder.is_symlink() or not folder.is_dir() or not owner_path.is_file():
            continue
        try:
            with open(owner_path) as owner:
                fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while its fit runs
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue
        removed.append(folder)
    return removed


@dataclass(frozen=True)
class StreamedRows:
    """Training rows on disk (``RowStore`` of float32 scaled rows), for ``training.train``.

    ``sample`` [m, width] is a few of the rows in memory: what ``train`` shows when it
    names the most extreme columns of a fit that diverged.
    """

    store: RowStore
    sample: np.ndarray

    def __len__(self) -> int:
        return self.store.n_rows

    def batches(self, batch_size: int, seed: int):
        """Batches of every stored row once per epoch, shuffled anew each epoch.

        The files come in a random order; ``INTERLEAVE`` of them are read at a time, row
        by row in turn, and a buffer of ``SHUFFLE_ROWS`` rows mixes them. The cardinality
        is declared (ceil(rows / batch_size) batches), so Keras knows the epoch's length.
        """
        import tensorflow as tf

        width, steps = self.store.width, math.ceil(self.store.n_rows / batch_size)

        def rows_of(path):
            values = tf.io.decode_raw(tf.io.read_file(path), tf.float32)
            return tf.data.Dataset.from_tensor_slices(tf.reshape(values, [-1, width]))

        return (
            tf.data.Dataset.from_tensor_slices(self.store.paths)
            .shuffle(len(self.store.paths), seed=seed, reshuffle_each_iteration=True)
            .interleave(rows_of, cycle_length=INTERLEAVE, block_length=1)
            .shuffle(min(SHUFFLE_ROWS, self.store.n_rows), seed=seed + 1)
            .batch(batch_size)
            .apply(tf.data.experimental.assert_cardinality(steps))
        )
