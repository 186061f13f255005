"""Training a VAE: the Keras fit loop, its callbacks, and the check that it stayed finite.

``train`` runs ``VAE.fit`` on scaled rows U [n, d] (float32, or sparse rows scaled one
batch at a time: ``sparse_rows.ScaledRows``) with Adam, mini-batches
reshuffled every epoch, optional KL warm-up, the latent's own callbacks (the temperature
schedule of a categorical latent), and early stopping on the validation rows' loss
(the mean negative training objective) with the best weights restored. It knows
nothing of the estimator: ``VAEAnomalyDetector.fit`` calls it with its parameters.

Distribution is TensorFlow's own: a model created inside a ``tf.distribute`` strategy's
scope (``VAEAnomalyDetector.fit`` called inside ``strategy.scope()``, or the CLI's
``--strategy``) is compiled and trained under that strategy, which Keras's fit loop
runs: each batch of ``batch_size`` rows is the global batch, split evenly over the
``replicas(model)`` replicas, and the replicas' gradients are summed into one update of
the mirrored weights (``VAE.train_step`` divides each replica's loss by their number).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from .batching import (
    EpochPlan,
    epoch_plan,
    gathered_rows,
    index_batches,
    one_epoch_index_batches,
)
from .errors import TrainingDivergedError
from .model import VAE, EpochTimer, KLWarmup, StopOnNonFiniteLoss
from .precision import loss_scaled
from .sparse_rows import ScaledRows
from .streaming import StreamedRows
from .validation import column_label

# Training steps aimed at when epochs=None; early stopping usually ends sooner.
AUTO_EPOCH_STEPS = 3000
AUTO_EPOCH_RANGE = (10, 300)
# Several optimiser steps per call into the graph: halves the per-step overhead that
# dominates small tabular models (benchmarks/speed.py).
STEPS_PER_EXECUTION = 32
VALIDATION_BATCH = 1024
# XLA compilation of the training step: None compiles it where TensorFlow sees a GPU
# only. On this project's CPU it won in some configurations and lost in others, in one
# run on a shared machine (benchmarks/README.md, "XLA on CPU"); the
# benchmark sets it to True to measure it again.
JIT_COMPILE: bool | None = None


def jit_compile() -> bool:
    """Whether ``train`` compiles the training step with XLA (JIT_COMPILE; None: on GPU)."""
    if JIT_COMPILE is not None:
        return bool(JIT_COMPILE)
    return bool(tf.config.list_physical_devices("GPU"))


def default_epochs(steps_per_epoch: int) -> int:
    """Epochs giving about AUTO_EPOCH_STEPS optimiser steps, within AUTO_EPOCH_RANGE."""
    low, high = AUTO_EPOCH_RANGE
    return int(np.clip(math.ceil(AUTO_EPOCH_STEPS / steps_per_epoch), low, high))


@dataclass(frozen=True)
class TrainingSettings:
    """What the fit loop needs besides the model and the rows."""

    epochs: int | None  # None: default_epochs
    batch_size: int
    learning_rate: float
    n_iter_no_change: int
    kl_warmup_epochs: int
    beta: float
    shuffle_seed: int
    verbose: int = 0


def steps_per_execution(steps_per_epoch: int, n_replicas: int) -> int:
    """Optimiser steps per call into the graph: STEPS_PER_EXECUTION, at most an epoch's;
    1 with several replicas, where Keras 3's multi-step loop fails inside
    ``strategy.run`` ("You must feed a value for placeholder tensor 'while/cond/...'",
    keras-team/keras#19246, still open with Keras 3.15 and TensorFlow 2.21)."""
    if n_replicas > 1:
        return 1
    return min(STEPS_PER_EXECUTION, steps_per_epoch)


def even_batch(rows: int, n_replicas: int) -> int:
    """``rows`` rounded down to a multiple of ``n_replicas`` (at least ``n_replicas``).

    Under a strategy, Keras 3.15 builds the model from the first batch of each dataset
    averaged across the replicas (``Trainer._maybe_symbolic_build``: strategy.reduce(
    "MEAN", batch, axis=None)), which fails unless that batch splits evenly ("Inputs to
    operation AddN ... must have the same size and shape"). Batches of this size do, and
    so does the first batch of any epoch; the last may still be uneven, which training
    takes."""
    return max(n_replicas, rows // n_replicas * n_replicas)


def replicas(model: VAE) -> int:
    """Replicas that train ``model`` in sync: those of the strategy it was created under
    (1 without one); across all workers for a multi-worker strategy."""
    return int(model.distribute_strategy.num_replicas_in_sync)


def train(
    model: VAE,
    train_rows: np.ndarray,
    validation_rows: np.ndarray,
    settings: TrainingSettings,
    feature_names=None,
) -> dict[str, list[float]]:
    """Fit ``model`` on ``train_rows``; returns the history {metric: [float per epoch]}.

    Raises ``TrainingDivergedError`` when a loss or a weight is not finite (the message
    names the epoch and the most extreme columns of ``train_rows``, by
    ``feature_names`` where given)."""
    n_replicas = replicas(model)
    batch_size = even_batch(min(settings.batch_size, len(train_rows)), n_replicas)
    steps_per_epoch = math.ceil(len(train_rows) / batch_size)
    epochs = settings.epochs or default_epochs(steps_per_epoch)
    plan = None  # rows on disk, or several replicas: one finite dataset per epoch
    if n_replicas == 1 and not isinstance(train_rows, StreamedRows):
        plan = epoch_plan(len(train_rows), batch_size, STEPS_PER_EXECUTION)
    with model.distribute_strategy.scope():  # the optimiser's variables are mirrored too
        model.compile(
            optimizer=loss_scaled(
                keras.optimizers.Adam(learning_rate=settings.learning_rate), model.body_dtype
            ),
            jit_compile=jit_compile(),
            steps_per_execution=(
                plan.steps_per_call if plan else steps_per_execution(steps_per_epoch, n_replicas)
            ),
        )
    train_data = _training_batches(train_rows, batch_size, settings.shuffle_seed, plan, n_replicas)
    train_data = train_data.prefetch(tf.data.AUTOTUNE)
    stop_on_nan = StopOnNonFiniteLoss()  # TerminateOnNaN would print to stdout
    callbacks = [stop_on_nan, EpochTimer(), *model.latent.training_callbacks()]
    if settings.kl_warmup_epochs:
        callbacks.append(KLWarmup(settings.beta, settings.kl_warmup_epochs))
    validation_data = None
    if len(validation_rows) >= n_replicas:
        validation_batch = min(max(batch_size, VALIDATION_BATCH), len(validation_rows))
        validation_batch = even_batch(validation_batch, n_replicas)
        validation_data = _batches(
            validation_rows, one_epoch_index_batches(len(validation_rows), validation_batch)
        )
        validation_data = _at_least_one_row_per_replica(validation_data, n_replicas)
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=settings.n_iter_no_change,
                restore_best_weights=True,
                start_from_epoch=settings.kl_warmup_epochs,
            )
        )
    fitted = model.fit(
        train_data,
        epochs=epochs,
        steps_per_epoch=plan.batches if plan else None,  # the stream is endless
        validation_data=validation_data,
        callbacks=callbacks,
        shuffle=False,
        verbose=min(int(settings.verbose), 2),
    )
    history = {name: [float(v) for v in values] for name, values in fitted.history.items()}
    check_training_finite(
        model,
        history,
        settings.learning_rate,
        stop_on_nan,
        lambda: most_extreme_columns(train_rows, feature_names),
    )
    return history


def _training_batches(
    rows, batch_size: int, shuffle_seed: int, plan: EpochPlan | None, n_replicas: int
) -> tf.data.Dataset:
    """The training input: with a ``plan``, the endless stream of ``batching.index_batches``
    (``plan.batches`` batches an epoch, reshuffled every epoch); without one, one epoch
    per iteration: rows on disk shuffled in a buffer (``streaming.StreamedRows``), or
    batches of ``batch_size`` reshuffled every epoch for several replicas."""
    if isinstance(rows, StreamedRows):  # rows on disk, read every epoch
        return _at_least_one_row_per_replica(rows.batches(batch_size, shuffle_seed), n_replicas)
    if plan is not None:
        return _batches(rows, index_batches(plan, shuffle_seed))
    positions = one_epoch_index_batches(len(rows), batch_size, shuffle_seed)
    return _at_least_one_row_per_replica(_batches(rows, positions), n_replicas)


def _batches(rows, positions: tf.data.Dataset) -> tf.data.Dataset:
    """Batches of rows [b, d] at each batch of ``positions``: gathered from an array, or
    sparse rows made dense one batch at a time (``ScaledRows``)."""
    if isinstance(rows, ScaledRows):
        return rows.batches(positions)
    return gathered_rows(rows, positions)


def _at_least_one_row_per_replica(data: tf.data.Dataset, n_replicas: int) -> tf.data.Dataset:
    """With several replicas, a last batch of fewer rows than replicas is left out (at most
    n_replicas - 1 rows an epoch): it would leave a replica without rows, whose trimmed
    mean has nothing to average."""
    if n_replicas > 1:
        return data.filter(lambda batch: tf.shape(batch)[0] >= n_replicas)
    return data


def most_extreme_columns(U: np.ndarray, feature_names=None, count: int = 3) -> str:
    """'column 'a' (index 0) (|u| up to 1e+30), ...': the columns of scaled rows U [n, d]
    with the largest magnitudes, most extreme first."""
    if isinstance(U, StreamedRows):  # rows on disk: those of its sample
        U = U.sample
    if isinstance(U, ScaledRows):
        extremes = U.column_extremes() if len(U) else None
    elif U.size:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            extremes = np.nanmax(np.abs(U.astype(np.float64)), axis=0)
        extremes = np.where(np.isnan(extremes), -1.0, extremes)
    else:
        extremes = None
    if extremes is None:
        return ""
    order = np.argsort(-extremes, kind="stable")[:count]
    return ", ".join(
        f"{column_label(int(j), feature_names)} (|u| up to {extremes[j]:.3g})" for j in order
    )


def check_training_finite(
    model: VAE, history: dict, learning_rate: float, stopped, extreme_columns=lambda: ""
) -> None:
    """TrainingDivergedError when a training loss or a weight is not finite; the message
    names where it happened and the columns with the most extreme scaled values
    (``extreme_columns()``, only computed then)."""
    losses = np.asarray(history["loss"], dtype=np.float64)
    weights_finite = all(np.all(np.isfinite(w)) for w in model.get_weights())
    if stopped.epoch is None and np.all(np.isfinite(losses)) and weights_finite:
        return
    if stopped.epoch is not None:
        where = f"the loss became {stopped.loss!r} in epoch {stopped.epoch + 1}"
    elif not np.all(np.isfinite(losses)):
        bad_epoch = int(np.flatnonzero(~np.isfinite(losses))[0])
        where = f"the loss became {losses[bad_epoch]!r} in epoch {bad_epoch + 1}"
    else:
        where = f"a weight became NaN or infinite by epoch {len(losses)}"
    columns = extreme_columns()
    extremes = f" The most extreme scaled values are in {columns}." if columns else ""
    raise TrainingDivergedError(
        f"Training diverged: {where} and the model would score NaN.{extremes} Lower "
        f"learning_rate (now {learning_rate!r}), keep scaling on, or check those columns "
        "for extreme values."
    )
