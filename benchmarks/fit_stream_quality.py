"""Model quality of the streamed fit against the in-memory fit, through the jobs.

    flock /tmp/bench.lock python benchmarks/fit_stream_quality.py \\
        --data ../shared/data/adbench --datasets 32_shuttle --out benchmarks/results/fit_stream
    python benchmarks/fit_stream_quality.py --quick --out /tmp/fit_stream      # smoke test

Each fit runs ``vae-anomaly fit`` (``fit_job``) in one of three ways: ``memory`` (the
estimator's ``fit``, today's model), ``stream`` (``[fit] in_memory_mb = 0``: profiled,
held out by position, trained from disk through tf.data) and ``stream, sample 1000``
(the same, with the roles and the scaling from a 1,000-line sample, so that the sampled
path is measured on files small enough to compare). Then ``vae-anomaly score`` scores
the new rows. Two data sets:

- the bundled sample (``sample_data/machines_*.csv``, settings ``pipelines/tabular.toml``):
  the planted anomalies flagged, normal rows flagged, and the AUROC of the anomaly score
  against the labels;
- an ADBench set written to CSV by the protocol of ``shared/data/README.md`` (seeds 0, 1,
  2; stratified 70/30 split; fitted on the training part, anomalies included): the test
  AUROC and average precision.

Writes OUT/runs.csv and OUT/table.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import write_tables  # noqa: E402

MODES = {"memory": {}, "stream": {"in_memory_mb": 0}, "stream, sample 1000": {"in_memory_mb": 0}}


def fit_and_score(
    mode: str, train: Path, new: Path, config, work: Path
) -> tuple[pd.DataFrame, dict]:
    """(scored rows of ``new``, fit report) for one way of fitting."""
    from vae_anomaly.tabular import fit_stream
    from vae_anomaly.tabular.fit_job import fit_job
    from vae_anomaly.tabular.score_job import score_job

    fit_stream.SAMPLE_ROWS = 1_000 if "sample" in mode else 100_000
    model = work / "model"
    started = time.perf_counter()
    report = fit_job([train], model, config.with_overrides(**MODES[mode]))
    report["fit_seconds"] = time.perf_counter() - started
    score_job(model, [new], work / "o.csv", work / "r.csv", work / "r.json", progress=False)
    return pd.read_csv(work / "o.csv"), report


def sample_data_runs(seeds, epochs, work: Path, modes) -> list[dict]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from vae_anomaly.tabular.config import load_config

    labels = pd.read_csv(ROOT / "sample_data" / "machines_new_labels.csv")
    labels = labels.rename(columns={"is_anomaly": "planted"})
    runs = []
    for seed in seeds:
        config = load_config(ROOT / "pipelines" / "tabular.toml").with_overrides(
            model={"random_state": seed, **({"epochs": epochs} if epochs else {})}
        )
        for mode in modes:
            scored, report = fit_and_score(
                mode,
                ROOT / "sample_data" / "machines_train.csv",
                ROOT / "sample_data" / "machines_new.csv",
                config,
                work,
            )
            joined = scored.merge(labels, on="record_id")
            planted, flagged = joined["planted"] == 1, joined["is_anomaly"].astype(bool)
            runs.append(
                {
                    "dataset": "sample_data machines",
                    "mode": mode,
                    "seed": seed,
                    "auroc": roc_auc_score(planted, joined["anomaly_score"]),
                    "average_precision": average_precision_score(planted, joined["anomaly_score"]),
                    "planted_flagged": f"{int((planted & flagged).sum())} of {int(planted.sum())}",
                    "normal_flagged": f"{int((~planted & flagged).sum())} of {len(planted)}",
                    "n_epochs": report["n_epochs"],
                    "fit_seconds": report["fit_seconds"],
                }
            )
    return runs


def adbench_runs(data: Path, datasets, seeds, epochs, work: Path, modes) -> list[dict]:
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    from vae_anomaly.tabular.config import JobConfig

    runs = []
    for name in datasets:
        arrays = np.load(data / f"{name}.npz")
        X, y = arrays["X"].astype(np.float64), arrays["y"].astype(int).ravel()
        columns = [f"x{j}" for j in range(X.shape[1])]
        for seed in seeds:
            X_train, X_test, _, y_test = train_test_split(
                X, y, test_size=0.3, stratify=y, random_state=seed
            )
            pd.DataFrame(X_train, columns=columns).to_csv(work / "train.csv", index=False)
            pd.DataFrame(X_test, columns=columns).to_csv(work / "test.csv", index=False)
            model = {"random_state": seed, **({"epochs": epochs} if epochs else {})}
            config = JobConfig(model=model, roles=dict.fromkeys(columns, "numeric"))
            for mode in modes:
                scored, report = fit_and_score(
                    mode, work / "train.csv", work / "test.csv", config, work
                )
                scores = scored.sort_values("source_line")["anomaly_score"].to_numpy()
                runs.append(
                    {
                        "dataset": name,
                        "mode": mode,
                        "seed": seed,
                        "auroc": roc_auc_score(y_test, scores),
                        "average_precision": average_precision_score(y_test, scores),
                        "planted_flagged": "",
                        "normal_flagged": "",
                        "n_epochs": report["n_epochs"],
                        "fit_seconds": report["fit_seconds"],
                    }
                )
                print(runs[-1], file=sys.stderr, flush=True)
    return runs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "adbench")
    parser.add_argument("--datasets", nargs="*", default=["32_shuttle"], help="none: sample only")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fit_stream"))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--quick", action="store_true", help="two epochs, one seed")
    args = parser.parse_args(argv)
    epochs = 2 if args.quick else None
    seeds = args.seeds[:1] if args.quick else args.seeds
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        runs = sample_data_runs(seeds, epochs, work, args.modes)
        runs += adbench_runs(args.data, args.datasets, seeds, epochs, work, args.modes)
    table = pd.DataFrame(runs)
    means = table.groupby(["dataset", "mode"], sort=False)[
        ["auroc", "average_precision", "n_epochs", "fit_seconds"]
    ].mean()
    markdown = (
        f"Mean over seeds {seeds}:\n\n"
        + means.round(4).to_markdown()
        + "\n\nPer run:\n\n"
        + table.round(4).to_markdown(index=False)
        + "\n"
    )
    write_tables(table, markdown, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
