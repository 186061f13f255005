"""Round 23 probe: a defensive mixture of the sharp model with a broad Gaussian.

    p(x) = (1 - pi) p_sharp(x) + pi N(x; m, S),   pi = rows screened out / fitting rows,

with N a Gaussian fitted to all fitting rows (LedoitWolf, or MinCovDet's robust fit), or
to the rows the screen kept (LedoitWolf): a
density, whose log is bounded below by logaddexp(log(1 - pi) + ELBO, log pi + log N(x)).
Where the sharp model never saw rows (the tails the screen left out), the Gaussian keeps
the score finite; a row off a thin relation stays unlikely under both. Numeric data only.
python defensive.py  (structure generators without the category link, seed 0, and the
shared ADBench sets, seed 0; AUROC of the defaults and of each mixture)
"""

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(os.environ.get("PYTHONPATH", "/work/main").split(":")[0])
sys.path.insert(0, str(ROOT / "benchmarks"))
import structure  # noqa: E402
from quality import load_dataset  # noqa: E402
from sklearn.covariance import LedoitWolf, MinCovDet  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from structure import CONTAMINATION  # noqa: E402

import vae_anomaly.detector as detector_module  # noqa: E402
from vae_anomaly import VAEAnomalyDetector  # noqa: E402

# The rows the screen kept, stashed by a patched VAEAnomalyDetector._screened.
kept = {}
original_screened = detector_module.VAEAnomalyDetector._screened


def screened(self, X_given, X, rows):
    keep = original_screened(self, X_given, X, rows)
    kept["rows"] = np.asarray(rows)[keep]
    return keep


detector_module.VAEAnomalyDetector._screened = screened


def structure_split(gen, training, seed=0):
    rng = np.random.default_rng([seed, sorted(structure.GENERATORS).index(gen)])
    n_bad = round(CONTAMINATION * 5000) if training == "contaminated" else 0
    normal, anomalies = structure.GENERATORS[gen](rng, 5000 - n_bad + 2000, n_bad + 40)
    train = np.r_[normal.iloc[: 5000 - n_bad].to_numpy(), anomalies.iloc[:n_bad].to_numpy()]
    test = np.r_[normal.iloc[5000 - n_bad :].to_numpy(), anomalies.iloc[n_bad:].to_numpy()]
    return train, test, np.r_[np.zeros(2000), np.ones(40)]


def adbench_split(name, seed=0):
    X, y = load_dataset(Path(f"/work/shared/data/adbench/{name}.npz"))
    Xtr, Xte, _, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    return Xtr, Xte, yte


def gaussian_log_density(estimator, X):
    d = X.shape[1]
    _sign, logdet = np.linalg.slogdet(estimator.covariance_)
    return -0.5 * (estimator.mahalanobis(X) + logdet + d * np.log(2 * np.pi))


cases = [
    (f"{g}/{t}", lambda g=g, t=t: structure_split(g, t))
    for g in ["linear", "ring", "spiral", "step", "low_rank", "clusters"]
    for t in ["clean", "contaminated"]
]
cases += [
    (name, lambda name=name: adbench_split(name))
    for name in [
        "2_annthyroid", "4_breastw", "6_cardio", "23_mammography", "25_musk",
        "28_pendigits", "30_satellite", "38_thyroid", "47_yeast",
    ]
]  # fmt: skip
print("case | pi | defaults | + LedoitWolf | + MinCovDet | + LedoitWolf, kept rows", flush=True)
for label, make in cases:
    train, test, y = make()
    detector = VAEAnomalyDetector(random_state=0).fit(train)
    pi = detector.n_screened_out_ / len(train)
    sharp = detector.score_samples(test)
    row = [f"{label:22s}", f"{pi:.3f}", f"{roc_auc_score(y, -sharp):.4f}"]
    fits = [
        (LedoitWolf(), train),
        (MinCovDet(random_state=0), train),
        (LedoitWolf(), train[kept["rows"]]),
    ]
    for estimator, rows in fits:
        try:
            estimator.fit(rows)
            broad = gaussian_log_density(estimator, test)
            mixture = np.logaddexp(np.log1p(-pi) + sharp, np.log(max(pi, 1e-300)) + broad)
            row.append(f"{roc_auc_score(y, -mixture):.4f}")
        except Exception as error:  # a singular robust covariance (repeated values)
            row.append(f"failed: {type(error).__name__}")
    print(" | ".join(row), flush=True)
