"""A scored image output against a labels file: which defects the job flagged."""

from __future__ import annotations


def compare_image_labels(output, labels_path) -> str:
    """One line: the defective images (a non-empty ``defect`` in ``labels_path``, columns
    path, defect) that ``output`` (path, anomaly_score, p_value, is_anomaly, heatmap)
    flagged, by defect, and the normal images it flagged. Images are matched on ``path``.
    """
    import pandas as pd

    scored = pd.read_csv(output, dtype={"path": str})
    labels = pd.read_csv(labels_path, dtype={"path": str, "defect": str}).fillna({"defect": ""})
    merged = scored.merge(labels, on="path", how="inner")
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
    ``labels_path`` (path, defect) names, matched on ``path``."""
    import pandas as pd

    columns = ["path", "anomaly_score", "is_anomaly"]
    scored = pd.read_csv(output, usecols=columns, dtype={"path": str})
    labels = pd.read_csv(labels_path, dtype={"path": str, "defect": str}).fillna({"defect": ""})
    merged = scored.merge(labels, on="path", how="inner")
    return (
        (merged["defect"] != "").to_numpy(),
        merged["anomaly_score"].to_numpy(dtype=float),
        (merged["is_anomaly"] == 1).to_numpy(),
    )
