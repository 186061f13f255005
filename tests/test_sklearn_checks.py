"""scikit-learn's common estimator checks, with no expected failures."""

import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from vae_anomaly import VAEAnomalyDetector

# Small and quick: the checks fit dozens of times on data of 10-100 rows. One epoch, one
# batch, no validation split, and tf.functions run eagerly: the checks test the estimator's
# contract, and tracing the train step would cost more than all of the training.
pytestmark = pytest.mark.usefixtures("eager_functions")
CHECKED = VAEAnomalyDetector(
    epochs=1, batch_size=512, validation_fraction=0.0, n_score_samples=4, random_state=0
)


@parametrize_with_checks([CHECKED])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# The same checks without screening (the defaults screen since issue 16's round 18): one
# fit each, as with `pipelines/tabular_clean.toml`. Slow: the default suite runs the first.
@pytest.mark.slow
@parametrize_with_checks([clone(CHECKED).set_params(screen_outliers=False)])
def test_sklearn_compatible_estimator_without_screening(estimator, check):
    check(estimator)
