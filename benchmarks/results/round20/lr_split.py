import sys

sys.path.insert(0, "/work/main/benchmarks")
from sklearn.metrics import roc_auc_score
from structure import make_split

import vae_anomaly.screening as scr
from vae_anomaly import VAEAnomalyDetector

gen, training, screen_lr = sys.argv[1], sys.argv[2], float(sys.argv[3])
scr.SCREENING_PARAMS["learning_rate"] = screen_lr
train, test, y = make_split(gen, training, 0, 5000, 2000, 40)
det = VAEAnomalyDetector(random_state=0, learning_rate=0.003).fit(train.to_numpy())
s = -det.score_samples(test.to_numpy())
print(
    gen,
    training,
    "screen lr",
    screen_lr,
    "auroc",
    round(roc_auc_score(y, s), 4),
    "screened",
    det.n_screened_out_,
)
