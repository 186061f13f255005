"""The ``vae-anomaly`` command.

    vae-anomaly rank --input FILE.csv [--id-column ID] [--top N] [--labels LABELS.csv]
                     [--alerts ALERTS.jsonl|.csv]
        Fit a detector on the CSV's numeric columns and print the N most anomalous rows,
        each with its anomaly score (-log p(x) bound) and the column that contributes most.
        With --alerts, write an alert record per flagged row and exit with status 3.
    vae-anomaly make-sample-data [--output-dir sample_data]
        Regenerate the bundled sample data.

Exit statuses are those of ``exit_status.ExitStatus``: 0 OK, 1 FAILED (the message says
why), 2 USAGE (malformed command line), 3 ALERTS (with --alerts, rows were flagged).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .alerts import alert_records, write_alerts
from .detector import VAEAnomalyDetector
from .exit_status import ExitStatus
from .sample_data import write_sample_data
from .validation import first_non_numeric


def read_numeric_csv(path, id_column: str | None) -> tuple[pd.DataFrame, pd.Series | None]:
    """(numeric features, ids) from a CSV; errors name the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot be read as CSV: {error}") from error
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
                f"{path}, line {row + 2}, column {name!r}: {frame[name].iloc[row]!r} is not a "
                "number. `rank` models numeric columns only; pass an id column with --id-column."
            )
        missing = parsed.isna()
        if missing.any():
            row = int(np.flatnonzero(missing.to_numpy())[0])
            raise ValueError(
                f"{path}, line {row + 2}, column {name!r}: value is missing "
                f"({int(missing.sum())} missing in this column)."
            )
        frame[name] = parsed.astype(np.float64)
    return frame, ids


def rank(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    features, ids = read_numeric_csv(args.input, args.id_column)
    detector = VAEAnomalyDetector(epochs=args.epochs, random_state=args.seed)
    detector.fit(features)
    scores = detector.score_samples(features)
    contributions = detector.score_features(features)
    flagged = detector.predict(features) == -1

    order = np.argsort(scores, kind="stable")[: args.top]
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
    print(
        f"Fitted on {len(features)} rows x {features.shape[1]} columns of {args.input} in "
        f"{time.perf_counter() - started:.1f} s ({detector.n_epochs_} epochs); "
        f"{int(flagged.sum())} rows flagged. Anomaly score = -ELBO (higher is stranger)."
    )
    print(f"\nThe {len(order)} most anomalous rows:")
    print(table.to_string(index=False))
    if args.labels:
        planted = pd.read_csv(args.labels).set_index(ids.name)["is_anomaly"]
        planted = planted.loc[ids.to_numpy()].to_numpy().astype(bool)
        print(
            f"\n{int(planted[order].sum())} of these {len(order)} are planted anomalies; "
            f"{int((planted & flagged).sum())} of the {int(flagged.sum())} flagged rows are "
            f"({int(planted.sum())} planted in {args.labels})."
        )
    if args.alerts:
        records = alert_records(detector, features, row_ids=ids.to_numpy())
        write_alerts(records, args.alerts)
        print(f"\n{len(records)} alert records written to {args.alerts}.")
        return ExitStatus.ALERTS if records else ExitStatus.OK
    return ExitStatus.OK


def make_sample_data(args: argparse.Namespace) -> int:
    for path in write_sample_data(args.output_dir):
        print(f"wrote {path}")
    return ExitStatus.OK


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="vae-anomaly", description=__doc__.split("\n")[0])
    commands = root.add_subparsers(dest="command", required=True)

    ranking = commands.add_parser("rank", help="fit on a CSV and print its most anomalous rows")
    ranking.add_argument("--input", required=True, help="CSV file with a header row")
    ranking.add_argument("--id-column", help="column carried through as the row identifier")
    ranking.add_argument("--top", type=int, default=10, help="rows to print (default 10)")
    ranking.add_argument("--labels", help="CSV with the id column and is_anomaly, to compare")
    ranking.add_argument("--epochs", type=int, default=None, help="default: from a step budget")
    ranking.add_argument("--seed", type=int, default=0, help="random_state (default 0)")
    ranking.add_argument("--alerts", help="write alert records (.jsonl or .csv); exit 3 if any")
    ranking.set_defaults(run=rank)

    sample = commands.add_parser("make-sample-data", help="regenerate the bundled sample data")
    sample.add_argument("--output-dir", default="sample_data")
    sample.set_defaults(run=make_sample_data)
    return root


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, OSError, FloatingPointError) as error:
        print(f"vae-anomaly {args.command}: error: {error}", file=sys.stderr)
        return ExitStatus.FAILED


if __name__ == "__main__":
    sys.exit(main())
