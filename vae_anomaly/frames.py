"""DataFrames of mixed types for the estimator: each column's role from its pandas dtype
and values, and the encoding into the detector's columns, through the CSV job's own
inference and encoding (``schema.py``), so the estimator and ``vae-anomaly fit`` agree.

    bool, "boolean", or only two values among true/false, yes/no, t/f, y/n, 1/0
                                           boolean      Bernoulli
    int, float                             numeric      Gaussian (scaled robustly)
    object, string, category               categorical  Categorical over the training
                                                        levels plus an unknown level
    datetime, timedelta, period, interval, complex      an error: not modelled

A text column holding numbers is numeric, as in the CSV job. A column that the job would
pass through (timestamps, an integer id, text with more than ``DEFAULT_MAX_LEVELS``
distinct values) or that has no value is an error naming it and what to do; the
``column_roles`` parameter overrides any inference (``"ignore"`` drops a column).
Missing cells (None, NaN, NA, "" and the job's other missing tokens) are NaN in the
encoded columns, which ``missing="mask"`` leaves out of the likelihood. A DataFrame
whose columns all come out numeric (and no ``column_roles``) stays an array to the
estimator, modelled as it always was (``frame_schema``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .schema import DEFAULT_MAX_LEVELS, Column, TabularSchema

# The roles an estimator honours; "passthrough" has nowhere to go.
FRAME_ROLES = ("numeric", "categorical", "boolean", "ignore")
_NOT_MODELLED = (
    "VAEAnomalyDetector models numbers, categories and booleans; drop the column, or "
    "derive numbers from it first"
)
# What to do about a column the CSV job would pass through, by the reason it gave.
_ADVICE = {
    "timestamps": "it holds timestamps. " + _NOT_MODELLED + " (e.g. the hour of day)",
    "distinct integers named like an id": (
        "it looks like an identifier (distinct integers, named like an id). Drop it, or set "
        "column_roles={{{name!r}: 'numeric'}} if it is a quantity"
    ),
    "distinct texts": (
        "it is free text ({reason}). Drop it, group its values into fewer levels, or set "
        "column_roles={{{name!r}: 'categorical'}} to model every distinct text as a level"
    ),
    "every cell is missing": (
        "every cell is missing. Drop it, or set column_roles={{{name!r}: 'ignore'}}"
    ),
}


def frame_schema(frame, column_roles) -> TabularSchema | None:
    """The roles by which the estimator encodes ``frame``; None when it takes ``frame``
    as an array, as it always did: X is not a DataFrame, or, without ``column_roles``,
    every column is numeric (int and float dtypes, or text whose values are numbers)."""
    if not isinstance(frame, pd.DataFrame):
        return None
    plain = all(
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        for dtype in frame.dtypes
    )
    if column_roles is None and plain:
        return None
    schema = infer_schema(frame, column_roles)
    if column_roles is None and all(column.role == "numeric" for column in schema.columns):
        return None
    return schema


def cells(column: pd.Series) -> np.ndarray:
    """A column as the CSV job sees its cells: objects, None where missing, and whole
    floats as ints ("1", not "1.0", as a CSV writes them), value by value."""
    values = column.to_numpy(dtype=object, na_value=None, copy=True)
    if pd.api.types.is_float_dtype(column.dtype):
        numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
        whole = np.isfinite(numbers) & (numbers == np.round(numbers)) & (np.abs(numbers) < 2**53)
        values[whole] = numbers[whole].astype(np.int64)
    return values


def _check_dtype(name, dtype) -> None:
    kinds = (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype | pd.IntervalDtype)
        or pd.api.types.is_complex_dtype(dtype)
    )
    if kinds:
        raise ValueError(
            f"X has column {name!r} of dtype {dtype}: {_NOT_MODELLED} (e.g. the hour of day "
            f"as a number), or set column_roles={{{name!r}: 'ignore'}}."
        )


def infer_schema(frame: pd.DataFrame, column_roles=None) -> TabularSchema:
    """The roles of ``frame``'s columns (``column_roles``, name -> role, override them),
    with the levels of its categorical columns: ValueError naming a column whose role
    cannot be honoured, and what to do."""
    if not all(isinstance(name, str) for name in frame.columns):
        raise ValueError(
            "VAEAnomalyDetector encodes a DataFrame's columns by name, which must be "
            f"strings; got {list(frame.columns)!r}. Rename them, e.g. "
            "X.columns = X.columns.astype(str)."
        )
    roles = dict(column_roles or {})
    for name, role in roles.items():
        if role not in FRAME_ROLES:
            raise ValueError(
                f"column_roles[{name!r}] must be one of {list(FRAME_ROLES)}, got {role!r}."
            )
    for name, dtype in frame.dtypes.items():
        if name not in roles:
            _check_dtype(name, dtype)
            if isinstance(dtype, pd.CategoricalDtype):
                roles[name] = "categorical"
            elif pd.api.types.is_bool_dtype(dtype):
                roles[name] = "boolean"
    unknown = [name for name in roles if name not in frame.columns]
    if unknown:
        raise ValueError(
            f"column_roles names columns X does not have: {unknown}; its columns are "
            f"{list(frame.columns)}."
        )
    text = pd.DataFrame({name: cells(column) for name, column in frame.items()}, dtype=object)
    schema = TabularSchema.infer(text, roles, DEFAULT_MAX_LEVELS)
    for column in schema.columns:
        set_by_user = column.name in (column_roles or {})
        if column.role == "passthrough" or (column.role == "ignore" and not set_by_user):
            raise ValueError(
                f"X has column {column.name!r}, which cannot be modelled: {_advice(column)}."
            )
        if column.role == "categorical" and not column.levels:
            raise ValueError(
                f"X has column {column.name!r} set to 'categorical' but every cell is "
                f"missing. Drop it, or set column_roles={{{column.name!r}: 'ignore'}}."
            )
    return schema


def _advice(column: Column) -> str:
    for reason, advice in _ADVICE.items():
        if reason in column.reason:
            return advice.format(name=column.name, reason=column.reason)
    return f"{column.reason}. Drop it, or set its role in column_roles"


def schema_from_roles(roles: dict, levels: dict) -> TabularSchema:
    """The schema of fitted ``feature_roles_`` and ``feature_levels_``."""
    return TabularSchema(
        [Column(name, role, tuple(levels.get(name, ()))) for name, role in roles.items()]
    )


def output_order(schema: TabularSchema) -> np.ndarray:
    """Positions, in the schema's outputs (numeric, categorical, boolean), of the modelled
    columns in the frame's order: outputs[:, order] follow the frame."""
    position = {column.name: j for j, column in enumerate(schema.modelled)}
    return np.array([position[c.name] for c in schema.columns if c.name in position], dtype=int)


def encoded_columns(schema: TabularSchema) -> list[str]:
    """The original column of each encoded column (a categorical column's one-hot group
    repeats its name)."""
    return [
        column.name
        for column in schema.modelled
        for _ in range(len(column.levels) + 1 if column.role == "categorical" else 1)
    ]


def _label(frame: pd.DataFrame, position: int):
    """The index label of a row, as a Python value (1, not np.int64(1))."""
    return frame.index[position : position + 1].tolist()[0]


def encode_frame(schema: TabularSchema, frame: pd.DataFrame, allow_missing: bool, scaling=None):
    """The frame's modelled columns encoded: float64 [n, width] in the schema's layout,
    NaN where a cell is missing, an unseen category in the unknown level.

    ValueError naming the first row that cannot be encoded (a number that does not parse,
    a value that is not a boolean, a number out of range once scaled by ``scaling``, the
    detector's (center_, scale_)), or, unless ``allow_missing``, the first missing cell."""
    values = {column.name: cells(frame[column.name]) for column in schema.modelled}
    encoded = schema.encode(values, len(frame), scaling)
    if encoded.rejected:
        position, reason = encoded.rejected[0]
        raise ValueError(
            f"X cannot be encoded at row {position} (index label {_label(frame, position)!r}): "
            f"{reason}; {len(encoded.rejected)} row(s) affected. Fix or drop these rows."
        )
    X = encoded.X
    if not allow_missing:
        missing = np.isnan(X)
        if missing.any():
            rows, columns = np.nonzero(missing)
            name = encoded_columns(schema)[columns[0]]
            raise ValueError(
                f"X has a missing value at row {rows[0]} (index label "
                f"{_label(frame, rows[0])!r}), column {name!r}; {np.unique(rows).size} row(s) "
                "have missing cells. Pass missing='mask' to leave missing cells out of the "
                "likelihood, or fill them first."
            )
    return X


def check_roles(roles, levels, names) -> str | None:
    """What is wrong with fitted ``feature_roles_`` and ``feature_levels_`` for the
    columns ``names`` (None when nothing is). The caller orders the roles as ``names``."""
    if not isinstance(roles, dict) or sorted(roles) != sorted(names):
        return f"feature_roles_ must name the columns {list(names)}, got {roles!r}"
    bad = {name: role for name, role in roles.items() if role not in FRAME_ROLES}
    if bad:
        return f"feature_roles_ has roles outside {list(FRAME_ROLES)}: {bad}"
    categorical = [name for name, role in roles.items() if role == "categorical"]
    if not isinstance(levels, dict) or sorted(levels) != sorted(categorical):
        return f"feature_levels_ must list the levels of exactly {categorical}, got {levels!r}"
    for name, column_levels in levels.items():
        fine = isinstance(column_levels, list | tuple) and all(
            isinstance(level, str) for level in column_levels
        )
        if not fine or not column_levels or len(set(column_levels)) != len(column_levels):
            return f"feature_levels_[{name!r}] must be distinct texts, got {column_levels!r}"
    if not any(role != "ignore" for role in roles.values()):
        return "feature_roles_ models no column"
    return None
