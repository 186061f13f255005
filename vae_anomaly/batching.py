"""Mini-batches of row positions for training, reshuffled every epoch.

    epoch e:  order_e = a permutation of 0 .. n-1 drawn from seed_e,
              batches  order_e[0:b], order_e[b:2b], ...,  order_e[(s-1)b:n],  s = ceil(n / b)

The training input gathers each batch's rows from the array (or densifies them from a
sparse matrix, ``sparse_rows``) by these positions. Every epoch draws its whole
permutation at once (one stateless shuffle of n positions) and slices it, instead of
passing n single rows through ``Dataset.shuffle``'s buffer one by one: per-row work in
``tf.data`` cost about 2.5 µs per row on this project's 2-core machine, a third of a
training step at batch 1024, d = 10 (benchmarks/README.md, "The input pipeline").

The seeds seed_0, seed_1, ... come from ``Dataset.random(shuffle_seed)``, which draws a
new value on every iteration of the dataset (every epoch of ``keras.Model.fit``), the
same sequence for the same ``shuffle_seed``: training is reproducible, and every worker
of a multi-worker strategy draws the same permutations (Keras shards the batches).
"""

from __future__ import annotations

import math

import tensorflow as tf


def index_batches(n: int, batch_size: int, shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batches of row positions, int64 [b], covering 0 .. n-1 once per iteration: in order,
    or in a fresh permutation every iteration when ``shuffle_seed`` is given.

    The dataset's cardinality is known: ceil(n / batch_size) batches, the last one
    holding the remaining n mod batch_size positions when that is not 0.
    """
    steps = math.ceil(n / batch_size)
    if shuffle_seed is None:
        return tf.data.Dataset.range(n).batch(batch_size)
    positions = tf.range(n, dtype=tf.int64)

    def epoch(seed: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(positions, seed=tf.stack([seed, 0]))
        return tf.data.Dataset.range(steps).map(
            lambda step: order[step * batch_size : tf.minimum((step + 1) * batch_size, n)]
        )

    seeds = tf.data.Dataset.random(seed=shuffle_seed, rerandomize_each_iteration=True)
    return seeds.take(1).flat_map(epoch).apply(tf.data.experimental.assert_cardinality(steps))


def row_batches(rows, batch_size: int, shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batches of rows [b, d] of the array ``rows`` [n, d], in ``index_batches`` order."""
    if shuffle_seed is None:
        return tf.data.Dataset.from_tensor_slices(rows).batch(batch_size)
    table = tf.convert_to_tensor(rows)
    return index_batches(len(rows), batch_size, shuffle_seed).map(
        lambda positions: tf.gather(table, positions)
    )
