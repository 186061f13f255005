"""Encoder and decoder bodies: dense stacks (tabular data) and convolutions (images).

The encoder body maps x [batch, d] to features that the latent component (``latents``)
turns into q(z|x); the decoder body maps z [..., code_dim] to features that a
``LikelihoodHead`` turns into p(x|z). An empty dense stack is the identity, which gives
the linear-Gaussian VAE.

Images travel flattened, x [batch, H * W * C] in (row, column, channel) order, so the
estimator, scoring and persistence stay those of tabular data. ``ConvEncoder`` reshapes
x to [batch, H, W, C] and halves the resolution at every stage; ``ConvDecoder`` mirrors
it back up to [rows, H, W, F] and returns per-pixel features [rows, H * W, F], from which
the likelihood head forms each pixel's parameters (``pixel_channels``). An image model
without convolution stages (``conv_filters=()``) uses the dense stacks.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

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

    def activation_elements(self) -> int:
        """Values its layers output per input row: the sum of the widths."""
        return sum(self.units)

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


# ----------------------------------------------------------------------------- images


def default_conv_filters(image_shape) -> tuple[int, ...]:
    """Filters per stride-2 stage: 16, 32, 64, ... while the smaller side stays >= 7
    after halving (28 x 28 -> 14 -> 7: two stages), at least one and at most four.

    16 rather than 32 first filters: half the training time on CPU (1.2 s against 2.6 s
    an epoch on one MNIST digit, this machine)."""
    height, width = int(image_shape[0]), int(image_shape[1])
    stages, side = 0, min(height, width)
    while stages < 4 and math.ceil(side / 2) >= 7:
        side, stages = math.ceil(side / 2), stages + 1
    return tuple(16 * 2**i for i in range(max(1, stages)))


def _stage_sides(side: int, stages: int) -> list[int]:
    """Side lengths after each stride-2 'same' convolution: ceil(side / 2) per stage."""
    sides = [int(side)]
    for _ in range(stages):
        sides.append(math.ceil(sides[-1] / 2))
    return sides


def _conv(filters, seed, name, transpose=False, activation="relu", strides=2):
    layer = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    return layer(
        filters,
        kernel_size=4 if strides == 2 else 3,
        strides=strides,
        padding="same",
        activation=activation,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        name=name,
    )


class _ImageBody(keras.layers.Layer):
    """What ConvEncoder and ConvDecoder share: the image shape, filters, dense widths."""

    def __init__(self, image_shape, filters, units=(), activation="relu", seed=0, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.filters = tuple(int(f) for f in filters)
        self.units = tuple(int(u) for u in units)
        self.activation = activation
        self.seed = int(seed)

    def get_config(self):
        config = super().get_config()
        config.update(
            image_shape=list(self.image_shape),
            filters=list(self.filters),
            units=list(self.units),
            activation=self.activation,
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvEncoder(_ImageBody):
    """x [batch, H * W * C] -> stride-2 convolutions -> flatten -> dense layers.

    Parameters
    ----------
    image_shape : (H, W, C)
    filters : tuple of int
        Filters of each stride-2 convolution (kernel 4), input side first.
    units : tuple of int
        Widths of the dense layers after flattening.
    """

    def __init__(self, image_shape, filters, units=(), activation="relu", seed=0, **kwargs):
        super().__init__(image_shape, filters, units, activation, seed, **kwargs)
        self.convolutions = [
            _conv(f, self.seed + i, f"conv_{i}", activation=activation)
            for i, f in enumerate(self.filters)
        ]
        self.dense = DenseStack(self.units, activation, seed=self.seed + 100, name="dense")

    def _flat_width(self) -> int:
        height = _stage_sides(self.image_shape[0], len(self.filters))[-1]
        width = _stage_sides(self.image_shape[1], len(self.filters))[-1]
        return height * width * (self.filters[-1] if self.filters else self.image_shape[2])

    def build(self, input_shape):
        height, width, channels = self.image_shape
        shape = (None, height, width, channels)
        for layer in self.convolutions:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.dense.build((None, self._flat_width()))

    def call(self, inputs):
        images = tf.reshape(inputs, (-1, *self.image_shape))
        for layer in self.convolutions:
            images = layer(images)
        return self.dense(tf.reshape(images, (-1, self._flat_width())))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units[-1] if self.units else self._flat_width())

    def activation_elements(self) -> int:
        """Values its layers output per input image: every feature map, then the dense layers."""
        shape, total = (1, *self.image_shape), 0
        for layer in self.convolutions:
            shape = layer.compute_output_shape(shape)
            total += math.prod(shape[1:])
        return total + self.dense.activation_elements()


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvDecoder(_ImageBody):
    """z [rows, L] -> dense layers -> [rows, h, w, F0] -> stride-2 transposed convolutions
    -> crop to [rows, H, W, F] -> per-pixel features [rows, H * W, F].

    ``filters`` and ``units`` are the encoder's, read in reverse.
    """

    def __init__(self, image_shape, filters, units=(), activation="relu", seed=0, **kwargs):
        super().__init__(image_shape, filters, units, activation, seed, **kwargs)
        stages = len(self.filters)
        self.start_height = _stage_sides(self.image_shape[0], stages)[-1]
        self.start_width = _stage_sides(self.image_shape[1], stages)[-1]
        reversed_filters = tuple(reversed(self.filters))
        self.dense = DenseStack(
            (*reversed(self.units), self.start_height * self.start_width * reversed_filters[0]),
            activation,
            seed=self.seed,
            name="dense",
        )
        # Upsampling stages: each maps to the next smaller filter count; the last keeps it.
        targets = (*reversed_filters[1:], reversed_filters[-1])
        self.convolutions = [
            _conv(f, self.seed + 100 + i, f"deconv_{i}", transpose=True, activation=activation)
            for i, f in enumerate(targets)
        ]
        self.features = targets[-1]

    def build(self, input_shape):
        self.dense.build(input_shape)
        shape = (None, self.start_height, self.start_width, self.filters[-1])
        for layer in self.convolutions:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, z):
        height, width, _ = self.image_shape
        start = self.filters[-1]
        images = tf.reshape(self.dense(z), (-1, self.start_height, self.start_width, start))
        for layer in self.convolutions:
            images = layer(images)
        images = images[:, :height, :width, :]  # 'same' stages round odd sides up
        return tf.reshape(images, (-1, height * width, self.features))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.image_shape[0] * self.image_shape[1], self.features)

    def activation_elements(self) -> int:
        """Values its layers output per z: the dense layers, every feature map, the crop."""
        shape = (1, self.start_height, self.start_width, self.filters[-1])
        total = self.dense.activation_elements()
        for layer in self.convolutions:
            shape = layer.compute_output_shape(shape)
            total += math.prod(shape[1:])
        return total + self.image_shape[0] * self.image_shape[1] * self.features
