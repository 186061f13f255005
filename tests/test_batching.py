"""Training batches of row positions (``batching``): every row once per epoch, a fresh
permutation every epoch, the same permutations for the same seed, and epochs that are a
whole number of calls into the training graph."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from vae_anomaly import VAEAnomalyDetector
from vae_anomaly.batching import (
    epoch_plan,
    gathered_rows,
    index_batches,
    one_epoch_index_batches,
)


def _stream_epochs(n, batch_size, per_call, seed, count):
    """``count`` epochs of the endless stream, each a list of its batches."""
    plan = epoch_plan(n, batch_size, per_call)
    batches = iter(index_batches(plan, seed))
    return [[next(batches).numpy() for _ in range(plan.batches)] for _ in range(count)]


@pytest.mark.parametrize(
    "n, batch_size, per_call", [(10, 4, 32), (1000, 8, 32), (997, 10, 7), (33, 1, 32)]
)
def test_an_epoch_is_whole_calls_of_at_most_batch_size_rows(n, batch_size, per_call):
    plan = epoch_plan(n, batch_size, per_call)
    steps = math.ceil(n / batch_size)
    assert plan.batches % plan.steps_per_call == 0 and plan.steps_per_call <= per_call
    calls = plan.batches // plan.steps_per_call
    assert steps <= plan.batches < steps + max(calls, 1) and plan.batches <= n
    (epoch,) = _stream_epochs(n, batch_size, per_call, 0, 1)
    sizes = [len(batch) for batch in epoch]
    assert max(sizes) <= batch_size and max(sizes) - min(sizes) <= 1


def test_every_epoch_of_the_stream_covers_every_row_once():
    for epoch in _stream_epochs(1000, 8, 32, 3, 3):
        assert sorted(np.concatenate(epoch).tolist()) == list(range(1000))


def test_each_epoch_draws_a_new_permutation_and_a_seed_repeats_them():
    first = [np.concatenate(e) for e in _stream_epochs(50, 8, 32, 0, 3)]
    again = [np.concatenate(e) for e in _stream_epochs(50, 8, 32, 0, 3)]
    other = [np.concatenate(e) for e in _stream_epochs(50, 8, 32, 1, 3)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    assert not np.array_equal(first[0], np.arange(50))
    assert not np.array_equal(first[0], other[0])


def test_one_epoch_batches_keep_the_order_or_reshuffle_on_every_iteration():
    assert [b.numpy().tolist() for b in one_epoch_index_batches(5, 2)] == [[0, 1], [2, 3], [4]]
    shuffled = one_epoch_index_batches(20, 8, shuffle_seed=0)
    first, second = ([b.numpy() for b in shuffled] for _ in range(2))
    assert [len(b) for b in first] == [8, 8, 4]
    assert sorted(np.concatenate(first).tolist()) == list(range(20))
    assert not np.array_equal(np.concatenate(first), np.concatenate(second))


def test_gathered_rows_are_the_rows_at_the_positions():
    rows = np.arange(30, dtype=np.float32).reshape(10, 3)
    where = np.array([[3, 1, 4], [9, 0, 5]])
    positions = tf.data.Dataset.from_tensor_slices(where)
    for at, batch in zip(where, gathered_rows(rows, positions), strict=True):
        np.testing.assert_array_equal(batch.numpy(), rows[at])


@pytest.mark.parametrize("n, batch_size", [(100, 8), (264, 8)])
def test_a_fit_takes_exactly_the_planned_steps_every_epoch(n, batch_size):
    # 13 batches an epoch in one call; 33 batches rounded up to 2 calls of 17 = 34. The
    # compiled loop, where Keras runs whole calls of steps_per_execution steps.
    X = np.random.default_rng(0).normal(size=(n, 3))
    detector = VAEAnomalyDetector(
        epochs=3,
        batch_size=batch_size,
        validation_fraction=0.0,
        screen_outliers=False,
        random_state=0,
    ).fit(X)
    plan = epoch_plan(n, batch_size, 32)  # every row trains (no validation, no calibration,
    # no screening)
    assert int(detector.model_.optimizer.iterations) == 3 * plan.batches
    assert len(detector.history_["loss"]) == 3
