"""What the jobs share: writing a model directory whole or not at all, reading the job's
document back, and the threshold summary they report.

A model directory is built in a temporary sibling and renamed into place
(``persistence.staged``, as the saved detector is), so a failed fit leaves the old model
untouched and no half-written one behind.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from .persistence import staged


@contextmanager
def staged_directory(target, marker: str):
    """Yield a temporary directory that replaces ``target`` when the block succeeds.

    ``target`` may be missing, empty, or a directory holding ``marker`` (one written by
    the same job); anything else is refused, so a typo cannot replace unrelated files.
    """
    target = Path(target)
    if target.exists() and not (target / marker).is_file() and any(target.iterdir()):
        raise FileExistsError(
            f"--model-dir {target} exists and is not a vae-anomaly model directory "
            f"(no {marker}); refusing to replace it."
        )
    with staged(target) as staging:
        yield staging


def read_job_document(model_dir, name: str, job: str) -> dict:
    """The JSON document ``name`` that the fit job ``job`` wrote into ``model_dir``; a
    missing or damaged one is an error naming the file."""
    path = Path(model_dir) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"--model-dir {model_dir}: {path} is missing; is this a directory written by "
            f"`vae-anomaly {job}`?"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is damaged: {error!r}.") from error


def threshold_info(detector) -> dict:
    """The threshold in anomaly-score units and where it came from (with the reason when
    it is not calibrated; ``fpr`` is then the training quantile's rate, or None)."""
    calibrated = bool(getattr(detector, "calibrated_", hasattr(detector, "calibration_scores_")))
    info = {
        "anomaly_score": float(-detector.offset_),
        "calibrated": calibrated,
        "fpr": float(detector.fpr_) if hasattr(detector, "fpr_") else None,
        "calibration_rows": len(detector.calibration_scores_) if calibrated else 0,
    }
    if not calibrated:
        info["reason"] = str(getattr(detector, "calibration_reason_", ""))
    return info
