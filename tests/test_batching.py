"""Training batches of row positions (``batching``): every row once per epoch, a fresh
permutation every epoch, the same permutations for the same seed."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vae_anomaly.batching import index_batches, row_batches


def _epochs(dataset: tf.data.Dataset, count: int) -> list[list[np.ndarray]]:
    """``count`` iterations of ``dataset``, as keras.Model.fit runs its epochs."""
    return [[batch.numpy() for batch in dataset] for _ in range(count)]


def test_every_epoch_covers_every_row_once_in_batches_of_the_asked_size():
    for epoch in _epochs(index_batches(10, 4, shuffle_seed=3), 3):
        assert [len(batch) for batch in epoch] == [4, 4, 2]
        assert sorted(np.concatenate(epoch).tolist()) == list(range(10))


def test_each_epoch_draws_a_new_permutation_and_a_seed_repeats_them():
    first = [np.concatenate(e) for e in _epochs(index_batches(50, 8, shuffle_seed=0), 3)]
    again = [np.concatenate(e) for e in _epochs(index_batches(50, 8, shuffle_seed=0), 3)]
    other = [np.concatenate(e) for e in _epochs(index_batches(50, 8, shuffle_seed=1), 3)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    assert not np.array_equal(first[0], np.arange(50))
    assert not np.array_equal(first[0], other[0])


def test_without_a_seed_the_batches_keep_the_row_order():
    (epoch,) = _epochs(index_batches(5, 2), 1)
    assert [batch.tolist() for batch in epoch] == [[0, 1], [2, 3], [4]]


def test_the_cardinality_is_the_number_of_batches():
    assert int(index_batches(10, 4, shuffle_seed=0).cardinality()) == 3
    assert int(index_batches(8, 4, shuffle_seed=0).cardinality()) == 2


def test_row_batches_gather_the_rows_at_the_positions_index_batches_give():
    rows = np.arange(30, dtype=np.float32).reshape(10, 3)
    (positions,) = _epochs(index_batches(10, 4, shuffle_seed=5), 1)
    (batches,) = _epochs(row_batches(rows, 4, shuffle_seed=5), 1)
    for where, batch in zip(positions, batches, strict=True):
        np.testing.assert_array_equal(batch, rows[where])
