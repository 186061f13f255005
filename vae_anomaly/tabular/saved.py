"""A model directory written by ``vae-anomaly fit``, read back: what the score job (and
anyone else) needs from it, without the fit job.

    DIR/detector/      the saved VAEAnomalyDetector
    DIR/schema.json    column roles, levels, the job settings and the fit report
    DIR/fit_rejects.csv, DIR/integrity.json
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelFileError
from ..integrity import INTEGRITY_FILE, directory_digest
from ..jobs.model_dir import DETECTOR_DIR, read_job_document
from ..schema import TabularSchema
from .config import JobConfig

SCHEMA_FILE = "schema.json"


def read_schema_document(model_dir) -> dict:
    """The schema.json document of a directory written by ``fit_job`` (the model unloaded)."""
    return read_job_document(model_dir, SCHEMA_FILE, "fit")


def saved_settings(model_dir) -> JobConfig:
    """The job settings stored by ``fit_job``: the defaults of ``vae-anomaly score``."""
    return JobConfig.from_saved(read_schema_document(model_dir), Path(model_dir) / SCHEMA_FILE)


def read_model_dir(model_dir, fingerprint: str | None = None) -> tuple:
    """(detector, schema, schema.json document) of a directory written by ``fit_job``.

    With ``fingerprint`` (``model_fingerprint`` when a job planned its work), the
    directory must still be that model before and after it is read: a fit that replaced
    it meanwhile is a ``ModelFileError``, never a job whose chunks mix two models."""
    from ..detector import load

    check_fingerprint(model_dir, fingerprint)
    document = read_schema_document(model_dir)
    try:
        schema = TabularSchema.from_dict(document)
    except (KeyError, TypeError) as error:
        raise ValueError(f"{Path(model_dir) / SCHEMA_FILE} is damaged: {error!r}.") from error
    detector = load(Path(model_dir) / DETECTOR_DIR)
    check_fingerprint(model_dir, fingerprint)
    return detector, schema, document


def check_fingerprint(model_dir, fingerprint: str | None) -> None:
    """ModelFileError unless ``model_dir`` is the model of ``fingerprint`` (None: any)."""
    if fingerprint is None:
        return
    now = model_fingerprint(model_dir)
    if now != fingerprint:
        raise ModelFileError(
            f"--model-dir {model_dir} is not the model this job started with: its "
            f"{INTEGRITY_FILE} digest is {now[:16]}..., the job planned with "
            f"{fingerprint[:16]}... (a fit replaced it while the job ran?). Run the job again."
        )


def model_fingerprint(model_dir) -> str:
    """The digest of the directory's integrity.json: names the whole model, every file of
    it, in job state (a resumed job must use the same model)."""
    return directory_digest(model_dir)
