"""The members of the VAE family against the default, measured in one run.

For each member (a set of VAEAnomalyDetector parameters; ``MEMBERS``) and each ADBench
dataset and seed (the protocol of shared/data/README.md: stratified 70/30 split, fitted
on the training part without labels):

- test AUROC of the member's anomaly score (-score_samples);
- held-out log-likelihood: the mean IWAE bound with k = 256 samples,
  log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), over the test part's normal rows
  (nats per row, in the units of x: the same scaling for every member, so comparable);
- fit seconds.

With ``--mnist``, the one-class protocol on the given digits (train on the training
images of digit c, pixels in [0, 1], Bernoulli likelihood; AUROC over the whole test set,
held-out log-likelihood over the test images of c).

    python benchmarks/variants.py --data ../shared/data/adbench --out benchmarks/results/variants
    python benchmarks/variants.py --data ../shared/data/adbench --datasets 6_cardio \\
        --mnist ../shared/data/images/mnist.npz --digits 0 7 --out /tmp/variants
    python benchmarks/variants.py --combine /tmp/a/runs.csv /tmp/b/runs.csv --out OUT

``--combine`` measures nothing: it joins the runs.csv of runs made piece by piece (one
dataset or digit per command, so that a long run can share the machine) into one table.

Writes OUT/runs.csv (one row per member, dataset and seed) and OUT/table.md (means per
member and dataset; the last row of each table is the mean over datasets).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from vae_anomaly import VAEAnomalyDetector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import write_tables
from quality import dataset_files, load_dataset

# Each member changes one thing against the default (the estimator's defaults).
MEMBERS: dict[str, dict] = {
    "default (elbo)": {},
    "iwae k=8": {"objective": "iwae", "n_train_samples": 8},
    "denoising gaussian 0.1": {"corruption": "gaussian", "corruption_level": 0.1},
    "denoising mask 0.1": {"corruption": "mask", "corruption_level": 0.1},
    "beta 4": {"beta": 4.0},
}
if "latent" in VAEAnomalyDetector().get_params():  # the categorical latent, where built
    MEMBERS["categorical 8x10"] = {"latent": "categorical", "latent_dim": 8}
HELD_OUT_K = 256


def measure(params: dict, X_train, X_test, y_test, seed: int) -> dict:
    """Fit one member; its test AUROC, held-out log-likelihood and fit seconds."""
    started = time.perf_counter()
    detector = VAEAnomalyDetector(random_state=seed, **params).fit(X_train)
    seconds = time.perf_counter() - started
    auroc = roc_auc_score(y_test, -detector.score_samples(X_test))
    detector.set_params(n_score_samples=HELD_OUT_K)  # scoring only: the model is unchanged
    held_out = detector.score_terms(X_test[y_test == 0], features=False).iwae
    return {"auroc": auroc, "held_out_loglik": float(np.mean(held_out)), "fit_seconds": seconds}


def adbench_runs(data_dir: Path, datasets, seeds, members, epochs=None):
    for path in dataset_files(data_dir, datasets):
        X, y = load_dataset(path)
        for seed in seeds:
            X_train, X_test, _, y_test = train_test_split(
                X, y, test_size=0.3, stratify=y, random_state=seed
            )
            for name in members:
                params = MEMBERS[name] | ({"epochs": epochs} if epochs else {})
                yield {"dataset": path.stem, "seed": seed, "member": name} | measure(
                    params, X_train, X_test, y_test, seed
                )


def mnist_runs(path: Path, digits, seeds, members, epochs=None, max_train=None):
    with np.load(path, allow_pickle=False) as data:
        x_train, y_train = data["x_train"], data["y_train"]
        x_test, y_test = data["x_test"], data["y_test"]
    X_test = x_test.reshape(len(x_test), -1).astype(np.float64) / 255.0
    for digit in digits:
        X_train = x_train[y_train == digit].reshape(-1, X_test.shape[1]) / 255.0
        if max_train:
            X_train = X_train[:max_train]
        anomaly = (y_test != digit).astype(int)
        for seed in seeds:
            for name in members:
                params = {"likelihood": "bernoulli", "trim_fraction": 0.0} | MEMBERS[name]
                params |= {"epochs": epochs} if epochs else {}
                yield {"dataset": f"mnist digit {digit}", "seed": seed, "member": name} | measure(
                    params, X_train, X_test, anomaly, seed
                )


def markdown_tables(runs: pd.DataFrame) -> str:
    parts = []
    for metric, title in [
        ("auroc", "Test AUROC"),
        ("held_out_loglik", f"Held-out log-likelihood (IWAE, k = {HELD_OUT_K}; nats per row)"),
        ("fit_seconds", "Fit seconds"),
    ]:
        table = runs.pivot_table(index="dataset", columns="member", values=metric)
        table.loc["mean"] = table.mean()
        seeds = sorted(runs["seed"].unique().tolist())
        parts.append(f"{title}, mean over seeds {seeds}:\n")
        parts.append(table.round(3).to_markdown() + "\n")
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="folder of ADBench .npz files")
    parser.add_argument("--datasets", nargs="+", help="dataset stems, e.g. 6_cardio")
    parser.add_argument("--mnist", type=Path, help="mnist.npz (x_train, y_train, x_test, y_test)")
    parser.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--members", nargs="+", default=list(MEMBERS), choices=list(MEMBERS))
    parser.add_argument("--epochs", type=int, help="fixed epochs (smoke tests); default: auto")
    parser.add_argument("--max-train", type=int, help="MNIST training images per digit (smoke)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/variants"))
    parser.add_argument("--combine", type=Path, nargs="+", help="runs.csv files to join")
    args = parser.parse_args(argv)
    if args.combine:
        runs = pd.concat([pd.read_csv(path) for path in args.combine], ignore_index=True)
        write_tables(runs, markdown_tables(runs), args.out)
        return 0
    if args.data is None and args.mnist is None:
        parser.error("give --data, --mnist or both")
    rows = []
    sources = []
    if args.data is not None:
        sources.append(
            adbench_runs(args.data, args.datasets, args.seeds, args.members, args.epochs)
        )
    if args.mnist is not None:
        sources.append(
            mnist_runs(
                args.mnist, args.digits, args.seeds, args.members, args.epochs, args.max_train
            )
        )
    for source in sources:
        for row in source:
            rows.append(row)
            print(
                f"[{len(rows)}] {row['dataset']} seed {row['seed']} {row['member']}: AUROC "
                f"{row['auroc']:.3f}, held-out log-lik {row['held_out_loglik']:.2f}, "
                f"{row['fit_seconds']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    runs = pd.DataFrame(rows)
    write_tables(runs, markdown_tables(runs), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
