"""The fit job's streamed path: training files larger than ``[fit] in_memory_mb``.

Two reads of the files, chunk by chunk (``reader.plan_chunks``/``read_chunk``), and
memory that does not grow with them:

1. **Profile.** Every chunk is split into cells; a uniform random sample of
   ``SAMPLE_ROWS`` of the lines that split (a reservoir, Vitter's algorithm R, seeded by
   ``[model] random_state``) is kept, with the exact counts of every text column's
   distinct values up to ``max_levels`` + 1 (of a column set ``categorical`` in the
   config, all of them). The column roles are inferred from the sample
   (``TabularSchema.infer``, the rules of the in-memory path); a categorical column's
   levels are its exact counts over every line, most frequent first (ties in the order
   first seen), and a column the sample calls categorical with more than ``max_levels``
   distinct values in the whole file is passed through, as in memory.
2. **Encode.** Every chunk is encoded (``TabularSchema.encode``, out-of-range values
   judged against the sample's robust scaling); its bad lines go to the rejects file in
   line order, and its rows, with their position keys, to
   ``VAEAnomalyDetector._fit_stream``, which holds out calibration and validation rows by
   position, stores the training rows on disk and trains on them through ``tf.data``.

The scaling (median and IQR per numeric column) is learned on the sample. Inputs with at
most ``SAMPLE_ROWS`` lines that split are sampled whole: roles, levels and scaling are
then exactly those of the in-memory path. Above, a median and an IQR from 100,000 rows
are within about 0.4% of a standard deviation of the whole file's (the standard error of
a sample median is 1.25 sigma / sqrt(n)); the model learns in scaled units and scores
carry the scaling's log-Jacobian, so such a shift does not change what it learns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..jobs.rejects import RejectWriter
from ..schema import MISSING_TOKENS, Column, TabularSchema
from ..streaming import position_keys
from ..validation import fit_scaling
from .config import JobConfig, check_passthrough_names
from .reader import plan_chunks, read_chunk

# Lines sampled for the roles and the scaling. 100,000 estimates a role's 95% numeric
# share to within 0.2%, sees every level more frequent than 1 in 10,000 with probability
# 1 - e^-10, and holds about 80 MB of text cells for 11 columns.
SAMPLE_ROWS = 100_000
# The longest chunk a streamed fit reads: ``[score] chunk_rows`` when smaller. Its peak
# memory was measured at 20,000 lines (1.31-1.34 GB for a 2M-row file, against 1.42-1.44
# GB at 50,000: benchmarks/README.md, "Fitting large files").
FIT_CHUNK_ROWS = 20_000


class Profile:
    """What the first read of the files learns: a row sample and the columns' levels."""

    def __init__(self, header: list[str], size: int, seed, uncapped=frozenset(), cap=51):
        self.header, self.size = header, int(size)
        self.rng = np.random.default_rng(seed)
        self.cells = {name: np.empty(self.size, dtype=object) for name in header}
        self.keys = np.zeros(self.size, dtype=np.uint64)
        self.filled = self.seen = 0
        # name -> {value: count} in the order first seen; None once over the cap
        self.counts: dict[str, dict | None] = {name: {} for name in header}
        self.uncapped, self.cap = frozenset(uncapped), int(cap)

    def add(self, cells: dict[str, np.ndarray], keys: np.ndarray) -> None:
        """One chunk's rows (cells by column, position keys)."""
        n = len(keys)
        take = min(self.size - self.filled, n)  # the reservoir is filling: keep them
        slots, rows = np.arange(self.filled, self.filled + take), np.arange(take)
        if take < n:  # algorithm R: row t (0-based) replaces slot j ~ U{0..t} if j < size
            later = np.arange(take, n)
            j = self.rng.integers(0, self.seen + later + 1)
            kept = j < self.size
            j, later = j[kept], later[kept]
            # Within a chunk a later row wins a slot drawn twice, as in the sequential rule.
            last = len(j) - 1 - np.unique(j[::-1], return_index=True)[1]
            slots = np.concatenate([slots, j[last]])
            rows = np.concatenate([rows, later[last]])
        for name in self.header:
            self.cells[name][slots] = cells[name][rows]
        self.keys[slots] = keys[rows]
        self.filled += take
        self.seen += n
        for name in self.header:
            self._count(name, cells[name])

    def _count(self, name: str, values: np.ndarray) -> None:
        counts = self.counts[name]
        if counts is None:
            return
        codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
        tallies = np.bincount(codes, minlength=len(uniques))
        for value, tally in zip(uniques, tallies, strict=True):
            level = str(value).strip()  # as schema.level_counts counts levels
            if level.lower() not in MISSING_TOKENS:
                counts[level] = counts.get(level, 0) + int(tally)
        if name not in self.uncapped and len(counts) > self.cap:
            self.counts[name] = None

    def sample(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The sampled rows in file order: (cells by column, position keys)."""
        order = np.argsort(self.keys[: self.filled], kind="stable")
        cells = {name: values[: self.filled][order] for name, values in self.cells.items()}
        return cells, self.keys[: self.filled][order]

    def levels(self, name: str) -> tuple[str, ...] | None:
        """Every distinct present value, most frequent first; None when over the cap."""
        counts = self.counts[name]
        if counts is None:
            return None
        values = list(counts)
        order = np.argsort(-np.array([counts[v] for v in values], dtype=np.int64), kind="stable")
        return tuple(str(values[i]) for i in order)


def read_profile(files, header: list[str], config: JobConfig, sample_rows: int) -> Profile:
    """First read: every chunk of every (path, plans) of ``files``, into a Profile."""
    configured = {name for name, role in config.roles.items() if role == "categorical"}
    seed = config.model.get("random_state")
    profile = Profile(
        header,
        sample_rows,
        seed if isinstance(seed, int) else None,
        uncapped=configured,
        cap=config.max_levels + 1,
    )
    for file_index, (_, plans) in enumerate(files):
        for plan in plans:
            chunk = read_chunk(plan, config.delimiter)
            profile.add(chunk.cells, position_keys(file_index, chunk.lines))
    return profile


def streamed_schema(profile: Profile, config: JobConfig) -> TabularSchema:
    """Roles inferred from the sample; categorical levels counted over every line."""
    cells, _ = profile.sample()
    inferred = TabularSchema.infer(pd.DataFrame(cells), config.roles, config.max_levels)
    columns = []
    for column in inferred.columns:
        if column.role == "categorical":
            levels = profile.levels(column.name)
            if levels is None:
                column = Column(
                    column.name,
                    "passthrough",
                    reason=f"more than {config.max_levels} distinct texts in the whole input",
                )
            else:
                reason = column.reason if column.name in config.roles else f"{len(levels)} levels"
                column = Column(column.name, "categorical", levels, reason)
        columns.append(column)
    return TabularSchema(columns)


def fit_streamed(
    files,
    header: list[str],
    config: JobConfig,
    rejects: RejectWriter,
    make_detector,
    sample_rows: int | None = None,
):
    """Profile, infer the schema, then stream the encoded rows into
    ``VAEAnomalyDetector._fit_stream``; bad lines go to ``rejects`` in line order.

    ``files`` is [(path, chunk plans)] (``plans_of``); ``make_detector(schema)`` returns
    the unfitted detector; ``sample_rows`` defaults to ``SAMPLE_ROWS``. Returns (fitted
    detector, schema, the encoded sample [m, d])."""
    profile = read_profile(files, header, config, sample_rows or SAMPLE_ROWS)
    if profile.filled == 0:
        raise ValueError(f"{', '.join(str(p) for p, _ in files)}: no usable data rows.")
    schema = streamed_schema(profile, config)
    check_passthrough_names(schema, ", ".join(str(p) for p, _ in files))
    cells, keys = profile.sample()
    (center, scale), sample = range_scaling(schema, cells, len(keys))
    if len(sample.X) == 0:
        raise ValueError("Every sampled training row was rejected; see the rejects file.")
    detector = make_detector(schema)

    def chunks():
        for file_index, (path, plans) in enumerate(files):
            for plan in plans:
                chunk = read_chunk(plan, config.delimiter)
                encoded = schema.encode(
                    chunk.cells, len(chunk.lines), scaling=(center, scale), reject_empty=True
                )
                rejects.add_in_order(
                    [path],
                    [(0, *reject) for reject in chunk.rejected],
                    [
                        (0, int(chunk.lines[row]), reason, chunk.raw[row])
                        for row, reason in encoded.rejected
                    ],
                )
                yield encoded.X, position_keys(file_index, chunk.lines[encoded.kept])

    detector._fit_stream(sample.X, keys[sample.kept], chunks(), n_rows=profile.seen)
    return detector, schema, sample.X


def plans_of(paths, config: JobConfig):
    """[(path, chunk plans)] of the input files: one scan of each file's bytes, in chunks
    of ``config.chunk_rows`` lines, at most ``FIT_CHUNK_ROWS``."""
    rows = min(config.chunk_rows, FIT_CHUNK_ROWS)
    return [(path, plan_chunks(path, rows, config.delimiter)) for path in paths]


def range_scaling(schema: TabularSchema, sample_cells: dict, n: int):
    """The robust (center, scale) of the sample's encoded rows: what ``encode`` judges
    out-of-range values by (the in-memory path uses all rows), and the encoded sample."""
    encoded = schema.encode(sample_cells, n, reject_empty=True)
    return fit_scaling(encoded.X, "robust"), encoded
