"""screen_outliers=True: a robust fit screens the training rows, and the detector's own
(sharp) model is fitted on the rows within Tukey's fence of their anomaly scores."""

import numpy as np
import pytest
from conftest import eagerly
from sklearn.utils._param_validation import InvalidParameterError

from vae_anomaly import VAEAnomalyDetector, load
from vae_anomaly.screening import FENCE_FACTOR, SCREENING_PARAMS, screening_detector, tukey_fence
from vae_anomaly.streaming import position_keys

# A model sharp enough to learn a small group of outliers as normal when nothing screens.
SHARP = dict(
    trim_fraction=0.0,
    min_scale=0.03,
    hidden_units=(64, 64),
    n_iter_no_change=1000,
    epochs=40,
    random_state=0,
)
N_NORMAL, N_GROUP = 570, 30


def rows_with_a_group_of_outliers() -> np.ndarray:
    """570 correlated 4-d Gaussian rows, then 30 rows in a tight group away from them."""
    rng = np.random.RandomState(0)
    mixing = np.array([[1, 0.8, 0, 0], [0, 0.6, 0, 0], [0, 0, 1, 0.5], [0, 0, 0, 0.8]])
    normal = rng.normal(size=(N_NORMAL, 4)) @ mixing
    group = np.array([2.5, -2.5, 2.5, -2.5]) + 0.05 * rng.normal(size=(N_GROUP, 4))
    return np.vstack([normal, group])


@pytest.fixture(scope="module")
def fitted_both_ways():
    X = rows_with_a_group_of_outliers()
    plain = VAEAnomalyDetector(**SHARP).fit(X)
    screened = VAEAnomalyDetector(screen_outliers=True, **SHARP).fit(X)
    return X, plain, screened


def share_of_group_below_normal_1pct(detector, X) -> float:
    scores = detector.score_samples(X)
    return float(np.mean(scores[N_NORMAL:] < np.quantile(scores[:N_NORMAL], 0.01)))


def test_tukey_fence_is_the_third_quartile_plus_one_and_a_half_interquartile_ranges():
    scores = np.arange(101.0)  # Q1 = 25, Q3 = 75
    assert FENCE_FACTOR == 1.5
    assert tukey_fence(scores) == 75.0 + 1.5 * 50.0
    assert tukey_fence(scores, 3.0) == 225.0


def test_the_screening_fit_is_the_detector_with_the_robust_settings():
    detector = VAEAnomalyDetector(screen_outliers=True, calibration_fraction=0.2, **SHARP)
    screen = screening_detector(detector)
    params = screen.get_params()
    assert {key: params[key] for key in SCREENING_PARAMS} == SCREENING_PARAMS
    assert params["screen_outliers"] is False and params["calibration_fraction"] == 0.0
    assert params["epochs"] == 40 and params["random_state"] == 0  # the rest is shared
    assert detector.get_params()["trim_fraction"] == 0.0  # the detector is not changed


def test_screening_keeps_a_sharp_model_from_learning_a_group_of_outliers(fitted_both_ways):
    X, plain, screened = fitted_both_ways
    assert not hasattr(plain, "n_screened_out_")
    # The robust fit puts the whole group beyond the fence, and the tail of the normal
    # rows' scores (a few percent: the fence is Tukey's, not a cut-off for clean data).
    assert N_GROUP <= screened.n_screened_out_ <= N_GROUP + 0.06 * N_NORMAL
    assert np.isfinite(screened.screening_fence_)
    # Without screening the sharp model learns the group: most of it scores as normal.
    assert share_of_group_below_normal_1pct(plain, X) < 0.6
    assert share_of_group_below_normal_1pct(screened, X) == 1.0


def test_the_training_threshold_speaks_for_every_training_row(fitted_both_ways):
    X, _, screened = fitted_both_ways
    # contamination=0.01 of all 600 rows, screened ones included: the 1% quantile of
    # the kept rows only would flag the 30 grouped rows and more (over 5%).
    flagged = np.mean(screened.score_samples(X) < screened.offset_)
    assert flagged <= 0.01 + 1.0 / len(X)


@pytest.mark.slow
def test_screening_is_reproducible_with_an_int_random_state(fitted_both_ways):
    X, _, screened = fitted_both_ways
    again = VAEAnomalyDetector(screen_outliers=True, **SHARP).fit(X)
    assert again.n_screened_out_ == screened.n_screened_out_
    np.testing.assert_array_equal(again.score_samples(X), screened.score_samples(X))


def test_calibration_rows_are_held_out_before_screening():
    X = rows_with_a_group_of_outliers()
    with eagerly():
        detector = VAEAnomalyDetector(
            screen_outliers=True, calibration_fraction=0.2, epochs=2, random_state=0
        ).fit(X)
    assert len(detector.calibration_scores_) == int(0.2 * len(X))  # not 20% of the kept
    assert 0 < detector.n_screened_out_ <= 0.25 * 0.8 * len(X)  # of the fitting rows only


def test_the_screening_is_saved_with_the_model(fitted_both_ways, tmp_path):
    X, _, screened = fitted_both_ways
    screened.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert loaded.screen_outliers is True
    assert loaded.n_screened_out_ == screened.n_screened_out_
    assert loaded.screening_fence_ == screened.screening_fence_
    np.testing.assert_array_equal(loaded.score_samples(X), screened.score_samples(X))


def test_a_streamed_fit_screens_every_chunk():
    X = rows_with_a_group_of_outliers()
    order = np.random.RandomState(1).permutation(len(X))  # the group spread over chunks
    X = X[order]
    keys = position_keys(0, np.arange(2, len(X) + 2))
    chunks = ((X[i : i + 100], keys[i : i + 100]) for i in range(0, len(X), 100))
    detector = VAEAnomalyDetector(screen_outliers=True, calibration_fraction=0.2, **SHARP)
    detector._fit_stream(X[::2], keys[::2], chunks, n_rows=len(X))
    counts = detector._stream_counts
    assert counts["screened_out"] == detector.n_screened_out_
    assert sum(counts.values()) == len(X)  # every row: trained, held out or screened out
    in_group = order >= N_NORMAL
    scores = detector.score_samples(X)
    assert np.mean(scores[in_group] < np.quantile(scores[~in_group], 0.01)) == 1.0


def test_screen_outliers_takes_a_bool():
    with pytest.raises(InvalidParameterError, match="screen_outliers"):
        VAEAnomalyDetector(screen_outliers="yes").fit(rows_with_a_group_of_outliers())
