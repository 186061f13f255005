"""scikit-learn's common estimator checks, with no expected failures."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from vae_anomaly import VAEAnomalyDetector

# Small and quick: the checks fit dozens of times on data of 10-100 rows.
CHECKED = VAEAnomalyDetector(epochs=3, batch_size=32, n_score_samples=4, random_state=0)


@parametrize_with_checks([CHECKED])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
