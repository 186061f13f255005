"""Likelihoods of the VAE: Keras 3 layers produce parameters, TFP builds the densities.

    likelihood  p(x|z) = prod_j p(x_j | params_j(z)),     one ``LikelihoodHead`` per family

The posterior q(z|x) and the prior p(z) belong to the latent components (``latents``).

Every likelihood returns a distribution whose batch shape ends in the feature axis
(no ``tfd.Independent`` over features), so per-feature terms log p(x_j|z) stay visible;
the model sums them. Adding a family is one ``LikelihoodHead`` subclass plus one entry
in ``LIKELIHOODS``. ``MixedHead`` models mixed-type rows (see ``layout``): Gaussian
numeric columns, Bernoulli boolean columns and a Categorical per one-hot group.
"""

from __future__ import annotations

import math
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .layout import normalize_layout, output_spans

tfd = tfp.distributions

_PACKAGE = "vae_anomaly"
# softplus^{-1}(1): a raw value that starts a softplus scale at 1.
_INVERSE_SOFTPLUS_ONE = math.log(math.expm1(1.0))


def _positive_scale(raw: tf.Tensor, floor: float) -> tf.Tensor:
    """scale = softplus(raw) + floor: smooth, positive, never below ``floor``."""
    return tf.math.softplus(raw) + floor


def _check_floor(name: str, value):
    """A positive finite float, or a list of them (one floor per column)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        floors = [_check_floor(f"each of {name}", v) for v in value]
        if not floors:
            raise ValueError(f"{name} must hold at least one floor, got {value!r}.")
        return floors
    value = float(value)
    if not value > 0.0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite float, got {value!r}.")
    return value


# resolution_floors: never below this (scaled units), whatever the column's resolution.
MIN_RESOLUTION_FLOOR = 1e-3


def resolution_floors(U: np.ndarray, minimum: float = MIN_RESOLUTION_FLOOR) -> np.ndarray:
    """A floor on the likelihood scale of each column of U [n, d], from its resolution.

    Notes
    -----
    With g_j the smallest gap between two distinct values of column j (NaN ignored; 1
    when the column holds fewer than two), the floor is max(minimum, g_j / sqrt(12)):
    the standard deviation of uniform dequantisation noise over one gap. A column
    recorded to a resolution g cannot be known more finely than that, so a Gaussian
    narrower than it would be a density spiking on the recorded values: integer counts,
    flags and repeated values get a floor of their step, while finely measured columns
    keep a scale free to follow thin structure.
    """
    floors = np.empty(U.shape[1])
    for j in range(U.shape[1]):
        values = np.unique(U[:, j][np.isfinite(U[:, j])])
        gap = np.min(np.diff(values)) if len(values) > 1 else 1.0
        floors[j] = max(minimum, gap / math.sqrt(12.0))
    return floors


def _floor_tensor(floor, dtype):
    """A float floor as it is; a list of per-column floors as a constant [d]."""
    return floor if isinstance(floor, float) else tf.constant(floor, dtype=dtype)


def _dense(units: int, seed: int, name: str) -> keras.layers.Dense:
    return keras.layers.Dense(
        units, kernel_initializer=keras.initializers.GlorotUniform(seed=seed), name=name
    )


# ----------------------------------------------------------------------------- likelihoods


class LikelihoodHead(keras.layers.Layer):
    """Base of the decoder heads: features -> parameters of p(x|z) -> distribution.

    Subclasses set ``family`` (the name users pass as ``likelihood=``) and ``support``
    (``"real"`` or ``"unit_interval"``), create their layers in ``__init__``, and
    implement ``call`` (returns a tuple of parameter tensors, each [..., d]) and
    ``distribution`` (builds a TFP distribution with batch shape [..., d]).
    ``log_likelihood`` gives log p(x_j|z) per output j ([..., n_outputs]); an output is
    one feature, except in ``MixedHead`` where a one-hot group is one output.
    """

    family: ClassVar[str]
    support: ClassVar[str] = "real"
    # Whether the head models its columns in affinely scaled units u = (x - center) /
    # scale, so that log p(x) = log p(u) - sum_j log scale_j (the log-Jacobian) applies.
    scaled: ClassVar[bool] = False
    # Parameter tensors of shape [..., d] that ``call`` returns (loc and scale: 2).
    n_parameters: ClassVar[int] = 2

    @classmethod
    def options(cls, params: dict, layout) -> dict:
        """The head's keyword options, from the estimator's parameters ``params`` and the
        column ``layout`` (none by default)."""
        return {}

    def __init__(self, n_features: int, seed: int = 0, pixel_channels=None, **kwargs):
        super().__init__(**kwargs)
        if int(n_features) < 1:
            raise ValueError(f"n_features must be >= 1, got {n_features!r}.")
        self.n_features = int(n_features)
        self.seed = int(seed)
        self.pixel_channels = None if pixel_channels is None else int(pixel_channels)
        if self.pixel_channels is not None and self.n_features % self.pixel_channels:
            raise ValueError(
                f"n_features={n_features} is not a whole number of "
                f"pixels of {pixel_channels} channels."
            )

    @property
    def n_outputs(self) -> int:
        return self.n_features

    def _parameter_layer(self, seed: int, name: str) -> keras.layers.Dense:
        """One parameter per feature: a dense map from the decoder's features, or, for
        images (``pixel_channels`` = C), the same small map at every pixel (a 1 x 1
        convolution) from that pixel's features [..., H * W, F] to its C channels."""
        return _dense(self.pixel_channels or self.n_features, seed, name)

    def _parameters(self, layer: keras.layers.Dense, features) -> tf.Tensor:
        """The layer's output as [..., n_features] (pixels flattened in image order)."""
        values = layer(features)
        if self.pixel_channels is None:
            return values
        return tf.reshape(values, tf.concat([tf.shape(values)[:-2], [self.n_features]], 0))

    def distribution(self, params: tuple[tf.Tensor, ...]) -> tfd.Distribution:
        raise NotImplementedError

    def log_likelihood(self, params, x) -> tf.Tensor:
        """log p(x_j|z) per output, [..., n_outputs]."""
        return self.distribution(params).log_prob(x)

    def observed_outputs(self, observed: tf.Tensor) -> tf.Tensor:
        """Per-output presence [..., n_outputs] from per-column presence [..., d] (bool)."""
        return observed

    def activation_elements(self) -> int:
        """Values it outputs per z: its parameter tensors, each [d]."""
        return self.n_parameters * self.n_features

    def get_config(self):
        config = super().get_config()
        config.update(
            n_features=self.n_features, seed=self.seed, pixel_channels=self.pixel_channels
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GaussianHead(LikelihoodHead):
    """p(x_j|z) = N(x_j; loc_j(z), scale_j^2), scale = softplus(raw) + min_scale.

    Parameters
    ----------
    scale_mode : {"feature", "sample"}
        ``"feature"``: one learned scale per feature, shared by all rows.
        ``"sample"``: the decoder outputs a scale per feature and row (heteroscedastic).
    min_scale : float or list of float
        Floor on the scale, so the density cannot collapse onto the training points: one
        for every feature, or one per feature (``resolution_floors``).
    """

    family = "gaussian"
    support = "real"
    scaled = True
    SCALE_MODES = ("feature", "sample")
    INITIAL_RAW_SCALE = _INVERSE_SOFTPLUS_ONE  # scale 1 at the start, in scaled units

    @classmethod
    def options(cls, params: dict, layout) -> dict:
        return {"scale_mode": params["likelihood_scale"], "min_scale": _floor_option(params)}

    def __init__(self, n_features, scale_mode="feature", min_scale=1e-2, seed=0, **kwargs):
        super().__init__(n_features, seed=seed, **kwargs)
        if scale_mode not in self.SCALE_MODES:
            raise ValueError(f"scale_mode must be one of {self.SCALE_MODES}, got {scale_mode!r}.")
        self.scale_mode = scale_mode
        self.min_scale = _check_floor("min_scale", min_scale)
        if isinstance(self.min_scale, list) and len(self.min_scale) != self.n_features:
            raise ValueError(
                f"min_scale holds {len(self.min_scale)} floors for {self.n_features} features."
            )
        self.loc_layer = self._parameter_layer(self.seed, "loc")
        if scale_mode == "sample":
            self.raw_scale_layer = self._parameter_layer(self.seed + 1, "raw_scale")
        else:
            self.raw_scale = self.add_weight(
                shape=(self.n_features,),
                initializer=keras.initializers.Constant(self.INITIAL_RAW_SCALE),
                name="raw_scale",
            )

    def build(self, input_shape):
        self.loc_layer.build(input_shape)
        if self.scale_mode == "sample":
            self.raw_scale_layer.build(input_shape)

    def call(self, features):
        loc = self._parameters(self.loc_layer, features)  # [..., d]
        if self.scale_mode == "sample":
            raw_scale = self._parameters(self.raw_scale_layer, features)
        else:
            raw_scale = tf.broadcast_to(tf.convert_to_tensor(self.raw_scale), tf.shape(loc))
        return loc, _positive_scale(raw_scale, _floor_tensor(self.min_scale, loc.dtype))

    def distribution(self, params):
        loc, scale = params
        return tfd.Normal(loc=loc, scale=scale)

    def get_config(self):
        config = super().get_config()
        config.update(scale_mode=self.scale_mode, min_scale=self.min_scale)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DiscretizedLogisticHead(GaussianHead):
    """8-bit intensities: x_j in [0, 1] on the grid k / 255, with the probability of its level

        P(x_j|z) = F((x_j + 1/510 - loc_j) / scale_j) - F((x_j - 1/510 - loc_j) / scale_j),

    F the logistic CDF, and the tails beyond 0 and 1 given to the end levels (Salimans et
    al., 2017): a proper distribution over the 256 levels, so log p(x) <= 0, and a
    saturated pixel (0 or 255) can have probability near 1 instead of a bounded density.
    Scales as in ``GaussianHead`` (per pixel, or per pixel and image), in units of [0, 1].
    """

    family = "discretized_logistic"
    support = "unit_interval"
    scaled = False  # pixels in [0, 1], as they are
    LEVELS = 255.0
    # Scale 0.05 (13 levels) at the start: at scale 1 every level is about equally likely
    # and the gradient towards the right level is too flat to learn from.
    INITIAL_RAW_SCALE = math.log(math.expm1(0.05))

    @classmethod
    def options(cls, params: dict, layout) -> dict:
        return {"scale_mode": params["likelihood_scale"]}

    def __init__(self, n_features, scale_mode="feature", min_scale=1e-3, seed=0, **kwargs):
        super().__init__(
            n_features, scale_mode=scale_mode, min_scale=min_scale, seed=seed, **kwargs
        )

    def distribution(self, params):
        loc, scale = params
        # QuantizedDistribution gives level k the mass of Y in (k - 1, k]. With
        # Y = 255 x - 1/2, level k owns 255 x in (k - 1/2, k + 1/2]: its own bin.
        levels = tfd.Logistic(loc=loc * self.LEVELS - 0.5, scale=scale * self.LEVELS)
        return tfd.QuantizedDistribution(levels, low=0.0, high=self.LEVELS)

    def log_likelihood(self, params, x):
        return self.distribution(params).log_prob(tf.round(x * self.LEVELS))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BernoulliHead(LikelihoodHead):
    """p(x_j|z) = p_j^x_j (1 - p_j)^(1 - x_j), p_j = sigmoid(logits_j(z)).

    For binary data, and the usual cross-entropy reading of data in [0, 1].
    """

    family = "bernoulli"
    support = "unit_interval"
    n_parameters = 1

    def __init__(self, n_features, seed=0, **kwargs):
        super().__init__(n_features, seed=seed, **kwargs)
        self.logits_layer = self._parameter_layer(self.seed, "logits")

    def build(self, input_shape):
        self.logits_layer.build(input_shape)

    def call(self, features):
        return (self._parameters(self.logits_layer, features),)

    def distribution(self, params):
        (logits,) = params
        return tfd.Bernoulli(logits=logits, dtype=logits.dtype)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ContinuousBernoulliHead(BernoulliHead):
    """p(x_j|z) = C(p_j) p_j^x_j (1 - p_j)^(1 - x_j) on x_j in [0, 1], p_j = sigmoid(logits_j(z)),

    with C(p) = 2 artanh(1 - 2p) / (1 - 2p) the normaliser that makes the Bernoulli's
    cross-entropy a proper density on [0, 1] (Loaiza-Ganem & Cunningham, 2019): for
    grey levels, where the Bernoulli is not a density of x.
    """

    family = "continuous_bernoulli"
    support = "unit_interval"

    def distribution(self, params):
        (logits,) = params
        return tfd.ContinuousBernoulli(logits=logits)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MixedHead(LikelihoodHead):
    """Mixed-type rows: p(x|z) = prod over the layout's blocks (``layout.py``) of

        N(x_j; loc_j(z), scale_j^2)              gaussian columns (scale per column, floored)
        Bernoulli(x_j; sigmoid(logit_j(z)))      bernoulli columns
        OneHotCategorical(x_g; softmax(logits_g(z)))   one categorical column per group g

    One dense layer gives every location and logit; one output per original column.
    """

    family = "mixed"
    support = "real"
    # Per block family of the layout: whether its columns are affinely scaled.
    BLOCK_SCALED: ClassVar[dict[str, bool]] = {
        "gaussian": True,
        "bernoulli": False,
        "categorical": False,
    }

    @classmethod
    def options(cls, params: dict, layout) -> dict:
        return {
            "blocks": [list(block) for block in layout],
            "min_scale": _floor_option(params),
        }

    def __init__(self, n_features, blocks=(), min_scale=1e-2, seed=0, **kwargs):
        super().__init__(n_features, seed=seed, **kwargs)
        self.blocks = normalize_layout(blocks)
        if sum(width for _, width in self.blocks) != self.n_features:
            raise ValueError(
                f"The layout covers {sum(w for _, w in self.blocks)} columns, not {n_features}."
            )
        self.min_scale = _check_floor("min_scale", min_scale)
        self.spans = output_spans(self.blocks)
        self.n_gaussian = sum(width for family, width in self.blocks if family == "gaussian")
        if isinstance(self.min_scale, list) and len(self.min_scale) != self.n_gaussian:
            raise ValueError(
                f"min_scale holds {len(self.min_scale)} floors for {self.n_gaussian} "
                "gaussian columns."
            )
        self.raw_layer = _dense(self.n_features, self.seed, "locs_and_logits")
        self.raw_scale = self.add_weight(
            shape=(max(self.n_gaussian, 1),),
            initializer=keras.initializers.Constant(_INVERSE_SOFTPLUS_ONE),
            name="raw_scale",
        )

    @property
    def n_outputs(self) -> int:
        return len(self.spans)

    def build(self, input_shape):
        self.raw_layer.build(input_shape)

    def call(self, features):
        floor = _floor_tensor(self.min_scale, self.raw_scale.dtype)
        return self.raw_layer(features), _positive_scale(self.raw_scale, floor)

    def log_likelihood(self, params, x):
        raw, scale = params
        terms, column, gaussian = [], 0, 0
        for family, width in self.blocks:
            values = x[..., column : column + width]
            block = raw[..., column : column + width]
            if family == "gaussian":
                block_scale = scale[gaussian : gaussian + width]
                terms.append(tfd.Normal(loc=block, scale=block_scale).log_prob(values))
                gaussian += width
            elif family == "bernoulli":
                terms.append(tfd.Bernoulli(logits=block, dtype=block.dtype).log_prob(values))
            else:
                group = tfd.OneHotCategorical(logits=block, dtype=block.dtype)
                terms.append(group.log_prob(values)[..., tf.newaxis])
            column += width
        return tf.concat(terms, axis=-1)

    def observed_outputs(self, observed):
        return tf.stack(
            [tf.reduce_all(observed[..., start:stop], axis=-1) for _, start, stop in self.spans],
            axis=-1,
        )

    def get_config(self):
        config = super().get_config()
        config.update(blocks=[list(block) for block in self.blocks], min_scale=self.min_scale)
        return config


LIKELIHOODS: dict[str, type[LikelihoodHead]] = {
    head.family: head
    for head in (
        GaussianHead,
        DiscretizedLogisticHead,
        BernoulliHead,
        ContinuousBernoulliHead,
        MixedHead,
    )
}


def _floor_option(params: dict):
    """``min_scale`` as a head takes it: a float, or "auto" for the estimator to resolve
    into per-column floors from the data (``resolution_floors``)."""
    floor = params["min_scale"]
    return floor if isinstance(floor, str) else float(floor)


def is_scaled(family: str) -> bool:
    """Whether columns of ``family`` (a head's name, or a block family of a mixed layout)
    are modelled in affinely scaled units, so the log-Jacobian of the scaling applies."""
    if family in LIKELIHOODS:
        return LIKELIHOODS[family].scaled
    return MixedHead.BLOCK_SCALED[family]


def scaled_columns(layout) -> np.ndarray:
    """Boolean mask [width] of the encoded columns modelled in scaled units."""
    return np.concatenate([np.full(width, is_scaled(family)) for family, width in layout])


def likelihood_head(family: str, n_features: int, seed: int = 0, **options) -> LikelihoodHead:
    """Build the head of ``family`` (a key of ``LIKELIHOODS``) with its options."""
    if family not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {sorted(LIKELIHOODS)}, got {family!r}.")
    return LIKELIHOODS[family](n_features, seed=seed, name="likelihood", **options)
