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
    [score]      batch_size (images in memory at once), heatmaps ("flagged" or "all")

The transform that fit used (size, color, resize) is stored with the model, so scoring
applies exactly the same one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..settings_file import check_model_params, read_sections

# The image jobs' model defaults, also benchmarks/mnist.py's vae-conv (see benchmarks/README.md,
# "Images: one-class MNIST", and docs/experiments.md for the measurements behind them):
# - likelihood "bernoulli": the best measured on MNIST;
# - trim_fraction 0: an inspection team's training folder holds curated good parts, and
#   trimming the worst-fitting 20% of each batch (the estimator's default, for tabular
#   data that holds some anomalies) costs the convolutional model on clean data.
IMAGE_MODEL = {"random_state": 0, "likelihood": "bernoulli", "trim_fraction": 0.0}
COLORS = ("auto", "gray", "rgb")
HEATMAPS = ("flagged", "all")
NORMALIZE = ("contrast", "none")
_JOB_OWNED = {"image_shape", "calibration_fraction", "fpr"}


@dataclass(frozen=True)
class ImageJobConfig:
    size: tuple | None = None
    color: str = "auto"
    resize: bool = True
    convert_color: bool = True
    normalize: str = "contrast"
    model: dict = field(default_factory=lambda: dict(IMAGE_MODEL))
    fpr: float = 0.01
    calibration_fraction: float = 0.2
    batch_size: int = 256
    heatmaps: str = "flagged"

    def with_overrides(self, **values) -> ImageJobConfig:
        """A copy with the non-None values replaced (``model`` entries are merged)."""
        values = {key: value for key, value in values.items() if value is not None}
        model = dict(self.model, **values.pop("model", {}))
        return _checked(dataclasses.replace(self, model=model, **values), "command line")


_SECTIONS = {
    "image": {"size", "color", "resize", "convert_color", "normalize"},
    "model": None,
    "threshold": {"fpr", "calibration_fraction"},
    "score": {"batch_size", "heatmaps"},
}


def load_image_config(path=None) -> ImageJobConfig:
    """The settings of ``path`` (TOML), or the defaults when path is None."""
    if path is None:
        return ImageJobConfig()
    values = read_sections(path, _SECTIONS)
    if "model" in values:
        values["model"] = dict(ImageJobConfig().model, **values["model"])
    if values.get("size") is not None:
        values["size"] = tuple(values["size"])
    return _checked(ImageJobConfig(**values), str(path))


def _checked(config: ImageJobConfig, source: str) -> ImageJobConfig:
    check_model_params(config.model, source, _JOB_OWNED, "from [image] and [threshold]")
    if config.size is not None and (
        len(config.size) != 2 or not all(isinstance(s, int) and s >= 1 for s in config.size)
    ):
        raise ValueError(f"{source}: size must be [height, width] in pixels, got {config.size!r}.")
    if config.color not in COLORS:
        raise ValueError(f"{source}: color must be one of {COLORS}, got {config.color!r}.")
    for key in ("resize", "convert_color"):
        if not isinstance(getattr(config, key), bool):
            raise ValueError(
                f"{source}: {key} must be true or false, got {getattr(config, key)!r}."
            )
    if config.normalize not in NORMALIZE:
        raise ValueError(
            f"{source}: normalize must be one of {NORMALIZE}, got {config.normalize!r}."
        )
    if config.heatmaps not in HEATMAPS:
        raise ValueError(f"{source}: heatmaps must be one of {HEATMAPS}, got {config.heatmaps!r}.")
    if not isinstance(config.batch_size, int) or config.batch_size < 1:
        raise ValueError(
            f"{source}: batch_size must be an integer >= 1, got {config.batch_size!r}."
        )
    return config
