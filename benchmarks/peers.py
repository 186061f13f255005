"""The detectors a benchmark compares, each as ``fit_score(X_train, X_test, seed) -> scores``.

Scores are anomaly scores: higher is more anomalous. Peers are run at their defaults on
features standardised on the training part (the protocol of shared/data/README.md);
VAEAnomalyDetector gets the raw features and scales them itself, as a user would.
PyOD peers are offered only when PyOD is installed (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from vae_anomaly import VAEAnomalyDetector

FitScore = Callable[[np.ndarray, np.ndarray, int], dict[str, np.ndarray]]


def _standardised(X_train, X_test):
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test)


def vae(X_train, X_test, seed, **params) -> dict[str, np.ndarray]:
    """The default VAEAnomalyDetector: both scorings from one fit (-ELBO and -IWAE)."""
    detector = VAEAnomalyDetector(random_state=seed, **params).fit(X_train)
    terms = detector.score_terms(X_test, features=False)
    return {"vae-elbo": -terms.elbo, "vae-iwae": -terms.iwae}


def isolation_forest(X_train, X_test, seed) -> dict[str, np.ndarray]:
    X_train, X_test = _standardised(X_train, X_test)
    forest = IsolationForest(random_state=seed).fit(X_train)
    return {"iforest": -forest.score_samples(X_test)}


def knn(X_train, X_test, seed, n_neighbors: int = 5) -> dict[str, np.ndarray]:
    """Mean distance to the ``n_neighbors`` nearest training rows, on standardised features
    (scikit-learn ``NearestNeighbors``; deterministic, so ``seed`` is unused)."""
    X_train, X_test = _standardised(X_train, X_test)
    neighbours = NearestNeighbors(n_neighbors=min(n_neighbors, len(X_train))).fit(X_train)
    distances, _ = neighbours.kneighbors(X_test)
    return {"knn": distances.mean(axis=1)}


def _pyod(name: str, module: str, cls: str, seeded: bool = True) -> FitScore:
    """A PyOD detector at its defaults (progress output off; seeded where it takes a seed)."""

    def fit_score(X_train, X_test, seed):
        model_class = getattr(importlib.import_module(module), cls)
        model = model_class(random_state=seed, verbose=0) if seeded else model_class()
        X_train, X_test = _standardised(X_train, X_test)
        model.fit(X_train)
        return {name: np.asarray(model.decision_function(X_test), dtype=np.float64)}

    fit_score.__name__ = name
    return fit_score


PEERS: dict[str, FitScore] = {"vae": vae, "iforest": isolation_forest, "knn": knn}
if importlib.util.find_spec("pyod") is not None:
    PEERS["pyod-vae"] = _pyod("pyod-vae", "pyod.models.vae", "VAE")
    PEERS["pyod-ae"] = _pyod("pyod-ae", "pyod.models.auto_encoder", "AutoEncoder")
    PEERS["pyod-ecod"] = _pyod("pyod-ecod", "pyod.models.ecod", "ECOD", seeded=False)
