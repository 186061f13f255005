"""Input checks whose errors say what is wrong and where (row, column).

scikit-learn's ``validate_data`` does the shape, dtype and feature-name checks; these
helpers add the position of the first offending cell, which sklearn does not report.
"""

from __future__ import annotations

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


def check_unit_interval(X: np.ndarray, feature_names=None, likelihood: str = "") -> None:
    """Raise ValueError naming the first value outside [0, 1]."""
    outside = (X < 0.0) | (X > 1.0)
    if not outside.any():
        return
    rows, columns = np.nonzero(outside)
    row, j = int(rows[0]), int(columns[0])
    raise ValueError(
        f"likelihood={likelihood!r} needs values in [0, 1], but X has {float(X[row, j])!r} at row "
        f"{row}, {column_label(j, feature_names)} ({rows.size} value(s) outside [0, 1])."
    )
