"""Throwaway probe (round 25): a learned mixture-of-Gaussians prior,
p(z) = sum_k pi_k N(mu_k, diag sigma_k^2), in place of N(0, I) for the Gaussian latent,
then run the benchmark script given. KL(q || p) has no closed form: a Monte Carlo
estimate over S fixed noise draws shared by every row, (1/S) sum_s log q(z_s|x) -
log p(z_s), z_s = loc + scale * eps_s (deterministic per row)."""

import os
import runpy
import sys

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import vae_anomaly.latents as latents

tfd = tfp.distributions
K = int(os.environ.get("MOG_K", "10"))
S = int(os.environ.get("MOG_S", "16"))


class MoGLatent(latents.GaussianLatent):
    def build(self, input_shape):
        super().build(input_shape)
        rng = np.random.default_rng(self.seed + 7)
        init = rng.standard_normal((K, self.latent_dim)).astype(np.float32)
        self.prior_means = self.add_weight(
            shape=(K, self.latent_dim),
            initializer=lambda shape, dtype=None: tf.constant(init),
            name="prior_means",
        )
        self.prior_log_scales = self.add_weight(
            shape=(K, self.latent_dim), initializer="zeros", name="prior_log_scales"
        )
        self.prior_logits = self.add_weight(shape=(K,), initializer="zeros", name="prior_logits")
        self.kl_noise = latents.gaussian_noise(self.seed + 11, S, self.latent_dim)

    def prior(self, dtype=tf.float32):
        means = tf.cast(self.prior_means, dtype)
        scales = tf.cast(tf.exp(self.prior_log_scales), dtype)
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=tf.cast(self.prior_logits, dtype)),
            tfd.Independent(tfd.Normal(means, scales), 1),
        )

    def kl(self, params):
        loc, scale = params
        noise = tf.constant(self.kl_noise, dtype=loc.dtype)
        z = loc[tf.newaxis] + scale[tf.newaxis] * noise[:, tf.newaxis, :]
        return tf.reduce_mean(
            self.posterior(params).log_prob(z) - self.prior(z.dtype).log_prob(z), axis=0
        )


latents.LATENTS["gaussian"] = MoGLatent
latents.GaussianLatent = MoGLatent
script = os.path.abspath(sys.argv[1])
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(script))
runpy.run_path(script, run_name="__main__")
