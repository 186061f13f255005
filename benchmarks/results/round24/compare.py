"""Round 24 probe, step 2: score the cached cases (cache_scores.py) as the defensive
mixture p(x) = (1 - pi) p_sharp(x) + pi N(x; m, S), pi = rows screened out / fitting rows,
with several broad Gaussians, and print the mean AUROC per group and per case.

Gaussians, all fitted on the fitting rows in the detector's robust units
u = (x - center_) / scale_ (log N(x) = log N(u) - sum_j log scale_j):
  mcd        MinCovDet (its covariance may be singular: then it fails)
  mcd-floor  MinCovDet, covariance eigenvalues floored at min_scale^2 (0.03^2)
  mcd-jitter MinCovDet of u + N(0, min_scale^2) noise
  lw-kept-rw LedoitWolf on the rows the screen kept, then one reweighting step (rows with
             Mahalanobis^2 under the chi2(d) 0.975 quantile), LedoitWolf again
  diag       N(0, I) in robust units (median and robust scale per column)
python compare.py --cache /tmp/round24/cache [--fixed-pi 0.01]
(--fixed-pi: the mixture weight pi fixed for every case, instead of the screened fraction)
"""

import argparse
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import chi2
from sklearn.covariance import LedoitWolf, MinCovDet
from sklearn.metrics import roc_auc_score

MIN_SCALE = 0.03


def log_normal(U, mean, cov):
    eig, vec = np.linalg.eigh(cov)
    if eig[0] <= 0:
        raise ValueError("singular covariance")
    Z = (U - mean) @ vec / np.sqrt(eig)
    return -0.5 * (np.sum(Z**2, axis=1) + np.sum(np.log(eig)) + U.shape[1] * np.log(2 * np.pi))


def floored(cov, floor):
    eig, vec = np.linalg.eigh(cov)
    return (vec * np.maximum(eig, floor)) @ vec.T


def gaussians(U, keep):
    d = U.shape[1]

    def mcd():
        m = MinCovDet(random_state=0).fit(U)
        return m.location_, m.covariance_

    def mcd_floor():
        m = MinCovDet(random_state=0).fit(U)
        return m.location_, floored(m.covariance_, MIN_SCALE**2)

    def mcd_jitter():
        noise = np.random.default_rng(0).normal(0.0, MIN_SCALE, U.shape)
        m = MinCovDet(random_state=0).fit(U + noise)
        return m.location_, m.covariance_

    def lw_kept_rw():
        first = LedoitWolf().fit(U[keep])
        inside = first.mahalanobis(U) <= chi2.ppf(0.975, d)
        second = LedoitWolf().fit(U[inside])
        return second.location_, second.covariance_

    def diag():
        return np.zeros(d), np.eye(d)

    return {"mcd": mcd, "mcd-floor": mcd_floor, "mcd-jitter": mcd_jitter,
            "lw-kept-rw": lw_kept_rw, "diag": diag}  # fmt: skip


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--fixed-pi", type=float)
    args = parser.parse_args()
    names = ["defaults", "mcd", "mcd-floor", "mcd-jitter", "lw-kept-rw", "diag"]
    table = defaultdict(dict)  # (group, case) -> name -> [auroc per seed]
    for path in sorted(args.cache.glob("*.npz")):
        c = np.load(path)
        case, _seed = path.stem.rsplit("-", 1)
        group = ("unsupervised" if case.endswith("unsupervised") else
                 "normal-only" if case.endswith("normal-only") else "structure")  # fmt: skip
        train, test, y, sharp = c["train"], c["test"], c["y"], c["sharp"]
        rows, keep, center, scale = c["rows"], c["keep"], c["center"], c["scale"]
        pi = np.count_nonzero(~keep) / len(keep) if args.fixed_pi is None else args.fixed_pi
        U, U_test = (train[rows] - center) / scale, (test - center) / scale
        log_jacobian = -np.sum(np.log(scale))
        results = {"defaults": roc_auc_score(y, -sharp)}
        for name, fit in gaussians(U, keep).items():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    mean, cov = fit()
                broad = log_normal(U_test, mean, cov) + log_jacobian
                mixture = np.logaddexp(np.log1p(-pi) + sharp, np.log(max(pi, 1e-300)) + broad)
                results[name] = roc_auc_score(y, -mixture)
            except (ValueError, np.linalg.LinAlgError):
                results[name] = np.nan
        for name, value in results.items():
            table[(group, case)].setdefault(name, []).append(value)
    print("case | seeds | " + " | ".join(names))
    for group in ("structure", "unsupervised", "normal-only"):
        cases = sorted(k for k in table if k[0] == group)
        for key in cases:
            cells = [f"{np.mean(table[key][n]):.4f}" for n in names]
            print(f"{key[1]:30s} | {len(table[key]['defaults'])} | " + " | ".join(cells))
        means = [np.mean([np.mean(table[k][n]) for k in cases]) if cases else np.nan
                 for n in names]  # fmt: skip
        print(f"**{group} mean** | | " + " | ".join(f"{m:.4f}" for m in means))


if __name__ == "__main__":
    main()
