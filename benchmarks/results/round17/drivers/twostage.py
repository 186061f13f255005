"""Round 17 driver, kept for its commands (run with PYTHONPATH=/tmp/snap20, a copy of commit
d44496f, whose benchmarks/ it imports): fit the defaults, drop the fitting rows they find unlikely,
refit the clean-data recipe on the rest, calibrate on held-out rows never filtered.

usage: twostage.py RULE WHICH OUT [benchmark args...]
RULE: fence1.5 | fence3 | frac0.1 | frac0.2 | none (stage 2 on every fitting row)
WHICH: structure | normal | unsup | sample
"""

import sys

import numpy as np

import vae_anomaly.detector as det

RULE, WHICH, OUT, EXTRA = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
CLEAN = {
    "min_scale": 0.03,
    "hidden_units": [128, 128],
    "trim_fraction": 0.0,
    "n_iter_no_change": 1000,
}
ORIGINAL_FIT = det.VAEAnomalyDetector.fit
LOG = open(f"{OUT}.drops.txt", "a")


def take(X, rows):
    return X.iloc[rows] if hasattr(X, "iloc") else np.asarray(X)[rows]


def kept(log_density: np.ndarray) -> np.ndarray:
    a = -log_density
    if RULE == "none":
        return np.ones(len(a), bool)
    if RULE.startswith("fence"):
        q1, q3 = np.percentile(a, [25, 75])
        return a <= q3 + float(RULE[5:]) * (q3 - q1)
    if RULE.startswith("frac"):
        return a <= np.quantile(a, 1.0 - float(RULE[4:]))
    raise ValueError(RULE)


def two_stage_fit(self, X, y=None):
    if getattr(self, "_inner", False):
        return ORIGINAL_FIT(self, X, y)
    params = self.get_params()
    n = len(X)
    rng = np.random.RandomState(0 if params["random_state"] is None else params["random_state"])
    order = rng.permutation(n)
    n_cal = int(params["calibration_fraction"] * n)
    calibration, fitting = order[:n_cal], order[n_cal:]
    first = det.VAEAnomalyDetector(**params)
    first._inner = True
    first.fit(take(X, fitting))
    keep = kept(first.score_samples(take(X, fitting)))
    print(f"{RULE}: kept {keep.sum()} of {len(keep)} fitting rows", file=LOG, flush=True)
    self.set_params(**CLEAN, calibration_fraction=0.0)
    self._inner = True
    ORIGINAL_FIT(self, take(X, fitting[keep]))
    self._inner = False
    if n_cal:
        self.calibrate(take(X, calibration))
    self.set_params(calibration_fraction=params["calibration_fraction"])
    return self


det.VAEAnomalyDetector.fit = two_stage_fit
sys.path.insert(0, "/tmp/snap20/benchmarks")
if WHICH == "structure":
    import structure

    sys.exit(structure.main(["--detectors", "vae", "--out", OUT, *EXTRA]))
if WHICH == "sample":
    import sample_job

    sys.exit(sample_job.main(["--out", OUT, *EXTRA]))
import quality  # noqa: E402

setting = {"normal": "normal-only", "unsup": "unsupervised"}[WHICH]
sys.exit(
    quality.main(
        [
            "--data",
            "/work/shared/data/adbench",
            "--setting",
            setting,
            "--detectors",
            "vae",
            "--out",
            OUT,
            *EXTRA,
        ]
    )
)
