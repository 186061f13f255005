"""``vae-anomaly fit``: training CSV(s) -> column roles -> fitted, calibrated detector.

The model directory holds

    DIR/detector/     the saved VAEAnomalyDetector (model.keras + manifest.json)
    DIR/schema.json   column roles, categorical levels, the inference report, job settings
    DIR/fit_rejects.csv   training lines that could not be used, with the reason

and is written under a temporary name and renamed, so it is complete or absent.

Inputs of at most ``[fit] in_memory_mb`` megabytes (16 by default) are read into memory
and fitted by ``VAEAnomalyDetector.fit``, the model of the estimator's API exactly.
Larger inputs are streamed (``fit_stream``): memory does not grow with them.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd

from ..detector import VAEAnomalyDetector
from ..errors import TrainingDivergedError
from ..jobs.model_dir import (
    DETECTOR_DIR,
    FIT_REJECTS_FILE,
    fit_report,
    model_dir_files,
    staged_directory,
    write_html_report,
    write_job_document,
)
from ..jobs.paths import check_distinct, check_outside_input_folders, input_globs
from ..jobs.rejects import RejectWriter
from ..jobs.strategy import make_strategy
from ..schema import TabularSchema
from .config import JobConfig, check_passthrough_names
from .fit_stream import fit_streamed, plans_of
from .reader import expand_inputs, plan_chunks, read_chunk, read_header
from .saved import SCHEMA_FILE


def _diverged(error: TrainingDivergedError, paths, schema) -> TrainingDivergedError:
    """The detector's error, naming the training files and the columns by name."""
    names = schema.encoded_names

    def named(match: re.Match) -> str:
        j = int(match.group(1))
        return f"column {names[j]!r}" if j < len(names) else match.group(0)

    message = re.sub(r"column (\d+)(?= \(\|u\|)", named, str(error))
    return TrainingDivergedError(f"{', '.join(map(str, paths))}: {message}")


def common_header(paths, delimiter: str) -> list[str]:
    """The column names every input shares; an error names a file whose names differ."""
    header = None
    for path in paths:
        names, _ = read_header(path, delimiter)
        if header is None:
            header = names
        elif names != header:
            raise ValueError(
                f"{path}, line 1: the columns {names} differ from those of {paths[0]} ({header})."
            )
    return header


def training_header(paths, config: JobConfig) -> list[str]:
    """``common_header``, which must hold ``[columns] id_column`` when the settings name one
    (the alerts and ``--labels`` identify rows by it)."""
    header = common_header(paths, config.delimiter)
    if config.id_column is not None and config.id_column not in header:
        raise ValueError(
            f"{paths[0]}, line 1: [columns] id_column = {config.id_column!r} is not a column "
            f"of the header {header}."
        )
    return header


def read_training_cells(paths, config: JobConfig):
    """The text cells of every line the reader could split, then per row its file's index
    in ``paths``, its line number and raw line; and the lines the reader rejected, as
    (file index, line, reason, raw line)."""
    frames, files, lines, raw, unsplit = [], [], [], [], []
    header = training_header(paths, config)
    for file_index, path in enumerate(paths):
        for plan in plan_chunks(path, config.chunk_rows, config.delimiter):
            chunk = read_chunk(plan, config.delimiter)
            unsplit += [(file_index, *reject) for reject in chunk.rejected]
            frames.append(pd.DataFrame(chunk.cells, columns=header))
            files += [file_index] * len(chunk.lines)
            lines.append(chunk.lines)
            raw += chunk.raw
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=header)
    lines = np.concatenate(lines) if lines else np.empty(0, int)
    return frame, np.array(files, dtype=int), lines, raw, unsplit


def fit_job(inputs, model_dir, config: JobConfig) -> dict:
    """Fit and save; returns the fit report (also stored in schema.json)."""
    started = time.perf_counter()
    strategy = make_strategy(config.strategy)  # before TensorFlow runs anything
    paths = expand_inputs(inputs)
    check_distinct([("--input", p) for p in paths] + [("--model-dir", model_dir)])
    check_outside_input_folders(
        paths,
        [("--model-dir", model_dir)],
        input_globs(inputs),
        {"--model-dir": model_dir_files(SCHEMA_FILE)},
    )
    streamed = sum(path.stat().st_size for path in paths) > config.in_memory_mb * 1e6
    with staged_directory(model_dir, SCHEMA_FILE) as staging:
        if streamed:
            detector, schema, X, rejected, split = _fit_streamed(paths, config, staging, strategy)
        else:
            detector, schema, X, rejected = _fit_in_memory(paths, config, staging, strategy)
            split = {}
        detector.save(staging / DETECTOR_DIR)
        report = fit_report(
            "rows",
            paths,
            sum(split.values()) if streamed else len(X),
            rejected,
            detector,
            started,
            columns=schema.report(),
            layout=[list(block) for block in schema.layout()],
            streamed=streamed,
            strategy=config.strategy,
            **split,
        )
        write_html_report(  # a streamed fit's figures: its sample of the rows
            staging,
            detector,
            X,
            report,
            columns=schema.report(),
            feature_names=schema.output_names,
        )
        write_job_document(staging, SCHEMA_FILE, schema.to_dict(), config, report)
    return report


def _new_detector(schema: TabularSchema, config: JobConfig) -> VAEAnomalyDetector:
    return VAEAnomalyDetector(
        likelihood=schema.layout(),
        missing="mask",
        calibration_fraction=config.calibration_fraction,
        fpr=config.fpr,
        **dict(config.model),
    )


def _fit_in_memory(paths, config: JobConfig, staging, strategy):
    """(fitted detector, schema, encoded rows, rows rejected): every line held in memory."""
    with RejectWriter(staging / FIT_REJECTS_FILE) as rejects:
        frame, files, lines, raw, unsplit = read_training_cells(paths, config)
        if frame.empty:
            raise ValueError(f"{', '.join(map(str, paths))}: no usable data rows.")
        schema = TabularSchema.infer(frame, config.roles, config.max_levels)
        check_passthrough_names(schema, ", ".join(map(str, paths)))
        cells = {name: frame[name].to_numpy(dtype=object) for name in frame.columns}
        encoded = schema.encode(cells, len(frame), reject_empty=True)
        encoding = [
            (int(files[row]), int(lines[row]), reason, raw[row]) for row, reason in encoded.rejected
        ]
        rejects.add_in_order(paths, unsplit, encoding)
    if len(encoded.X) == 0:
        raise ValueError("Every training row was rejected; see the reasons in the error above.")
    detector = _new_detector(schema, config)
    try:
        with strategy.scope():
            detector.fit(encoded.X)
    except TrainingDivergedError as error:
        raise _diverged(error, paths, schema) from None
    return detector, schema, encoded.X, rejects.count


def _fit_streamed(paths, config: JobConfig, staging, strategy):
    """(fitted detector, schema, the encoded sample, rows rejected, rows per share): read
    twice, chunk by chunk (``fit_stream``)."""
    header = training_header(paths, config)
    files = plans_of(paths, config)
    schema = None

    def make_detector(inferred):
        nonlocal schema
        schema = inferred
        return _new_detector(inferred, config)

    with RejectWriter(staging / FIT_REJECTS_FILE) as rejects:
        try:
            with strategy.scope():
                detector, schema, sample = fit_streamed(
                    files, header, config, rejects, make_detector
                )
        except TrainingDivergedError as error:
            raise _diverged(error, paths, schema) from None
    split = {f"rows_{share}": count for share, count in detector._stream_counts.items()}
    return detector, schema, sample, rejects.count, split
