"""A scored output against a labels file: how many planted anomalies the job flagged."""

from __future__ import annotations

from pathlib import Path


def compare_with_labels(output, labels_path, id_column: str | None) -> str:
    """One line: the planted anomalies (``is_anomaly`` = 1 in ``labels_path``) among the
    rows of ``output`` (.csv or .parquet) that were flagged, by ``kind`` when the labels
    have one, and the normal rows that were flagged. Rows are matched on ``id_column``.
    """
    import pandas as pd

    if not id_column:
        raise ValueError("--labels needs [columns] id_column in the job config to match rows.")
    if Path(output).suffix == ".parquet":
        scored = pd.read_parquet(output)
    else:
        scored = pd.read_csv(output, dtype={id_column: str})
    labels = pd.read_csv(labels_path, dtype={id_column: str})
    merged = scored.merge(labels, on=id_column, how="inner", suffixes=("", "_label"))
    planted = merged["is_anomaly_label"].astype(bool)
    flagged = merged["is_anomaly"].astype(str).str.lower().isin({"true", "1"})
    found = (
        merged.loc[planted & flagged, "kind"].value_counts().to_dict() if "kind" in merged else {}
    )
    return (
        f"labels: {int((planted & flagged).sum())} of the {int(planted.sum())} planted anomalies "
        f"among the scored rows were flagged ({found}); {int((~planted & flagged).sum())} of "
        f"{int((~planted).sum())} normal rows were flagged."
    )
