"""vae-anomaly: anomaly detection by variational autoencoders (Keras 3, TensorFlow Probability).

``VAEAnomalyDetector`` is a scikit-learn outlier detector whose ``score_samples`` is a
variational lower bound on log p(x): the ELBO or the importance-weighted bound (IWAE).

The names that need TensorFlow (``VAEAnomalyDetector``, ``load``) are imported on first
use (PEP 562), so that importing the package, or one of its TensorFlow-free modules such
as ``vae_anomaly.cli``, does not start TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import ModelFileError, TrainingDivergedError, VersionMismatchWarning

if TYPE_CHECKING:
    from .detector import VAEAnomalyDetector, load

# Public name -> the module that defines it, imported when the name is first read.
_LAZY = {"VAEAnomalyDetector": ".detector", "load": ".detector"}

__all__ = [
    "ModelFileError",
    "TrainingDivergedError",
    "VAEAnomalyDetector",
    "VersionMismatchWarning",
    "__version__",
    "load",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # later reads skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
