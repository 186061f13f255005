"""Detection quality on ADBench-format data: AUROC and average precision per detector.

Protocol (shared/data/README.md): for each seed, a stratified 70/30 split; fit on the
training part without labels (``--setting unsupervised``: anomalies included), or on the
normal rows of the training part only (``--setting normal-only``: a detector fitted on a
known-good period); AUROC and average precision on the test part, which is the same in
both settings; the tables average over seeds.

    python benchmarks/quality.py --data ../shared/data/adbench --out benchmarks/results/quality
    python benchmarks/quality.py --data ../shared/data/adbench --setting normal-only \
        --out benchmarks/results/quality_normal_only

``--vae-params '{"trim_fraction": 0.0}'`` passes parameters to VAEAnomalyDetector (for
experiments; the published figures use its defaults).

Writes OUT/runs.csv (one row per dataset, seed and detector) and OUT/table.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import seconds_line, write_tables
from peers import PEERS


def load_dataset(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return data["X"].astype(np.float64), data["y"].astype(int).ravel()


def dataset_files(data_dir: Path, datasets=None) -> list[Path]:
    """The ADBench .npz files of ``data_dir`` in their numbered order (only ``datasets``,
    stems, when given)."""
    files = sorted(data_dir.glob("*.npz"), key=lambda p: int(p.stem.split("_")[0]))
    if datasets:
        files = [f for f in files if f.stem in datasets]
    if not files:
        raise SystemExit(f"no .npz datasets found in {data_dir}")
    return files


SETTINGS = ("unsupervised", "normal-only")


def training_rows(X_train, y_train, setting: str):
    """The rows a detector is fitted on: all of the training part, or its normal rows."""
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}.")
    return X_train if setting == "unsupervised" else X_train[y_train == 0]


def run(
    data_dir: Path,
    seeds,
    detectors,
    datasets=None,
    max_rows=None,
    setting="unsupervised",
    vae_params=None,
) -> pd.DataFrame:
    files = dataset_files(data_dir, datasets)
    peers = dict(PEERS)
    if vae_params:
        peers["vae"] = functools.partial(PEERS["vae"], **vae_params)
    runs, total, done = [], len(files) * len(seeds) * len(detectors), 0
    for path in files:
        X, y = load_dataset(path)
        if max_rows and len(X) > max_rows:  # for smoke tests only
            keep = np.random.default_rng(0).choice(len(X), max_rows, replace=False)
            X, y = X[keep], y[keep]
        for seed in seeds:
            X_train, X_test, y_train, y_test = train_test_split(
                X, y, test_size=0.3, stratify=y, random_state=seed
            )
            X_fit = training_rows(X_train, y_train, setting)
            for name in detectors:
                started = time.perf_counter()
                scores = peers[name](X_fit, X_test, seed)
                seconds = time.perf_counter() - started
                done += 1
                for detector, score in scores.items():
                    runs.append(
                        {
                            "dataset": path.stem,
                            "setting": setting,
                            "seed": seed,
                            "detector": detector,
                            "auroc": roc_auc_score(y_test, score),
                            "average_precision": average_precision_score(y_test, score),
                            "seconds": seconds,
                            "n_train": len(X_fit),
                            "n_features": X.shape[1],
                        }
                    )
                    print(
                        f"[{done}/{total}] {path.stem} seed {seed} {detector}: AUROC "
                        f"{runs[-1]['auroc']:.3f} AP {runs[-1]['average_precision']:.3f} "
                        f"({seconds:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
    return pd.DataFrame(runs)


def markdown_tables(runs: pd.DataFrame) -> str:
    parts = []
    for metric in ("auroc", "average_precision"):
        table = runs.pivot_table(index="dataset", columns="detector", values=metric)
        table = table.loc[sorted(table.index, key=lambda s: int(s.split("_")[0]))]
        table.loc["mean"] = table.mean()
        settings = ", ".join(sorted(runs["setting"].unique()))
        parts.append(
            f"Mean test {metric.replace('_', ' ')} over seeds "
            f"{sorted(runs['seed'].unique().tolist())} ({settings}):\n"
        )
        parts.append(table.round(3).to_markdown() + "\n")
    parts.append(seconds_line(runs))
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of ADBench .npz files")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--detectors", nargs="+", default=list(PEERS), choices=list(PEERS))
    parser.add_argument("--datasets", nargs="+", help="dataset stems, e.g. 6_cardio")
    parser.add_argument("--max-rows", type=int, help="subsample each dataset (smoke tests)")
    parser.add_argument(
        "--setting",
        choices=SETTINGS,
        default="unsupervised",
        help="fit on the whole training part, or on its normal rows only",
    )
    parser.add_argument(
        "--vae-params", type=json.loads, default={}, help="JSON of VAEAnomalyDetector parameters"
    )
    args = parser.parse_args(argv)
    runs = run(
        args.data,
        args.seeds,
        args.detectors,
        args.datasets,
        args.max_rows,
        args.setting,
        args.vae_params,
    )
    write_tables(runs, markdown_tables(runs), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
