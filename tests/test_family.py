"""The VAE family on the compositional core: objectives, corruptions, ``transform``."""

import numpy as np
import pytest
from conftest import correlated_gaussian
from test_mixed import LAYOUT, mixed_rows

from vae_anomaly import VAEAnomalyDetector

# Scores of small models fitted with the defaults, recorded at the base commit of this
# work (ddd90f2, before objectives and corruptions existed). Defaults must not change
# what is trained or scored.
RECORDED_TABULAR = [
    -9.2417434293925,
    -9.889194494873209,
    -9.743640093892736,
    -12.921866952270193,
    -11.41422741749875,
]
RECORDED_TABULAR_OFFSET = -20.594254409313127
RECORDED_MIXED = [
    -10.569423086589799,
    -11.606689162200913,
    -10.559448334968314,
    -10.961208451187835,
    -11.851838610714898,
]
RECORDED_IMAGE = [-3.6153354616253637, -3.5347405551583506, -3.3022356884903274]


def small_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 8 * 8))


IMAGE_MODEL = dict(
    image_shape=(8, 8, 1),
    likelihood="continuous_bernoulli",
    conv_filters=(4,),
    hidden_units=(8,),
)


def test_defaults_train_and_score_as_before_the_family_existed():
    X = correlated_gaussian(300, seed=0)
    tabular = VAEAnomalyDetector(epochs=3, random_state=0).fit(X)
    np.testing.assert_allclose(tabular.score_samples(X[:5]), RECORDED_TABULAR, rtol=1e-12)
    assert tabular.offset_ == pytest.approx(RECORDED_TABULAR_OFFSET, rel=1e-12)
    mixed = VAEAnomalyDetector(likelihood=LAYOUT, missing="mask", epochs=3, random_state=0)
    mixed.fit(mixed_rows(300, 0))
    np.testing.assert_allclose(mixed.score_samples(mixed_rows(5, 1)), RECORDED_MIXED, rtol=1e-12)
    images = small_images(64, seed=0)
    image = VAEAnomalyDetector(**IMAGE_MODEL, epochs=2, random_state=0).fit(images)
    np.testing.assert_allclose(image.score_samples(images[:3]), RECORDED_IMAGE, rtol=1e-12)
