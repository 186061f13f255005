"""The image jobs: ``fit_images`` (folder -> model directory) and ``score_images``.

Model directory (written to a temporary name, then renamed into place):

    detector/          the saved VAEAnomalyDetector (Keras .keras + JSON manifest)
    images.json        the transform (size, channels, resize, convert_color), the fitted
                       normalisation (``contrast``: low, high), the job settings and the
                       fit report
    fit_rejects.csv    training items that could not be used: path, reason

``score_images`` streams batches of ``batch_size`` images (memory stays bounded however
many there are) and writes, each under a temporary name renamed at the end:

    OUTPUT.csv     path, anomaly_score, p_value, is_anomaly, heatmap, one row per scored
                   image (heatmap: the file name of its heat map, empty if none)
    REJECTS.csv    path, reason, one row per item that was not scored
    REPORT.json    images_read = images_scored + images_rejected, reasons, threshold, timing
    HEATMAP_DIR/   the image beside its anomaly map, one PNG per flagged image (or all),
                   all in the folder itself, named by ``heatmaps.heatmap_name``
    ALERTS.jsonl   one alert record per flagged image (as in the tabular job)
    REPORT.html    with ``html``: the HTML report (``vae_anomaly.report.score_report``)
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

from ..alerts import AlertSink, check_alerts_path, flagged_records
from ..atomic import atomic_open, write_bytes_atomically
from ..detector import VAEAnomalyDetector, load
from ..distributions import LIKELIHOODS
from ..errors import ModelFileError, UsageError
from ..exit_status import ExitStatus
from ..integrity import files_below
from ..jobs.model_dir import (
    DETECTOR_DIR,
    fit_report,
    model_dir_files,
    read_job_document,
    staged_directory,
    threshold_info,
    write_html_report,
    write_job_document,
)
from ..jobs.paths import (
    check_distinct,
    check_outside_input_folders,
    guarded,
    input_globs,
    is_glob,
    score_outputs,
)
from ..jobs.progress import Progress
from ..jobs.rejects import RejectWriter
from ..jobs.report import Tally
from ..jobs.strategy import make_strategy
from ..persistence import staged
from ..report import ImageGallery, ScoreSummary, require_matplotlib
from ..thresholds import verdicts
from .config import ImageJobConfig, image_model
from .contrast import ContrastScaler
from .heatmaps import HEATMAP_SUFFIX, heatmap_name, heatmap_path, heatmap_png, pixel_anomaly
from .labels import check_image_labels
from .loader import (
    ARRAY_SUFFIXES,
    ImageRejected,
    ImageTransform,
    array_images,
    decode_file,
    image_batches,
    iter_image_inputs,
)

IMAGES_FILE = "images.json"
FIT_REJECTS_FILE = "fit_rejects.csv"
OUTPUT_FIELDS = ("path", "anomaly_score", "p_value", "is_anomaly", "heatmap")


def _first_image(paths) -> np.ndarray | None:
    """The first readable image of the inputs, [h, w, c]: of an image file, else of an
    array file (in the order ``image_batches`` reads them); None if there is none."""
    for path in (p for p in paths if p.suffix.lower() not in ARRAY_SUFFIXES):
        try:
            return decode_file(path, upright=True)  # as new fits read images
        except ImageRejected:
            continue
    for path in (p for p in paths if p.suffix.lower() in ARRAY_SUFFIXES):
        for _, image in array_images(path):
            if not isinstance(image, str):
                return image
    return None


def _transform_for(paths, config: ImageJobConfig) -> ImageTransform:
    """The transform of the job: configured size and colour, else the first readable image's."""
    first = None
    if config.size is None or config.color == "auto":
        first = _first_image(paths)
        if first is None and config.size is None:
            raise ValueError(
                f"None of the {len(paths)} entries found under --input is a readable image: "
                "there is nothing to train on. Check the --input paths (each entry's reason "
                "is what score-images would write to its rejects file)."
            )
    height, width = config.size if config.size is not None else first.shape[:2]
    if config.color == "auto":
        channels = 3 if first is not None and first.shape[2] >= 3 else 1
    else:
        channels = 3 if config.color == "rgb" else 1
    return ImageTransform(
        int(height), int(width), channels, config.resize, config.convert_color, upright=True
    )


def fit_images(inputs, model_dir, config: ImageJobConfig) -> dict:
    """Fit a VAE on the images of ``inputs`` and save it; returns the report. Its body is
    dense unless ``[model] conv_filters`` names convolution stages (``images.config.image_model``).
    Trains under the ``tf.distribute`` strategy named by ``config.strategy``."""
    started = time.perf_counter()
    strategy = make_strategy(config.strategy)  # before TensorFlow runs anything
    expanded = _expanded(inputs)
    check_distinct([("--input", p) for p in expanded] + [("--model-dir", model_dir)])
    check_outside_input_folders(
        expanded,
        [("--model-dir", model_dir)],
        input_globs(inputs),
        {"--model-dir": model_dir_files(IMAGES_FILE)},
    )
    _check_levels_kept(config)
    paths = list(iter_image_inputs(inputs))  # training images are held in memory anyway
    transform = _transform_for(paths, config)
    with staged_directory(model_dir, IMAGES_FILE) as staging:
        pixels = []
        with RejectWriter(staging / FIT_REJECTS_FILE) as rejects:
            for batch in image_batches(paths, transform, config.batch_size):
                pixels.append(batch.pixels)
                rejects.add_items(batch.rejects)
        X = np.concatenate(pixels) if pixels else np.zeros((0, 1))
        if len(X) == 0:
            raise ValueError(f"{', '.join(map(str, inputs))}: no readable image to train on.")
        normalization = {"kind": config.normalize}
        if config.normalize == "contrast":
            scaler = ContrastScaler().fit(X)
            normalization.update(low=scaler.low_, high=scaler.high_)
            X = scaler.transform(X)
        detector = VAEAnomalyDetector(
            image_shape=transform.image_shape,
            calibration_fraction=config.calibration_fraction,
            fpr=config.fpr,
            **image_model(config.model),
        )
        with strategy.scope():
            detector.fit(X)
        detector.save(staging / DETECTOR_DIR)
        report = fit_report(
            "images",
            inputs,
            len(X),
            rejects.count,
            detector,
            started,
            image_shape=list(transform.image_shape),
            conv_filters=list(detector.conv_filters_),  # [] for the dense body
            strategy=config.strategy,
        )
        write_html_report(staging, detector, X, report)
        fitted = {"transform": transform.to_dict(), "normalization": normalization}
        write_job_document(staging, IMAGES_FILE, fitted, config, report)
    return report


def _check_levels_kept(config: ImageJobConfig) -> None:
    """A likelihood over the 8-bit levels (a head with ``LEVELS``: the discretised
    logistic) needs the pixels on those levels, which contrast normalisation moves off
    their bins: refused before any image is read. (A fit-time rule only: models fitted
    with it before are still scored.)"""
    family = image_model(config.model).get("likelihood", VAEAnomalyDetector().likelihood)
    if config.normalize == "contrast" and hasattr(LIKELIHOODS.get(family), "LEVELS"):
        raise ValueError(
            f"[model] likelihood {family!r} models the 256 levels of 8-bit pixels, which "
            "[image] normalize = 'contrast' moves off their bins: set normalize = 'none'."
        )


def _read_document(model_dir) -> dict:
    return read_job_document(model_dir, IMAGES_FILE, "fit-images")


def _normalizer(document: dict):
    """The fitted normalisation of images.json as a function of pixel rows [n, p]."""
    normalization = document.get("normalization", {"kind": "none"})
    if normalization["kind"] == "none":
        return lambda X: X
    if normalization["kind"] != "contrast":
        raise ValueError(f"unknown normalization kind {normalization['kind']!r}")
    n_values = ImageTransform.from_dict(document["transform"]).n_values
    return ContrastScaler.from_bounds(
        normalization["low"], normalization["high"], n_values
    ).transform


def read_image_transform(model_dir) -> tuple[ImageTransform, dict]:
    """(transform, images.json document) of a directory written by fit_images, without
    loading the detector."""
    document = _read_document(model_dir)
    try:
        _normalizer(document)  # its entries checked here, not met later as a KeyError
        return ImageTransform.from_dict(document["transform"]), document
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{Path(model_dir) / IMAGES_FILE} is damaged: {error!r}.") from error


def read_image_model(model_dir) -> tuple[VAEAnomalyDetector, ImageTransform, dict]:
    """(detector, transform, images.json document) of a directory written by fit_images."""
    transform, document = read_image_transform(model_dir)
    return load(Path(model_dir) / DETECTOR_DIR), transform, document


def saved_image_settings(model_dir) -> ImageJobConfig:
    """The settings fit_images stored: the defaults of score-images. A size the fit took
    from its first image (``size`` None) is the one it took (a settings file cannot set
    None, so the fit's own file still agrees; ``color = "auto"`` stays as it was set)."""
    transform, document = read_image_transform(model_dir)
    saved = ImageJobConfig.from_saved(document, Path(model_dir) / IMAGES_FILE)
    return dataclasses.replace(saved, size=saved.size or (transform.height, transform.width))


def score_images(
    model_dir,
    inputs,
    output,
    rejects,
    report,
    heatmaps=None,
    alerts=None,
    config: ImageJobConfig | None = None,
    progress: bool | None = None,
    html=None,
    labels=None,
) -> tuple[dict, ExitStatus]:
    """Score every image of ``inputs``; returns (report, exit status).

    Before any work the paths are checked (``jobs.paths``) and every output is locked
    (``locks.JobLock``) until the job ends. An existing heat-map folder is replaced
    only if it holds nothing but heat maps. ``html``: also write the HTML report
    (``vae_anomaly.report.score_report``; needs matplotlib, checked first), with ROC and
    precision-recall curves against the ``labels`` file (path, defect) when given.
    """
    check_alerts_path(alerts)
    if html is not None:
        require_matplotlib()
    outputs = score_outputs(output, rejects, report, alerts, html)
    with guarded(
        _expanded(inputs),
        outputs,
        [("--heatmaps", heatmaps)],
        model_dir=model_dir,
        other_inputs=[("--labels", labels)],
        patterns=input_globs(inputs),
        inside={"--heatmaps": ("a" + HEATMAP_SUFFIX,)},  # a heat map it writes there
    ):
        if labels is not None:
            check_image_labels(labels)
        if heatmaps is not None and Path(heatmaps).is_dir():
            for relative in files_below(heatmaps):
                if not relative.endswith(HEATMAP_SUFFIX):
                    raise UsageError(
                        f"--heatmaps {heatmaps} holds {Path(heatmaps) / relative}, which is "
                        "not a heat map; the folder is replaced by each run, so choose an "
                        "empty or new folder."
                    )
        return _score_images(
            model_dir, inputs, output, rejects, report, heatmaps, alerts, config, progress,
            html, labels,
        )  # fmt: skip


def _expanded(inputs) -> list[Path]:
    """The inputs as given, each glob replaced by its matches (folders are not walked),
    each path once: an input named twice is read once, as in the tabular jobs."""
    paths, seen = [], set()
    for item in map(str, inputs):
        matches = glob.glob(item, recursive=True) if is_glob(item) else [item]  # "lot [1]"
        for match in matches:
            if (key := os.path.realpath(match)) not in seen:
                seen.add(key)
                paths.append(Path(match))
    return paths


def _score_images(
    model_dir, inputs, output, rejects, report, heatmaps, alerts, config, progress,
    html=None, labels=None,
) -> tuple[dict, ExitStatus]:  # fmt: skip
    started = time.perf_counter()
    detector, transform, document = read_image_model(model_dir)
    normalize = _normalizer(document)
    config = config or ImageJobConfig.from_saved(document, Path(model_dir) / IMAGES_FILE)
    files_found = Counter()
    paths = _counted(iter_image_inputs(inputs), files_found)
    calibration = getattr(detector, "calibration_scores_", None)
    need_features = bool(heatmaps) or alerts is not None or html is not None
    summary, gallery = ScoreSummary(), ImageGallery(-detector.offset_)  # for --html
    tally, n_heatmaps = Tally(), 0
    meter = Progress(None, unit="images", enabled=progress)
    with contextlib.ExitStack() as stack:
        heatmap_staging = stack.enter_context(staged(Path(heatmaps))) if heatmaps else None
        alert_sink = stack.enter_context(AlertSink(alerts)) if alerts is not None else None
        out_handle = stack.enter_context(atomic_open(Path(output)))
        reject_writer = stack.enter_context(RejectWriter(rejects))
        out = csv.writer(out_handle)
        out.writerow(OUTPUT_FIELDS)
        for batch in image_batches(paths, transform, config.batch_size):
            reject_writer.add_items(batch.rejects)
            tally.reject(reason for _, reason in batch.rejects)
            if not batch.ids:
                meter.advance(len(batch.rejects))
                continue
            terms = detector.score_terms(normalize(batch.pixels), features=need_features)
            anomaly, p_values, is_anomaly = verdicts(
                terms.estimate(detector.score_method), detector.offset_, calibration
            )
            drawn = (is_anomaly | (config.heatmaps == "all")) & (heatmap_staging is not None)
            names = _heatmap_names(batch, drawn)
            for row in zip(batch.ids, anomaly, p_values, is_anomaly, names, strict=True):
                out.writerow((row[0], repr(float(row[1])), _p(row[2]), int(row[3]), row[4]))
            tally.score(len(batch.ids), int(is_anomaly.sum()))
            summary.add(anomaly, p_values, _flagged_rows(batch.ids, anomaly, p_values, is_anomaly))
            meter.advance(len(batch.ids) + len(batch.rejects))  # once scored, not read
            if not need_features:
                continue
            maps = pixel_anomaly(terms.feature_log_likelihood, transform.image_shape)
            if html is not None:
                images = batch.pixels.reshape(-1, *transform.image_shape)
                gallery.add(batch.ids, anomaly, p_values, images, maps)
            if heatmap_staging is not None:
                n_heatmaps += _write_heatmaps(
                    heatmap_staging, batch, maps, transform.image_shape, names
                )
            if alert_sink is not None:  # written as found: memory does not grow with them
                # Ranked as the tabular alerts are: each pixel's terms against their median
                # on the training images (the heat maps show the terms themselves).
                excess = pixel_anomaly(terms.relative_feature_log_likelihood, transform.image_shape)
                alert_sink.write(
                    _image_alerts(
                        batch.ids, anomaly, -detector.offset_, p_values, excess, is_anomaly
                    )
                )
        meter.close()
    # The outputs, rejects, alerts and heat maps are in place; the report comes last.
    seconds = time.perf_counter() - started
    document = {
        "inputs": [str(i) for i in inputs],
        "files_found": files_found["files"],
        **tally.counts("images"),
        "rejected_by_reason": dict(sorted(tally.rejected.items())),
        "anomalies": tally.flagged,
        "heatmaps": n_heatmaps,
        "threshold": threshold_info(detector),
        "score_method": detector.score_method,
        "seconds": round(seconds, 3),
        "images_per_s": round(tally.read / max(seconds, 1e-9), 1),
    }
    if html is not None:
        page = _html_report(detector, summary, gallery, tally, document, output, labels, model_dir)
        write_bytes_atomically(Path(html), page.encode())
    write_bytes_atomically(
        Path(report), (json.dumps(document, indent=2, allow_nan=False) + "\n").encode()
    )
    return document, ExitStatus.ALERTS if tally.flagged else ExitStatus.OK


def _heatmap_names(batch, drawn) -> list[str]:
    """The heat-map file name of each image of ``batch`` where ``drawn`` is true, ""
    elsewhere (named from the file's path bytes where the batch has them)."""
    sources = batch.sources or [None] * len(batch.ids)
    return [
        heatmap_name(item, source) if draw else ""
        for item, source, draw in zip(batch.ids, sources, drawn, strict=True)
    ]


def _write_heatmaps(directory: Path, batch, maps, image_shape, names) -> int:
    """Write the heat-map PNG of each image of ``batch`` that has a name in ``names`` into
    ``directory`` (checked to stay inside it); returns how many were written."""
    rows = [i for i, name in enumerate(names) if name]
    for i in rows:
        heatmap_png(
            heatmap_path(directory, names[i]),
            batch.pixels[i].reshape(image_shape),
            maps[i],
        )
    return len(rows)


def _counted(paths, counter: Counter):
    """``paths``, counting them in ``counter["files"]`` as they are consumed."""
    for path in paths:
        counter["files"] += 1
        yield path


def _p(value: float) -> str:
    return "" if np.isnan(value) else repr(float(value))


def _image_alerts(ids, anomaly, threshold, p_values, maps, is_anomaly) -> list[dict]:
    """Alert records of the flagged images; top_features name the pixels of ``maps`` (per
    pixel, the terms' shortfall below their typical training values) that stand out most."""
    flagged = np.flatnonzero(is_anomaly)
    if flagged.size == 0:
        return []
    height, width = maps.shape[1:]
    names = [f"pixel(row={r},col={c})" for r in range(height) for c in range(width)]
    return flagged_records(
        [ids[i] for i in flagged],
        anomaly[flagged],
        threshold,
        None if np.isnan(p_values).all() else p_values[flagged],
        -maps[flagged].reshape(len(flagged), -1),
        names,
    )


def _flagged_rows(ids, anomaly, p_values, is_anomaly) -> list[dict]:
    """The flagged images of a batch as rows of the HTML report's table."""
    return [
        {
            "row_id": ids[i],
            "anomaly_score": float(anomaly[i]),
            "p_value": None if np.isnan(p_values[i]) else float(p_values[i]),
        }
        for i in np.flatnonzero(is_anomaly)
    ]


def _html_report(detector, summary, gallery, tally, document, output, labels, model_dir) -> str:
    """The HTML report of a score-images run; with ``labels``, the scored images' labels."""
    from ..report import score_report
    from .labels import labelled_image_scores

    accounting = {
        "read": tally.read,
        "scored": tally.scored,
        "rejected": sum(tally.rejected.values()),
        "flagged": tally.flagged,
        "rejected_by_reason": dict(tally.rejected),
    }
    details = {
        "model": str(model_dir),
        "inputs": ", ".join(document["inputs"]),
        "output file": str(output),
        "heat maps written": document["heatmaps"],
        "seconds": document["seconds"],
    }
    labelled = labelled_image_scores(output, labels) if labels is not None else None
    return score_report(
        detector,
        summary,
        accounting,
        unit="images",
        title="vae-anomaly score-images report",
        details=details,
        labels=labelled,
        gallery=gallery,
    )
