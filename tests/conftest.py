"""Shared fixtures: tiny data and one fitted detector per session (fit once, reuse)."""

import contextlib
import os
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from vae_anomaly import VAEAnomalyDetector


def correlated_gaussian(n: int, seed: int) -> np.ndarray:
    """n rows of a 4-d Gaussian with strong correlations and very different scales."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 2))
    mixing = np.array([[1.0, 0.5, -1.0, 0.2], [0.0, 1.0, 0.5, -0.8]])
    noise = 0.1 * rng.normal(size=(n, 4))
    return (latent @ mixing + noise) * np.array([1.0, 10.0, 100.0, 0.1]) + 50.0


@pytest.fixture(scope="session")
def train_X() -> np.ndarray:
    return correlated_gaussian(600, seed=0)


@pytest.fixture(scope="session")
def test_X() -> np.ndarray:
    return correlated_gaussian(200, seed=1)


@pytest.fixture(scope="session")
def fitted(train_X) -> VAEAnomalyDetector:
    """The shared fitted detector; tests must not refit or mutate it. One fit, without
    the screening fit (tested in test_screening.py): the suite's time."""
    detector = VAEAnomalyDetector(
        epochs=30, n_score_samples=8, screen_outliers=False, random_state=0
    )
    return detector.fit(train_X)


COLUMNS = ["a", "b", "c", "d"]


@pytest.fixture(scope="session")
def fitted_frame(train_X) -> VAEAnomalyDetector:
    """The shared detector fitted on train_X as a DataFrame with columns a, b, c, d.

    Tests must not refit or mutate it (calibrate a pickled copy)."""
    frame = pd.DataFrame(train_X, columns=COLUMNS)
    detector = VAEAnomalyDetector(
        epochs=30, n_score_samples=8, screen_outliers=False, random_state=0
    )
    return detector.fit(frame)


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def machines_model(tmp_path_factory):
    """The tabular job's model of the bundled training file (pipelines/tabular.toml, 15
    epochs: the tests check plumbing and pages), and its fit report: (directory, report).

    Shared by the job and report tests; they only read the directory."""
    from vae_anomaly.tabular.config import load_config
    from vae_anomaly.tabular.fit_job import fit_job

    target = tmp_path_factory.mktemp("model") / "machines"
    config = load_config(ROOT / "pipelines" / "tabular.toml").with_overrides(model={"epochs": 15})
    report = fit_job([ROOT / "sample_data" / "machines_train.csv"], target, config)
    return target, report


# TensorFlow's warning when a tf.data function is traced under run_functions_eagerly.
TF_DATA_EAGER_WARNING = "Even though the `tf.config.experimental_run_functions_eagerly`"


@contextlib.contextmanager
def eagerly():
    """Run tf.functions eagerly inside the block: for tiny fits of a step or two.

    Tracing a train step costs 2-3 s a fit; a tiny fit run eagerly takes under 0.5 s and
    gives the same scores. Tests of the compiled path (tracing counts, batch invariance of
    scores) score outside the block; quality tests with many steps stay compiled.

    tf.data functions (the interleave of a streamed fit, the image loader's decoding) are
    traced whatever the setting, and TensorFlow warns that it does not apply to them:
    expected here, so that warning is ignored inside the block.
    """
    tf.config.run_functions_eagerly(True)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", TF_DATA_EAGER_WARNING, UserWarning)
            yield
    finally:
        tf.config.run_functions_eagerly(False)


@pytest.fixture
def eager_functions():
    """The whole test under ``eagerly()``."""
    with eagerly():
        yield
