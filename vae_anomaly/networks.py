"""Encoder and decoder bodies: stacks of dense layers (tabular data).

The encoder body maps x [batch, d] to features that ``GaussianPosteriorHead`` turns into
q(z|x); the decoder body maps z [..., L] to features that a ``LikelihoodHead`` turns into
p(x|z). An empty stack is the identity, which gives the linear-Gaussian VAE.
"""

from __future__ import annotations

import keras

_PACKAGE = "vae_anomaly"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DenseStack(keras.layers.Layer):
    """Dense layers of the given widths, each followed by ``activation``.

    Parameters
    ----------
    units : tuple of int
        Widths, input side first. ``()`` makes the identity.
    activation : str
        Any Keras activation name.
    seed : int
        Layer i initialises its kernel with seed ``seed + i``.
    """

    def __init__(self, units=(), activation="relu", seed=0, **kwargs):
        super().__init__(**kwargs)
        self.units = tuple(int(u) for u in units)
        if any(u < 1 for u in self.units):
            raise ValueError(f"units must be positive integers, got {units!r}.")
        self.activation = activation
        self.seed = int(seed)
        self.hidden_layers = [
            keras.layers.Dense(
                width,
                activation=activation,
                kernel_initializer=keras.initializers.GlorotUniform(seed=self.seed + i),
                name=f"dense_{i}",
            )
            for i, width in enumerate(self.units)
        ]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden_layers:
            layer.build(shape)
            shape = (*shape[:-1], layer.units)

    def call(self, inputs):
        outputs = inputs
        for layer in self.hidden_layers:
            outputs = layer(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        width = self.units[-1] if self.units else input_shape[-1]
        return (*input_shape[:-1], width)

    def get_config(self):
        config = super().get_config()
        config.update(units=list(self.units), activation=self.activation, seed=self.seed)
        return config


def encoder_body(hidden_units, activation: str, seed: int) -> DenseStack:
    """x -> features, widths ``hidden_units`` (wide to narrow)."""
    return DenseStack(hidden_units, activation=activation, seed=seed, name="encoder")


def decoder_body(hidden_units, activation: str, seed: int) -> DenseStack:
    """z -> features, the encoder's widths in reverse (narrow to wide)."""
    return DenseStack(tuple(reversed(hidden_units)), activation, seed=seed, name="decoder")
