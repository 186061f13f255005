"""A scored output against a labels file: how many planted anomalies the job flagged."""

from __future__ import annotations

from pathlib import Path


def check_labels(labels_path, id_column: str | None, needs: str = "[columns] id_column") -> None:
    """ValueError, before any work, unless rows can be matched with ``labels_path``: an
    ``id_column`` is set (``needs`` says where), and the labels file has it and
    ``is_anomaly``."""
    import pandas as pd

    if not id_column:
        raise ValueError(f"--labels needs {needs} to match rows with {labels_path}.")
    try:
        columns = list(pd.read_csv(labels_path, nrows=0).columns)
    except (OSError, ValueError) as error:
        raise ValueError(f"--labels {labels_path}: cannot read it: {error}") from error
    missing = [name for name in (id_column, "is_anomaly") if name not in columns]
    if missing:
        raise ValueError(
            f"--labels {labels_path}, line 1: needs the columns {id_column!r} and "
            f"'is_anomaly'; {missing} not in {columns}."
        )
    ids = pd.read_csv(labels_path, usecols=[id_column], dtype=str)[id_column]
    if ids.isna().any():
        line = int(ids.index[ids.isna()][0]) + 2
        raise ValueError(f"--labels {labels_path}, line {line}: the {id_column} is empty.")
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):  # a row labelled twice would be counted twice
        lines = (repeated.index[repeated == repeated.iloc[0]] + 2).tolist()
        raise ValueError(
            f"--labels {labels_path}: {id_column} {repeated.iloc[0]!r} is labelled on lines "
            f"{lines[0]} and {lines[1]}; each row may be labelled once."
        )


def label_counts(output, labels_path, id_column: str | None) -> dict:
    """The rows of ``output`` (.csv or .parquet) against ``labels_path``, matched on
    ``id_column``: {"planted", "planted_found", "normal", "normal_flagged"} as ints, and
    "found_by_kind" {kind: flagged planted rows} (empty when the labels have no ``kind``),
    "kinds" (the planted rows' kinds, sorted)."""
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
    has_kind = "kind" in merged
    return {
        "planted": int(planted.sum()),
        "planted_found": int((planted & flagged).sum()),
        "normal": int((~planted).sum()),
        "normal_flagged": int((~planted & flagged).sum()),
        "found_by_kind": (
            merged.loc[planted & flagged, "kind"].value_counts().to_dict() if has_kind else {}
        ),
        "kinds": sorted(set(merged.loc[planted, "kind"])) if has_kind else [],
    }


def compare_with_labels(output, labels_path, id_column: str | None) -> str:
    """One line: the planted anomalies (``is_anomaly`` = 1 in ``labels_path``) among the
    rows of ``output`` (.csv or .parquet) that were flagged, by ``kind`` when the labels
    have one, and the normal rows that were flagged. Rows are matched on ``id_column``.
    """
    counts = label_counts(output, labels_path, id_column)
    return (
        f"labels: {counts['planted_found']} of the {counts['planted']} planted anomalies "
        f"among the scored rows were flagged ({counts['found_by_kind']}); "
        f"{counts['normal_flagged']} of {counts['normal']} normal rows were flagged."
    )


def labelled_scores(output, labels_path, id_column: str | None, chunk_rows: int = 100_000):
    """(is an anomaly, anomaly score, flagged) of the scored rows of ``output`` (.csv or
    .parquet) that ``labels_path`` labels, matched on ``id_column``. The output is read
    ``chunk_rows`` rows at a time; only the labelled rows are kept."""
    import pandas as pd

    if not id_column:
        raise ValueError("--labels needs [columns] id_column in the job config to match rows.")
    labels = pd.read_csv(labels_path, dtype={id_column: str})
    if id_column not in labels or "is_anomaly" not in labels:
        raise ValueError(f"--labels {labels_path}: needs the columns {id_column} and is_anomaly.")
    labels = labels[[id_column, "is_anomaly"]].rename(columns={"is_anomaly": "label"})
    columns = [id_column, "anomaly_score", "is_anomaly"]
    if Path(output).suffix == ".parquet":
        import pyarrow.parquet as pq

        batches = pq.ParquetFile(output).iter_batches(chunk_rows, columns=columns)
        chunks = (batch.to_pandas().astype({id_column: str}) for batch in batches)
    else:
        chunks = pd.read_csv(output, usecols=columns, dtype={id_column: str}, chunksize=chunk_rows)
    found = [chunk.merge(labels, on=id_column, how="inner") for chunk in chunks]
    merged = pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=columns)
    flagged = merged["is_anomaly"].astype(str).str.lower().isin({"true", "1"})
    return (
        merged["label"].astype(bool).to_numpy(),
        merged["anomaly_score"].to_numpy(dtype=float),
        flagged.to_numpy(),
    )
