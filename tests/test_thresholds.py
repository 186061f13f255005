"""Calibrated thresholds, conformal p-values and Benjamini-Hochberg: the stated rates hold."""

import pickle

import numpy as np
import pytest
from conftest import correlated_gaussian
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import vae_anomaly
from vae_anomaly import VAEAnomalyDetector
from vae_anomaly.alerts import alert_records
from vae_anomaly.errors import CalibrationWarning
from vae_anomaly.report import fit_report
from vae_anomaly.thresholds import (
    benjamini_hochberg,
    conformal_p_values,
    conformal_threshold,
    min_calibration_size,
)


def test_conformal_threshold_is_the_documented_order_statistic():
    scores = np.arange(1.0, 100.0)  # 99 scores
    assert conformal_threshold(scores, 0.01) == 99.0  # k = ceil(100 * 0.99) = 99
    assert conformal_threshold(scores[::-1], 0.1) == 90.0  # k = ceil(90) = 90
    assert min_calibration_size(0.01) == 99 and min_calibration_size(0.1) == 9
    with pytest.raises(ValueError, match=r"8 rows cannot certify fpr=0.1.*at least 9"):
        conformal_threshold(np.arange(8.0), 0.1)


def test_p_values_count_calibration_scores_at_least_as_large():
    calibration = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(
        conformal_p_values(calibration, [0.5, 2.0, 4.5]), [5 / 5, 4 / 5, 1 / 5]
    )


def test_benjamini_hochberg_step_up():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    # q = 0.05, m = 10: thresholds 0.005 k; p_(2) = 0.008 <= 0.010 is the largest passing.
    np.testing.assert_array_equal(benjamini_hochberg(p, 0.05), [1, 1] + [0] * 8)
    assert not benjamini_hochberg(np.array([0.9, 0.8]), 0.05).any()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: conformal_threshold([1.0, 2.0], 1.5), r"fpr must be in \(0, 1\)"),
        (lambda: conformal_threshold([1.0, np.nan], 0.5), "position 1 is not finite"),
        (lambda: conformal_threshold([], 0.5), "calibration set is empty"),
        (lambda: benjamini_hochberg([0.1], 0.0), r"fdr must be in \(0, 1\)"),
    ],
)
def test_bad_threshold_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# The conformal guarantees need only exchangeable scores: plain random scores test the
# arithmetic, fast. One end-to-end check on the VAE's own scores is marked slow.


@pytest.fixture(scope="module")
def random_pool():
    """Anomaly scores of 600,000 exchangeable normal rows (any continuous law will do)."""
    return np.random.default_rng(10).standard_normal(600_000)


@pytest.fixture(scope="module")
def vae_pool(fitted):
    """Anomaly scores of 400,000 fresh rows from the detector's training distribution."""
    return -fitted.score_samples(correlated_gaussian(400_000, seed=11))


def false_positives(pool, alpha, n_calibration, repeats):
    """Each repeat: a fresh calibration set and one fresh normal row; how many are flagged."""
    chunks = pool[: repeats * (n_calibration + 1)].reshape(repeats, n_calibration + 1)
    return sum(chunk[-1] > conformal_threshold(chunk[:-1], alpha) for chunk in chunks)


def assert_conformal_rate(flagged, alpha, n_calibration, repeats):
    # flagged ~ Binomial(repeats, p) with alpha - 1/(n + 1) <= p <= alpha (conformal).
    assert flagged <= stats.binom.ppf(0.999, repeats, alpha)
    assert flagged >= stats.binom.ppf(0.001, repeats, alpha - 1 / (n_calibration + 1))


def test_false_positive_rate_on_fresh_normal_scores_meets_the_target(random_pool):
    alpha, n_calibration, repeats = 0.05, 199, 2000
    flagged = false_positives(random_pool, alpha, n_calibration, repeats)
    assert_conformal_rate(flagged, alpha, n_calibration, repeats)


@pytest.mark.slow
def test_false_positive_rate_of_the_vae_on_fresh_normal_data_meets_the_target(vae_pool):
    alpha, n_calibration, repeats = 0.05, 199, 2000
    flagged = false_positives(vae_pool, alpha, n_calibration, repeats)
    assert_conformal_rate(flagged, alpha, n_calibration, repeats)


def test_p_values_are_uniform_on_normal_scores(random_pool):
    n_calibration, repeats = 99, 3000
    chunks = random_pool[: repeats * (n_calibration + 1)].reshape(repeats, n_calibration + 1)
    p = np.array([conformal_p_values(chunk[:-1], chunk[-1:])[0] for chunk in chunks])
    # Exactly uniform on {1/100, ..., 100/100}: 10 equal bins of 10 values each.
    counts = np.histogram(p, bins=np.linspace(0, 1, 11) + 1e-9)[0]
    assert stats.chisquare(counts).pvalue > 0.001
    assert p.min() == 0.01 and p.max() == 1.0  # both ends of the support are reached


def test_benjamini_hochberg_keeps_the_false_discovery_proportion(random_pool):
    fdr, batches, n_normal, n_anomalies = 0.1, 200, 190, 10
    # p >= 1 / (n_cal + 1), and BH's first cut is fdr / m = 0.0005: n_cal must exceed 2,000.
    calibration = random_pool[:9999]
    rng = np.random.default_rng(0)
    # Planted anomalies of varied strength: 2.5 to 6 standard deviations above normal.
    anomaly_scores = rng.standard_normal((batches, n_anomalies)) + rng.uniform(
        2.5, 6.0, (batches, n_anomalies)
    )
    normal = random_pool[9999 : 9999 + batches * n_normal].reshape(batches, n_normal)
    proportions, found = [], []
    for batch in range(batches):
        scores = np.concatenate([normal[batch], anomaly_scores[batch]])
        flagged = benjamini_hochberg(conformal_p_values(calibration, scores), fdr)
        false = flagged[:n_normal].sum()
        proportions.append(false / max(1, flagged.sum()))
        found.append(flagged[n_normal:].mean())
    proportions = np.array(proportions)
    standard_error = proportions.std(ddof=1) / np.sqrt(batches)
    assert proportions.mean() <= fdr + 3 * standard_error  # E[FDP] <= fdr (BH, PRDS)
    assert proportions.mean() > 0  # not vacuous: BH does let some normal rows through
    assert np.mean(found) > 0.5  # and it still finds most planted anomalies


def test_calibrate_sets_offset_and_keeps_predict_consistent(fitted, test_X):
    detector = pickle.loads(pickle.dumps(fitted))  # a private copy: calibrate mutates
    X_normal = correlated_gaussian(500, seed=21)
    assert detector.calibrate(X_normal, fpr=0.02) is detector
    anomaly = -fitted.score_samples(X_normal)
    assert detector.offset_ == -conformal_threshold(anomaly, 0.02)
    np.testing.assert_array_equal(detector.calibration_scores_, np.sort(anomaly))
    assert detector.fpr_ == 0.02
    scores = detector.score_samples(test_X)
    np.testing.assert_array_equal(detector.decision_function(test_X), scores - detector.offset_)
    np.testing.assert_array_equal(
        detector.predict(test_X), np.where(scores < detector.offset_, -1, 1)
    )
    np.testing.assert_array_equal(
        detector.p_values(test_X), conformal_p_values(detector.calibration_scores_, -scores)
    )
    X_mixed = test_X.copy()
    X_mixed[:5, 1] += 80.0  # 8 standard deviations on one correlated column
    p = detector.p_values(X_mixed)
    labels = detector.predict_fdr(X_mixed, fdr=0.1)
    np.testing.assert_array_equal(labels, np.where(benjamini_hochberg(p, 0.1), -1, 1))
    assert np.all(labels[:5] == -1) and np.sum(labels == 1) > 150


def test_threshold_users_refuse_scoring_parameters_changed_since_the_threshold(
    fitted, test_X, tmp_path
):
    # offset_ and calibration_scores_ are ELBO scores with k = 8: compared with IWAE
    # scores, or with another k, they would flag another share of normal rows.
    detector = pickle.loads(pickle.dumps(fitted)).calibrate(correlated_gaussian(300, 23), 0.05)
    X_alerts = test_X.copy()
    X_alerts[:3, 1] += 80.0
    labels = detector.predict(test_X)
    for change in ({"score_method": "iwae"}, {"n_score_samples": 1}):
        detector.set_params(**change)
        detector.score_samples(test_X)  # the scores follow the parameters at once
        key = next(iter(change))
        for call in (
            lambda: detector.predict(test_X),
            lambda: detector.decision_function(test_X),
            lambda: detector.p_values(test_X),
            lambda: detector.predict_fdr(test_X),
            lambda: detector.save(tmp_path / "refused"),
            lambda: alert_records(detector, X_alerts),
            lambda: fit_report(detector, test_X),
        ):
            with pytest.raises(ValueError, match=rf"{key}=.* \(set with .*\)\. Call calibrate"):
                call()
        detector.set_params(score_method="elbo", n_score_samples=8)  # set back
        np.testing.assert_array_equal(detector.predict(test_X), labels)
    assert not (tmp_path / "refused").exists()
    detector.set_params(score_method="iwae").calibrate(correlated_gaussian(300, 23), 0.05)
    scores = detector.score_samples(test_X)  # calibrated again: IWAE scores on both sides
    np.testing.assert_array_equal(detector.decision_function(test_X), scores - detector.offset_)
    detector.save(tmp_path / "iwae")
    restored = vae_anomaly.load(tmp_path / "iwae")
    np.testing.assert_array_equal(restored.predict(test_X), detector.predict(test_X))
    with pytest.raises(ValueError, match=r"score_method='elbo' \(set with 'iwae'\)"):
        restored.set_params(score_method="elbo").predict(test_X)


def test_calibration_errors(fitted):
    detector = pickle.loads(pickle.dumps(fitted))
    with pytest.raises(NotFittedError, match="not calibrated yet"):
        detector.p_values(correlated_gaussian(5, seed=1))
    with pytest.raises(ValueError, match=r"fpr must be in \(0, 1\)"):
        detector.calibrate(correlated_gaussian(50, seed=1), fpr=1.0)
    with pytest.raises(ValueError, match=r"50 rows cannot certify fpr=0.01.*at least 99"):
        detector.calibrate(correlated_gaussian(50, seed=1), fpr=0.01)
    X = correlated_gaussian(200, seed=1)
    X[17, 3] = np.nan
    with pytest.raises(ValueError, match="NaN at row 17, column 3"):
        detector.calibrate(X, fpr=0.05)


@pytest.mark.usefixtures("eager_functions")  # two fits of three epochs: the split is tested
def test_fit_holds_out_a_calibration_set(train_X):
    detector = VAEAnomalyDetector(
        epochs=3, calibration_fraction=0.25, fpr=0.05, random_state=0
    ).fit(train_X)
    assert len(detector.calibration_scores_) == 150 and detector.fpr_ == 0.05
    assert detector.offset_ == -conformal_threshold(detector.calibration_scores_, 0.05)
    with pytest.warns(
        CalibrationWarning,
        match=r"holds out 6 of 600 rows, but certifying fpr=0\.01 needs at least 99",
    ):
        small = clone(detector).set_params(calibration_fraction=0.01, fpr=0.01).fit(train_X)
    assert small.calibrated_ is False


def test_calibration_survives_save_load_and_pickle(fitted, test_X, tmp_path):
    detector = pickle.loads(pickle.dumps(fitted)).calibrate(correlated_gaussian(300, 22), 0.05)
    detector.save(tmp_path / "calibrated")
    for restored in (
        vae_anomaly.load(tmp_path / "calibrated"),
        pickle.loads(pickle.dumps(detector)),
    ):
        assert restored.offset_ == detector.offset_ and restored.fpr_ == 0.05
        np.testing.assert_array_equal(restored.p_values(test_X), detector.p_values(test_X))
