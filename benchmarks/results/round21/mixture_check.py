"""Round 21 probe: the clean line (seed 0) scored by the sharp model, the screening model
and their mixture (1 - pi) p_sharp + pi p_screen. python mixture_check.py"""

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(os.environ.get("PYTHONPATH", "/work/main").split(":")[0])
sys.path.insert(0, str(ROOT / "benchmarks"))
import structure  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

import vae_anomaly.detector as detector_module  # noqa: E402
from vae_anomaly import VAEAnomalyDetector  # noqa: E402

kept = {}
original_fit_screen = detector_module.fit_screen


def fit_screen(detector, X_fit, X, layout):
    result = original_fit_screen(detector, X_fit, X, layout)
    kept["screen"] = result[0]
    return result


detector_module.fit_screen = fit_screen
rng = np.random.default_rng([0, sorted(structure.GENERATORS).index("linear")])
normal, anomalies = structure.GENERATORS["linear"](rng, 5000 + 2000, 40)
train = normal.iloc[:5000].to_numpy()
test = np.r_[normal.iloc[5000:].to_numpy(), anomalies.to_numpy()]
y = np.r_[np.zeros(2000), np.ones(40)]
detector = VAEAnomalyDetector(random_state=0).fit(train)
pi = detector.n_screened_out_ / len(train)
sharp, screen = detector.score_samples(test), kept["screen"].score_samples(test)
mixture = np.logaddexp(np.log1p(-pi) + sharp, np.log(pi) + screen)
print("pi", pi)
for name, s in [("sharp", sharp), ("screen", screen), ("mix", mixture)]:
    anomaly_range = np.percentile(-s[y == 1], [0, 50, 100])
    print(name, roc_auc_score(y, -s), "normal max", np.max(-s[y == 0]), "anomalies", anomaly_range)
top = np.argsort(sharp)[:15]
print("top rows: sharp", -sharp[top].round(1), "screen", -screen[top].round(1), "label", y[top])
