"""Denoising corruptions: Keras layers that corrupt the encoder's input during training.

A denoising VAE (Im et al., 2017) trains the encoder on a corrupted x~ ~ c(x~|x) while
the likelihood scores the clean x, so training maximises E_c[ELBO(x; q(z|x~))]. Each
layer here is the identity unless called with ``training=True`` (like
``keras.layers.GaussianNoise``), owns its ``SeedGenerator``, and is registered for
saving. Scoring never corrupts.

Adding a corruption is one layer plus one entry in ``CORRUPTIONS``.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

_PACKAGE = "vae_anomaly"


def _check_level(name: str, value: float, high: float = math.inf) -> float:
    value = float(value)
    if not 0.0 <= value < high or not math.isfinite(value):
        interval = f"[0, {high:g})" if math.isfinite(high) else "[0, inf)"
        raise ValueError(f"{name} must be a float in {interval}, got {value!r}.")
    return value


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GaussianCorruption(keras.layers.Layer):
    """Additive Gaussian noise, in the units the model sees (scaled units for scaled columns).

    Parameters
    ----------
    stddev : float >= 0
        Standard deviation sigma of the noise; 0 leaves x unchanged.
    seed : int
        Seed of the layer's ``SeedGenerator``.

    Notes
    -----
    With ``training=True``: x~ = x + sigma * eps, eps ~ N(0, I) of the shape of x.
    Otherwise x~ = x.

    Examples
    --------
    >>> layer = GaussianCorruption(0.1, seed=0)
    >>> x = keras.ops.ones((2, 3))
    >>> bool(keras.ops.all(layer(x) == x))  # inference: the identity
    True
    """

    def __init__(self, stddev: float, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.stddev = _check_level("stddev", stddev)
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=False):
        if training and self.stddev > 0:
            noise = keras.random.normal(
                tf.shape(inputs), stddev=self.stddev, dtype=inputs.dtype, seed=self.seed_generator
            )
            return inputs + noise
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaskCorruption(keras.layers.Layer):
    """Masking noise: each entry set to 0 with probability ``rate``, independently.

    Parameters
    ----------
    rate : float in [0, 1)
        Probability p that an entry is dropped; 0 leaves x unchanged.
    seed : int
        Seed of the layer's ``SeedGenerator``.

    Notes
    -----
    With ``training=True``: x~_j = m_j * x_j, m_j ~ Bernoulli(1 - p). Unlike dropout the
    kept entries are not rescaled by 1 / (1 - p): a dropped entry reads as 0, the value
    the encoder sees for a missing entry (``missing="mask"``). Otherwise x~ = x.

    Examples
    --------
    >>> layer = MaskCorruption(0.5, seed=0)
    >>> x = keras.ops.ones((2, 3))
    >>> bool(keras.ops.all(layer(x) == x))  # inference: the identity
    True
    """

    def __init__(self, rate: float, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_level("rate", rate, high=1.0)
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=False):
        if training and self.rate > 0:
            uniform = keras.random.uniform(
                tf.shape(inputs), dtype=inputs.dtype, seed=self.seed_generator
            )
            kept = uniform >= self.rate  # P(kept) = 1 - rate
            return tf.where(kept, inputs, tf.zeros_like(inputs))
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


CORRUPTIONS: dict[str, type[keras.layers.Layer]] = {
    "gaussian": GaussianCorruption,
    "mask": MaskCorruption,
}


def make_corruption(kind: str | None, level: float, seed: int = 0, **kwargs):
    """The corruption layer ``kind`` at ``level`` (stddev or rate); None for no corruption."""
    if kind is None:
        return None
    if kind not in CORRUPTIONS:
        raise ValueError(f"corruption must be None or one of {sorted(CORRUPTIONS)}, got {kind!r}.")
    return CORRUPTIONS[kind](level, seed=seed, **kwargs)
