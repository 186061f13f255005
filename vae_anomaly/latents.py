"""Latent components of the VAE: one class per latent variable z.

A latent owns everything the model needs to know about z:

    call(features)                 the posterior head: encoder features -> params of q(z|x)
    posterior(params), prior()     q(z|x) and p(z), from ``tfp.distributions``
    sample_noise / reparameterise  the training sample, differentiable in the params
    training_log_ratio             log p(z) - log q(z|x) of that training sample (IWAE)
    kl(params)                     KL(q(z|x) || p(z)), [batch]: closed form where TFP has
                                   it (``tfd.kl_divergence``), Monte Carlo otherwise
    scoring_noise / scoring_sample the scoring sample from noise shared by every row
    scoring_log_ratio              log p(z) - log q(z|x) of a scoring sample, exact
    embedding(params)              what ``transform`` returns

The decoder sees z flattened to ``code_dim`` values per row. Adding a latent is one
``Latent`` subclass plus one entry in ``LATENTS``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

_PACKAGE = "vae_anomaly"


def _dense(units: int, seed: int, name: str) -> keras.layers.Dense:
    return keras.layers.Dense(
        units, kernel_initializer=keras.initializers.GlorotUniform(seed=seed), name=name
    )


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not value > 0.0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite float, got {value!r}.")
    return value


def gaussian_noise(seed: int, n_samples: int, latent_dim: int) -> np.ndarray:
    """The shared noise eps [k, L] ~ N(0, I), a pure function of (seed, k, L)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_samples, latent_dim)).astype(np.float32)


def gumbel_noise(seed: int, n_samples: int, latent_dim: int, categories: int) -> np.ndarray:
    """The shared noise g [k, L, K] ~ Gumbel(0, 1), a pure function of (seed, k, L, K)."""
    rng = np.random.default_rng(seed)
    return rng.gumbel(size=(n_samples, latent_dim, categories)).astype(np.float32)


class Latent(keras.layers.Layer):
    """Base of the latent components (see the module docstring for the interface).

    ``params`` is the tuple of tensors ``call`` returns, each [batch, ...]. Noise for
    training comes from ``sample_noise(params, seed, n_samples)``: [batch, ...] when
    ``n_samples`` is None (one sample per row), else [k, batch, ...]; ``reparameterise``
    maps it to z of shape [..., batch, code_dim].
    """

    kind: ClassVar[str] = ""
    # Samples of the Monte Carlo KL, for a posterior and prior TFP has no KL for.
    kl_samples: ClassVar[int] = 64

    def __init__(self, latent_dim: int, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim!r}.")
        self.latent_dim = int(latent_dim)
        self.seed = int(seed)

    @property
    def code_dim(self) -> int:
        """Values per row the decoder sees."""
        raise NotImplementedError

    @property
    def param_elements(self) -> int:
        """float32 values of ``params`` per row (for the scoring memory budget)."""
        raise NotImplementedError

    def kl(self, params) -> tf.Tensor:
        """KL(q(z|x) || p(z)), [batch]: ``tfd.kl_divergence`` where TFP registers one for
        the pair, else the Monte Carlo estimate (1/S) sum_s log q(z_s|x) - log p(z_s) from
        S = ``kl_samples`` draws of q with a fixed stateless seed (so a row's KL does not
        depend on the batch or the call). Subclasses override it with a closed form."""
        posterior = self.posterior(params)
        prior = self.prior(posterior.dtype if posterior.dtype.is_floating else tf.float32)
        try:
            return tfd.kl_divergence(posterior, prior)
        except NotImplementedError:
            z = posterior.sample(self.kl_samples, seed=(self.seed, 0))  # [S, batch, ...]
            return tf.reduce_mean(posterior.log_prob(z) - prior.log_prob(z), axis=0)

    def training_callbacks(self) -> list:
        """Keras callbacks this latent needs while training (none by default)."""
        return []

    def kl_per_dimension(self, params) -> tf.Tensor:
        """KL(q(z_l|x) || p(z_l)) of each latent dimension (or variable) l, [batch, L]:
        the posterior and the prior factorise over l, so these add up to ``kl``."""
        posterior, prior = self.posterior(params), self.prior()
        return tfd.kl_divergence(posterior.distribution, prior.distribution)

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GaussianLatent(Latent):
    """z ~ N(0, I) of dimension L, with the diagonal Gaussian posterior of the VAE.

    Parameters
    ----------
    latent_dim : int
        Dimension L of z.
    min_scale : float, default=1e-3
        Floor added to softplus so the posterior never collapses to a point.
    seed : int
        Seed of the weight initializer.

    Notes
    -----
    q(z|x) = N(loc(x), diag scale(x)^2) with scale = softplus(raw) + min_scale;
    p(z) = N(0, I). Training and scoring samples are z = loc + scale * eps with
    eps ~ N(0, I) (the reparameterisation trick). The KL is in closed form,

        KL = 1/2 sum_l (loc_l^2 + scale_l^2 - 1) - sum_l log scale_l,

    which ``tfd.kl_divergence`` also gives (to float32 rounding; this form is kept so
    that models and scores stay bit-identical to those before the latents existed).

    Examples
    --------
    >>> latent = GaussianLatent(2, seed=0)
    >>> loc, scale = latent(keras.ops.zeros((3, 5)))
    >>> tuple(loc.shape), latent.code_dim
    ((3, 2), 2)
    """

    kind = "gaussian"

    def __init__(self, latent_dim: int, min_scale: float = 1e-3, seed: int = 0, **kwargs):
        super().__init__(latent_dim, seed=seed, **kwargs)
        self.min_scale = _check_positive("min_scale", min_scale)
        self.projection = _dense(2 * self.latent_dim, self.seed, "loc_and_raw_scale")

    @property
    def code_dim(self) -> int:
        return self.latent_dim

    @property
    def param_elements(self) -> int:
        return 4 * self.latent_dim  # as counted before: loc, raw scale, scale, KL terms

    def build(self, input_shape):
        self.projection.build(input_shape)

    def call(self, features):
        """(loc, scale) of q(z|x), each [batch, L]."""
        loc, raw_scale = tf.split(self.projection(features), 2, axis=-1)
        return loc, tf.math.softplus(raw_scale) + self.min_scale

    def posterior(self, params) -> tfd.Distribution:
        """q(z|x) = N(loc, diag scale^2), event shape [L]."""
        loc, scale = params
        return tfd.Independent(tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=1)

    def prior(self, dtype=tf.float32) -> tfd.Distribution:
        """p(z) = N(0, I), event shape [L]."""
        zeros = tf.zeros([self.latent_dim], dtype=dtype)
        return tfd.Independent(tfd.Normal(loc=zeros, scale=tf.ones_like(zeros)), 1)

    def kl(self, params) -> tf.Tensor:
        """KL(q(z|x) || N(0, I)) in closed form, [batch]."""
        loc, scale = params
        quadratic = 0.5 * tf.reduce_sum(tf.square(loc) + tf.square(scale) - 1.0, axis=-1)
        log_determinant = tf.reduce_sum(tf.math.log(scale), axis=-1)
        return quadratic - log_determinant

    def kl_per_dimension(self, params) -> tf.Tensor:
        """KL(q(z_l|x) || N(0, 1)) per dimension in closed form, [batch, L]:
        (loc_l^2 + scale_l^2 - 1) / 2 - log scale_l."""
        loc, scale = params
        return 0.5 * (tf.square(loc) + tf.square(scale) - 1.0) - tf.math.log(scale)

    def sample_noise(self, params, seed, n_samples=None):
        """eps ~ N(0, I): [batch, L], or [k, batch, L] with ``n_samples`` = k."""
        loc = params[0]
        shape = tf.shape(loc)
        if n_samples is not None:
            shape = tf.concat([[n_samples], shape], axis=0)
        return keras.random.normal(shape, seed=seed, dtype=loc.dtype)

    def reparameterise(self, params, eps):
        """z = loc + scale * eps, [batch, L] or [k, batch, L]."""
        loc, scale = params
        if eps.shape.rank == loc.shape.rank:
            return loc + scale * eps
        return loc[tf.newaxis] + scale[tf.newaxis] * eps

    def training_log_ratio(self, params, eps):
        """log p(z) - log q(z|x) for z = ``reparameterise(params, eps)``, [k, batch]."""
        z = self.reparameterise(params, eps)
        return self.prior(z.dtype).log_prob(z) - self.posterior(params).log_prob(z)

    def scoring_noise(self, seed: int, n_samples: int) -> np.ndarray:
        """eps [k, L] ~ N(0, I), shared by every row (``gaussian_noise``)."""
        return gaussian_noise(seed, n_samples, self.latent_dim)

    def scoring_sample(self, params, noise):
        """z_i = loc + scale * eps_i for noise [k, L]: [k, batch, L]."""
        loc, scale = params
        return loc[tf.newaxis] + scale[tf.newaxis] * noise[:, tf.newaxis, :]

    def scoring_log_ratio(self, params, z):
        """log p(z_i) - log q(z_i|x) for z [k, batch, L]: [k, batch]."""
        return self.prior(z.dtype).log_prob(z) - self.posterior(params).log_prob(z)

    def embedding(self, params):
        """The posterior mean loc, [batch, L]."""
        return params[0]

    def get_config(self):
        config = super().get_config()
        config.update(min_scale=self.min_scale)
        return config


# Temperature schedule of the Gumbel-softmax relaxation (``CategoricalLatent``).
TEMPERATURE_FLOOR = 0.5
TEMPERATURE_DECAY = 0.05  # per epoch
# Largest latent_categories ** latent_dim that score_method="exact" enumerates.
MAX_EXACT_CONFIGURATIONS = 4096


def annealed_temperature(initial: float, epoch: int) -> float:
    """max(floor, initial * exp(-TEMPERATURE_DECAY * epoch)), floor = min(0.5, initial)."""
    floor = min(TEMPERATURE_FLOOR, initial)
    return max(floor, initial * math.exp(-TEMPERATURE_DECAY * epoch))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CategoricalLatent(Latent):
    """L independent categorical variables over K classes, uniform prior.

    Parameters
    ----------
    latent_dim : int
        L, the number of categorical variables.
    categories : int, default=10
        K, the classes of each.
    temperature : float, default=1.0
        Initial temperature tau_0 of the Gumbel-softmax relaxation used in training.
    seed : int
        Seed of the weight initializer.

    Notes
    -----
    q(z|x) = prod_l Cat(z_l; softmax(logits_l(x))), p(z) = prod_l Cat(z_l; 1/K). The
    decoder sees z as L one-hot vectors, flattened to L * K values.

    Training uses the Gumbel-softmax (concrete) relaxation (Jang et al., 2017; Maddison
    et al., 2017): z_l = softmax((logits_l + g_l) / tau), g ~ Gumbel(0, 1), which is
    differentiable in the logits. The temperature is annealed per epoch e by
    ``TemperatureAnnealing``,

        tau_e = max(min(0.5, tau_0), tau_0 * exp(-0.05 e)),

    exponential decay towards a floor of 0.5 as in Jang et al. (2017): high early, so
    gradients have low variance while the classes form; never below 0.5, where the
    relaxed samples are already nearly one-hot and the gradient variance grows as
    1/tau. From tau_0 = 1 the floor is reached after 14 epochs. The KL in the training
    loss is the exact categorical KL (``tfd.kl_divergence(Categorical, Categorical)``),
    sum_l sum_k q_lk log(K q_lk). The IWAE objective weighs relaxed samples with the
    concrete densities (``tfd.ExpRelaxedOneHotCategorical``, in log space for
    stability) of q and of the relaxed prior.

    Scoring never uses the relaxed density: z_i is the hard one-hot
    argmax(logits + g_i) (the Gumbel-max trick, an exact sample of q) with noise g_i
    drawn once per fitted model, and log q(z_i|x), log p(z_i) = -L log K are the exact
    categorical probabilities.

    Examples
    --------
    >>> latent = CategoricalLatent(2, categories=3, seed=0)
    >>> (logits,) = latent(keras.ops.zeros((4, 5)))
    >>> tuple(logits.shape), latent.code_dim
    ((4, 2, 3), 6)
    """

    kind = "categorical"

    def __init__(
        self, latent_dim: int, categories: int = 10, temperature: float = 1.0, seed=0, **kwargs
    ):
        super().__init__(latent_dim, seed=seed, **kwargs)
        if isinstance(categories, bool) or int(categories) != categories or categories < 2:
            raise ValueError(f"categories must be an integer >= 2, got {categories!r}.")
        self.categories = int(categories)
        self.initial_temperature = _check_positive("temperature", temperature)
        self.projection = _dense(self.latent_dim * self.categories, self.seed, "logits")
        self.temperature = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.initial_temperature),
            trainable=False,
            name="temperature",
        )

    @property
    def code_dim(self) -> int:
        return self.latent_dim * self.categories

    @property
    def param_elements(self) -> int:
        return 3 * self.code_dim  # logits, their log-softmax, the KL terms

    @property
    def n_configurations(self) -> int:
        """K ** L, the values z can take."""
        return self.categories**self.latent_dim

    def build(self, input_shape):
        self.projection.build(input_shape)

    def call(self, features):
        """(logits,) of q(z|x), [batch, L, K]."""
        logits = self.projection(features)
        return (tf.reshape(logits, [-1, self.latent_dim, self.categories]),)

    def posterior(self, params) -> tfd.Distribution:
        """q(z|x): L independent categoricals (class indices), event shape [L]."""
        (logits,) = params
        return tfd.Independent(tfd.Categorical(logits=logits), reinterpreted_batch_ndims=1)

    def prior(self, dtype=tf.float32) -> tfd.Distribution:
        """p(z): L independent uniform categoricals, event shape [L]."""
        logits = tf.zeros([self.latent_dim, self.categories], dtype=dtype)
        return tfd.Independent(tfd.Categorical(logits=logits), reinterpreted_batch_ndims=1)

    def kl(self, params) -> tf.Tensor:
        """KL(q(z|x) || p(z)), exact, [batch]."""
        (logits,) = params
        return tfd.kl_divergence(self.posterior(params), self.prior(logits.dtype))

    def sample_noise(self, params, seed, n_samples=None):
        """g ~ Gumbel(0, 1): [batch, L, K], or [k, batch, L, K] with ``n_samples`` = k."""
        (logits,) = params
        shape = tf.shape(logits)
        if n_samples is not None:
            shape = tf.concat([[n_samples], shape], axis=0)
        tiny = np.finfo(logits.dtype.as_numpy_dtype).tiny
        uniform = keras.random.uniform(shape, minval=tiny, maxval=1.0, seed=seed)
        return -tf.math.log(-tf.math.log(tf.cast(uniform, logits.dtype)))

    def _relaxed_log_sample(self, params, gumbel):
        """log z = log_softmax((logits + g) / tau), [..., batch, L, K]."""
        (logits,) = params
        temperature = tf.cast(self.temperature, logits.dtype)
        return tf.nn.log_softmax((logits + gumbel) / temperature, axis=-1)

    def reparameterise(self, params, gumbel):
        """The relaxed sample z = softmax((logits + g) / tau), [..., batch, L * K]."""
        z = tf.exp(self._relaxed_log_sample(params, gumbel))
        return tf.reshape(z, tf.concat([tf.shape(z)[:-2], [self.code_dim]], axis=0))

    def training_log_ratio(self, params, gumbel):
        """log p(z) - log q(z|x) of the relaxed sample under the concrete densities, in
        log space (the Jacobian of exp is the same for both and cancels), [k, batch]."""
        (logits,) = params
        temperature = tf.cast(self.temperature, logits.dtype)
        log_z = self._relaxed_log_sample(params, gumbel)

        def relaxed(logits):
            return tfd.Independent(tfd.ExpRelaxedOneHotCategorical(temperature, logits=logits), 1)

        return relaxed(tf.zeros_like(logits)).log_prob(log_z) - relaxed(logits).log_prob(log_z)

    def scoring_noise(self, seed: int, n_samples: int) -> np.ndarray:
        """g [k, L, K] ~ Gumbel(0, 1), shared by every row (``gumbel_noise``)."""
        return gumbel_noise(seed, n_samples, self.latent_dim, self.categories)

    def scoring_sample(self, params, noise):
        """Hard one-hot z_i = one_hot(argmax(logits + g_i)) for noise [k, L, K]:
        [k, batch, L * K], an exact sample of q (the Gumbel-max trick)."""
        (logits,) = params
        classes = tf.argmax(logits[tf.newaxis] + noise[:, tf.newaxis], axis=-1)  # [k, B, L]
        z = tf.one_hot(classes, self.categories, dtype=logits.dtype)  # [k, B, L, K]
        return tf.reshape(z, tf.concat([tf.shape(z)[:-2], [self.code_dim]], axis=0))

    def scoring_log_ratio(self, params, z):
        """log p(z_i) - log q(z_i|x) for one-hot z [k, batch, L * K], exact: [k, batch]."""
        (logits,) = params
        one_hot = tf.reshape(z, tf.concat([tf.shape(z)[:-1], [-1, self.categories]], axis=0))
        log_posterior = tf.reduce_sum(one_hot * tf.nn.log_softmax(logits, axis=-1), [-2, -1])
        log_prior = -self.latent_dim * math.log(self.categories)
        return tf.cast(log_prior, logits.dtype) - log_posterior

    def configurations(self) -> np.ndarray:
        """Every value of z, one-hot: [K ** L, L * K], float32 (the first variable slowest)."""
        classes = np.indices((self.categories,) * self.latent_dim).reshape(self.latent_dim, -1).T
        return np.eye(self.categories, dtype=np.float32)[classes].reshape(-1, self.code_dim)

    def log_prior_of_configurations(self) -> float:
        """log p(z) = -L log K, the same for every configuration."""
        return -self.latent_dim * math.log(self.categories)

    def embedding(self, params):
        """The posterior probabilities softmax(logits), [batch, L * K]."""
        (logits,) = params
        return tf.reshape(tf.nn.softmax(logits, axis=-1), [-1, self.code_dim])

    def training_callbacks(self) -> list:
        """The temperature schedule (``TemperatureAnnealing``)."""
        return [TemperatureAnnealing(self)]

    def get_config(self):
        config = super().get_config()
        config.update(categories=self.categories, temperature=self.initial_temperature)
        return config


class TemperatureAnnealing(keras.callbacks.Callback):
    """Sets a ``CategoricalLatent``'s temperature at each epoch: ``annealed_temperature``."""

    def __init__(self, latent: CategoricalLatent):
        super().__init__()
        self.latent = latent

    def on_epoch_begin(self, epoch, logs=None):
        self.latent.temperature.assign(annealed_temperature(self.latent.initial_temperature, epoch))


LATENTS: dict[str, type[Latent]] = {"gaussian": GaussianLatent, "categorical": CategoricalLatent}


def make_latent(
    kind: str,
    latent_dim: int,
    *,
    min_scale: float = 1e-3,
    categories: int = 10,
    temperature: float = 1.0,
    seed: int = 0,
    name: str = "posterior",
) -> Latent:
    """The latent component named ``kind`` ("gaussian" or "categorical")."""
    if kind not in LATENTS:
        raise ValueError(f"latent must be one of {sorted(LATENTS)}, got {kind!r}.")
    if kind == "categorical":
        return CategoricalLatent(
            latent_dim, categories=categories, temperature=temperature, seed=seed, name=name
        )
    return GaussianLatent(latent_dim, min_scale=min_scale, seed=seed, name=name)
