"""Round 21 probe: the screen's fence on the two parts of the robust model's score.

For each training part (seed 0) the robust screening model is fitted, and the rows are
scored as a = -ELBO = D + R, with the distortion D = -E_q[log p(x|z)] and the rate
R = KL(q(z|x) || p(z)). Reported: the share of normal rows and of anomalies beyond
  T1.5(a)          Tukey's fence on a (the default screen);
  T1.5(D)          Tukey's fence on the distortion only;
  T1.5(D)|T3(R)    beyond the distortion's fence, or far out in the rate;
  T1.5(D)|T1.5(R)  beyond either part's fence.
python split_fences.py [PARAMS_JSON]  (run from a copy of the repository, PYTHONPATH set to
it; PARAMS_JSON overrides SCREENING_PARAMS, for example '{"trim_fraction": 0.1}')
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(os.environ.get("PYTHONPATH", "/work/main").split(":")[0])
sys.path.insert(0, str(ROOT / "benchmarks"))
import structure  # noqa: E402
from quality import load_dataset  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from structure import CONTAMINATION  # noqa: E402

from vae_anomaly import VAEAnomalyDetector  # noqa: E402
from vae_anomaly.screening import SCREENING_PARAMS  # noqa: E402


def fence(values, factor):
    q1, q3 = np.percentile(values, [25, 75])
    return q3 + factor * (q3 - q1)


def structure_rows(gen, training):
    rng = np.random.default_rng([0, sorted(structure.GENERATORS).index(gen)])
    n_bad = round(CONTAMINATION * 5000) if training == "contaminated" else 0
    normal, anomalies = structure.GENERATORS[gen](rng, 5000 - n_bad + 2000, n_bad + 40)
    train = np.r_[normal.iloc[: 5000 - n_bad].to_numpy(), anomalies.iloc[:n_bad].to_numpy()]
    return train, np.r_[np.zeros(5000 - n_bad), np.ones(n_bad)]


def adbench_rows(name):
    X, y = load_dataset(Path(f"/work/shared/data/adbench/{name}.npz"))
    Xtr, _, ytr, _ = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    return Xtr, ytr


cases = [
    (f"{g}/{t}", lambda g=g, t=t: structure_rows(g, t))
    for g in ["linear", "ring", "spiral", "step", "low_rank", "clusters"]
    for t in ["clean", "contaminated"]
]
cases += [
    (name, lambda name=name: adbench_rows(name))
    for name in [
        "2_annthyroid", "6_cardio", "28_pendigits", "30_satellite", "47_yeast",
        "25_musk", "23_mammography", "38_thyroid", "4_breastw",
    ]
]  # fmt: skip
PARAMS = {**SCREENING_PARAMS, **(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})}
print(PARAMS)
print("case n anom | rule: normal_out% anom_out% ...", flush=True)
for label, make in cases:
    X, lab = make()
    det = VAEAnomalyDetector(random_state=0, screen_outliers=False, **PARAMS).fit(X)
    terms = det.score_terms(X, features=False)
    a, rate = -terms.elbo, terms.kl
    distortion = a - rate
    rules = {
        "T1.5(a)": a > fence(a, 1.5),
        "T1.5(D)": distortion > fence(distortion, 1.5),
        "T1.5(D)|T3(R)": (distortion > fence(distortion, 1.5)) | (rate > fence(rate, 3)),
        "T1.5(D)|T1.5(R)": (distortion > fence(distortion, 1.5)) | (rate > fence(rate, 1.5)),
    }
    parts = [f"{label:22s} n={len(X)} anom={int(lab.sum())}"]
    for name, out in rules.items():
        normal_out = 100 * np.mean(out[lab == 0])
        anomalies_out = 100 * out[lab == 1].sum() / max(lab.sum(), 1)
        parts.append(f"{name}: {normal_out:5.1f}% {anomalies_out:5.1f}%")
    print(" | ".join(parts), flush=True)
