"""Settings of the image jobs, from a TOML file (``pipelines/images.toml``) and flags.

    [image]      size = [H, W] (None: the first training image's), color ("gray", "rgb"
                 or "auto": the first training image's), resize (true: images of another
                 size are resized; false: rejected), convert_color (true: images of
                 another channel count are converted; false: rejected), normalize
                 ("contrast": per-image contrast normalisation, ``images.contrast``;
                 "none": the pixels as they are)
    [model]      any VAEAnomalyDetector parameter except image_shape, calibration_fraction
                 and fpr, which the job sets; without conv_filters, the body is dense
                 for small images and convolutional for large ones (``image_model``)
    [threshold]  fpr, calibration_fraction
    [training]   strategy ("default", "mirrored" or "multi-worker": ``jobs.strategy``)
    [score]      batch_size (images in memory at once), heatmaps ("flagged" or "all")

The transform that fit used (size, color, resize) is stored with the model, so scoring
applies exactly the same one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..jobs.settings import JobSettings, setting
from ..jobs.strategy import STRATEGIES

# The image jobs' model defaults, also benchmarks/mnist.py's vae-* (see benchmarks/README.md,
# "Images: one-class MNIST", and docs/experiments.md for the measurements behind them):
# - likelihood "bernoulli": the best measured on MNIST;
# - trim_fraction 0: an inspection team's training folder holds curated good parts, and
#   trimming the worst-fitting 20% of each batch (the estimator's default, for tabular
#   data that holds some anomalies) costs the convolutional model on clean data;
# - beta 1: the image models were measured at 1 (the estimator's default for tabular data,
#   0.3 since issue 16's round 14, has not been measured on images).
IMAGE_MODEL = {"random_state": 0, "likelihood": "bernoulli", "trim_fraction": 0.0, "beta": 1.0}
# The body, when [model] does not name conv_filters (``image_model``): dense up to this many
# values per image, convolutional beyond. The dense body measured best on one-class MNIST
# (28 x 28, three seeds: 0.9599 against 0.9571) and on the sample washers (32 x 32: the
# same 6 of 6 defects, with a wider margin to the normal parts); past 64 x 64 grey values a
# dense first layer would hold more than 2M weights (512 per value) on each side.
DENSE_BODY_MAX_VALUES = 64 * 64
COLORS = ("auto", "gray", "rgb")
HEATMAPS = ("flagged", "all")
NORMALIZE = ("contrast", "none")


@dataclass(frozen=True)
class ImageJobConfig(JobSettings):
    size: tuple | None = setting("image", None)
    color: str = setting("image", "auto", choices=COLORS)
    resize: bool = setting("image", True, boolean=True)
    convert_color: bool = setting("image", True, boolean=True)
    normalize: str = setting("image", "contrast", choices=NORMALIZE)
    model: dict = setting("model", factory=lambda: dict(IMAGE_MODEL))
    fpr: float = setting("threshold", 0.01)
    calibration_fraction: float = setting("threshold", 0.2)
    strategy: str = setting("training", "default", choices=STRATEGIES)
    batch_size: int = setting("score", 256, at_least=1)
    heatmaps: str = setting("score", "flagged", choices=HEATMAPS)

    JOB_OWNED = frozenset({"image_shape", "calibration_fraction", "fpr"})
    JOB_OWNED_FROM = "from [image] and [threshold]"

    @classmethod
    def from_toml(cls, values: dict) -> dict:
        if values.get("size") is not None:
            values["size"] = tuple(values["size"])
        return values

    def check(self, source: str) -> None:
        if self.size is not None and (
            len(self.size) != 2 or not all(isinstance(s, int) and s >= 1 for s in self.size)
        ):
            raise ValueError(
                f"{source}: size must be [height, width] in pixels, got {self.size!r}."
            )


def image_model(model: dict, image_shape) -> dict:
    """The job's VAEAnomalyDetector parameters for images of ``image_shape`` (H, W, C):
    ``model`` with ``conv_filters`` set to () (the dense body) for images of at most
    ``DENSE_BODY_MAX_VALUES`` values and None (the convolutional body) for larger ones,
    unless ``model`` names it."""
    if "conv_filters" in model:
        return dict(model)
    small = math.prod(image_shape) <= DENSE_BODY_MAX_VALUES
    return dict(model, conv_filters=() if small else None)


def load_image_config(path=None) -> ImageJobConfig:
    """The settings of ``path`` (TOML), or the defaults when path is None."""
    return ImageJobConfig.load(path)
