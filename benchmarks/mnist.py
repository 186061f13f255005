"""One-class MNIST: train on the training images of one digit, score the whole test set.

Protocol (shared/data/README.md): pixels scaled to [0, 1] and flattened; anomaly = label
different from the trained digit; AUROC per digit and its mean over the ten digits.
vae-anomaly uses a Bernoulli likelihood on the pixels; peers run at their defaults.

    python benchmarks/mnist.py --data ../shared/data/images/mnist.npz --out benchmarks/results/mnist
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from vae_anomaly import VAEAnomalyDetector


def _vae(X_train, X_test, seed):
    detector = VAEAnomalyDetector(likelihood="bernoulli", random_state=seed).fit(X_train)
    return -detector.score_samples(X_test)


def _iforest(X_train, X_test, seed):
    return -IsolationForest(random_state=seed).fit(X_train).score_samples(X_test)


def _pyod(module, cls):
    def fit_score(X_train, X_test, seed):
        model_class = getattr(importlib.import_module(module), cls)
        return model_class(random_state=seed, verbose=0).fit(X_train).decision_function(X_test)

    return fit_score


DETECTORS = {"vae-bernoulli": _vae, "iforest": _iforest}
if importlib.util.find_spec("pyod") is not None:
    DETECTORS["pyod-ae"] = _pyod("pyod.models.auto_encoder", "AutoEncoder")
    DETECTORS["pyod-vae"] = _pyod("pyod.models.vae", "VAE")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="mnist.npz")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/mnist"))
    parser.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    parser.add_argument("--max-train", type=int, help="subsample training images (smoke tests)")
    parser.add_argument("--max-test", type=int, help="subsample test images (smoke tests)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with np.load(args.data, allow_pickle=False) as data:
        x_train = data["x_train"].reshape(len(data["x_train"]), -1) / 255.0
        x_test = data["x_test"].reshape(len(data["x_test"]), -1) / 255.0
        y_train, y_test = data["y_train"], data["y_test"]
    if args.max_test:
        x_test, y_test = x_test[: args.max_test], y_test[: args.max_test]
    rows, total = [], len(args.digits) * len(args.detectors)
    for digit in args.digits:
        normal = x_train[y_train == digit][: args.max_train]
        is_anomaly = (y_test != digit).astype(int)
        for name in args.detectors:
            started = time.perf_counter()
            scores = DETECTORS[name](normal, x_test, args.seed)
            rows.append(
                {
                    "digit": digit,
                    "detector": name,
                    "auroc": roc_auc_score(is_anomaly, scores),
                    "seconds": time.perf_counter() - started,
                }
            )
            print(
                f"[{len(rows)}/{total}] digit {digit} {name}: AUROC {rows[-1]['auroc']:.3f} "
                f"({rows[-1]['seconds']:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    runs = pd.DataFrame(rows)
    table = runs.pivot_table(index="digit", columns="detector", values="auroc")
    table.loc["mean"] = table.mean()
    args.out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(args.out / "runs.csv", index=False)
    markdown = "One-class MNIST, test AUROC per trained digit:\n\n" + table.round(3).to_markdown()
    (args.out / "table.md").write_text(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
