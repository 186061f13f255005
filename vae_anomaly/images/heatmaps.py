"""Anomaly heat maps: where in an image the model finds it unlikely.

For an image x with pixel values x_ijc, the map is the per-pixel negative expected
log-likelihood under the posterior,

    a_ij = -sum_c E_q[log p(x_ijc | z)]     (``score_features``, summed over channels)

so the pixels the decoder cannot explain stand out. ``heatmap_png`` draws the image and
its map side by side, the map coloured black -> red -> yellow -> white from the image's
smallest to its largest a_ij.

The heat maps of a job go flat into one folder, each named by ``heatmap_name`` from the
item's id alone, so that no input name (``..``, separators, an absolute path, a name at
the file system's length limit) can place a map outside the folder or collide with
another item's map.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

# Each panel is scaled up by a whole factor to at least this many pixels high.
MIN_PANEL_HEIGHT = 128

# Every heat-map file name ends with this, and only heat maps in the folder do.
HEATMAP_SUFFIX = ".heatmap.png"
# Characters of an item's base name kept in its heat-map name (the hash tells items apart).
MAX_NAME_CHARS = 100
HASH_HEX_DIGITS = 12
_UNSAFE_CHARACTER = re.compile(r"[^A-Za-z0-9._-]")


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


def heatmap_name(item: str, source: bytes | None = None) -> str:
    """The heat-map file name of an item id (a path, or ``path:key#index`` for arrays).

    The item's base name with every character outside [A-Za-z0-9._-] replaced by '_',
    leading dots stripped and cut to ``MAX_NAME_CHARS`` ("image" if nothing is left),
    then '-' and the first ``HASH_HEX_DIGITS`` hex digits of the SHA-256 of ``source``
    (the file's path as bytes, which tells apart two files whose ids are the same text)
    or else of the whole id, then ``HEATMAP_SUFFIX``: a single path component of at most
    125 characters, never hidden, the same for the same item and different for items
    that differ anywhere (up to a 48-bit hash collision).
    """
    base = item.rsplit("/", 1)[-1]
    readable = _UNSAFE_CHARACTER.sub("_", base).lstrip(".")[:MAX_NAME_CHARS] or "image"
    if source is None:
        # surrogatepass: an id that is not valid UTF-8 still hashes.
        source = item.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(source).hexdigest()
    return f"{readable}-{digest[:HASH_HEX_DIGITS]}{HEATMAP_SUFFIX}"


def heatmap_path(directory, name: str) -> Path:
    """``directory / name`` resolved; ValueError if that is not a file inside the folder
    (``heatmap_name`` rules it out: this checks the path actually written)."""
    folder = Path(directory).resolve()
    path = (folder / name).resolve()
    if path == folder or not path.is_relative_to(folder):
        raise ValueError(
            f"heat map {name!r} resolves to {path}, outside the heat-map folder {folder}."
        )
    return path
