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
from scipy import sparse


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


def _marked_cells(X, mark) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, columns, values) of the cells where ``mark(values, columns)`` is true, in
    row-major order; of a sparse X only the stored cells are tested (the others are 0)."""
    if sparse.issparse(X):
        cells = sparse.coo_array(X)
        marked = mark(cells.data, cells.col)
        rows, columns, values = cells.row[marked], cells.col[marked], cells.data[marked]
        order = np.lexsort((columns, rows))
        return rows[order].astype(np.int64), columns[order].astype(np.int64), values[order]
    rows, columns = np.nonzero(mark(X, np.arange(X.shape[1])))
    return rows, columns, X[rows, columns]


def check_finite(X: np.ndarray, feature_names=None, name: str = "X", allow_nan=False) -> None:
    """Raise ValueError naming the first NaN or infinity by row and column (NaN may be
    allowed); X may be a SciPy sparse matrix."""
    rows, columns, values = _marked_cells(
        X, lambda v, _: ~(np.isfinite(v) | (np.isnan(v) if allow_nan else False))
    )
    if rows.size == 0:
        return
    row, j = int(rows[0]), int(columns[0])
    kind = "NaN" if np.isnan(values[0]) else "infinity"
    raise ValueError(
        f"Input {name} contains {kind} at row {row}, {column_label(j, feature_names)}; "
        f"{rows.size} non-finite value(s) in {np.unique(rows).size} row(s). "
        "Remove or impute them before fitting or scoring."
    )


# Dense float64 values of one block of a sparse X made dense: 16 MiB, the scoring budget.
DENSE_BLOCK_VALUES = 2 * 2**20


def column_blocks(n_rows: int, n_columns: int) -> list[np.ndarray]:
    """Column indices of blocks of at most DENSE_BLOCK_VALUES values (one column at least).

    A block has two columns or more when X has two: NumPy reduces a one-column array
    along its contiguous axis in another order (pairwise), which changes the last bits of
    a mean, so a block must be laid out as the full matrix is."""
    width = max(2, DENSE_BLOCK_VALUES // max(1, n_rows))
    count = max(1, min(n_columns // 2, -(-n_columns // width)))
    return np.array_split(np.arange(n_columns), count)


def fit_scaling(X: np.ndarray, scaling: str | None, columns=None) -> tuple[np.ndarray, np.ndarray]:
    """(center, scale) per column, ignoring NaN; a constant, empty or unselected column
    (``columns`` is a boolean mask of the columns to scale) gets center 0 and scale 1.
    A SciPy sparse X is densified a block of columns at a time (``sparse_rows``)."""
    n_features = X.shape[1]
    columns = np.ones(n_features, dtype=bool) if columns is None else np.asarray(columns)
    if sparse.issparse(X):
        parts = [
            fit_scaling(X[:, block].toarray(), scaling, columns[block])
            for block in column_blocks(*X.shape)
        ]
        return tuple(np.concatenate(part) for part in zip(*parts, strict=True))
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


def check_in_range(
    X: np.ndarray, U: np.ndarray, feature_names=None, name: str = "X", first_row: int = 0
) -> None:
    """Raise ValueError naming the first value of X whose scaled form U overflows float32
    (X a block of the caller's rows starting at ``first_row``: the row is named in those)."""
    bad = out_of_range(U)
    if not bad.any():
        return
    row, j, rows = _first_marked(bad)
    raise ValueError(
        f"Input {name} has a value out of range at row {first_row + row}, "
        f"{column_label(j, feature_names)}: "
        f"{float(X[row, j])!r} is {float(U[row, j]):.3g} after scaling ((x - center_) / "
        f"scale_), which overflows float32, the model's float type; {rows.size} such "
        f"value(s) in {np.unique(rows).size} row(s). Remove these rows or fix their values."
    )


def check_unit_interval(
    X: np.ndarray, feature_names=None, likelihood: str = "", columns=None
) -> None:
    """Raise ValueError naming the first value outside [0, 1] (of the ``columns``, a
    boolean mask, when given); X may be a SciPy sparse matrix."""
    checked = np.ones(X.shape[1], dtype=bool) if columns is None else np.asarray(columns)
    rows, columns_, values = _marked_cells(X, lambda v, j: ((v < 0.0) | (v > 1.0)) & checked[j])
    if rows.size == 0:
        return
    row, j = int(rows[0]), int(columns_[0])
    raise ValueError(
        f"likelihood={likelihood!r} needs values in [0, 1], but X has {float(values[0])!r} at row "
        f"{row}, {column_label(j, feature_names)} ({rows.size} value(s) outside [0, 1])."
    )
