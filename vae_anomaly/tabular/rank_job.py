"""``vae-anomaly rank``: one CSV of numeric columns -> a fitted detector -> its most
anomalous rows.

The detector is fitted on the file itself and scores it; the job returns the lines to
print: a summary, the ``top`` rows with the highest anomaly score (-ELBO), each with its
flag and the column that contributes most, and with ``labels`` how many of them were
planted. With ``alerts``, an alert record per flagged row is written and the status is
ALERTS when there is any.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..alerts import check_alerts_path
from ..exit_status import ExitStatus
from ..jobs.paths import check_distinct, check_outputs
from ..validation import first_non_numeric
from .labels import check_labels


def read_numeric_csv(path, id_column: str | None) -> tuple[pd.DataFrame, pd.Series | None]:
    """(numeric features, ids) from a CSV; errors name the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as error:  # pandas' parser and empty-data errors
        raise ValueError(f"{path}: cannot be read as CSV: {error}") from error

    def line_of(row: int) -> int:
        """The physical line of row ``row``, read from the file only for an error: pandas
        skips blank (and white-space) lines, so it is the (row + 2)-th line that is not
        blank (a record is one line; with quoted line breaks, row + 2, as before)."""
        with open(path, "rb") as handle:
            lines = [n for n, text in enumerate(handle, 1) if text.strip()][1:]
        return lines[row] if len(lines) == len(frame) else row + 2

    if frame.empty:
        raise ValueError(f"{path}: the file has no data rows.")
    ids = None
    if id_column is not None:
        if id_column not in frame.columns:
            raise ValueError(
                f"{path}: --id-column {id_column!r} is not a column; the columns are "
                f"{list(frame.columns)}."
            )
        ids = frame.pop(id_column)
    for name in frame.columns:
        row, parsed = first_non_numeric(frame[name])
        if row is not None:
            raise ValueError(
                f"{path}, line {line_of(row)}, column {name!r}: {frame[name].iloc[row]!r} is not "
                "a number. `rank` models numeric columns only; pass an id column with "
                "--id-column."
            )
        missing = parsed.isna()
        if missing.any():
            row = int(np.flatnonzero(missing.to_numpy())[0])
            raise ValueError(
                f"{path}, line {line_of(row)}, column {name!r}: value is missing "
                f"({int(missing.sum())} missing in this column)."
            )
        infinite = np.isinf(parsed.to_numpy(dtype=np.float64))
        if infinite.any():
            row = int(np.flatnonzero(infinite)[0])
            raise ValueError(
                f"{path}, line {line_of(row)}, column {name!r}: {str(frame[name].iloc[row])!r} is "
                "infinite."
            )
        frame[name] = parsed.astype(np.float64)
    return frame, ids


def rank_job(
    input,
    id_column: str | None = None,
    top: int = 10,
    labels=None,
    alerts=None,
    epochs: int | None = None,
    seed: int | None = 0,
    *,
    before_tensorflow: Callable[[], None] | None = None,
) -> tuple[list[str], ExitStatus]:
    """Fit a detector on the numeric columns of the CSV ``input`` and rank its rows.

    Parameters
    ----------
    input : path
        CSV with a header row; every column but ``id_column`` must be numeric.
    id_column : str, optional
        Column carried through as the row identifier (default: the row number, "row").
    top : int
        How many of the most anomalous rows to list.
    labels : path, optional
        CSV of ``id_column`` and ``is_anomaly``: the planted anomalies to count.
    alerts : path, optional
        Where to write an alert record per flagged row (.jsonl or .csv).
    epochs, seed : int, optional
        The detector's ``epochs`` and ``random_state``.
    before_tensorflow : callable, optional
        Called once the CSV is read and checked, before TensorFlow is imported (the CLI
        keeps TensorFlow's start-up lines off stderr there).

    Returns
    -------
    lines : list of str
        What to print, one ``print`` each: the summary, the table, the labels and alerts
        lines.
    status : ExitStatus
        ALERTS when a row was flagged (as ``score``, with or without ``alerts``), else OK.
    """
    started = time.perf_counter()
    check_distinct([("--input", input), ("--labels", labels), ("--alerts", alerts)])
    check_outputs([("--alerts", alerts)])
    check_alerts_path(alerts)
    if labels:
        check_labels(labels, id_column, needs="--id-column")
    features, ids = read_numeric_csv(input, id_column)
    if before_tensorflow is not None:
        before_tensorflow()
    from ..alerts import alert_records, write_alerts
    from ..detector import VAEAnomalyDetector

    detector = VAEAnomalyDetector(epochs=epochs, random_state=seed)
    detector.fit(features)
    terms = detector.score_terms(features)  # one scoring pass for scores, flags, columns
    scores = terms.estimate(detector.score_method)
    # The column named: the term furthest below its typical training value, as in alerts.
    contributions = terms.relative_feature_log_likelihood
    flagged = scores - detector.offset_ < 0  # predict's rule

    order = np.argsort(scores, kind="stable")[:top]
    ids = ids if ids is not None else pd.Series(np.arange(len(features)), name="row")
    lowest = np.argmin(contributions, axis=1)
    table = pd.DataFrame(
        {
            ids.name: ids.to_numpy()[order],
            "anomaly_score": np.round(-scores[order], 2),
            "flagged": np.where(flagged[order], "yes", "no"),
            "top_column": features.columns.to_numpy()[lowest[order]],
        }
    )
    lines = [
        f"Fitted on {len(features)} rows x {features.shape[1]} columns of {input} in "
        f"{time.perf_counter() - started:.1f} s ({detector.n_epochs_} epochs); "
        f"{int(flagged.sum())} rows flagged. Anomaly score = -ELBO (higher is stranger).",
        f"\nThe {len(order)} most anomalous rows:",
        table.to_string(index=False),
    ]
    if labels:
        planted = pd.read_csv(labels).set_index(ids.name)["is_anomaly"]
        planted = planted.loc[ids.to_numpy()].to_numpy().astype(bool)
        lines.append(
            f"\n{int(planted[order].sum())} of these {len(order)} are planted anomalies; "
            f"{int((planted & flagged).sum())} of the {int(flagged.sum())} flagged rows are "
            f"({int(planted.sum())} planted in {labels})."
        )
    if alerts:
        records = alert_records(detector, features, row_ids=ids.to_numpy())
        write_alerts(records, alerts)
        lines.append(f"\n{len(records)} alert records written to {alerts}.")
    return lines, ExitStatus.ALERTS if flagged.any() else ExitStatus.OK
