import sys

import numpy as np

sys.path.insert(0, "/work/main/benchmarks")
from sklearn.metrics import roc_auc_score
from structure import CONTAMINATION, make_split

from vae_anomaly import VAEAnomalyDetector
from vae_anomaly.screening import SCREENING_PARAMS

gen = sys.argv[1]
training = sys.argv[2]
train, test, y = make_split(gen, training, 0, 5000, 2000, 40)
# which training rows are anomalies? regenerate the labels: make_split permutes; rebuild
import structure  # noqa: E402

rng = np.random.default_rng([0, sorted(structure.GENERATORS).index(gen)])
n_bad = round(CONTAMINATION * 5000) if training == "contaminated" else 0
normal, anomalies = structure.GENERATORS[gen](rng, 5000 - n_bad + 2000, n_bad + 40)
lab = np.r_[np.zeros(5000 - n_bad), np.ones(n_bad)]
perm = rng.permutation(5000)
lab = lab[perm]
Xtr = train.to_numpy()
rob = VAEAnomalyDetector(random_state=0, screen_outliers=False, **SCREENING_PARAMS).fit(Xtr)
a = -rob.score_samples(Xtr)
q1, q3 = np.percentile(a, [25, 75])
fence = q3 + 1.5 * (q3 - q1)
out = a > fence
print(
    "robust model: train auroc (anomaly vs normal rows)", roc_auc_score(lab, a) if n_bad else None
)
print(
    "fence",
    fence,
    "left out",
    out.sum(),
    "of which anomalies",
    (out & (lab == 1)).sum(),
    "of",
    n_bad,
)
print("test auroc of robust model", roc_auc_score(y, -rob.score_samples(test.to_numpy())))
sharp = VAEAnomalyDetector(random_state=0).fit(Xtr)
a2 = -sharp.score_samples(Xtr)
print(
    "default model: screened",
    sharp.n_screened_out_,
    "train auroc",
    roc_auc_score(lab, a2) if n_bad else None,
    "test auroc",
    roc_auc_score(y, -sharp.score_samples(test.to_numpy())),
)
q1, q3 = np.percentile(a2, [25, 75])
fence2 = q3 + 1.5 * (q3 - q1)
out2 = a2 > fence2
print("second fence", fence2, "left out", out2.sum(), "anomalies", (out2 & (lab == 1)).sum())
keep = ~out2
second = VAEAnomalyDetector(random_state=0, screen_outliers=False).fit(Xtr[keep])
print("second pass test auroc", roc_auc_score(y, -second.score_samples(test.to_numpy())))
