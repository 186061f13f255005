"""The variational autoencoder as a Keras 3 model.

Training minimises a per-row loss from ``objectives``: by default the negative ELBO,

    -ELBO(x) = -E_q[log p(x|z)] + beta * KL(q(z|x) || p(z)),

with one reparameterised sample z of the latent component (``latents``: z = loc + scale
* eps, eps ~ N(0, I), for the Gaussian; the Gumbel-softmax sample for the categorical)
and its closed-form KL (``NegativeELBO``); or the negative IWAE-k bound
(``NegativeIWAE``). The per-row losses are averaged over the batch; with ``trim_fraction
= q``, over the (1 - q) * B rows of the batch that fit best, or with ``trim_rule="fence"``
over the rows within a robust fence of the batch's losses (at most q * B left out;
``objectives.trimmed_means``: anomalies in the training data, which fit worst, do not
pull the model towards them). With a ``corruption`` (``corruption``), the encoder sees a
corrupted x during training and the likelihood scores the clean x.
For scoring, ``log_weight_terms`` gives the pieces of the importance weights

    log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x),   z_i = latent.scoring_sample(eps_i),

from which ``scoring`` forms the ELBO and the IWAE bound.

With ``missing=True``, NaN entries of x are missing: they are left out of log p(x|z)
(the decoder factorises, so this is the exact marginal of the observed entries), the
encoder sees them as 0, and with ``missing_indicator=True`` also sees the presence mask.
"""

from __future__ import annotations

import math
import time

import keras
import tensorflow as tf

from .corruption import make_corruption
from .distributions import likelihood_head
from .latents import make_latent
from .networks import ConvDecoder, ConvEncoder, decoder_body, encoder_body
from .objectives import TRIM_RULES, RowLosses, make_objective, trimmed_means
from .precision import FLOAT32, policy_scope

_PACKAGE = "vae_anomaly"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class VAE(keras.Model):
    """Encoder -> q(z|x) and prior p(z) (the latent component, ``latents``), decoder -> p(x|z).

    Parameters
    ----------
    n_features : int
        Dimension d of x.
    latent_dim : int
        Dimension L of z.
    hidden_units : tuple of int
        Encoder widths; the decoder uses them reversed. ``()`` gives linear maps. With
        ``image_shape`` and ``conv_filters``, the dense layers between the convolutions
        and z.
    activation : str
        Activation of the hidden layers.
    likelihood : str
        A key of ``distributions.LIKELIHOODS``.
    likelihood_options : dict or None
        Keyword arguments of that likelihood head (for example ``scale_mode``).
    latent : {"gaussian", "categorical"}
        The latent component (``latents.make_latent``): L Gaussian dimensions, or L
        categorical variables over ``latent_categories`` classes.
    latent_categories : int
        K of the categorical latent (ignored by "gaussian").
    temperature : float
        Initial Gumbel-softmax temperature of the categorical latent (ignored by
        "gaussian"); ``latents.TemperatureAnnealing`` lowers it during training.
    posterior_min_scale : float
        Floor on the posterior scale (Gaussian latent).
    beta : float
        Weight of the KL term in the training loss (the beta-VAE); scoring ignores it.
    trim_fraction : float in [0, 1)
        Share of each batch's worst-fitting rows left out of the training loss (at most,
        with ``trim_rule="fence"``).
    trim_rule : {"fraction", "fence"}
        ``objectives.trimmed_means``: always leave out that share, or only the rows whose
        loss is beyond Tukey's far-out fence of the batch's losses.
    missing : bool
        Treat NaN entries as missing (masked out of the likelihood).
    missing_indicator : bool
        With ``missing``, also give the encoder the 0/1 presence of every entry.
    objective : {"elbo", "iwae"}
        The per-row training loss (``objectives.make_objective``).
    n_train_samples : int
        k of the IWAE objective during training (ignored by "elbo").
    free_bits : float
        KL floor per latent dimension of the "elbo" objective, in nats (ignored by "iwae").
    corruption : {None, "gaussian", "mask"}
        Corruption of the encoder's input during training (``corruption.make_corruption``).
    corruption_level : float
        Its standard deviation ("gaussian", in the units the model sees) or drop
        probability ("mask").
    image_shape : (H, W, C) or None
        x is a flattened image: with ``conv_filters``, convolutional encoder and decoder
        (``networks``), and a likelihood head that maps each pixel's features to its C
        channels.
    conv_filters : tuple of int
        Filters of the stride-2 convolution stages (images only). ``()``: the dense
        body and head of tabular data, over the flattened pixels.
    seed : int
        Seeds the initializers and the training noise.
    body_dtype : str
        Keras dtype policy of the encoder and decoder bodies: "float32", or
        "mixed_bfloat16" / "mixed_float16" (``precision``). The latent component and
        the likelihood head stay float32, so every density and loss is float32.

    Notes
    -----
    Under a ``tf.distribute`` strategy (the model created in its scope), each replica
    computes the loss of its share of the global batch, divided by the number of
    replicas, so the gradients summed across replicas are those of the mean loss.
    Trimming (``trim_fraction``) ranks the rows of each replica's share.
    """

    def __init__(
        self,
        n_features: int,
        latent_dim: int,
        hidden_units=(),
        activation: str = "relu",
        likelihood: str = "gaussian",
        likelihood_options: dict | None = None,
        latent: str = "gaussian",
        latent_categories: int = 10,
        temperature: float = 1.0,
        posterior_min_scale: float = 1e-3,
        beta: float = 1.0,
        trim_fraction: float = 0.0,
        trim_rule: str = "fraction",
        missing: bool = False,
        missing_indicator: bool = False,
        objective: str = "elbo",
        n_train_samples: int = 8,
        free_bits: float = 0.0,
        corruption: str | None = None,
        corruption_level: float = 0.0,
        image_shape=None,
        conv_filters=(),
        seed: int = 0,
        body_dtype: str = FLOAT32,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_features = int(n_features)
        self.latent_dim = int(latent_dim)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.likelihood = likelihood
        self.likelihood_options = dict(likelihood_options or {})
        self.latent_kind = latent
        self.latent_categories = int(latent_categories)
        self.temperature = float(temperature)
        self.posterior_min_scale = float(posterior_min_scale)
        self.beta = float(beta)
        self.trim_fraction = float(trim_fraction)
        if not 0.0 <= self.trim_fraction < 1.0:
            raise ValueError(f"trim_fraction must be in [0, 1), got {trim_fraction!r}.")
        if trim_rule not in TRIM_RULES:
            raise ValueError(f"trim_rule must be one of {TRIM_RULES}, got {trim_rule!r}.")
        self.trim_rule = trim_rule
        self.missing = bool(missing)
        self.missing_indicator = bool(missing_indicator) and self.missing
        self.free_bits = float(free_bits)
        self.objective = make_objective(
            objective, beta=self.beta, n_samples=n_train_samples, free_bits=self.free_bits
        )
        self.n_train_samples = int(n_train_samples)
        self.corruption_level = float(corruption_level)
        self.corruption_kind = corruption
        self.seed = int(seed)
        self.image_shape = tuple(int(s) for s in image_shape) if image_shape else None
        self.conv_filters = tuple(int(f) for f in conv_filters)
        self.body_dtype = str(body_dtype)

        head_options = dict(self.likelihood_options)
        if self.image_shape is not None:
            self._check_image_shape()
        convolutional = self.image_shape is not None and bool(self.conv_filters)
        with policy_scope(self.body_dtype):  # the bodies only; heads stay float32
            if not convolutional:
                self.encoder = encoder_body(self.hidden_units, activation, seed=self.seed)
                self.decoder = decoder_body(self.hidden_units, activation, seed=self.seed + 2000)
            else:
                image = dict(
                    image_shape=self.image_shape,
                    filters=self.conv_filters,
                    units=self.hidden_units,
                    activation=activation,
                )
                self.encoder = ConvEncoder(**image, seed=self.seed, name="encoder")
                self.decoder = ConvDecoder(**image, seed=self.seed + 2000, name="decoder")
        if convolutional:  # a dense decoder maps its features to every value at once
            head_options["pixel_channels"] = self.image_shape[2]
        self.latent = make_latent(
            latent,
            self.latent_dim,
            min_scale=self.posterior_min_scale,
            categories=self.latent_categories,
            temperature=self.temperature,
            seed=self.seed + 1000,
            name="posterior",
        )
        self.code_dim = self.latent.code_dim
        self.likelihood_head = likelihood_head(
            likelihood, self.n_features, seed=self.seed + 3000, **head_options
        )
        self.kl_weight = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.beta),
            trainable=False,
            name="kl_weight",
        )
        self.noise = keras.random.SeedGenerator(self.seed, name="reparameterisation_noise")
        # None (no layer, no seed state) unless a corruption is asked for.
        self.corruption = make_corruption(
            corruption, self.corruption_level, seed=self.seed + 4000, name="corruption"
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.n_outputs = self.likelihood_head.n_outputs
        self.build((None, self.n_features))

    def _check_image_shape(self) -> None:
        height, width, channels = self.image_shape
        if height * width * channels != self.n_features:
            raise ValueError(
                f"image_shape={self.image_shape} has {height * width * channels} values, "
                f"but x has n_features={self.n_features}."
            )
        if self.missing:
            raise ValueError("Missing pixels are not supported: images must be complete.")

    def build(self, input_shape):
        encoder_shape = (None, self.n_features * (2 if self.missing_indicator else 1))
        if not self.encoder.built:
            self.encoder.build(encoder_shape)
        features = self.encoder.compute_output_shape(encoder_shape)
        if not self.latent.built:
            self.latent.build(features)
        if not self.decoder.built:
            self.decoder.build((None, self.code_dim))
        if not self.likelihood_head.built:
            self.likelihood_head.build(self.decoder.compute_output_shape((None, self.code_dim)))
        self.built = True

    # ------------------------------------------------------------------ distributions

    def prepare(self, x, training=False):
        """(encoder input, x with missing entries set to 0, per-output presence or None).

        With ``training=True`` the encoder input is corrupted (``corruption``); the
        second item, which the likelihood scores, never is."""
        if not self.missing:
            return self._corrupt(x, training), x, None
        present = tf.logical_not(tf.math.is_nan(x))
        filled = tf.where(present, x, tf.zeros_like(x))  # no NaN reaches a gradient
        encoder_input = filled
        if self.corruption is not None and training:
            # Missing entries stay 0, as the encoder sees them at scoring.
            encoder_input = tf.where(
                present, self._corrupt(filled, training), tf.zeros_like(filled)
            )
        if self.missing_indicator:
            encoder_input = tf.concat([filled, tf.cast(present, x.dtype)], axis=-1)
        return encoder_input, filled, self.likelihood_head.observed_outputs(present)

    def _corrupt(self, x, training):
        """x corrupted when training with a corruption, else x itself."""
        if self.corruption is None:
            return x
        return self.corruption(x, training=training)

    def posterior_params(self, encoder_input):
        """The parameters of q(z|x) from ``prepare(x)[0]``: the latent's tuple ((loc, scale)
        for the Gaussian, each [batch, L]; (logits,) [batch, L, K] for the categorical)."""
        return self.latent(self.encoder(encoder_input))

    def likelihood_params(self, z):
        """Parameters of p(x|z) for z [rows, code_dim], each [rows, d]."""
        return self.likelihood_head(self.decoder(z))

    def feature_log_likelihood(self, x, z, observed=None):
        """log p(x_j|z) per output for x [rows, d] and z [rows, code_dim]: [rows, outputs].

        Outputs that are not ``observed`` contribute 0 (they are marginalised out).
        """
        terms = self.likelihood_head.log_likelihood(self.likelihood_params(z), x)
        if observed is None:
            return terms
        return tf.where(observed, terms, tf.zeros_like(terms))

    def sample_log_likelihood(self, x, z, observed=None):
        """log p(x_j|z_i) per output for x [B, d] and z [k, B, code_dim]: [k, B, outputs]."""
        k, batch = tf.shape(z)[0], tf.shape(z)[1]
        flat_z = tf.reshape(z, [-1, self.code_dim])  # [k * B, code_dim]
        flat_x = tf.reshape(
            tf.broadcast_to(x[tf.newaxis], [k, batch, self.n_features]), [-1, self.n_features]
        )
        flat_observed = None
        if observed is not None:
            flat_observed = tf.reshape(
                tf.broadcast_to(observed[tf.newaxis], [k, batch, self.n_outputs]),
                [-1, self.n_outputs],
            )
        return tf.reshape(
            self.feature_log_likelihood(flat_x, flat_z, flat_observed), [k, batch, self.n_outputs]
        )

    def call(self, inputs):
        """The latent's embedding of x: the posterior mean E_q[z] [batch, L] (Gaussian),
        the posterior probabilities [batch, L * K] (categorical)."""
        return self.latent.embedding(self.posterior_params(self.prepare(inputs)[0]))

    # ------------------------------------------------------------------ training

    def row_losses(self, x, training=False) -> RowLosses:
        """Per-row (loss, reconstruction, kl), each [batch], of the model's ``objective``,
        with fresh reparameterisation noise; the encoder input corrupted when training."""
        encoder_input, x, observed = self.prepare(x, training=training)
        params = self.posterior_params(encoder_input)
        eps = self.objective.sample_noise(self.latent, params, self.noise)
        return self.objective.row_losses(self, x, observed, params, eps, self.kl_weight)

    def loss_terms(self, x, training=False) -> RowLosses:
        """Means of ``row_losses`` over the batch; with ``trim_fraction``, over the rows
        with the smallest loss only (``objectives.trimmed_means`` by ``trim_rule``)."""
        return trimmed_means(
            self.row_losses(x, training=training), self.trim_fraction, rule=self.trim_rule
        )

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def _track(self, loss, reconstruction, kl):
        self.loss_tracker.update_state(loss)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        results = {metric.name: metric.result() for metric in self.metrics}
        if _across_workers(self.distribute_strategy):
            # Keras 3.15 reduces a step's outputs across workers with strategy.reduce(
            # "MEAN", value, axis=0) (reduce_per_replica in its TensorFlow trainer), which
            # needs an axis 0 that scalar results lack: give them one, reduced away there.
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    def train_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            loss, reconstruction, kl = self.loss_terms(x, training=True)
            # The optimiser sums the replicas' gradients: each contributes 1/replicas of
            # the mean (Keras's scale_loss_for_distribution); then loss scaling under
            # mixed_float16 (identity for other optimisers), undone by optimizer.apply.
            replica_loss = loss / self.distribute_strategy.num_replicas_in_sync
            replica_loss = self.optimizer.scale_loss(replica_loss)
        gradients = tape.gradient(replica_loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._track(loss, reconstruction, kl)

    def test_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        return self._track(*self.loss_terms(x))

    # ------------------------------------------------------------------ scoring

    def log_weight_terms(self, x, eps):
        """Pieces of the importance weights for x [B, d] and the latent's shared scoring
        noise eps ([k, L] Gaussian, [k, L, K] Gumbel: ``latent.scoring_noise``).

        Returns
        -------
        feature_log_likelihood : [k, B, outputs]   log p(x_j|z_i) (0 where x_j is missing)
        log_prior_minus_posterior : [k, B]         log p(z_i) - log q(z_i|x), exact
        kl : [B]                                   KL(q(z|x) || p(z)), in closed form
        """
        encoder_input, x, observed = self.prepare(x)
        params = self.posterior_params(encoder_input)
        z = self.latent.scoring_sample(params, eps)  # [k, B, code_dim]
        feature_log_likelihood = self.sample_log_likelihood(x, z, observed)
        log_ratio = self.latent.scoring_log_ratio(params, z)
        return feature_log_likelihood, log_ratio, self.latent.kl(params)

    def log_joint_terms(self, x, configurations):
        """log p(x, z) for x [B, d] and every configuration z [C, code_dim] of a discrete
        latent: [C, B] (``scoring.exact_log_marginals`` takes its logsumexp over C)."""
        _, x, observed = self.prepare(x)
        batch = tf.shape(x)[0]
        z = tf.broadcast_to(
            configurations[:, tf.newaxis], [tf.shape(configurations)[0], batch, self.code_dim]
        )
        log_likelihood = tf.reduce_sum(self.sample_log_likelihood(x, z, observed), axis=-1)
        return log_likelihood + self.latent.log_prior_of_configurations()

    def scoring_row_elements(self, n_samples: int) -> int:
        """float32 values ``log_weight_terms`` holds per row with k = ``n_samples``, from
        the layers' output shapes: once per row the encoder input, every encoder layer's
        output and q(z|x); k times per row z, every decoder layer's output (feature maps
        included), the likelihood's parameters, x repeated, and the per-output terms
        (float32, and float64 in ``scoring``: 3 values each). Their sum bounds what one
        row can hold at once, whichever of them the runtime keeps alive together."""
        encoder_input = self.n_features * (2 if self.missing_indicator else 1)
        per_row = encoder_input + self.encoder.activation_elements() + self.latent.param_elements
        per_sample = (
            self.code_dim
            + self.decoder.activation_elements()
            + self.likelihood_head.activation_elements()
            + self.n_features
            + 3 * self.n_outputs
            + 2  # log p(z_i) and log q(z_i|x)
        )
        return per_row + n_samples * per_sample

    def get_config(self):
        return {
            "name": self.name,
            "n_features": self.n_features,
            "latent_dim": self.latent_dim,
            "hidden_units": list(self.hidden_units),
            "activation": self.activation,
            "likelihood": self.likelihood,
            "likelihood_options": dict(self.likelihood_options),
            "latent": self.latent_kind,
            "latent_categories": self.latent_categories,
            "temperature": self.temperature,
            "posterior_min_scale": self.posterior_min_scale,
            "beta": self.beta,
            "trim_fraction": self.trim_fraction,
            "trim_rule": self.trim_rule,
            "missing": self.missing,
            "missing_indicator": self.missing_indicator,
            "objective": self.objective.name,
            "n_train_samples": self.n_train_samples,
            "free_bits": self.free_bits,
            "corruption": self.corruption_kind,
            "corruption_level": self.corruption_level,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "conv_filters": list(self.conv_filters),
            "seed": self.seed,
            "body_dtype": self.body_dtype,
        }


def _across_workers(strategy) -> bool:
    """Whether ``strategy`` is a MultiWorkerMirroredStrategy with more than one worker
    (the test Keras makes before its cross-worker reduction)."""
    in_multi_worker_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        in_multi_worker_mode and in_multi_worker_mode()
    )


class KLWarmup(keras.callbacks.Callback):
    """Raises the KL weight linearly: beta * min(1, epoch / warmup_epochs)."""

    def __init__(self, beta: float, warmup_epochs: int):
        super().__init__()
        self.beta = float(beta)
        self.warmup_epochs = int(warmup_epochs)

    def on_epoch_begin(self, epoch, logs=None):
        fraction = min(1.0, epoch / self.warmup_epochs) if self.warmup_epochs else 1.0
        self.model.kl_weight.assign(self.beta * fraction)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite, silently (Keras's
    TerminateOnNaN prints "Batch n: Invalid loss" to stdout); the caller raises its own
    error. ``epoch`` (0-based) and ``loss`` record where it stopped, None if it did not."""

    def on_train_begin(self, logs=None):
        self.epoch, self.loss, self._current_epoch = None, None, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.epoch, self.loss = self._current_epoch, float(loss)
            self.model.stop_training = True


class EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` to each epoch's logs: wall time since the previous epoch ended
    (since training began, for the first), so per-epoch costs outside the steps count too."""

    def on_train_begin(self, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        if logs is not None:
            logs["epoch_seconds"] = now - self._last
        self._last = now
