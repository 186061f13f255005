"""Screening the training rows before the fit (``VAEAnomalyDetector(screen_outliers=True)``).

Training data in practice holds anomalies, and a sharp model (a wide network, a low
floor on the likelihood scale, no trimmed loss) learns them as normal. A robust model
does not learn them, but it is blurred: it misses anomalies that only break a thin
relation between columns. Screening uses each for what it does well:

1. fit the detector with the robust settings ``SCREENING_PARAMS`` (a trimmed loss, the
   floor 0.1, the default width, early stopping after 10 epochs without progress);
2. score the fitting rows with it, a = -log p_screen(x);
3. fit the detector's own model on the rows within Tukey's fence for outliers,

       a <= F = Q3(a) + 1.5 (Q3(a) - Q1(a)),

   the rows beyond it being left out of training.

With categorical columns a row is judged against its own kind as well: F_c[l] is the
fence of the rows at level l of categorical column c (of levels held by at least
``MIN_LEVEL_ROWS`` fitting rows; F for the others), and a row x is left out only when

    a(x) > max(F, F_1[l_1(x)], ..., F_m[l_m(x)]),

beyond the fence of all the rows and of the rows sharing each of its categories. A
normal kind of row that is rarer or more spread out than the rest (a machine type with
a wider rpm) has lower density throughout, and the overall fence alone would leave out
all of it (docs/experiments.md, round 18).

This is the reweighting step of a robust covariance estimate (scikit-learn's
``MinCovDet``: a raw robust fit, then the classical fit on the points within a
cut-off of it), with a VAE in both roles. Calibration rows are held out before
screening and are never screened, so the split-conformal threshold still speaks for
all new normal rows. docs/experiments.md, round 17, has the measurements.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

# The robust settings of the screening fit (the estimator's defaults for these five until
# round 18): a trimmed loss, the floor 0.1, the width scaled with d, early stopping at 10.
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
# A categorical level held by fewer fitting rows has no fence of its own (its quartiles
# would be noise): its rows are judged by the overall fence.
MIN_LEVEL_ROWS = 50


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


def categorical_levels(X: np.ndarray, layout) -> list[np.ndarray]:
    """For each categorical column of ``layout`` (a one-hot block of the encoded X), each
    row's level: the index of its one, or -1 where the column is missing."""
    levels, start = [], 0
    for family, width in layout:
        if family == "categorical":
            block = X[:, start : start + width]
            block = block.toarray() if hasattr(block, "toarray") else block  # sparse X
            present = ~np.isnan(block).any(axis=1) & (np.nan_to_num(block).max(axis=1) > 0)
            levels.append(np.where(present, np.argmax(np.nan_to_num(block), axis=1), -1))
        start += width
    return levels


def level_fences(anomaly_scores, levels, layout, overall: float) -> list[np.ndarray]:
    """For each categorical column, the Tukey fence of the scores of each level's rows
    (``overall`` for a level held by fewer than ``MIN_LEVEL_ROWS`` rows)."""
    widths = [width for family, width in layout if family == "categorical"]
    fences = []
    for level_of_row, width in zip(levels, widths, strict=True):
        fence = np.full(width, overall, dtype=np.float64)
        for level in range(width):
            scores = anomaly_scores[level_of_row == level]
            if len(scores) >= MIN_LEVEL_ROWS:
                fence[level] = tukey_fence(scores)
        fences.append(fence)
    return fences


def row_fences(overall: float, fences, levels, n_rows: int) -> np.ndarray:
    """Each row's fence max(F, F_1[l_1], ..., F_m[l_m]); a missing level counts as F."""
    fence = np.full(n_rows, overall, dtype=np.float64)
    for level_fence, level_of_row in zip(fences, levels, strict=True):
        level_fence = np.asarray(level_fence)[np.maximum(level_of_row, 0)]
        own = np.where(level_of_row >= 0, level_fence, overall)
        fence = np.maximum(fence, own)
    return fence


def fit_screen(detector, X_fit, X, layout):
    """The screening fit of ``detector`` on ``X_fit`` (X as given to fit; X the same rows
    validated), and each row's anomaly score a = -log p(x) under it, Tukey fence F and
    level fences (``row_fences``): (screen, F, level fences, a, the rows' fences)."""
    screen = screening_detector(detector).fit(X_fit)
    anomaly_scores = -screen.score_samples(X_fit)
    overall = tukey_fence(anomaly_scores)
    levels = categorical_levels(X, layout)
    fences = level_fences(anomaly_scores, levels, layout, overall)
    return screen, overall, fences, anomaly_scores, row_fences(overall, fences, levels, X.shape[0])
