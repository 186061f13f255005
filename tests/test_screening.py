"""screen_outliers=True: a robust fit screens the training rows, and the detector's own
(sharp) model is fitted on the rows within Tukey's fence of their anomaly scores."""

import numpy as np
import pandas as pd
import pytest
from conftest import eagerly
from sklearn.utils._param_validation import InvalidParameterError

from vae_anomaly import VAEAnomalyDetector, load, screening
from vae_anomaly.screening import (
    FENCE_FACTOR,
    MIN_LEVEL_ROWS,
    SCREENING_PARAMS,
    categorical_levels,
    level_fences,
    row_fences,
    screening_detector,
    tukey_fence,
)
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
    plain = VAEAnomalyDetector(**SHARP, screen_outliers=False).fit(X)
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


def test_categorical_levels_are_read_from_each_one_hot_block():
    layout = (("gaussian", 1), ("categorical", 3), ("categorical", 2))
    X = np.array(
        [
            [0.5, 0, 1, 0, 1, 0],
            [0.1, 1, 0, 0, 0, 1],
            [0.2, np.nan, np.nan, np.nan, 0, 1],  # the first categorical column missing
        ]
    )
    first, second = categorical_levels(X, layout)
    np.testing.assert_array_equal(first, [1, 0, -1])
    np.testing.assert_array_equal(second, [0, 1, 1])
    assert categorical_levels(X[:, :1], (("gaussian", 1),)) == []


def test_a_row_is_left_out_only_beyond_the_fence_of_all_rows_and_of_its_own_levels():
    """A rarer kind of row with lower density (a wider spread) throughout: the overall
    fence leaves most of it out, the fence of its own level only its own outliers."""
    rng = np.random.RandomState(0)
    common = rng.normal(10.0, 1.0, 800)
    rare = rng.normal(18.0, 1.5, 200)
    rare_outliers = np.full(10, 30.0)
    tiny = np.full(MIN_LEVEL_ROWS - 1, 25.0)  # too few rows for a fence of its own
    scores = np.concatenate([common, rare, rare_outliers, tiny])
    level = np.repeat([0, 1, 1, 2], [800, 200, 10, MIN_LEVEL_ROWS - 1])
    layout = (("gaussian", 2), ("categorical", 3))
    overall = tukey_fence(scores)
    fences = level_fences(scores, [level], layout, overall)
    assert fences[0][2] == overall and fences[0][1] == tukey_fence(scores[level == 1])
    per_row = row_fences(overall, fences, [level], len(scores))
    np.testing.assert_array_equal(per_row, np.maximum(overall, fences[0][level]))

    left_out_overall = scores > overall
    left_out = scores > per_row
    assert left_out_overall[800:1000].mean() >= 0.8  # the overall fence alone
    assert left_out[800:1000].mean() < 0.02  # the rare kind's own fence keeps it
    assert left_out[1000:1010].all()  # but not its outliers
    assert left_out[1010:].sum() == left_out_overall[1010:].sum() == len(tiny)
    assert not left_out[:800].any()


def test_without_categorical_columns_the_overall_fence_is_every_rows_fence():
    np.testing.assert_array_equal(row_fences(7.5, [], [], 4), np.full(4, 7.5))


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
    assert loaded.screening_level_fences_ == screened.screening_level_fences_ == []
    np.testing.assert_array_equal(loaded.score_samples(X), screened.score_samples(X))


@pytest.mark.slow  # the job's streamed fit screens in the default suite (test_fit_stream.py)
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


def two_kinds_of_machine(n=1500) -> pd.DataFrame:
    """80% of rows of kind "a" with y = x + N(0, 0.1^2), x ~ N(0, 1); 20% of kind "b",
    rarer and more spread out (lower density throughout): x ~ N(5, 2^2), y = x + N(0, 0.3^2)."""
    rng = np.random.RandomState(0)
    kind = np.where(rng.uniform(size=n) < 0.8, "a", "b")
    b = kind == "b"
    x = np.where(b, rng.normal(5.0, 2.0, n), rng.normal(0.0, 1.0, n))
    y = x + np.where(b, 0.3, 0.1) * rng.normal(size=n)
    return pd.DataFrame({"kind": kind, "x": x, "y": y})


@pytest.mark.slow
def test_a_rarer_wider_kind_of_row_is_not_screened_out_wholesale(monkeypatch, tmp_path):
    frame = two_kinds_of_machine()
    n_b = int((frame["kind"] == "b").sum())
    params = dict(SHARP, screen_outliers=True, epochs=30)
    by_level = VAEAnomalyDetector(**params).fit(frame)
    assert len(by_level.screening_level_fences_) == 1  # one categorical column
    by_level.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    np.testing.assert_array_equal(
        loaded.screening_level_fences_[0], by_level.screening_level_fences_[0]
    )
    monkeypatch.setattr(screening, "MIN_LEVEL_ROWS", 10**9)  # the overall fence only
    overall_only = VAEAnomalyDetector(**params).fit(frame)
    assert overall_only.n_screened_out_ > 0.5 * n_b
    assert by_level.n_screened_out_ < 0.25 * n_b
