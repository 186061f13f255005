"""Settings of the image jobs, from a TOML file (``pipelines/images.toml``) and flags.

    [image]      size = [H, W] (None: the first training image's), color ("gray", "rgb"
                 or "auto": the first training image's), resize (true: images of another
                 size are resized; false: rejected), convert_color (true: images of
                 another channel count are converted; false: rejected), normalize
                 ("contrast": per-image contrast normalisation, ``images.contrast``;
                 "none": the pixels as they are)
    [model]      any VAEAnomalyDetector parameter except image_shape, calibration_fraction
                 and fpr, which the job sets
    [threshold]  fpr, calibration_fraction
    [training]   strategy ("default", "mirrored" or "multi-worker": ``jobs.strategy``)
    [score]      batch_size (images in memory at once), heatmaps ("flagged" or "all")

The transform that fit used (size, color, resize) is stored with the model, so scoring
applies exactly the same one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..jobs.settings import JobSettings, setting
from ..jobs.strategy import STRATEGIES

# The image jobs' model defaults, also benchmarks/mnist.py's vae-conv (see benchmarks/README.md,
# "Images: one-class MNIST", and docs/experiments.md for the measurements behind them):
# - likelihood "bernoulli": the best measured on MNIST;
# - trim_fraction 0: an inspection team's training folder holds curated good parts, and
#   trimming the worst-fitting 20% of each batch (the estimator's default, for tabular
#   data that holds some anomalies) costs the convolutional model on clean data;
# - beta 1: the image models were measured at 1 (the estimator's default for tabular data,
#   0.3 since issue 16's round 14, has not been measured on images).
IMAGE_MODEL = {"random_state": 0, "likelihood": "bernoulli", "trim_fraction": 0.0, "beta": 1.0}
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


def load_image_config(path=None) -> ImageJobConfig:
    """The settings of ``path`` (TOML), or the defaults when path is None."""
    return ImageJobConfig.load(path)
