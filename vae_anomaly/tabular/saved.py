"""A model directory written by ``vae-anomaly fit``, read back: what the score job (and
anyone else) needs from it, without the fit job.

    DIR/detector/      the saved VAEAnomalyDetector
    DIR/schema.json    column roles, levels, the job settings and the fit report
    DIR/fit_rejects.csv, DIR/integrity.json
"""

from __future__ import annotations

from pathlib import Path

from ..integrity import directory_digest
from ..jobs.model_dir import DETECTOR_DIR, read_job_document
from ..schema import TabularSchema
from .config import JobConfig

SCHEMA_FILE = "schema.json"


def read_schema_document(model_dir) -> dict:
    """The schema.json document of a directory written by ``fit_job`` (the model unloaded)."""
    return read_job_document(model_dir, SCHEMA_FILE, "fit")


def saved_settings(model_dir) -> JobConfig:
    """The job settings stored by ``fit_job``: the defaults of ``vae-anomaly score``."""
    return JobConfig(**read_schema_document(model_dir)["settings"])


def read_model_dir(model_dir) -> tuple:
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
    """The digest of the directory's integrity.json: names the whole model, every file of
    it, in job state (a resumed job must use the same model)."""
    return directory_digest(model_dir)
