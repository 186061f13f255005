"""Batched, compiled estimators of log p(x) from a fitted ``VAE``.

For a row x and noise eps_1..eps_k shared by every row (common random numbers, drawn
by the model's latent component: ``model.latent.scoring_noise``), with z_i its scoring
sample (z_i = loc(x) + scale(x) * eps_i for the Gaussian latent; a hard one-hot sample
for the categorical) and log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x):

    elbo(x)      = (1/k) sum_i log p(x|z_i) - KL(q(z|x) || p(z))   (closed-form KL)
    iwae(x)      = log (1/k) sum_i w_i                               (Burda et al., 2016)
    elbo_mc(x)   = (1/k) sum_i log w_i                               (iwae >= elbo_mc: Jensen)
    feature_j(x) = (1/k) sum_i log p(x_j|z_i)                        (elbo = sum_j feature_j - KL)

For a categorical latent small enough to enumerate (``exact_log_marginals``):

    exact(x)     = logsumexp_z [log p(x|z) + log p(z)]  over all K ** L values of z

Rows are scored through one fixed batch shape [B, d] (the last batch is padded), so a
row's score does not depend on how many rows came with it. B is the scoring memory
(SCORING_MEMORY_BYTES) over what one row holds, counted from the layers' output shapes
(``VAE.scoring_row_elements``: k times the decoder's activations, convolutional feature
maps included), so a batch stays within it whatever the number of rows. Reductions
over k run in float64.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

MAX_BATCH_ROWS = 1024
# Working memory of one scoring batch: every activation of its B rows and k samples.
SCORING_MEMORY_BYTES = 16 * 2**20
# The same budget in float32 values.
MAX_BATCH_ELEMENTS = SCORING_MEMORY_BYTES // 4

# Values of X (float64) the detector scales, checks and scores per block (1 MiB): the
# NumPy work around the model then runs on arrays that stay in the CPU's cache, where on
# the whole of a large X it ran at a third of the speed (benchmarks/README.md, "Scoring a
# large array in blocks").
SCORING_BLOCK_VALUES = 2**17

# XLA compilation of the ELBO/IWAE scorer: 1.36-1.84x the rows per second of the plain
# graph on this project's 2-core CPU, for 0.13-1.16 s more per fit (its compile time; a
# fit scores its training rows), in benchmarks/xla_scoring.py (benchmarks/README.md,
# "XLA for scoring"). Read when a model's scorer is first built. Scores agree with the
# plain graph's to float32 rounding, not bit for bit; with either, a row's score does not
# depend on the rows scored with it.
SCORING_JIT_COMPILE = True

_compiled_scorers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ScoreTerms:
    """Per-row estimates, float64: elbo, iwae, elbo_mc, kl [n]; feature_log_likelihood [n, outputs];
    exact [n]; scaled_feature_log_likelihood, relative_feature_log_likelihood [n, outputs].

    ``feature_log_likelihood`` is None unless asked for: it is the one output that grows
    with n * d, and ``score_samples`` does not need it. ``exact`` (log p(x) by
    enumeration, ``exact_log_marginals``) is None unless asked for.
    ``scaled_feature_log_likelihood`` (set by the detector with the per-feature terms) is
    each term in the model's scaled units, E_q[log p(u_j|z)] with u_j = (x_j - c_j) / s_j:
    the term of x_j plus log s_j, free of the column's units, so that it ranks the columns
    that make a row unlikely (``feature_log_likelihood`` itself, in the units of X, adds
    -log s_j, which names a column recorded in small units on every row).
    ``relative_feature_log_likelihood`` (set by the detector with them) is that term less
    its median over the training rows, m_j (``typical_feature_log_likelihood_``; 0 where
    the output is not observed): negative where the column is less likely than on a
    typical training row. It ranks the columns that make a row unlikely: a term's level
    alone, low on every row for a categorical column of many levels (-log of the number
    of levels, for equal ones), would name that column first on ordinary rows.
    """

    elbo: np.ndarray
    iwae: np.ndarray
    elbo_mc: np.ndarray
    kl: np.ndarray
    feature_log_likelihood: np.ndarray | None
    exact: np.ndarray | None = None
    scaled_feature_log_likelihood: np.ndarray | None = None
    relative_feature_log_likelihood: np.ndarray | None = None

    def estimate(self, method: str) -> np.ndarray:
        """The estimate of log p(x) named by ``method``: "elbo", "iwae" or "exact"."""
        if method == "exact":
            return self.exact
        return self.iwae if method == "iwae" else self.elbo


def scoring_row_bytes(model, n_samples: int) -> int:
    """Bytes one row holds while scored with k = ``n_samples`` (float32 activations)."""
    return 4 * model.scoring_row_elements(n_samples)


def scoring_batch_rows(model, n_samples: int) -> int:
    """Rows B per scoring batch: SCORING_MEMORY_BYTES // scoring_row_bytes, in
    [1, MAX_BATCH_ROWS] (one row at least, even when it alone exceeds the budget)."""
    rows = SCORING_MEMORY_BYTES // scoring_row_bytes(model, n_samples)
    return int(np.clip(rows, 1, MAX_BATCH_ROWS))


def scoring_block_rows(model, n_samples: int, n_columns: int) -> int:
    """Rows of an input the detector scales and scores at a time: whole batches of
    ``scoring_batch_rows``, about SCORING_BLOCK_VALUES values of X (one batch at least)."""
    batch_rows = scoring_batch_rows(model, n_samples)
    return batch_rows * max(1, SCORING_BLOCK_VALUES // (max(1, n_columns) * batch_rows))


def _scorer(model, n_samples: int):
    """The model's batch scorer for k samples, traced once (held weakly); compiled with
    XLA when SCORING_JIT_COMPILE is set as it is built."""
    scorers = _compiled_scorers.setdefault(model, {})
    if n_samples in scorers:
        return scorers[n_samples]
    model_ref = weakref.ref(model)

    def batch_terms(x, eps):
        feature_log_likelihood, log_prior_ratio, kl = model_ref().log_weight_terms(x, eps)
        feature_log_likelihood = tf.cast(feature_log_likelihood, tf.float64)  # [k, B, outputs]
        log_weights = tf.reduce_sum(feature_log_likelihood, axis=-1) + tf.cast(
            log_prior_ratio, tf.float64
        )  # [k, B]
        log_k = tf.math.log(tf.cast(tf.shape(eps)[0], tf.float64))
        features = tf.reduce_mean(feature_log_likelihood, axis=0)  # [B, outputs]
        kl = tf.cast(kl, tf.float64)
        elbo = tf.reduce_sum(features, axis=-1) - kl
        iwae = tf.reduce_logsumexp(log_weights, axis=0) - log_k
        elbo_mc = tf.reduce_mean(log_weights, axis=0)
        return elbo, iwae, elbo_mc, kl, features

    # Each model's scorer is traced once, for its one batch shape. TensorFlow counts
    # traces per Python code object, so scoring a few rows with each of several models
    # (a grid search, a job per model) read as "frequent retracing" and logged a warning.
    # A partial has no code object of its own: it makes the count per scorer, where a
    # warning would still catch a scorer that really retraces.
    scorer = tf.function(functools.partial(batch_terms), jit_compile=SCORING_JIT_COMPILE)
    scorers[n_samples] = scorer
    return scorer


def _embedder(model):
    """The model's posterior mean as a plain graph (not XLA), traced once for its one
    batch shape."""
    scorers = _compiled_scorers.setdefault(model, {})
    if "posterior_mean" not in scorers:
        model_ref = weakref.ref(model)

        def posterior_mean(x):
            return model_ref()(x)  # VAE.call: the latent's embedding, [B, code_dim]

        scorers["posterior_mean"] = tf.function(
            functools.partial(posterior_mean), jit_compile=False
        )
    return scorers["posterior_mean"]


def posterior_means(model, X: np.ndarray) -> np.ndarray:
    """The latent's embedding of rows X [n, d] (already preprocessed), float64: E_q[z|x]
    [n, L] for a Gaussian latent, the posterior probabilities [n, L * K] for a
    categorical one.

    Through the same fixed, padded batch shape as ``score_terms`` (one sample's worth of
    memory per row), so a row's embedding does not depend on the rows that came with it.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    n, d = X.shape
    batch_rows = scoring_batch_rows(model, 1)
    embed = _embedder(model)
    out = np.empty((n, model.code_dim))
    padded = np.zeros((batch_rows, d), dtype=np.float32)
    for start in range(0, n, batch_rows):
        stop = min(start + batch_rows, n)
        padded[: stop - start] = X[start:stop]
        padded[stop - start :] = 0.0
        out[start:stop] = embed(tf.constant(padded)).numpy()[: stop - start]
    return out


def score_terms(model, X: np.ndarray, eps: np.ndarray, features: bool = True) -> ScoreTerms:
    """Score rows X [n, d] (already preprocessed) with the latent's shared noise eps
    (``model.latent.scoring_noise``: [k, L] for the Gaussian, [k, L, K] for the categorical).

    ``features=False`` skips the [n, d] per-feature output.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    n, d = X.shape
    outputs = model.n_outputs
    batch_rows = scoring_batch_rows(model, len(eps))
    scorer = _scorer(model, len(eps))
    eps_tensor = tf.constant(eps, dtype=tf.float32)
    out = [np.empty(n) for _ in range(4)] + [np.empty((n, outputs)) if features else None]
    padded = np.zeros((batch_rows, d), dtype=np.float32)
    for start in range(0, n, batch_rows):
        stop = min(start + batch_rows, n)
        padded[: stop - start] = X[start:stop]
        padded[stop - start :] = 0.0
        results = scorer(tf.constant(padded), eps_tensor)
        for target, result in zip(out, results, strict=True):
            if target is not None:
                target[start:stop] = result.numpy()[: stop - start]
    return ScoreTerms(*out)


def _exact_scorer(model):
    """The model's log p(x) by enumeration as a plain graph (not XLA), traced once (held
    weakly)."""
    scorers = _compiled_scorers.setdefault(model, {})
    if "exact" not in scorers:
        model_ref = weakref.ref(model)

        def log_marginal(x, configurations):
            log_joint = tf.cast(model_ref().log_joint_terms(x, configurations), tf.float64)
            return tf.reduce_logsumexp(log_joint, axis=0)  # [B]

        scorers["exact"] = tf.function(functools.partial(log_marginal), jit_compile=False)
    return scorers["exact"]


def exact_log_marginals(model, X: np.ndarray) -> np.ndarray:
    """log p(x) = logsumexp_z [log p(x|z) + log p(z)] over every value z of the model's
    discrete latent (``latent.configurations()``, C = K ** L of them), for rows X [n, d]
    (already preprocessed): float64 [n]. Through a fixed, padded batch shape sized for C
    samples per row, as ``score_terms``."""
    configurations = tf.constant(model.latent.configurations())
    X = np.ascontiguousarray(X, dtype=np.float32)
    n, d = X.shape
    batch_rows = scoring_batch_rows(model, int(configurations.shape[0]))
    scorer = _exact_scorer(model)
    out = np.empty(n)
    padded = np.zeros((batch_rows, d), dtype=np.float32)
    for start in range(0, n, batch_rows):
        stop = min(start + batch_rows, n)
        padded[: stop - start] = X[start:stop]
        padded[stop - start :] = 0.0
        out[start:stop] = scorer(tf.constant(padded), configurations).numpy()[: stop - start]
    return out
