"""vae-anomaly: anomaly detection by variational autoencoders (Keras 3, TensorFlow Probability).

``VAEAnomalyDetector`` is a scikit-learn outlier detector whose ``score_samples`` is a
variational lower bound on log p(x): the ELBO or the importance-weighted bound (IWAE).
"""

from ._version import __version__
from .detector import VAEAnomalyDetector, load
from .errors import ModelFileError, TrainingDivergedError, VersionMismatchWarning

__all__ = [
    "ModelFileError",
    "TrainingDivergedError",
    "VAEAnomalyDetector",
    "VersionMismatchWarning",
    "__version__",
    "load",
]
