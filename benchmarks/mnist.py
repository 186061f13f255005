"""One-class MNIST: train on the training images of one digit, score the whole test set.

Protocol (shared/data/README.md): pixels scaled to [0, 1] and flattened; anomaly = label
different from the trained digit; AUROC per digit and its mean over the ten digits.
vae-anomaly runs three ways: the dense model on flattened pixels at the estimator's
defaults with a Bernoulli likelihood and the image job's beta (``vae-bernoulli``; beta 1,
as measured before the tabular default moved to 0.3); the image job's model for 28 x 28
images, per-image contrast normalisation (``images.contrast.ContrastScaler``) then the
dense VAE with the image job's model defaults (``images.config.IMAGE_MODEL``: Bernoulli,
no trimming; the job's body is dense, ``images.config.image_model``)
(``vae-bernoulli-contrast``); and the same with the convolutional body
(``image_shape=(28, 28, 1)``; ``vae-conv``). Peers run at their defaults on the [0, 1]
pixels. ``--vae-params`` adds VAEAnomalyDetector parameters to the vae-* detectors (and
is recorded in runs.csv).

    python benchmarks/mnist.py --data ../shared/data/images/mnist.npz \
        --out benchmarks/results/mnist --workers 2
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

from vae_anomaly import VAEAnomalyDetector
from vae_anomaly.images.config import IMAGE_MODEL
from vae_anomaly.images.contrast import ContrastScaler


def _vae(X_train, X_test, seed, vae_params):
    settings = {"likelihood": "bernoulli", "beta": IMAGE_MODEL["beta"], "random_state": seed}
    detector = VAEAnomalyDetector(**{**settings, **vae_params}).fit(X_train)
    return -detector.score_samples(X_test)


def _vae_conv(X_train, X_test, seed, vae_params):
    """Contrast normalisation, then the convolutional VAE ([model] conv_filters in the job)."""
    side = math.isqrt(X_train.shape[1])  # square grey images: 28 x 28 for MNIST
    settings = {**IMAGE_MODEL, "image_shape": (side, side, 1), "random_state": seed, **vae_params}
    detector = make_pipeline(ContrastScaler(), VAEAnomalyDetector(**settings)).fit(X_train)
    return -detector.score_samples(X_test)


def _vae_contrast(X_train, X_test, seed, vae_params):
    """The image job's model: vae-conv with the dense body."""
    settings = {**IMAGE_MODEL, "random_state": seed, **vae_params}  # no image_shape: dense
    detector = make_pipeline(ContrastScaler(), VAEAnomalyDetector(**settings)).fit(X_train)
    return -detector.score_samples(X_test)


def _iforest(X_train, X_test, seed, vae_params):
    return -IsolationForest(random_state=seed).fit(X_train).score_samples(X_test)


def _pyod(module, cls):
    def fit_score(X_train, X_test, seed, vae_params):
        model_class = getattr(importlib.import_module(module), cls)
        return model_class(random_state=seed, verbose=0).fit(X_train).decision_function(X_test)

    return fit_score


DETECTORS = {
    "vae-conv": _vae_conv,
    "vae-bernoulli": _vae,
    "vae-bernoulli-contrast": _vae_contrast,
    "iforest": _iforest,
}
if importlib.util.find_spec("pyod") is not None:
    DETECTORS["pyod-ae"] = _pyod("pyod.models.auto_encoder", "AutoEncoder")
    DETECTORS["pyod-vae"] = _pyod("pyod.models.vae", "VAE")


def run_task(args, seed: int, digit: int, name: str) -> dict:
    """Train detector ``name`` on one digit's training images; AUROC on the test set."""
    with np.load(args.data, allow_pickle=False) as data:
        x_train = data["x_train"].reshape(len(data["x_train"]), -1) / 255.0
        x_test = data["x_test"].reshape(len(data["x_test"]), -1) / 255.0
        y_train, y_test = data["y_train"], data["y_test"]
    if args.max_test:
        x_test, y_test = x_test[: args.max_test], y_test[: args.max_test]
    normal = x_train[y_train == digit][: args.max_train]
    started = time.perf_counter()
    scores = DETECTORS[name](normal, x_test, seed, args.vae_params)
    return {
        "seed": seed,
        "digit": digit,
        "detector": name,
        "vae_params": json.dumps(args.vae_params, sort_keys=True) if "vae" in name else "",
        "auroc": roc_auc_score((y_test != digit).astype(int), scores),
        "seconds": time.perf_counter() - started,
    }


def tables(runs: pd.DataFrame) -> str:
    """Markdown: AUROC per digit (averaged over seeds) with its mean over the digits;
    with several seeds, also the mean over the digits for each seed."""
    seeds = sorted(runs["seed"].unique().tolist())
    table = runs.pivot_table(index="digit", columns="detector", values="auroc")
    table.loc["mean"] = table.mean()
    over = " averaged over seeds " + ", ".join(map(str, seeds)) if len(seeds) > 1 else ""
    markdown = f"One-class MNIST, test AUROC per trained digit{over}:\n\n"
    markdown += table.round(3).to_markdown()
    if len(seeds) > 1:
        per_seed = runs.pivot_table(index="seed", columns="detector", values="auroc")
        per_seed.loc["mean"] = per_seed.mean()
        per_seed.loc["sd"] = per_seed.loc[seeds].std(ddof=1)
        markdown += "\n\nMean AUROC over the digits, per seed:\n\n"
        markdown += per_seed.round(4).to_markdown()
    return markdown


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="mnist.npz")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/mnist"))
    parser.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    parser.add_argument("--max-train", type=int, help="subsample training images (smoke tests)")
    parser.add_argument("--max-test", type=int, help="subsample test images (smoke tests)")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="a run per seed; tables average them"
    )
    parser.add_argument(
        "--vae-params",
        type=json.loads,
        default={},
        help="JSON of VAEAnomalyDetector parameters for the vae-* detectors (over their own)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes training at once (timings then overlap)"
    )
    args = parser.parse_args(argv)

    tasks = [
        (seed, digit, name)
        for seed in args.seeds
        for digit in args.digits
        for name in args.detectors
    ]
    rows = []
    context = multiprocessing.get_context("spawn")  # TensorFlow and fork do not mix
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        futures = [pool.submit(run_task, args, *task) for task in tasks]
        for future in as_completed(futures):
            rows.append(future.result())
            print(
                f"[{len(rows)}/{len(tasks)}] seed {rows[-1]['seed']} digit {rows[-1]['digit']} "
                f"{rows[-1]['detector']}: "
                f"AUROC {rows[-1]['auroc']:.3f} ({rows[-1]['seconds']:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    runs = pd.DataFrame(rows)
    runs = runs.sort_values(["seed", "digit", "detector"]).reset_index(drop=True)
    args.out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(args.out / "runs.csv", index=False)
    markdown = tables(runs)
    (args.out / "table.md").write_text(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
