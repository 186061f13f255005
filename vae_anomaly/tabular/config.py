"""Settings of the tabular jobs, from a TOML file (``pipelines/tabular.toml``) and flags.

    [columns]    roles = {name = role, ...}, max_levels, id_column, delimiter
    [model]      any VAEAnomalyDetector parameter (random_state, epochs, ...)
    [threshold]  fpr, calibration_fraction
    [training]   strategy ("default", "mirrored" or "multi-worker": ``jobs.strategy``)
    [score]      chunk_rows, top_columns, format ("csv" or "parquet")
    [fit]        in_memory_mb: inputs up to this size are fitted in memory, larger ones
                 are streamed (``fit_stream``); 0 streams every input

Unknown sections or keys are errors that name the file and the key: a typo must not
be silently ignored. Command-line flags override the file (``with_overrides``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..jobs.settings import JobSettings, setting
from ..jobs.strategy import STRATEGIES
from ..schema import DEFAULT_MAX_LEVELS, ROLES

FORMATS = ("csv", "parquet")
# The columns the score job writes after the pass-through columns of each output row.
SOURCE_COLUMNS = ("source_file", "source_line")
SCORE_COLUMNS = ("anomaly_score", "p_value", "is_anomaly", "top_columns")


def check_passthrough_names(schema, source) -> None:
    """ValueError naming ``source`` when a pass-through column has the name of a column
    the score job writes (a kept label column named is_anomaly crashed the job, and one
    named source_file gave the output two columns of that name)."""
    written = SOURCE_COLUMNS + SCORE_COLUMNS
    clash = [c.name for c in schema.by_role("passthrough") if c.name in written]
    if clash:
        raise ValueError(
            f"{source}: the pass-through column(s) {clash} have the name of a column the "
            f"score job writes {list(written)}; rename them in the data, or give them the "
            'role "ignore" in [columns] roles.'
        )


@dataclass(frozen=True)
class JobConfig(JobSettings):
    roles: dict = setting("columns", factory=dict)
    max_levels: int = setting("columns", DEFAULT_MAX_LEVELS, at_least=1)
    id_column: str | None = setting("columns", None)
    delimiter: str = setting("columns", ",")
    model: dict = setting("model", factory=lambda: {"random_state": 0})
    fpr: float = setting("threshold", 0.01, fraction="open")
    calibration_fraction: float = setting("threshold", 0.2, fraction="from_zero")
    strategy: str = setting("training", "default", choices=STRATEGIES)
    chunk_rows: int = setting("score", 50_000, at_least=1)
    top_columns: int = setting("score", 3, at_least=0)
    format: str = setting("score", "csv", choices=FORMATS)
    in_memory_mb: int = setting("fit", 16, at_least=0)

    # Parameters the fit job sets itself from the schema ([columns] roles) and [threshold].
    JOB_OWNED = frozenset({"likelihood", "column_roles", "missing", "calibration_fraction", "fpr"})
    JOB_OWNED_FROM = "from the columns and [threshold]"
    SCORING_FIELDS = frozenset({"id_column", "delimiter", "chunk_rows", "top_columns", "format"})

    def check(self, source: str) -> None:
        if not isinstance(self.roles, dict):
            raise ValueError(
                f"{source}: roles must be a table of column = role, got {self.roles!r}."
            )
        if self.id_column is not None and not isinstance(self.id_column, str):
            raise ValueError(
                f"{source}: id_column must be a column name (text), got {self.id_column!r}."
            )
        for name, role in self.roles.items():
            if role not in ROLES:
                raise ValueError(
                    f"{source}: role of column {name!r} must be one of {ROLES}, got {role!r}."
                )
        if not isinstance(self.delimiter, str) or len(self.delimiter) != 1:
            raise ValueError(f"{source}: delimiter must be one character, got {self.delimiter!r}.")


def load_config(path=None) -> JobConfig:
    """The settings of ``path`` (TOML), or the defaults when path is None."""
    return JobConfig.load(path)
