"""Screening the training rows before the fit (``VAEAnomalyDetector(screen_outliers=True)``).

Training data in practice holds anomalies, and a sharp model (a wide network, a low
floor on the likelihood scale, no trimmed loss) learns them as normal. A robust model
does not learn them, but it is blurred: it misses anomalies that only break a thin
relation between columns. Screening uses each for what it does well:

1. fit the detector with the robust settings ``SCREENING_PARAMS`` (a trimmed loss, the
   floor 0.1, the default width, early stopping after 10 epochs without progress);
2. score the fitting rows with it, a = -log p_screen(x);
3. fit the detector's own model on the rows within Tukey's fence for outliers,

       a <= Q3(a) + 1.5 (Q3(a) - Q1(a)),

   the rows beyond it being left out of training.

This is the reweighting step of a robust covariance estimate (scikit-learn's
``MinCovDet``: a raw robust fit, then the classical fit on the points within a
cut-off of it), with a VAE in both roles. Calibration rows are held out before
screening and are never screened, so the split-conformal threshold still speaks for
all new normal rows. docs/experiments.md, round 17, has the measurements.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

# The robust settings of the screening fit: the estimator's defaults for these five.
SCREENING_PARAMS = {
    "trim_fraction": 0.2,
    "trim_rule": "fraction",
    "min_scale": 0.1,
    "hidden_units": None,
    "n_iter_no_change": 10,
}
# Tukey's fence for outliers. His far-out fence, 3, was measured too (round 17): better on
# the structure benchmark, but it flagged more normal rows in the README's sample job.
FENCE_FACTOR = 1.5


def tukey_fence(anomaly_scores: np.ndarray, factor: float | None = None) -> float:
    """Q3 + factor * (Q3 - Q1) of ``anomaly_scores`` (factor: ``FENCE_FACTOR``); larger
    scores are outliers."""
    factor = FENCE_FACTOR if factor is None else factor
    q1, q3 = np.percentile(np.asarray(anomaly_scores, dtype=np.float64), [25.0, 75.0])
    return float(q3 + factor * (q3 - q1))


def screening_detector(detector):
    """An unfitted copy of ``detector`` with ``SCREENING_PARAMS``, that does not screen,
    holds no row out for calibration and prints nothing."""
    return clone(detector).set_params(
        **SCREENING_PARAMS, screen_outliers=False, calibration_fraction=0.0, verbose=0
    )


def fit_screen(detector, X) -> tuple[object, float, np.ndarray]:
    """(the screening fit of ``detector`` on X, the Tukey fence of X's anomaly scores
    a = -log p(x) under it, those scores)."""
    screen = screening_detector(detector).fit(X)
    anomaly_scores = -screen.score_samples(X)
    return screen, tukey_fence(anomaly_scores), anomaly_scores
