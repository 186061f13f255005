"""Anomaly heat maps: where in an image the model finds it unlikely.

For an image x with pixel values x_ijc, the map is the per-pixel negative expected
log-likelihood under the posterior,

    a_ij = -sum_c E_q[log p(x_ijc | z)]     (``score_features``, summed over channels)

so the pixels the decoder cannot explain stand out. ``heatmap_png`` draws the image and
its map side by side, the map coloured black -> red -> yellow -> white from the image's
smallest to its largest a_ij.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Each panel is scaled up by a whole factor to at least this many pixels high.
MIN_PANEL_HEIGHT = 128


def pixel_anomaly(feature_terms: np.ndarray, image_shape) -> np.ndarray:
    """a [n, H, W] from the per-value terms E_q[log p(x_ijc|z)] [n, H * W * C]."""
    height, width, channels = image_shape
    return -feature_terms.reshape(-1, height, width, channels).sum(axis=-1)


def _colour(values: np.ndarray) -> np.ndarray:
    """[H, W] -> [H, W, 3] uint8 on the black-red-yellow-white scale, min..max of values."""
    low, high = float(values.min()), float(values.max())
    t = (values - low) / (high - low) if high > low else np.zeros_like(values)
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], -1)
    return (255 * rgb + 0.5).astype(np.uint8)


def heatmap_png(path, image: np.ndarray, anomaly: np.ndarray) -> None:
    """Write the image [H, W, C] in [0, 1] beside its map a [H, W] as one PNG."""
    from PIL import Image

    grey = image.shape[-1] == 1
    picture = (255 * np.clip(image, 0, 1) + 0.5).astype(np.uint8)
    picture = np.repeat(picture, 3, axis=-1) if grey else picture[..., :3]
    separator = np.full((image.shape[0], 1, 3), 255, np.uint8)
    panel = np.concatenate([picture, separator, _colour(anomaly)], axis=1)
    factor = max(1, -(-MIN_PANEL_HEIGHT // image.shape[0]))
    panel = panel.repeat(factor, axis=0).repeat(factor, axis=1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(panel).save(path, format="PNG")
