"""Alert records for flagged rows, written as JSON Lines or CSV by every job.

One record per row that ``detector.predict`` flags (-1):

    row_id           the row's identifier: the given ids (an id column), else the
                     DataFrame's index, else the row position
    anomaly_score    -score_samples: -ELBO or -IWAE, by the detector's score_method
    threshold        the anomaly score above which rows are flagged, -offset_
    p_value          conformal p-value (None when the detector is not calibrated)
    top_features     the columns that make the row unlikely, with their share:
                     share_j = max(0, -f_j) / sum_k max(0, -f_k), f_j the column's term
                     below its median over the training rows, in the model's scaled
                     units (``ScoreTerms.relative_feature_log_likelihood``)
    scored_at        time of scoring, ISO 8601 in UTC

Files are written under a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .atomic import atomic_open
from .errors import UsageError
from .thresholds import conformal_p_values

FIELDS = ("row_id", "anomaly_score", "threshold", "p_value", "top_features", "scored_at")
_JSON = json.JSONEncoder(allow_nan=False)  # json.dumps(..., allow_nan=False) makes one per call


def json_line(record: dict) -> str:
    """A record as one line of JSON Lines: ``json.dumps(record, allow_nan=False) + "\\n"``."""
    return _JSON.encode(record) + "\n"


_EXACT_IN_FLOAT64 = (np.float16, np.float32, np.float64)


def smallest_first(values: np.ndarray, top: int) -> np.ndarray:
    """Per row of ``values`` (n, d): the columns of its ``top`` (>= 0) smallest values,
    smallest first, equal values in column order: ``np.argsort(values, axis=1,
    kind="stable")[:, :top]``, found by ``top`` passes of ``argmin`` when the values are
    finite floats and ``top`` is small (a full sort of every row costs twice as much at
    d = 14, top = 3)."""
    values = np.asarray(values)
    n, d = values.shape
    if (
        top * 3 > d
        or values.dtype.type not in _EXACT_IN_FLOAT64  # the passes work in float64
        or not np.isfinite(values).all()  # argmin's NaN order is not sort's
    ):
        return np.argsort(values, axis=1, kind="stable")[:, :top]
    remaining = values.astype(np.float64, copy=True)
    rows = np.arange(n)
    order = np.empty((n, top), dtype=np.intp)
    for rank in range(top):
        order[:, rank] = remaining.argmin(axis=1)  # the first of equal minima
        remaining[rows, order[:, rank]] = np.inf  # above every finite value left
    return order


def top_feature_shares(contributions: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``contributions`` f (n, d): the ``top`` columns of largest excess
    e_j = max(0, -f_j) (equal ones in column order) and their shares e_j / sum_k e_k
    (0 when the sum is 0): (columns (n, top), shares (n, top))."""
    # In the dtype of f, a row at a time in memory: row sums add in the order of a 1-d sum.
    excess = np.maximum(0.0, -np.ascontiguousarray(contributions))
    total = excess.sum(axis=1, keepdims=True)
    order = smallest_first(-excess, top)
    picked = np.take_along_axis(excess, order, axis=1)
    shares = np.divide(picked, total, out=np.zeros_like(picked), where=total > 0)
    return order, shares


def alert_records(detector, X, row_ids=None, top_features: int = 3, scored_at=None) -> list[dict]:
    """Alert records for the rows of X that the detector flags, in row order."""
    detector._check_threshold_scoring()  # offset_ is a score of the estimator it was set with
    scores = detector.score_samples(X)
    flagged = np.flatnonzero(scores - detector.offset_ < 0)
    if flagged.size == 0:
        return []
    rows = X.iloc[flagged] if hasattr(X, "iloc") else np.asarray(X)[flagged]
    # Each column's term against its typical training value, in scaled units (``ScoreTerms``).
    contributions = detector.score_terms(rows).relative_feature_log_likelihood
    names = detector._term_names()  # by column roles: the modelled columns
    if names is None:
        names = getattr(detector, "feature_names_in_", None)
        names = names if names is not None else [f"x{j}" for j in range(detector.n_features_in_)]
    calibration = getattr(detector, "calibration_scores_", None)
    p_values = (  # from the scores already computed: no second scoring pass
        None if calibration is None else conformal_p_values(calibration, -scores[flagged])
    )
    if row_ids is None:  # a DataFrame's index, else the row position
        row_ids = X.index.to_numpy() if hasattr(X, "index") else np.arange(len(scores))
    return flagged_records(
        np.asarray(row_ids)[flagged],
        -scores[flagged],
        -detector.offset_,
        p_values,
        contributions,
        names,
        top_features,
        scored_at,
    )


def flagged_records(
    row_ids,
    anomaly_scores,
    threshold,
    p_values,
    contributions,
    names,
    top_features=3,
    scored_at=None,
) -> list[dict]:
    """Alert records from scores already computed for flagged rows (p_values may be None)."""
    when = (scored_at or datetime.now(UTC)).isoformat()
    if len(row_ids) == 0:
        return []
    columns, shares = top_feature_shares(contributions, top_features)
    names = [str(name) for name in names]
    scores = np.asarray(anomaly_scores, dtype=np.float64).tolist()
    p_values = None if p_values is None else np.asarray(p_values, dtype=np.float64).tolist()
    return [
        {
            "row_id": row_id.item() if hasattr(row_id, "item") else row_id,
            "anomaly_score": scores[i],
            "threshold": float(threshold),
            "p_value": None if p_values is None else p_values[i],
            "top_features": [
                {"feature": names[j], "share": share}
                for j, share in zip(row_columns, row_shares, strict=True)
            ],
            "scored_at": when,
        }
        for i, (row_id, row_columns, row_shares) in enumerate(
            zip(row_ids, columns.tolist(), shares.tolist(), strict=True)
        )
    ]


def csv_row(record: dict) -> dict:
    """An alert record as a CSV row: top_features as "name:share;name:share"."""
    features = ";".join(f"{f['feature']}:{f['share']:.4f}" for f in record["top_features"])
    return {**record, "top_features": features}


ALERT_SUFFIXES = (".jsonl", ".json", ".csv")


def check_alerts_path(path) -> None:
    """UsageError, before any work, unless ``path`` (None: no alerts) ends in .jsonl,
    .json or .csv (checked only when the alerts were written, the whole input was scored
    first, and the run ended without its report)."""
    if path is not None and Path(path).suffix not in ALERT_SUFFIXES:
        raise UsageError(
            f"--alerts {path} must end in .jsonl or .json (JSON Lines) or .csv, got "
            f"{Path(path).suffix!r}."
        )


class AlertSink:
    """Context manager writing alert records to ``path`` as they come (JSON Lines for
    .jsonl/.json, CSV for .csv), renamed into place on a clean exit; ``count`` of them.

    A job's memory does not grow with its alerts: each is written when it is found.
    """

    def __init__(self, path):
        self.path = Path(path)
        if self.path.suffix not in ALERT_SUFFIXES:
            raise ValueError(
                f"alerts file {self.path} must end in .jsonl or .json (JSON Lines) or .csv, "
                f"got {self.path.suffix!r}."
            )
        self.count = 0

    def __enter__(self) -> AlertSink:
        self._context = atomic_open(self.path)
        handle = self._context.__enter__()
        if self.path.suffix == ".csv":
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            writer.writeheader()
            self._write = lambda record: writer.writerow(csv_row(record))
        else:
            self._write = lambda record: handle.write(json_line(record))
        return self

    def write(self, records) -> None:
        for record in records:
            self._write(record)
            self.count += 1

    def __exit__(self, kind, value, traceback):
        return self._context.__exit__(kind, value, traceback)


def write_alerts(records, path) -> Path:
    """Write records to ``path``: JSON Lines for .jsonl/.json, CSV for .csv; atomically."""
    with AlertSink(path) as sink:
        sink.write(records)
    return sink.path
