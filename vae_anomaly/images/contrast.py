"""Per-image contrast normalisation, as a scikit-learn transformer.

Global contrast normalisation (L1) of each image x (a row of p pixel values), then an
affine map to [0, 1] learned on the training images:

    g(x) = (x - mean(x)) / mean(|x - mean(x)|)           per image
    u    = clip((g(x) - low) / (high - low), 0, 1)         low, high = min, max of g over fit

g removes each image's brightness and amount of ink, so a likelihood cannot prefer an
image for being mostly background (the "complexity bias" of likelihoods: a sparse
digit 1 looks likely to a model of any digit). This is the preprocessing of Ruff et al.
(2018, Deep SVDD) on one-class MNIST. Scores of a detector behind it are densities of u,
not of the raw pixels. A constant image maps to g = 0.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data


def global_contrast(X: np.ndarray) -> np.ndarray:
    """g(x) = (x - mean(x)) / mean(|x - mean(x)|) for every row of X."""
    centred = X - X.mean(axis=1, keepdims=True)
    spread = np.abs(centred).mean(axis=1, keepdims=True)
    return centred / np.where(spread > 0, spread, 1.0)


class ContrastScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Per-image global contrast normalisation, then min-max scaling to [0, 1].

    Attributes
    ----------
    low_, high_ : float
        Smallest and largest normalised pixel value of the training images.
    """

    @classmethod
    def from_bounds(cls, low: float, high: float, n_features: int) -> ContrastScaler:
        """The fitted scaler with these bounds (as stored by the image job)."""
        scaler = cls()
        scaler.low_, scaler.high_, scaler.n_features_in_ = float(low), float(high), n_features
        return scaler

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)
        values = global_contrast(X)
        self.low_, self.high_ = float(values.min()), float(values.max())
        return self

    def transform(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        width = self.high_ - self.low_
        scaled = (global_contrast(X) - self.low_) / (width if width > 0 else 1.0)
        return np.clip(scaled, 0.0, 1.0)
