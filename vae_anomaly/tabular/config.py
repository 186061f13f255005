"""Settings of the tabular jobs, from a TOML file (``pipelines/tabular.toml``) and flags.

    [columns]    roles = {name = role, ...}, max_levels, id_column, delimiter
    [model]      any VAEAnomalyDetector parameter (random_state, epochs, ...)
    [threshold]  fpr, calibration_fraction
    [score]      chunk_rows, top_columns, format ("csv" or "parquet")

Unknown sections or keys are errors that name the file and the key: a typo must not
be silently ignored. Command-line flags override the file (``with_overrides``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..settings_file import check_model_params, read_sections
from .schema import DEFAULT_MAX_LEVELS, ROLES

FORMATS = ("csv", "parquet")
# Parameters the fit job sets itself from the schema and [threshold].
_JOB_OWNED = {"likelihood", "missing", "calibration_fraction", "fpr"}


@dataclass(frozen=True)
class JobConfig:
    roles: dict = field(default_factory=dict)
    max_levels: int = DEFAULT_MAX_LEVELS
    id_column: str | None = None
    delimiter: str = ","
    model: dict = field(default_factory=lambda: {"random_state": 0})
    fpr: float = 0.01
    calibration_fraction: float = 0.2
    chunk_rows: int = 20_000
    top_columns: int = 3
    format: str = "csv"

    def with_overrides(self, **values) -> JobConfig:
        """A copy with the non-None values replaced (``model`` entries are merged)."""
        values = {key: value for key, value in values.items() if value is not None}
        model = dict(self.model, **values.pop("model", {}))
        return _checked(dataclasses.replace(self, model=model, **values), "command line")


_SECTIONS = {
    "columns": {"roles", "max_levels", "id_column", "delimiter"},
    "model": None,  # checked against the detector's parameters
    "threshold": {"fpr", "calibration_fraction"},
    "score": {"chunk_rows", "top_columns", "format"},
}


def load_config(path=None) -> JobConfig:
    """The settings of ``path`` (TOML), or the defaults when path is None."""
    if path is None:
        return JobConfig()
    values = read_sections(path, _SECTIONS)
    if "model" in values:
        values["model"] = dict(JobConfig().model, **values["model"])
    return _checked(JobConfig(**values), str(path))


def _checked(config: JobConfig, source: str) -> JobConfig:
    for name, role in config.roles.items():
        if role not in ROLES:
            raise ValueError(
                f"{source}: role of column {name!r} must be one of {ROLES}, got {role!r}."
            )
    check_model_params(config.model, source, _JOB_OWNED, "from the columns and [threshold]")
    if config.format not in FORMATS:
        raise ValueError(f"{source}: format must be one of {FORMATS}, got {config.format!r}.")
    for key in ("chunk_rows", "max_levels"):
        value = getattr(config, key)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{source}: {key} must be an integer >= 1, got {value!r}.")
    if not isinstance(config.top_columns, int) or config.top_columns < 0:
        raise ValueError(f"{source}: top_columns must be an integer >= 0.")
    if len(config.delimiter) != 1:
        raise ValueError(f"{source}: delimiter must be one character, got {config.delimiter!r}.")
    return config
