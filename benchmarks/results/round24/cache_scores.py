"""Round 24 probe, step 1: fit the default detector once per case and seed, and keep what
a defensive mixture needs, so that Gaussians can be compared without refitting.

For each case (the structure generators without the category link, the benchmark's own
splits; nine shared ADBench sets, shuttle left out for its size, quality.py's splits, in
the unsupervised and the normal-only setting) and seed, it saves to --cache:
the fitting rows and the screen's mask over them, the test rows and labels, the sharp
model's test scores (score_samples, log p(x) in the units of X), and center_/scale_.
python cache_scores.py --cache /tmp/round24/cache --seeds 0 1 2
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(os.environ.get("PYTHONPATH", "/work/main").split(":")[0])
sys.path.insert(0, str(ROOT / "benchmarks"))
import structure  # noqa: E402
from quality import load_dataset, training_rows  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import vae_anomaly.detector as detector_module  # noqa: E402
from vae_anomaly import VAEAnomalyDetector  # noqa: E402

captured = {}
original_screened = detector_module.VAEAnomalyDetector._screened


def screened(self, X_given, X, rows):
    keep = original_screened(self, X_given, X, rows)
    captured["rows"], captured["keep"] = np.asarray(rows), keep
    return keep


detector_module.VAEAnomalyDetector._screened = screened
GENERATORS = ["linear", "ring", "spiral", "step", "low_rank", "clusters"]
DATASETS = [
    "2_annthyroid", "4_breastw", "6_cardio", "23_mammography", "25_musk",
    "28_pendigits", "30_satellite", "38_thyroid", "47_yeast",
]  # fmt: skip


def cases(seed, data_dir):
    for g in GENERATORS:
        for t in ("clean", "contaminated"):
            train, test, y = structure.make_split(g, t, seed, 5000, 2000, 40)
            yield f"{g}-{t}", train.to_numpy(np.float64), test.to_numpy(np.float64), y
    for setting in ("unsupervised", "normal-only"):
        for name in DATASETS:
            X, y = load_dataset(data_dir / f"{name}.npz")
            Xtr, Xte, ytr, yte = train_test_split(
                X, y, test_size=0.3, stratify=y, random_state=seed
            )
            yield f"{name}-{setting}", training_rows(Xtr, ytr, setting), Xte, yte


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-dir", type=Path, default=Path("/work/shared/data/adbench"))
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for label, train, test, y in cases(seed, args.data_dir):
            out = args.cache / f"{label}-{seed}.npz"
            if out.exists():
                continue
            captured.clear()
            detector = VAEAnomalyDetector(random_state=seed).fit(train)
            sharp = detector.score_samples(test)
            np.savez(
                out, train=train, test=test, y=y, sharp=sharp, rows=captured["rows"],
                keep=captured["keep"], center=detector.center_, scale=detector.scale_,
            )  # fmt: skip
            print(f"{label} seed {seed}: screened out {np.count_nonzero(~captured['keep'])}"
                  f" of {len(captured['keep'])}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
