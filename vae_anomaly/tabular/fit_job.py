"""``vae-anomaly fit``: training CSV(s) -> column roles -> fitted, calibrated detector.

The model directory holds

    DIR/detector/     the saved VAEAnomalyDetector (model.keras + manifest.json)
    DIR/schema.json   column roles, categorical levels, the inference report, job settings
    DIR/fit_rejects.csv   training lines that could not be used, with the reason

and is written under a temporary name and renamed, so it is complete or absent.
Training rows are held in memory (scoring, not training, is the streaming job).
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
    staged_directory,
    write_job_document,
)
from ..jobs.paths import check_distinct
from ..jobs.rejects import RejectWriter
from ..jobs.strategy import make_strategy
from .config import JobConfig
from .reader import expand_inputs, plan_chunks, read_chunk, read_header
from .saved import SCHEMA_FILE
from .schema import TabularSchema


def _diverged(error: TrainingDivergedError, paths, schema) -> TrainingDivergedError:
    """The detector's error, naming the training files and the columns by name."""
    names = schema.encoded_names

    def named(match: re.Match) -> str:
        j = int(match.group(1))
        return f"column {names[j]!r}" if j < len(names) else match.group(0)

    message = re.sub(r"column (\d+)(?= \(\|u\|)", named, str(error))
    return TrainingDivergedError(f"{', '.join(map(str, paths))}: {message}")


def read_training_cells(paths, config: JobConfig, rejects: RejectWriter):
    """(text cells, then per row: source file, line number, raw line) of every usable line."""
    frames, files, lines, raw, header = [], [], [], [], None
    for path in paths:
        names, _ = read_header(path, config.delimiter)
        if header is None:
            header = names
        elif names != header:
            raise ValueError(
                f"{path}, line 1: the columns {names} differ from those of {paths[0]} ({header})."
            )
        for plan in plan_chunks(path, config.chunk_rows, config.delimiter):
            chunk = read_chunk(plan, config.delimiter)
            rejects.add(path, chunk.rejected)
            frames.append(pd.DataFrame(chunk.cells, columns=header))
            files += [str(path)] * len(chunk.lines)
            lines.append(chunk.lines)
            raw += chunk.raw
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=header)
    return frame, np.array(files), np.concatenate(lines) if lines else np.empty(0, int), raw


def fit_job(inputs, model_dir, config: JobConfig) -> dict:
    """Fit and save; returns the fit report (also stored in schema.json)."""
    started = time.perf_counter()
    strategy = make_strategy(config.strategy)  # before TensorFlow runs anything
    paths = expand_inputs(inputs)
    check_distinct([("--input", p) for p in paths] + [("--model-dir", model_dir)])
    with staged_directory(model_dir, SCHEMA_FILE) as staging:
        with RejectWriter(staging / FIT_REJECTS_FILE) as rejects:
            frame, files, lines, raw = read_training_cells(paths, config, rejects)
            if frame.empty:
                raise ValueError(f"{', '.join(map(str, paths))}: no usable data rows.")
            schema = TabularSchema.infer(frame, config.roles, config.max_levels)
            cells = {name: frame[name].to_numpy(dtype=object) for name in frame.columns}
            encoded = schema.encode(cells, len(frame))
            for position, reason in encoded.rejected:
                rejects.add_one(files[position], int(lines[position]), reason, raw[position])
        if len(encoded.X) == 0:
            raise ValueError("Every training row was rejected; see the reasons in the error above.")
        params = dict(config.model)
        detector = VAEAnomalyDetector(
            likelihood=schema.layout(),
            missing="mask",
            calibration_fraction=config.calibration_fraction,
            fpr=config.fpr,
            **params,
        )
        try:
            with strategy.scope():
                detector.fit(encoded.X)
        except TrainingDivergedError as error:
            raise _diverged(error, paths, schema) from None
        detector.save(staging / DETECTOR_DIR)
        report = fit_report(
            "rows",
            paths,
            len(encoded.X),
            rejects.count,
            detector,
            started,
            columns=schema.report(),
            layout=[list(block) for block in schema.layout()],
            strategy=config.strategy,
        )
        write_job_document(staging, SCHEMA_FILE, schema.to_dict(), config, report)
    return report
