import sys

import numpy as np

sys.path.insert(0, "/work/main/benchmarks")
from structure import make_split

from vae_anomaly import VAEAnomalyDetector

train, test, y = make_split("linear", "clean", 0, 5000, 2000, 40)
det = VAEAnomalyDetector(random_state=0).fit(train.to_numpy())
X = test.to_numpy()
s = -det.score_samples(X)
t = det.score_terms(X)
order = np.argsort(-s)[:8]
print("fields", t._fields if hasattr(t, "_fields") else type(t))
for i in list(order) + list(np.where(y == 1)[0][:4]):
    print(
        f"{s[i]:8.2f} y={y[i]} x={X[i].round(3)}",
        f"feat={t.feature_log_likelihood[i].round(2)} kl={t.kl[i]:.2f}",
    )
# the model's reconstruction of the top rows: encoder mean -> decoder mean
m = det.model_
Xs = det._scale(X[order]) if hasattr(det, "_scale") else None
print("screened", det.n_screened_out_, "fence", det.screening_fence_)
a_train = train.to_numpy()[:, 0]
print("train |a| max", np.abs(a_train).max())
