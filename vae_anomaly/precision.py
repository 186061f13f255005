"""Mixed precision: the dtype policy of the encoder and decoder bodies.

With ``dtype="mixed_bfloat16"`` (or ``"mixed_float16"``, GPUs only) the dense and
convolutional layers of the bodies (``networks``) compute in 16 bits and keep their
weights in float32 (Keras's ``mixed_*`` dtype policies). The latent component and the
likelihood head stay float32 layers, which cast the bodies' 16-bit outputs back to
float32: the parameters of q(z|x) and p(x|z), every log-density, KL and reduction of
the loss are float32, as Keras's mixed-precision guide asks of a model's outputs, and
scoring sums them in float64 (``scoring``).
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

FLOAT32 = "float32"
POLICIES = (FLOAT32, "mixed_bfloat16", "mixed_float16")


def body_policy(dtype: str | None) -> str:
    """The Keras dtype policy of the bodies for the estimator's ``dtype`` (None: float32)."""
    return FLOAT32 if dtype is None else str(dtype)


def check_trainable_here(dtype: str | None) -> None:
    """ValueError for ``dtype="mixed_float16"`` on a machine without a GPU: float16 math
    on CPUs is emulated (slower than float32) and needs loss scaling for nothing."""
    if dtype == "mixed_float16" and not tf.config.list_physical_devices("GPU"):
        raise ValueError(
            "dtype='mixed_float16' needs a GPU, and TensorFlow sees none on this machine; "
            "use dtype='mixed_bfloat16' (CPUs with bfloat16 support and TPUs) or dtype=None "
            "(float32)."
        )


@contextlib.contextmanager
def policy_scope(name: str):
    """Layers created inside take the dtype policy ``name`` (Keras's global policy,
    thread-local, restored on exit)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def loss_scaled(optimizer, policy: str):
    """``optimizer`` wrapped in Keras's dynamic loss scaling under mixed_float16 (float16
    gradients underflow without it); unchanged otherwise."""
    if policy == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
