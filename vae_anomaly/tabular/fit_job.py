"""``vae-anomaly fit``: training CSV(s) -> column roles -> fitted, calibrated detector.

The model directory holds

    DIR/detector/     the saved VAEAnomalyDetector (model.keras + manifest.json)
    DIR/schema.json   column roles, categorical levels, the inference report, job settings
    DIR/fit_rejects.csv   training lines that could not be used, with the reason

and is written under a temporary name and renamed, so it is complete or absent.
Training rows are held in memory (scoring, not training, is the streaming job).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..detector import VAEAnomalyDetector
from ..jobs.paths import check_distinct
from ..jobs.rejects import RejectWriter
from ..model_dir import (
    DETECTOR_DIR,
    FIT_REJECTS_FILE,
    read_job_document,
    staged_directory,
    threshold_info,
)
from ..persistence import MANIFEST_FILE
from .config import JobConfig
from .reader import expand_inputs, plan_chunks, read_chunk, read_header
from .schema import TabularSchema

SCHEMA_FILE = "schema.json"


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
        detector.fit(encoded.X)
        detector.save(staging / DETECTOR_DIR)
        report = {
            "inputs": [str(p) for p in paths],
            "rows_read": int(len(frame) + rejects.count_before_encoding),
            "rows_used": len(encoded.X),
            "rows_rejected": int(rejects.count),
            "columns": schema.report(),
            "layout": [list(block) for block in schema.layout()],
            "n_epochs": int(detector.n_epochs_),
            "threshold": threshold_info(detector),
            "seconds": round(time.perf_counter() - started, 3),
        }
        document = schema.to_dict() | {
            "settings": dataclasses.asdict(config),
            "fit_report": report,
        }
        (staging / SCHEMA_FILE).write_text(json.dumps(document, indent=2, allow_nan=False))
    return report


def read_schema_document(model_dir) -> dict:
    """The schema.json document of a directory written by ``fit_job`` (the model unloaded)."""
    return read_job_document(model_dir, SCHEMA_FILE, "fit")


def saved_settings(model_dir) -> JobConfig:
    """The job settings stored by ``fit_job``: the defaults of ``vae-anomaly score``."""
    return JobConfig(**read_schema_document(model_dir)["settings"])


def read_model_dir(model_dir) -> tuple[VAEAnomalyDetector, TabularSchema, dict]:
    """(detector, schema, schema.json document) of a directory written by ``fit_job``."""
    from ..detector import load

    document = read_schema_document(model_dir)
    try:
        schema = TabularSchema.from_dict(document)
    except (KeyError, TypeError) as error:
        raise ValueError(f"{Path(model_dir) / SCHEMA_FILE} is damaged: {error!r}.") from error
    detector = load(Path(model_dir) / DETECTOR_DIR)
    return detector, schema, document


def model_fingerprint(model_dir) -> str:
    """The SHA-256 of the saved model (from its manifest): names the model in job state."""
    manifest = json.loads((Path(model_dir) / DETECTOR_DIR / MANIFEST_FILE).read_text())
    return manifest["files"]["model.keras"]["sha256"]
