"""Thresholds with a stated false-alarm rate (NumPy only).

Anomaly scores a are higher for stranger rows (a = -score_samples). Given anomaly scores
a_1..a_n of held-out normal rows (the calibration set), exchangeable with a new normal
row's score a:

    threshold t = a_(k), the k-th smallest, k = ceil((n + 1)(1 - fpr))
        => P(a > t) <= fpr                                    (split-conformal bound)
    p-value   p(a) = (1 + #{i : a_i >= a}) / (n + 1)
        => P(p(a) <= alpha) <= alpha, and p is (super-)uniform on normal rows
    Benjamini-Hochberg at level q over a batch of m p-values: flag the rows whose p-value
    is at most p_(k*), k* = max{k : p_(k) <= k q / m}; the expected share of false alarms
    among the flagged rows is at most q (for independent p-values).
"""

from __future__ import annotations

import math

import numpy as np


def _check_rate(name: str, value) -> float:
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}.")
    return value


def _check_scores(scores) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError("the calibration set is empty; it needs normal rows to score.")
    if not np.all(np.isfinite(scores)):
        bad = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise ValueError(f"calibration score at position {bad} is not finite: {scores[bad]!r}.")
    return scores


def min_calibration_size(fpr: float) -> int:
    """Smallest n with ceil((n + 1)(1 - fpr)) <= n, so a finite threshold exists."""
    fpr = _check_rate("fpr", fpr)
    return max(1, math.ceil(1.0 / fpr - 1.0 - 1e-12))


def conformal_threshold(calibration_scores, fpr: float) -> float:
    """t = a_(ceil((n + 1)(1 - fpr))): flag a new row when its anomaly score exceeds t."""
    fpr = _check_rate("fpr", fpr)
    scores = np.sort(_check_scores(calibration_scores))
    n = scores.size
    rank = math.ceil((n + 1) * (1.0 - fpr) - 1e-12)
    if rank > n:
        raise ValueError(
            f"a calibration set of {n} rows cannot certify fpr={fpr}: it needs at least "
            f"{min_calibration_size(fpr)} normal rows (about 1/fpr)."
        )
    return float(scores[rank - 1])


def conformal_p_values(calibration_scores, scores) -> np.ndarray:
    """p = (1 + #{calibration scores >= s}) / (n + 1) for each anomaly score s, float64."""
    calibration = np.sort(_check_scores(calibration_scores))
    scores = np.asarray(scores, dtype=np.float64)
    at_least = calibration.size - np.searchsorted(calibration, scores, side="left")
    return (1.0 + at_least) / (calibration.size + 1.0)


def verdicts(log_density, offset: float, calibration_scores=None):
    """What a batch job reports per row from its estimate of log p(x):

    anomaly score a = -log p(x),   p-value p(a) (NaN without a calibration set),
    flagged when log p(x) < offset (a > -offset, the detector's ``predict``).
    """
    log_density = np.asarray(log_density, dtype=np.float64)
    anomaly = -log_density
    if calibration_scores is None:
        p_values = np.full(anomaly.shape, np.nan)
    else:
        p_values = conformal_p_values(calibration_scores, anomaly)
    return anomaly, p_values, log_density < offset


def benjamini_hochberg(p_values, fdr: float) -> np.ndarray:
    """Boolean mask of the rows flagged by Benjamini-Hochberg at false-discovery rate fdr."""
    fdr = _check_rate("fdr", fdr)
    p_values = np.asarray(p_values, dtype=np.float64)
    m = p_values.size
    if m == 0:
        return np.zeros(0, dtype=bool)
    ordered = np.sort(p_values)
    passing = np.flatnonzero(ordered <= fdr * np.arange(1, m + 1) / m)
    if passing.size == 0:
        return np.zeros(m, dtype=bool)
    return p_values <= ordered[passing[-1]]


def too_few_to_calibrate(n_samples: int, n_calibration: int, fraction: float, fpr: float):
    """The CalibrationWarning message when ``fraction`` > 0 holds out too few rows to
    certify ``fpr`` (a split-conformal threshold needs n >= 1/fpr - 1), else None."""
    needed = min_calibration_size(fpr)
    if fraction == 0 or n_calibration >= needed:
        return None
    # n held-out rows certify fpr >= 1 / (n + 1) (ceil((n + 1)(1 - fpr)) <= n).
    smallest = (
        f"the smallest fpr {n_calibration} held-out rows can certify is "
        f"{1.0 / (n_calibration + 1):.3g}"
        if n_calibration
        else "no row is held out, so no fpr can be certified"
    )
    return (
        f"calibration_fraction={fraction} holds out {n_calibration} of {n_samples} rows, but "
        f"certifying fpr={fpr} needs at least {needed} held-out rows (about "
        f"{math.ceil(needed / fraction)} rows at this fraction); {smallest}. Fitted on every "
        f"row with offset_ at the {1 - fpr:.4g} quantile of the training anomaly scores: "
        "the rate is not certified (calibrated_ is False)."
    )
