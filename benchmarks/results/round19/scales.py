import sys

import numpy as np

sys.path.insert(0, "/work/main/benchmarks")
from structure import make_split

from vae_anomaly import VAEAnomalyDetector

train, test, y = make_split("linear", "clean", 0, 5000, 2000, 40)
det = VAEAnomalyDetector(random_state=0, screen_outliers=False, latent_dim=1, beta=1.0).fit(
    train.to_numpy()
)
for v in det.model_.weights:
    if "raw_scale" in v.name:
        raw = v.numpy()
        print(v.path if hasattr(v, "path") else v.name, raw, "scale", np.log1p(np.exp(raw)) + 0.03)
for k in ("scaler_", "center_", "scale_", "feature_scale_"):
    if hasattr(det, k):
        print(k, getattr(det, k))
print([a for a in vars(det) if a.endswith("_") and not a.startswith("_")])
X = test.to_numpy()
an = np.where(y == 1)[0][:3]
t = det.score_terms(X[an])
print("anom", X[an].round(3), t.feature_log_likelihood.round(2), t.kl.round(2))
