"""Round 17 driver, kept for its commands (run with PYTHONPATH=/tmp/snap20, a copy of commit
d44496f, whose benchmarks/ it imports): the defaults and the clean-data recipe fitted side by side;
the score is the mean of their two log-densities (a product of experts, unnormalised).

usage: poe.py WHICH OUT [benchmark args...]     WHICH: structure | normal | unsup
"""

import sys

sys.path.insert(0, "/tmp/snap20/benchmarks")
import peers

from vae_anomaly import VAEAnomalyDetector

WHICH, OUT, EXTRA = sys.argv[1], sys.argv[2], sys.argv[3:]
CLEAN = {
    "min_scale": 0.03,
    "hidden_units": [128, 128],
    "trim_fraction": 0.0,
    "n_iter_no_change": 1000,
}


def vae(X_train, X_test, seed, **params):
    both = []
    for extra in ({}, CLEAN):
        d = VAEAnomalyDetector(random_state=seed, **{**params, **extra}).fit(X_train)
        both.append(d.score_terms(X_test, features=False))
    return {
        "vae-elbo": -(both[0].elbo + both[1].elbo) / 2,
        "vae-iwae": -(both[0].iwae + both[1].iwae) / 2,
    }


peers.PEERS["vae"] = vae
if WHICH == "structure":
    import structure

    sys.exit(structure.main(["--detectors", "vae", "--out", OUT, *EXTRA]))
import quality  # noqa: E402

setting = {"normal": "normal-only", "unsup": "unsupervised"}[WHICH]
sys.exit(
    quality.main(
        [
            "--data",
            "/work/shared/data/adbench",
            "--setting",
            setting,
            "--detectors",
            "vae",
            "--out",
            OUT,
            *EXTRA,
        ]
    )
)
