"""Input checks whose errors say what is wrong and where (row, column).

scikit-learn's ``validate_data`` does the shape, dtype and feature-name checks; these
helpers add the position of the first offending cell, which sklearn does not report.
The scaling the detector learns (``fit_scaling``) and the range checks of scaled values
live here too, so the tabular jobs reject what the detector could not score.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd


def column_label(j: int, feature_names=None) -> str:
    """'column 'temp' (index 2)' or 'column 2' when there are no names."""
    if feature_names is not None and j < len(feature_names):
        return f"column {feature_names[j]!r} (index {j})"
    return f"column {j}"


def first_non_numeric(column: pd.Series) -> tuple[int | None, pd.Series]:
    """(position of the first present value that is not a number or None, the parsed column)."""
    parsed = pd.to_numeric(column, errors="coerce")
    bad = parsed.isna() & column.notna()
    position = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else None
    return position, parsed


def check_numeric_frame(frame: pd.DataFrame) -> None:
    """Raise ValueError naming the first non-numeric column, its first bad row and value."""
    for j, (name, column) in enumerate(frame.items()):
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        position, _ = first_non_numeric(column)
        if position is not None:
            raise ValueError(
                f"X has a non-numeric value in column {name!r} (index {j}) at row {position} "
                f"(index label {frame.index[position]!r}): {column.iloc[position]!r}. "
                "VAEAnomalyDetector needs numeric columns; encode or drop this column first."
            )


def locate_unconvertible(X) -> tuple[int, int, object] | None:
    """(row, column, value) of the first cell of a 2-D array-like that is not a float."""
    array = np.asarray(X, dtype=object)
    if array.ndim != 2:
        return None
    for j in range(array.shape[1]):
        for i, value in enumerate(array[:, j]):
            try:
                float(value)
            except (TypeError, ValueError):
                return i, j, value
    return None


def with_location(error: Exception, X, feature_names=None) -> Exception:
    """The same error type, its message extended with where the bad cell is (if found)."""
    message = str(error)
    if not ("convert" in message or "argument must be" in message):
        return error
    found = locate_unconvertible(X)
    if found is None:
        return error
    row, j, value = found
    located = f"{message} (first at row {row}, {column_label(j, feature_names)}: {value!r})"
    return type(error)(located)


def check_finite(X: np.ndarray, feature_names=None, name: str = "X", allow_nan=False) -> None:
    """Raise ValueError naming the first NaN or infinity by row and column (NaN may be allowed)."""
    finite = np.isfinite(X) | (np.isnan(X) if allow_nan else False)
    if finite.all():
        return
    rows, columns = np.nonzero(~finite)
    row, j = int(rows[0]), int(columns[0])
    kind = "NaN" if np.isnan(X[row, j]) else "infinity"
    raise ValueError(
        f"Input {name} contains {kind} at row {row}, {column_label(j, feature_names)}; "
        f"{rows.size} non-finite value(s) in {np.unique(rows).size} row(s). "
        "Remove or impute them before fitting or scoring."
    )


def fit_scaling(X: np.ndarray, scaling: str | None, columns=None) -> tuple[np.ndarray, np.ndarray]:
    """(center, scale) per column, ignoring NaN; a constant, empty or unselected column
    (``columns`` is a boolean mask of the columns to scale) gets center 0 and scale 1."""
    n_features = X.shape[1]
    columns = np.ones(n_features, dtype=bool) if columns is None else np.asarray(columns)
    if scaling is None or not columns.any():
        return np.zeros(n_features), np.ones(n_features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: handled below
        if scaling == "standard":
            center, scale = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
        else:  # robust: median and interquartile range / 1.349 (the IQR of N(0, 1))
            center = np.nanmedian(X, axis=0)
            q25, q75 = np.nanpercentile(X, [25, 75], axis=0)
            scale = (q75 - q25) / 1.349
            scale = np.where(scale > 0, scale, np.nanstd(X, axis=0))
    usable = columns & np.isfinite(center) & np.isfinite(scale) & (scale > 0)
    return np.where(usable, center, 0.0), np.where(usable, scale, 1.0)


# The model computes in float32: a scaled value u = (x - center) / scale beyond this
# cannot even be represented.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# The batch jobs reject scaled values beyond this, where scores start to overflow: the
# Gaussian log-density squares (u - loc) / scale, with likelihood scales down to 1e-3, and
# sqrt(float32 max) * 1e-3 = 1.8e16. (In scaled units, normal data is of order 1.) The
# API instead raises when u or the score is not finite (a job must not stop half-way).
SCALED_LIMIT = float(np.sqrt(FLOAT32_MAX)) * 1e-3


def out_of_range(U: np.ndarray, limit: float = FLOAT32_MAX) -> np.ndarray:
    """Boolean mask of the scaled values with |u| > limit (NaN is not out of range)."""
    with np.errstate(invalid="ignore"):
        return np.abs(U) > limit


def _first_marked(mask: np.ndarray) -> tuple[int, int, np.ndarray]:
    """(row, column) of the first true entry of ``mask`` [n, d], and the rows of all."""
    rows, columns = np.nonzero(mask)
    return int(rows[0]), int(columns[0]), rows


def check_in_range(X: np.ndarray, U: np.ndarray, feature_names=None, name: str = "X") -> None:
    """Raise ValueError naming the first value of X whose scaled form U overflows float32."""
    bad = out_of_range(U)
    if not bad.any():
        return
    row, j, rows = _first_marked(bad)
    raise ValueError(
        f"Input {name} has a value out of range at row {row}, {column_label(j, feature_names)}: "
        f"{float(X[row, j])!r} is {float(U[row, j]):.3g} after scaling ((x - center_) / "
        f"scale_), which overflows float32, the model's float type; {rows.size} such "
        f"value(s) in {np.unique(rows).size} row(s). Remove these rows or fix their values."
    )


def check_unit_interval(X: np.ndarray, feature_names=None, likelihood: str = "") -> None:
    """Raise ValueError naming the first value outside [0, 1]."""
    outside = (X < 0.0) | (X > 1.0)
    if not outside.any():
        return
    row, j, rows = _first_marked(outside)
    raise ValueError(
        f"likelihood={likelihood!r} needs values in [0, 1], but X has {float(X[row, j])!r} at row "
        f"{row}, {column_label(j, feature_names)} ({rows.size} value(s) outside [0, 1])."
    )
