"""How the composition of an epoch's batches changes a fit (issue 16, round 7).

    python benchmarks/last_batch.py --data ../shared/data/adbench --datasets 6_cardio

For each seed, the ADBench split of quality.py (stratified 70/30, unsupervised: fit on the
whole training part), the defaults fitted three ways, each in its own process:

- ``near_equal``: the training input as it is (``batching``: each epoch in near-equal
  batches of at most ``batch_size`` rows);
- ``short_last``: batches of ``batch_size`` rows and the remainder as a last, short batch
  (what Keras's own batching gave before issue 17), one finite dataset per epoch;
- ``last_dropped``: the same without the short batch.

It reports epochs until early stopping, the best validation loss and the test AUROC.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import run_isolated
from quality import dataset_files, load_dataset

BATCHINGS = ("near_equal", "short_last", "last_dropped")


def _fit(task: dict) -> dict:
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from vae_anomaly import VAEAnomalyDetector, training

    if task["batching"] != "near_equal":
        training.epoch_plan = lambda *args: None  # one finite dataset per epoch
    if task["batching"] == "last_dropped":

        def whole_batches(n, batch_size, shuffle_seed=None):
            positions = tf.data.Dataset.range(n)
            if shuffle_seed is not None:
                positions = positions.shuffle(n, seed=shuffle_seed)
            return positions.batch(batch_size, drop_remainder=shuffle_seed is not None)

        training.one_epoch_index_batches = whole_batches
    X, y = load_dataset(Path(task["path"]))
    X_train, X_test, _, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=task["seed"]
    )
    detector = VAEAnomalyDetector(random_state=task["seed"]).fit(X_train)
    return {
        "epochs": len(detector.history_["loss"]),
        "best_validation_loss": float(np.min(detector.history_["val_loss"])),
        "auroc": float(roc_auc_score(y_test, -detector.score_samples(X_test))),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--datasets", nargs="+", default=["6_cardio"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/last_batch"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_fit(json.loads(args.worker))))
        return 0
    runs = []
    for path in dataset_files(args.data, args.datasets):
        for seed in args.seeds:
            for batching in BATCHINGS:
                task = {"path": str(path), "seed": seed, "batching": batching}
                result = run_isolated(__file__, task)
                result.pop("path")
                runs.append({"dataset": path.stem, "seed": seed, "batching": batching, **result})
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    import pandas as pd

    table = pd.DataFrame(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "runs.csv", index=False)
    summary = table.groupby(["dataset", "batching"])[
        ["epochs", "best_validation_loss", "auroc"]
    ].mean()
    (args.out / "table.md").write_text(
        f"Means over seeds {args.seeds}:\n\n{summary.round(3).to_markdown()}\n"
    )
    print(summary.round(3).to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
