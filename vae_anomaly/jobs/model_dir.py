"""What the jobs share: writing a model directory whole or not at all, reading the job's
document back, and the threshold summary they report.

A model directory is built in a temporary sibling and renamed into place
(``atomic.staged``, as the saved detector is), so a failed fit leaves the old model
untouched and no half-written one behind. While it is written it is locked
(``locks.JobLock``), and when it is complete every file in it is listed with its
SHA-256 in ``integrity.json`` (signed when ``VAE_ANOMALY_SIGNING_KEY`` is set), which is
checked before anything in it is read.
"""

from __future__ import annotations

import dataclasses
import json
import time
from contextlib import contextmanager
from pathlib import Path

from ..atomic import real_target, recover_directory, staged
from ..integrity import INTEGRITY_FILE, check_only_our_files, seal_directory, verify_directory
from ..locks import JobLock

DETECTOR_DIR = "detector"
FIT_REJECTS_FILE = "fit_rejects.csv"
HTML_REPORT_FILE = "report.html"


def model_dir_files(marker: str) -> tuple[str, ...]:
    """The files a fit job writes in its model directory (``marker``: its job document,
    schema.json or images.json), relative to it: an input glob that reaches one would
    read it on the next run (``paths.check_outside_input_folders``)."""
    from ..persistence import MANIFEST_FILE, MODEL_FILE  # imports Keras: only when fitting

    detector = (f"{DETECTOR_DIR}/{name}" for name in (MODEL_FILE, MANIFEST_FILE, INTEGRITY_FILE))
    return (marker, FIT_REJECTS_FILE, HTML_REPORT_FILE, INTEGRITY_FILE, *detector)


@contextmanager
def staged_directory(target, marker: str):
    """Yield a temporary directory that replaces ``target`` when the block succeeds,
    sealed (``integrity.seal_directory``) and renamed into place, the target locked.

    ``target`` may be missing, empty, or a directory holding only files that a fit job
    wrote (listed in its integrity.json; before integrity.json: ``marker``, the rejects
    and the detector's two files). Anything else is refused, naming the file, so a refit
    never deletes a file the job did not write. A symbolic link is written through.
    """
    target = real_target(target)
    legacy = frozenset(
        {marker, FIT_REJECTS_FILE, f"{DETECTOR_DIR}/model.keras", f"{DETECTOR_DIR}/manifest.json"}
    )
    with JobLock(target, "--model-dir"):
        recover_directory(target)  # what a fit killed while replacing it left
        check_only_our_files(target, "--model-dir", legacy if (target / marker).is_file() else ())
        with staged(target) as staging:
            yield staging
            seal_directory(staging)


def read_job_document(model_dir, name: str, job: str) -> dict:
    """The JSON document ``name`` that the fit job ``job`` wrote into ``model_dir``, after
    every file of the directory is checked (``integrity.verify_directory``); a missing or
    damaged one is an error naming the file."""
    path = Path(model_dir) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"--model-dir {model_dir}: {path} is missing; is this a directory written by "
            f"`vae-anomaly {job}`?"
        )
    verify_directory(model_dir)
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


def fit_report(unit: str, inputs, used: int, rejected: int, detector, started: float, **details):
    """The report of a fit job: ``{unit}_read = {unit}_used + {unit}_rejected``, the job's
    ``details``, the epochs, the replicas that trained (``n_replicas_``), the threshold and
    the seconds since ``started`` (``time.perf_counter``). A detector fitted with
    ``screen_outliers`` adds ``{unit}_screened_out``: used rows left out of training."""
    screened = {}
    if hasattr(detector, "n_screened_out_"):
        screened[f"{unit}_screened_out"] = int(detector.n_screened_out_)
    return {
        "inputs": [str(item) for item in inputs],
        f"{unit}_read": used + rejected,
        f"{unit}_used": used,
        f"{unit}_rejected": rejected,
        **screened,
        **details,
        "n_epochs": int(detector.n_epochs_),
        "n_replicas": int(detector.n_replicas_),
        "threshold": threshold_info(detector),
        "seconds": round(time.perf_counter() - started, 3),
    }


def write_job_document(staging: Path, name: str, fitted: dict, settings, report: dict) -> None:
    """The job's JSON document (schema.json, images.json), strict JSON: what the job
    fitted, its ``settings`` (a dataclass: the defaults of the scoring job) and the fit
    ``report``."""
    document = fitted | {"settings": dataclasses.asdict(settings), "fit_report": report}
    (staging / name).write_text(json.dumps(document, indent=2, allow_nan=False))


def write_html_report(staging: Path, detector, X, report: dict, **details) -> None:
    """Write ``report.html`` (``vae_anomaly.report.fit_report`` of the detector on the
    training rows ``X``) into the staging directory, before it is sealed; record in the
    fit ``report`` whether it was written: ``html_report`` is the file name, or None with
    ``html_report_skipped`` saying why (matplotlib, an optional extra, is not installed)."""
    from ..report import INSTALL_HINT, fit_report, matplotlib_available

    if not matplotlib_available():
        report["html_report"] = None
        report["html_report_skipped"] = f"matplotlib is not installed ({INSTALL_HINT})"
        return
    facts = {key: report[key] for key in report if key.endswith(("_read", "_used", "_rejected"))}
    page = fit_report(detector, X, details={"inputs": report["inputs"], **facts}, **details)
    (staging / HTML_REPORT_FILE).write_text(page, encoding="utf-8")
    report["html_report"] = HTML_REPORT_FILE
