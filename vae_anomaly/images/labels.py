"""A scored image output against a labels file: which defects the job flagged.

Images are matched on their path, each side made absolute against the directory the job
ran in (``os.path.abspath``): ``sample_data/parts/new/a.png``, ``./sample_data/...`` and
the absolute path are one image."""

from __future__ import annotations

import os


def check_image_labels(labels_path) -> None:
    """ValueError, before any work, unless ``labels_path`` is a CSV file, read whole, with
    the columns ``path`` and ``defect`` (a labels file checked only after scoring lost the
    run's report and its exit status). It is read again at the end: a file, not a pipe."""
    import pandas as pd

    try:
        columns = list(pd.read_csv(labels_path, dtype=str).columns)
    except (OSError, ValueError) as error:
        raise ValueError(f"--labels {labels_path}: cannot read it: {error}") from error
    missing = [name for name in ("path", "defect") if name not in columns]
    if missing:
        raise ValueError(
            f"--labels {labels_path}, line 1: needs the columns 'path' and 'defect'; "
            f"{missing} not in {columns}."
        )


def _merged(output, labels_path, columns=None):
    """The scored rows of ``output`` that ``labels_path`` (path, defect) names, with their
    ``defect`` ("" for a normal image); and how many labelled paths there are."""
    import pandas as pd

    scored = pd.read_csv(output, usecols=columns, dtype={"path": str})
    labels = pd.read_csv(labels_path, dtype={"path": str, "defect": str}).fillna({"defect": ""})
    labels = labels[labels["path"].notna()]  # a row without a path labels no image
    scored["key"] = [os.path.abspath(p) for p in scored["path"]]
    labels["key"] = [os.path.abspath(p) for p in labels["path"]]
    merged = scored.merge(labels.drop(columns="path"), on="key", how="inner")
    return merged, len(labels)


def compare_image_labels(output, labels_path) -> str:
    """One line: the defective images (a non-empty ``defect`` in ``labels_path``, columns
    path, defect) that ``output`` (path, anomaly_score, p_value, is_anomaly, heatmap)
    flagged, by defect, and the normal images it flagged. When no labelled path is among
    the scored ones, the line says so (a labels file written for another folder)."""
    merged, n_labelled = _merged(output, labels_path)
    if merged.empty and n_labelled:
        return (
            f"labels: none of the {n_labelled} paths of {labels_path} is among the scored "
            "images (paths are matched after making them absolute from the folder the job "
            "ran in)."
        )
    defective = merged["defect"] != ""
    flagged = merged["is_anomaly"] == 1
    found = merged.loc[defective & flagged, "defect"].value_counts().sort_index().to_dict()
    return (
        f"labels: {int((defective & flagged).sum())} of the {int(defective.sum())} defective "
        f"images were flagged ({found}); {int((~defective & flagged).sum())} of "
        f"{int((~defective).sum())} normal images were flagged."
    )


def labelled_image_scores(output, labels_path):
    """(is defective, anomaly score, flagged) of the scored images of ``output`` that
    ``labels_path`` (path, defect) names, matched on the absolute path."""
    merged, _ = _merged(output, labels_path, ["path", "anomaly_score", "is_anomaly"])
    return (
        (merged["defect"] != "").to_numpy(),
        merged["anomaly_score"].to_numpy(dtype=float),
        (merged["is_anomaly"] == 1).to_numpy(),
    )
