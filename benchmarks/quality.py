"""Detection quality on ADBench-format data: AUROC and average precision per detector.

Protocol (shared/data/README.md): for each seed, a stratified 70/30 split; fit on the
training part without labels (anomalies included); AUROC and average precision on the
test part; the tables average over seeds.

    python benchmarks/quality.py --data ../shared/data/adbench --out benchmarks/results/quality

Writes OUT/runs.csv (one row per dataset, seed and detector) and OUT/table.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import write_tables
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


def run(data_dir: Path, seeds, detectors, datasets=None, max_rows=None) -> pd.DataFrame:
    files = dataset_files(data_dir, datasets)
    runs, total, done = [], len(files) * len(seeds) * len(detectors), 0
    for path in files:
        X, y = load_dataset(path)
        if max_rows and len(X) > max_rows:  # for smoke tests only
            keep = np.random.default_rng(0).choice(len(X), max_rows, replace=False)
            X, y = X[keep], y[keep]
        for seed in seeds:
            X_train, X_test, _, y_test = train_test_split(
                X, y, test_size=0.3, stratify=y, random_state=seed
            )
            for name in detectors:
                started = time.perf_counter()
                scores = PEERS[name](X_train, X_test, seed)
                seconds = time.perf_counter() - started
                done += 1
                for detector, score in scores.items():
                    runs.append(
                        {
                            "dataset": path.stem,
                            "seed": seed,
                            "detector": detector,
                            "auroc": roc_auc_score(y_test, score),
                            "average_precision": average_precision_score(y_test, score),
                            "seconds": seconds,
                            "n_train": len(X_train),
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
        parts.append(
            f"Mean test {metric.replace('_', ' ')} over seeds "
            f"{sorted(runs['seed'].unique().tolist())}:\n"
        )
        parts.append(table.round(3).to_markdown() + "\n")
    seconds = runs.groupby("detector")["seconds"].sum().round(1)
    parts.append(
        "Total fit + score seconds per detector: "
        + ", ".join(f"{k} {v}" for k, v in seconds.items())
        + "\n"
    )
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of ADBench .npz files")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--detectors", nargs="+", default=list(PEERS), choices=list(PEERS))
    parser.add_argument("--datasets", nargs="+", help="dataset stems, e.g. 6_cardio")
    parser.add_argument("--max-rows", type=int, help="subsample each dataset (smoke tests)")
    args = parser.parse_args(argv)
    runs = run(args.data, args.seeds, args.detectors, args.datasets, args.max_rows)
    write_tables(runs, markdown_tables(runs), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
