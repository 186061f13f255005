"""Column roles of a CSV and the encoding of its text cells into the detector's columns.

Roles:

    numeric       float; modelled by a Gaussian (scaled robustly inside the detector)
    categorical   one-hot over the training levels plus an explicit unknown level;
                  modelled by a Categorical (one output per column)
    boolean       true/false, yes/no, t/f, y/n, 1/0; modelled by a Bernoulli
    passthrough   carried to the output untouched (ids, timestamps, free text)
    ignore        dropped

Missing cells (empty, NA, N/A, NaN, null, None, ?) become NaN, which the detector masks
out of the likelihood. The encoded columns are ordered numeric, categorical groups,
boolean, matching ``layout()``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .validation import SCALED_LIMIT, fit_scaling, out_of_range

ROLES = ("numeric", "categorical", "boolean", "passthrough", "ignore")
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
TRUE_TOKENS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_TOKENS = frozenset({"false", "f", "no", "n", "0"})
UNKNOWN_LEVEL = "<unknown>"
# Inference: a text column with more distinct values than this is passed through.
DEFAULT_MAX_LEVELS = 50
# Inference: a column is numeric when at least this share of its present cells parse.
NUMERIC_SHARE = 0.95


@dataclass(frozen=True)
class Column:
    name: str
    role: str
    levels: tuple[str, ...] = ()  # categorical: training levels, most frequent first
    reason: str = ""  # how the role was chosen, for the inference report


@dataclass
class Encoded:
    """Encoded rows of one chunk: X [n_kept, width] and the rows that could not be encoded."""

    X: np.ndarray
    kept: np.ndarray  # positions (in the chunk) of the rows in X
    rejected: list[tuple[int, str]]  # (position, reason)
    unknown: dict[str, int] = field(default_factory=dict)  # column -> unseen-level cells


def _normalised(values: np.ndarray) -> np.ndarray:
    """Cells stripped and lower-cased (each distinct cell normalised once)."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    normal = np.array([str(u).strip().lower() for u in uniques], dtype=object)
    return normal[codes] if len(codes) else np.empty(0, dtype=object)


def _missing(values: np.ndarray) -> np.ndarray:
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    token = np.array([str(u).strip().lower() in MISSING_TOKENS for u in uniques], dtype=bool)
    return token[codes] if len(codes) else np.zeros(0, dtype=bool)


def _parse_numbers(values: np.ndarray) -> np.ndarray:
    """Floats; NaN where a cell does not parse (the caller tells missing from bad)."""
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(
        np.float64, copy=True
    )


def infer_column(name: str, values: np.ndarray, max_levels: int) -> Column:
    """The role of one column from its text cells (see the module docstring)."""
    present = values[~_missing(values)]
    if present.size == 0:
        return Column(name, "ignore", reason="every cell is missing")
    tokens = set(np.unique(_normalised(present)).tolist())
    if tokens <= TRUE_TOKENS | FALSE_TOKENS and len(tokens) <= 2:
        return Column(name, "boolean", reason=f"values {sorted(tokens)}")
    numbers = _parse_numbers(present)
    parsed = np.isfinite(numbers)
    if parsed.mean() >= NUMERIC_SHARE:
        integral = np.all(numbers[parsed] == np.round(numbers[parsed]))
        unique = np.unique(numbers[parsed]).size == parsed.sum()
        if integral and unique and name.lower().rstrip("_").endswith("id"):
            return Column(name, "passthrough", reason="distinct integers named like an id")
        return Column(name, "numeric", reason=f"{parsed.mean():.1%} of present cells are numbers")
    if _looks_like_time(present):  # before the level count: timestamps are mostly distinct
        return Column(name, "passthrough", reason="timestamps")
    counts = level_counts(present)
    if counts.size > max_levels:
        return Column(name, "passthrough", reason=f"{counts.size} distinct texts > {max_levels}")
    levels = tuple(str(level) for level in counts.index)
    return Column(name, "categorical", levels=levels, reason=f"{counts.size} levels")


def level_counts(present: np.ndarray) -> pd.Series:
    """Rows per level of a categorical column's present cells, most frequent first. A
    level is the cell without the spaces around it, as numbers, flags and column names
    are read: " pump" and "pump" are one machine type."""
    return pd.Series(present, dtype=object).astype(str).str.strip().value_counts(sort=True)


def _looks_like_time(values: np.ndarray) -> bool:
    sample = pd.Series(values[:200], dtype=object)
    parsed = pd.to_datetime(sample, errors="coerce", format="ISO8601")
    return bool(parsed.notna().mean() >= NUMERIC_SHARE)


# A plain decimal number: Arrow's cast parses these to the same float as pandas.
_PLAIN_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def as_text(values):
    """Text cells as an Arrow string array (a NumPy array of str or of objects is
    converted); a null or None is a missing cell, the empty text of a CSV."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        text = values.cast(pa.string()) if values.type != pa.string() else values
    else:
        values = np.asarray(values, dtype=object)
        try:
            text = pa.array(values, type=pa.string())
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            # Cells that are not text (a DataFrame's numbers and booleans, see
            # ``frames.cells``): the text a CSV would hold, str(v), which parses back to
            # the same float.
            strings = [None if v is None else str(v) for v in values]
            text = pa.array(np.array(strings, dtype=object), type=pa.string())
    return pc.fill_null(text, "") if text.null_count else text


def _objects(text, rows: np.ndarray) -> np.ndarray:
    """The cells at ``rows`` of an Arrow string array, as a NumPy array of str."""
    return np.array(text.take(rows).to_pylist(), dtype=object)


def _by_unique(text, function, dtype) -> np.ndarray:
    """``function`` (str -> value) of each cell, called once per distinct cell."""
    encoded = text.dictionary_encode()
    per_unique = np.array([function(u) for u in encoded.dictionary.to_pylist()], dtype=dtype)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    return per_unique[indices] if len(indices) else np.empty(0, dtype=dtype)


def _arrow_numbers(text) -> np.ndarray:
    """Floats as ``_parse_numbers`` gives them: Arrow's cast of the column where it
    parses every cell (the same floats as pandas), else of its plain decimal numbers,
    with pandas for the other cells."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False).copy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    plain = pc.match_substring_regex(text, _PLAIN_NUMBER).to_numpy(zero_copy_only=False)
    numbers = np.empty(len(text))
    numbers[plain] = pc.cast(text.filter(pa.array(plain)), pa.float64()).to_numpy(
        zero_copy_only=False
    )
    other = np.flatnonzero(~plain)
    numbers[other] = _parse_numbers(_objects(text, other))
    return numbers


def _encode_numeric(values):
    """([n, 1] floats, NaN where missing or bad; [(problem, rows)])."""
    text = as_text(values)
    numbers = _arrow_numbers(text)
    failed = np.flatnonzero(np.isnan(numbers))  # missing or bad: tell them apart (few cells)
    bad = np.zeros(len(text), dtype=bool)
    bad[failed] = ~_missing(_objects(text, failed))
    infinite = np.isinf(numbers)
    numbers[bad | infinite] = np.nan
    return numbers[:, None], [("not a number", bad), ("infinite value", infinite)]


def _boolean_code(cell: str) -> float:
    """1 or 0 for a boolean token, NaN for a missing cell, -1 for anything else."""
    token = cell.strip().lower()
    if token in TRUE_TOKENS:
        return 1.0
    if token in FALSE_TOKENS:
        return 0.0
    return np.nan if token in MISSING_TOKENS else -1.0


def _encode_boolean(values):
    """([n, 1] 0/1, NaN where missing or bad; [(problem, rows)])."""
    flags = _by_unique(as_text(values), _boolean_code, np.float64)
    bad = flags == -1.0
    flags[bad] = np.nan
    return flags[:, None], [("not a boolean (true/false, yes/no, 1/0)", bad)]


def _encode_categorical(values, levels):
    """([n, levels + 1] one-hot, NaN rows where missing; [], number of unseen cells).

    The last level stands for every value not seen in training."""
    index = {level: code for code, level in enumerate(levels)}
    other, missing_code = len(levels), len(levels) + 1

    def code(cell: str) -> int:
        if cell in index:  # as written (a level of a model fitted before levels were stripped)
            return index[cell]
        stripped = cell.strip()
        if stripped in index:
            return index[stripped]
        return missing_code if stripped.lower() in MISSING_TOKENS else other

    codes = _by_unique(as_text(values), code, np.int64)
    missing = codes == missing_code
    codes[missing] = other
    one_hot = np.eye(len(levels) + 1)[codes]
    one_hot[missing] = np.nan
    return one_hot, [], int(np.count_nonzero(codes == other) - missing.sum())


def _cell(values, row: int) -> str:
    """One text cell of a NumPy or Arrow column."""
    cell = values[int(row)]
    return cell.as_py() if hasattr(cell, "as_py") else cell


def _column_from_dict(index: int, entry) -> Column:
    """One column entry of a schema document, checked."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ValueError(f"Schema column {index}: needs a 'name' (text), got {entry!r}.")
    name, role, levels = entry["name"], entry.get("role"), entry.get("levels", [])
    if role not in ROLES:
        raise ValueError(f"Column {name!r}: role must be one of {list(ROLES)}, got {role!r}.")
    if not isinstance(levels, list) or not all(isinstance(level, str) for level in levels):
        raise ValueError(f"Column {name!r}: levels must be a list of texts, got {levels!r}.")
    if role == "categorical" and (not levels or len(set(levels)) != len(levels)):
        raise ValueError(
            f"Column {name!r}: a categorical column needs distinct levels, got {levels!r}."
        )
    if role != "categorical" and levels:
        raise ValueError(
            f"Column {name!r}: role {role!r} takes no levels (only 'categorical' does), "
            f"got {len(levels)}."
        )
    reason = entry.get("reason", "")
    return Column(name, role, tuple(levels), reason if isinstance(reason, str) else str(reason))


class TabularSchema:
    """Roles of the columns of a training CSV, and the encoding they imply."""

    def __init__(self, columns: list[Column]):
        self.columns = list(columns)
        names = [column.name for column in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"Duplicate column names: {names}.")
        for column in self.columns:
            if column.role not in ROLES:
                raise ValueError(
                    f"Column {column.name!r}: role must be one of {list(ROLES)}, "
                    f"got {column.role!r}."
                )
        if not self.modelled:
            raise ValueError(
                "No column is modelled: every column is passthrough or ignored "
                f"({[(c.name, c.role, c.reason) for c in self.columns]})."
            )

    @classmethod
    def infer(cls, frame: pd.DataFrame, roles: dict | None = None, max_levels=DEFAULT_MAX_LEVELS):
        """Infer roles from a frame of text cells; ``roles`` (name -> role) override them."""
        roles = dict(roles or {})
        unknown = set(roles) - set(frame.columns)
        if unknown:
            raise ValueError(
                f"Roles were given for columns the data does not have: {sorted(unknown)}; "
                f"its columns are {list(frame.columns)}."
            )
        columns = []
        for name in frame.columns:
            values = frame[name].to_numpy(dtype=object)
            if name not in roles:
                columns.append(infer_column(name, values, max_levels))
                continue
            role = roles[name]
            if role not in ROLES:
                raise ValueError(f"Column {name!r}: role must be one of {ROLES}, got {role!r}.")
            levels = ()
            if role == "categorical":
                present = values[~_missing(values)]
                levels = tuple(str(v) for v in level_counts(present).index)
            columns.append(Column(name, role, levels, reason="set in the config"))
        return cls(columns)

    # ------------------------------------------------------------------ structure

    def by_role(self, role: str) -> list[Column]:
        return [column for column in self.columns if column.role == role]

    @property
    def modelled(self) -> list[Column]:
        """Modelled columns in encoded order: numeric, categorical, boolean."""
        return self.by_role("numeric") + self.by_role("categorical") + self.by_role("boolean")

    @property
    def required(self) -> list[str]:
        """Columns a scoring file must have: every modelled and passthrough column."""
        return [c.name for c in self.columns if c.role != "ignore"]

    def layout(self) -> tuple[tuple[str, int], ...]:
        """The detector's likelihood layout (``layout.py``)."""
        blocks = []
        if self.by_role("numeric"):
            blocks.append(("gaussian", len(self.by_role("numeric"))))
        blocks += [("categorical", len(c.levels) + 1) for c in self.by_role("categorical")]
        if self.by_role("boolean"):
            blocks.append(("bernoulli", len(self.by_role("boolean"))))
        return tuple(blocks)

    @property
    def encoded_names(self) -> list[str]:
        """The name of each encoded column (of ``encode(...).X``): a numeric or boolean
        column's name, ``name=level`` for each level of a categorical column and
        ``name=<unseen>`` for its unknown level."""
        names = [c.name for c in self.by_role("numeric")]
        for column in self.by_role("categorical"):
            names += [f"{column.name}={level}" for level in column.levels]
            names.append(f"{column.name}=<unseen>")
        return names + [c.name for c in self.by_role("boolean")]

    @property
    def output_names(self) -> list[str]:
        """Original column per output of ``score_features``."""
        return [column.name for column in self.modelled]

    # ------------------------------------------------------------------ encoding

    def encode(
        self, cells: dict[str, np.ndarray], n_rows: int, scaling=None, reject_empty: bool = False
    ) -> Encoded:
        """Encode text cells (column name -> [n_rows] str, a NumPy array or an Arrow string
        array); bad rows are rejected, not fixed. Whole columns are converted at once (Arrow
        compute and NumPy); a text is looked at in Python once per distinct cell, or for
        the few cells that are not plain numbers.

        A numeric value whose scaled form u = (x - center) / scale the model cannot
        score (``validation.SCALED_LIMIT``: it would overflow float32) is rejected too.
        ``scaling`` is the fitted detector's ``(center_, scale_)`` over the encoded
        columns; without it (at fit, before the detector learns one), the detector's
        robust scaling of these rows. ``reject_empty`` (the batch jobs): a row with no
        value in any modelled column is rejected too (the estimator scores it by its KL
        alone under ``missing="mask"``, as it does an array row of NaN).
        """
        parts, reasons, unknown = [], {}, {}
        for column in self.modelled:
            values = cells[column.name]
            if column.role == "numeric":
                encoded, problems = _encode_numeric(values)
            elif column.role == "boolean":
                encoded, problems = _encode_boolean(values)
            else:
                encoded, problems, unseen = _encode_categorical(values, column.levels)
                if unseen:
                    unknown[column.name] = unseen
            for kind, rows in problems:
                for row in np.flatnonzero(rows):
                    reasons.setdefault(
                        int(row), f"{kind}: column {column.name!r} = {_cell(values, row)!r}"
                    )
            parts.append(encoded)
        X = np.hstack(parts) if parts else np.empty((n_rows, 0))
        self._reject_out_of_range(X, cells, scaling, reasons)
        if reject_empty and X.shape[1]:  # ",,,," in a file: scored, it would look most normal
            for row in np.flatnonzero(np.isnan(X).all(axis=1)):
                reasons.setdefault(
                    int(row), "no value in any modelled column (every one is empty or missing)"
                )
        bad_rows = sorted(reasons)
        is_kept = np.ones(n_rows, dtype=bool)
        is_kept[bad_rows] = False
        kept = np.flatnonzero(is_kept)
        X = X if len(kept) == n_rows else X[kept]  # no copy when every row is kept
        return Encoded(X, kept, [(row, reasons[row]) for row in bad_rows], unknown)

    def _reject_out_of_range(self, X, cells, scaling, reasons: dict) -> None:
        """Add a reason for each row with a numeric value out of range once scaled."""
        numeric = self.by_role("numeric")  # the first encoded columns
        if not numeric:
            return
        values = X[:, : len(numeric)]
        if scaling is None:
            center, scale = fit_scaling(values, "robust")
        else:
            center, scale = (np.asarray(a, dtype=np.float64)[: len(numeric)] for a in scaling)
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = (values - center) / scale
        for row, j in zip(*np.nonzero(out_of_range(scaled, SCALED_LIMIT)), strict=True):
            name = numeric[j].name
            reasons.setdefault(
                int(row),
                f"value out of range: column {name!r} = {_cell(cells[name], row)!r} overflows "
                "float32 after scaling",
            )

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict:
        return {
            "columns": [asdict(column) | {"levels": list(column.levels)} for column in self.columns]
        }

    @classmethod
    def from_dict(cls, data: dict) -> TabularSchema:
        """The schema written by ``to_dict``; ValueError names the column of a bad entry:
        an unknown role, or levels that do not fit the role (a categorical column needs
        distinct text levels; other roles have none)."""
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise ValueError("A schema is a mapping with a list of 'columns'.")
        return cls([_column_from_dict(index, entry) for index, entry in enumerate(data["columns"])])

    def report(self) -> list[dict]:
        """The inference report: name, role, reason (and level count) per column."""
        return [
            {"column": c.name, "role": c.role, "reason": c.reason}
            | ({"levels": len(c.levels)} if c.role == "categorical" else {})
            for c in self.columns
        ]
