import json
import sys

import numpy as np

sys.path.insert(0, "/work/main/benchmarks")
import structure
from quality import load_dataset
from sklearn.model_selection import train_test_split
from structure import CONTAMINATION

from vae_anomaly import VAEAnomalyDetector
from vae_anomaly.screening import SCREENING_PARAMS


def medcouple(a, n=2000, seed=0):
    a = np.sort(np.random.default_rng(seed).choice(a, min(n, len(a)), replace=False))
    m = np.median(a)
    lo, hi = a[a <= m], a[a >= m]
    d = (hi[None, :] - m) - (m - lo[:, None])
    w = hi[None, :] - lo[:, None]
    h = np.where(w > 0, d / np.where(w > 0, w, 1), 0.0)
    return float(np.median(h))


def rules(a):
    q1, q3 = np.percentile(a, [25, 75])
    iqr = q3 - q1
    mc = medcouple(a)
    return {
        "T1.5": q3 + 1.5 * iqr,
        "T3": q3 + 3 * iqr,
        "adj": q3 + 1.5 * np.exp(3 * max(mc, 0)) * iqr,
        "mc": mc,
    }


def structure_rows(gen, training):
    rng = np.random.default_rng([0, sorted(structure.GENERATORS).index(gen)])
    n_bad = round(CONTAMINATION * 5000) if training == "contaminated" else 0
    normal, anomalies = structure.GENERATORS[gen](rng, 5000 - n_bad + 2000, n_bad + 40)
    train = np.r_[normal.iloc[: 5000 - n_bad].to_numpy(), anomalies.iloc[:n_bad].to_numpy()]
    return train, np.r_[np.zeros(5000 - n_bad), np.ones(n_bad)]


cases = []
for g in ["linear", "ring", "spiral"]:
    for t in ["contaminated"]:
        cases.append((f"{g}/{t}", lambda g=g, t=t: structure_rows(g, t)))
for name in ["2_annthyroid", "6_cardio", "28_pendigits"]:

    def f(name=name):
        X, y = load_dataset(__import__("pathlib").Path(f"/work/shared/data/adbench/{name}.npz"))
        Xtr, _, ytr, _ = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
        return Xtr, ytr

    cases.append((name, f))
print("case n anom | rule: normal_out% anom_out% ...", flush=True)
for label, make in cases:
    X, lab = make()
    det = VAEAnomalyDetector(
        random_state=0, screen_outliers=False, **{**SCREENING_PARAMS, **json.loads(sys.argv[1])}
    ).fit(X)
    a = -det.score_samples(X)
    r = rules(a)
    parts = [f"{label:22s} n={len(X)} anom={int(lab.sum())} mc={r.pop('mc'):.2f}"]
    for k, f in r.items():
        out = a > f
        na = max(lab.sum(), 1)
        parts.append(
            f"{k}: {100 * np.mean(out[lab == 0]):5.1f}% {100 * out[lab == 1].sum() / na:5.1f}%"
        )
    print(" | ".join(parts), flush=True)
