"""SciPy sparse input, densified a bounded block at a time.

A sparse X (CSR, as ``validate_data`` hands it over) is never made dense whole: the
scaling statistics are computed over blocks of columns (``validation.fit_scaling``), and
the rows the model sees are densified and scaled one block of rows (scoring) or one
training batch (``ScaledRows``) at a time. Each block goes through the same float64
arithmetic as a dense X, so scores are bit-identical to those of ``X.toarray()``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf
from scipy import sparse

from .validation import DENSE_BLOCK_VALUES


def dense_block_rows(n_columns: int) -> int:
    """Rows of a block of at most DENSE_BLOCK_VALUES values (one row at least)."""
    return max(1, DENSE_BLOCK_VALUES // max(1, n_columns))


def row_blocks(n_rows: int, n_columns: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive row blocks of at most DENSE_BLOCK_VALUES values."""
    step = dense_block_rows(n_columns)
    for start in range(0, n_rows, step):
        yield start, min(start + step, n_rows)


class ScaledRows:
    """Rows of a sparse matrix as the model sees them, made on demand: ``scale`` maps a
    dense float64 block [b, d] to the model's float32 rows (the detector's scaling).

    ``rows[indices]`` selects rows (still sparse); ``batches`` is the training input, one
    batch densified at a time, at the positions ``batching`` gives, as a dense array's
    rows are gathered: the same rows in the same order.
    """

    def __init__(self, X, scale: Callable[[np.ndarray], np.ndarray]):
        self.X = sparse.csr_array(X)
        self.scale = scale

    @property
    def shape(self) -> tuple[int, int]:
        return self.X.shape

    def __len__(self) -> int:
        return self.X.shape[0]

    def __getitem__(self, rows) -> ScaledRows:
        return ScaledRows(self.X[np.asarray(rows)], self.scale)

    def dense(self, rows: np.ndarray) -> np.ndarray:
        """The model's float32 rows for the given row positions."""
        return self.scale(self.X[rows].toarray())

    def blocks(self) -> Iterator[np.ndarray]:
        """The model's rows, block by block (bounded memory)."""
        for start, stop in row_blocks(*self.X.shape):
            yield self.dense(np.arange(start, stop))

    def batches(self, positions: tf.data.Dataset) -> tf.data.Dataset:
        """Batches [b, d] float32 of the rows at each batch of ``positions`` (int64 [b],
        from ``batching``), densified one batch at a time."""
        d = self.X.shape[1]

        @tf.autograph.experimental.do_not_convert
        def densify(indices):
            rows = tf.numpy_function(self.dense, [indices], tf.float32, stateful=False)
            return tf.ensure_shape(rows, (None, d))

        with warnings.catch_warnings():
            # tf.data warns that run_functions_eagerly does not reach its functions; this
            # one only calls into NumPy, eagerly or not.
            warnings.filterwarnings("ignore", "Even though the `tf.config", UserWarning)
            return positions.map(densify)

    def column_extremes(self) -> np.ndarray:
        """max |u| per column, NaN ignored (-1 for a column with no value)."""
        extremes = np.full(self.X.shape[1], -1.0)
        for U in self.blocks():
            magnitude = np.abs(U.astype(np.float64))
            extremes = np.fmax(extremes, np.max(np.where(np.isnan(magnitude), -1.0, magnitude), 0))
        return extremes
