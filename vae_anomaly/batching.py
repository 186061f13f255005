"""Mini-batches of row positions for training: one endless stream, a fresh permutation
per epoch, each epoch a whole number of calls into the training graph.

    epoch e:  order_e = a permutation of 0 .. n-1 drawn from seed_e,
              batch i = order_e[floor(i n / m) : floor((i + 1) n / m)],   i = 0 .. m-1

The training input gathers each batch's rows from the array (or densifies them from a
sparse matrix, ``sparse_rows``) by these positions.

- **One permutation per epoch.** The whole permutation is drawn at once (one stateless
  shuffle of n positions) and sliced, instead of passing n single rows through
  ``Dataset.shuffle``'s buffer one by one, which cost 1.0-4.3 µs per row alone on this
  project's 2-core machine (batches of 1,024 and 32; the permutation: 0.14-2.0 µs).
- **One stream for all epochs.** ``keras.Model.fit`` makes a new iterator of a finite
  dataset every epoch: 13-21 ms for the iterator and its first batch here, and an epoch
  of 20 batches of 1,024 rows took 117-174 ms that way against 79-85 ms from one stream.
  The stream goes on forever, and ``fit`` reads ``m`` batches per epoch from the one
  iterator (``steps_per_epoch``). (Figures: benchmarks/README.md, run D.)
- **Whole calls per epoch.** ``fit`` runs s optimiser steps per call into the graph
  (``steps_per_execution``) and, reading an endless stream, always all s of them, so an
  epoch of ``steps_per_epoch`` batches reads a multiple of s. ``epoch_plan`` therefore
  splits each epoch into m = c s batches (c calls) of near-equal size, at most
  ``batch_size`` rows each: ceil(n / batch_size) batches rounded up to that multiple
  (less than c more), so that each epoch reads its own permutation exactly once.

The seeds seed_0, seed_1, ... come from ``Dataset.random(shuffle_seed)``: the same
sequence for the same ``shuffle_seed``, so training is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class EpochPlan:
    """How one epoch over n rows is read: ``batches`` batches per epoch (m, near-equal
    sizes of at most the batch size), run ``steps_per_call`` at a time (s, which
    divides m)."""

    n: int
    batches: int
    steps_per_call: int


def epoch_plan(n: int, batch_size: int, max_steps_per_call: int) -> EpochPlan:
    """m = c s batches per epoch for n rows: c = ceil(steps / max_steps_per_call) calls
    of s = ceil(steps / c) steps, steps = ceil(n / batch_size); one step per call where
    that would ask for more batches than rows."""
    if n < 1 or batch_size < 1 or max_steps_per_call < 1:
        raise ValueError(f"epoch_plan needs positive sizes, got {n}, {batch_size}, "
                         f"{max_steps_per_call}.")  # fmt: skip
    steps = math.ceil(n / batch_size)
    calls = math.ceil(steps / max_steps_per_call)
    per_call = math.ceil(steps / calls)
    if calls * per_call > n:
        return EpochPlan(n, steps, 1)
    return EpochPlan(n, calls * per_call, per_call)


def index_batches(plan: EpochPlan, shuffle_seed: int) -> tf.data.Dataset:
    """The endless stream of batches of row positions, int64 [b]: ``plan.batches`` per
    epoch, covering 0 .. n-1 once per epoch, in a fresh permutation every epoch."""
    n, m = plan.n, plan.batches
    bounds = np.array([i * n // m for i in range(m + 1)])
    sizes = np.diff(bounds)  # floor(n / m) or ceil(n / m)
    # Entry [i, j] of an epoch's batches is order[bounds[i] + j], for j < sizes[i] (the
    # rest of a shorter row repeats its last entry and is cut off).
    where = np.minimum(bounds[:-1, None] + np.arange(sizes.max())[None], bounds[1:, None] - 1)
    positions = tf.range(n, dtype=tf.int64)

    def epoch(seed: tf.Tensor):
        order = tf.random.experimental.stateless_shuffle(positions, seed=tf.stack([seed, 0]))
        return tf.gather(order, where), sizes  # [m, max size], [m]

    epochs = tf.data.Dataset.random(seed=shuffle_seed).map(epoch)
    return epochs.unbatch().map(lambda batch, size: batch[:size])


def one_epoch_index_batches(
    n: int, batch_size: int, shuffle_seed: int | None = None
) -> tf.data.Dataset:
    """Batches of row positions, int64 [b], covering 0 .. n-1 once per iteration of the
    dataset: in order, or reshuffled on every iteration (through ``Dataset.shuffle``)
    when ``shuffle_seed`` is given. For validation rows, and for training under a
    strategy with several replicas, whose batches must split evenly across them (batches
    of ``batch_size``, the last one shorter) and whose steps run one per call."""
    positions = tf.data.Dataset.range(n)
    if shuffle_seed is not None:
        positions = positions.shuffle(n, seed=shuffle_seed, reshuffle_each_iteration=True)
    return positions.batch(batch_size)


def gathered_rows(rows, positions: tf.data.Dataset) -> tf.data.Dataset:
    """Batches of rows [b, d] of the array ``rows`` [n, d] at each batch of ``positions``."""
    table = tf.convert_to_tensor(rows)
    return positions.map(lambda where: tf.gather(table, where))
