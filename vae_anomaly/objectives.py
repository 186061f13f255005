"""Training objectives of the VAE: per-row losses, and trimming on top of them.

An objective turns one batch into three per-row terms, each [batch]:

    loss             what training minimises for the row
    reconstruction   -E_q[log p(x|z)], estimated from the same samples (for the history)
    kl               KL(q(z|x) || p(z)), in closed form (for the history)

``trimmed_means`` then averages them over the rows that fit best, whatever the objective
(a trimmed likelihood, ``trim_fraction``): the worst-fitting share of every batch
(``rule="fraction"``), or only the rows beyond a robust fence of the batch's losses, at
most that share (``rule="fence"``). Each objective draws its own reparameterised
noise (``sample_noise``, through the model's latent component, ``latents``) from the
generator the model passes, so that a test can give two objectives the same noise.

Adding an objective is one ``Objective`` subclass plus one entry in ``OBJECTIVES``.
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

# rule="fence" of ``trimmed_means``: Tukey's far-out fence, Q3 + 3 IQR of a batch's losses.
TRIM_FENCE_IQRS = 3.0
TRIM_RULES = ("fraction", "fence")


class RowLosses(NamedTuple):
    """Per-row training terms, each [batch]: loss, reconstruction, kl."""

    loss: tf.Tensor
    reconstruction: tf.Tensor
    kl: tf.Tensor


class Objective:
    """A per-row training loss of a VAE (base class).

    Subclasses set ``name`` and implement ``sample_noise`` and ``row_losses``. The model
    calls ``row_losses(model, x, observed, params, eps, kl_weight)`` with ``params`` the
    parameters of q(z|x) from its latent component (``model.latent``) and ``eps`` from
    ``sample_noise(model.latent, params, seed)``; ``model`` provides
    ``sample_log_likelihood(x, z, observed)``, the per-output log p(x_j|z) for z
    [k, batch, code_dim].
    """

    name: ClassVar[str] = ""

    def sample_noise(self, latent, params, seed) -> tf.Tensor:
        raise NotImplementedError

    def row_losses(self, model, x, observed, params, eps, kl_weight=None) -> RowLosses:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({options})"


class NegativeELBO(Objective):
    """The negative evidence lower bound, beta-weighted, from one reparameterised sample.

    Parameters
    ----------
    beta : float, default=1.0
        Weight of the KL term (the beta-VAE). The model passes its current KL weight
        (``kl_weight``, which ``KLWarmup`` raises towards beta) when it has one.
    free_bits : float, default=0.0
        lambda, a KL floor per latent dimension in nats (0: none).

    Notes
    -----
    Per row, with one reparameterised sample z of the latent (z = loc + scale * eps,
    eps ~ N(0, I) of shape [batch, L], for the Gaussian; the Gumbel-softmax sample for
    the categorical):

        loss(x) = -log p(x|z) + beta * sum_l max(lambda, KL(q(z_l|x) || p(z_l)))

    with the KL in closed form (``latent.kl``, per dimension ``latent.kl_per_dimension``).
    With lambda = 0 its expectation over eps is -ELBO(x) when beta = 1 (for the
    categorical latent, of the relaxed model). With lambda > 0 (free bits, Kingma et al.,
    2016, here per row and dimension), a dimension carrying less than lambda nats about
    the row costs nothing more to use: the encoder is not pushed to switch it off, which
    keeps the posterior from collapsing onto the prior while the decoder is still poor.
    The loss then lies above -ELBO by the shortfall of each dimension below lambda;
    scoring uses the true bound, whatever lambda.

    Examples
    --------
    >>> NegativeELBO(beta=0.5)
    NegativeELBO(beta=0.5, free_bits=0.0)
    """

    name = "elbo"

    def __init__(self, beta: float = 1.0, free_bits: float = 0.0):
        self.beta = float(beta)
        if not self.beta >= 0.0 or not math.isfinite(self.beta):
            raise ValueError(f"beta must be a finite float >= 0, got {beta!r}.")
        self.free_bits = float(free_bits)
        if not self.free_bits >= 0.0 or not math.isfinite(self.free_bits):
            raise ValueError(f"free_bits must be a finite float >= 0, got {free_bits!r}.")

    def sample_noise(self, latent, params, seed):
        """One sample's noise per row: eps [batch, L] (Gaussian latent)."""
        return latent.sample_noise(params, seed)

    def row_losses(self, model, x, observed, params, eps, kl_weight=None):
        """Per-row (loss, reconstruction, kl) for eps [batch, ...]."""
        z = model.latent.reparameterise(params, eps)  # reparameterisation trick, [batch, code]
        reconstruction = -tf.reduce_sum(model.feature_log_likelihood(x, z, observed), axis=-1)
        kl = model.latent.kl(params)  # [batch]
        penalty = kl
        if self.free_bits > 0.0:
            per_dimension = model.latent.kl_per_dimension(params)  # [batch, L]
            penalty = tf.reduce_sum(tf.maximum(per_dimension, self.free_bits), axis=-1)
        weight = self.beta if kl_weight is None else kl_weight
        loss = reconstruction + tf.cast(weight, kl.dtype) * penalty
        return RowLosses(loss, reconstruction, kl)

    def get_config(self):
        return {"beta": self.beta, "free_bits": self.free_bits}


class NegativeIWAE(Objective):
    """The negative importance-weighted bound IWAE-k (Burda et al., 2016), k fresh samples.

    Parameters
    ----------
    n_samples : int, default=8
        k, the reparameterised samples per row and step.
    beta : float, default=1.0
        Weight of log p(z) - log q(z|x) in the log weights (1: the IWAE bound). As for
        ``NegativeELBO``, the model passes its current KL weight when it has one.

    Notes
    -----
    Per row, with z_i the latent's reparameterised samples (z_i = loc + scale * eps_i,
    eps_i ~ N(0, I) of shape [k, batch, L], for the Gaussian):

        log w_i = log p(x|z_i) + beta * (log p(z_i) - log q(z_i|x))
        loss(x) = -log (1/k) sum_i w_i = -(logsumexp_i log w_i - log k)

    For beta = 1 its expectation is -IWAE_k(x) <= -ELBO(x), and it falls with k towards
    -log p(x). With k = 1 it is the one-sample negative ELBO with the KL estimated from
    the same sample, log q(z_1|x) - log p(z_1), instead of in closed form.
    ``reconstruction`` is -(1/k) sum_i log p(x|z_i) and ``kl`` the closed-form KL; for
    k > 1 the loss is not their sum. For the categorical latent, log p(z_i) - log q(z_i|x)
    are the concrete densities of the relaxed sample (``latent.training_log_ratio``).

    Examples
    --------
    >>> NegativeIWAE(n_samples=16)
    NegativeIWAE(n_samples=16, beta=1.0)
    """

    name = "iwae"

    def __init__(self, n_samples: int = 8, beta: float = 1.0):
        if isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < 1:
            raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}.")
        self.n_samples = int(n_samples)
        self.beta = float(beta)
        if not self.beta >= 0.0 or not math.isfinite(self.beta):
            raise ValueError(f"beta must be a finite float >= 0, got {beta!r}.")

    def sample_noise(self, latent, params, seed):
        """k samples' noise per row: eps [k, batch, L] (Gaussian latent)."""
        return latent.sample_noise(params, seed, n_samples=self.n_samples)

    def row_losses(self, model, x, observed, params, eps, kl_weight=None):
        """Per-row (loss, reconstruction, kl) for eps [k, batch, ...]."""
        latent = model.latent
        z = latent.reparameterise(params, eps)  # [k, batch, code]
        log_likelihood = tf.reduce_sum(
            model.sample_log_likelihood(x, z, observed), axis=-1
        )  # [k, batch]
        log_ratio = latent.training_log_ratio(params, eps)  # log p(z) - log q(z|x), [k, batch]
        weight = self.beta if kl_weight is None else kl_weight
        log_weights = log_likelihood + tf.cast(weight, z.dtype) * log_ratio
        log_k = tf.math.log(tf.cast(tf.shape(eps)[0], z.dtype))
        loss = -(tf.reduce_logsumexp(log_weights, axis=0) - log_k)  # [batch]
        reconstruction = -tf.reduce_mean(log_likelihood, axis=0)
        return RowLosses(loss, reconstruction, latent.kl(params))

    def get_config(self):
        return {"n_samples": self.n_samples, "beta": self.beta}


OBJECTIVES: dict[str, type[Objective]] = {"elbo": NegativeELBO, "iwae": NegativeIWAE}


def make_objective(
    name: str, beta: float = 1.0, n_samples: int = 8, free_bits: float = 0.0
) -> Objective:
    """The objective named ``name`` ("elbo" or "iwae"); ``n_samples`` is IWAE's k and
    ``free_bits`` the ELBO's KL floor per latent dimension (IWAE has none)."""
    if name not in OBJECTIVES:
        raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {name!r}.")
    if name == "iwae":
        return NegativeIWAE(n_samples=n_samples, beta=beta)
    return OBJECTIVES[name](beta=beta, free_bits=free_bits)


def trimmed_means(terms: RowLosses, trim_fraction: float, rule: str = "fraction") -> RowLosses:
    """Batch means of the per-row terms over the rows that fit best.

    Notes
    -----
    With q = ``trim_fraction`` and B rows, m = ceil(q * B) (at least one row is kept):

    - ``rule="fraction"``: the m rows of largest loss are left out, always;
    - ``rule="fence"``: only rows whose loss lies beyond Tukey's far-out fence of the
      batch, Q3 + 3 (Q3 - Q1) of its losses, are left out, the largest first and at most
      m of them.

    q = 0 averages every row. Anomalies in the training data fit worst, so they do not
    pull the model towards them (a trimmed likelihood). The fence leaves a batch whole
    when nothing in it stands out: early in training, the rows that carry a dependency
    the model has not yet learned fit worst without being anomalies, and dropping a fixed
    share of every batch would drop exactly them. An anomaly stands out once the
    structure around it is learned, and from then on the fence drops it.
    """
    if rule not in TRIM_RULES:
        raise ValueError(f"rule must be one of {TRIM_RULES}, got {rule!r}.")
    loss, reconstruction, kl = terms
    if trim_fraction > 0.0:
        batch = tf.shape(loss)[0]
        dropped = tf.cast(tf.math.ceil(trim_fraction * tf.cast(batch, tf.float32)), tf.int32)
        if rule == "fence":
            q1, q3 = tf.unstack(tfp.stats.percentile(loss, [25.0, 75.0], interpolation="linear"))
            fence = q3 + TRIM_FENCE_IQRS * (q3 - q1)
            dropped = tf.minimum(dropped, tf.reduce_sum(tf.cast(loss > fence, tf.int32)))
        kept = tf.math.top_k(-loss, k=tf.maximum(1, batch - dropped)).indices
        loss, reconstruction, kl = (tf.gather(t, kept) for t in (loss, reconstruction, kl))
    return RowLosses(tf.reduce_mean(loss), tf.reduce_mean(reconstruction), tf.reduce_mean(kl))
