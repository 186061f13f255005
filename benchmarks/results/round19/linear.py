import json
import sys

import numpy as np

sys.path.insert(0, "/work/main/benchmarks")
from structure import make_split

from vae_anomaly import VAEAnomalyDetector

gen = sys.argv[1] if len(sys.argv) > 1 else "linear"
training = sys.argv[2] if len(sys.argv) > 2 else "clean"
params = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
train, test, y = make_split(gen, training, 0, 5000, 2000, 40)
det = VAEAnomalyDetector(random_state=0, **params).fit(train.to_numpy())
s = -det.score_samples(test.to_numpy())
from sklearn.metrics import roc_auc_score  # noqa: E402

print(
    "auroc",
    roc_auc_score(y, s),
    "screened",
    getattr(det, "n_screened_out_", None),
    "epochs",
    det.n_epochs_,
)
order = np.argsort(-s)
X = test.to_numpy()
print("top 15 rows (score, label, x):")
for i in order[:15]:
    print(f"{s[i]:8.2f} {y[i]} {X[i].round(3)}")
an = np.where(y == 1)[0]
print(f"anomaly scores: min {s[an].min():.2f} median {np.median(s[an]):.2f} max {s[an].max():.2f}")
print(
    "normal scores quantiles 50/90/99/99.9/max",
    np.percentile(s[y == 0], [50, 90, 99, 99.9, 100]).round(2),
)
# terms
if hasattr(det, "score_terms"):
    pass
print({k: getattr(det, k) for k in ("latent_dim", "beta", "min_scale") if hasattr(det, k)})
