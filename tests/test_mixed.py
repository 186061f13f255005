"""Mixed-type likelihoods (Gaussian, Bernoulli, Categorical blocks) and masked missing values."""

import numpy as np
import pytest

import vae_anomaly.detector as detector_module
from vae_anomaly import VAEAnomalyDetector, load

LAYOUT = (("gaussian", 2), ("categorical", 3), ("bernoulli", 1))


def mixed_rows(n: int, seed: int, missing_share: float = 0.1) -> np.ndarray:
    """Two correlated numeric columns, a 3-level category and a flag, all tied to one factor."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(size=n)
    numeric = np.column_stack([factor, 3.0 * factor + 0.2 * rng.normal(size=n)]) * 10 + 100
    level = np.digitize(factor, [-0.5, 0.5])
    flag = (factor + 0.3 * rng.normal(size=n) > 0).astype(float)
    X = np.column_stack([numeric, np.eye(3)[level], flag])
    X[rng.random(n) < missing_share, 0] = np.nan
    return X


@pytest.fixture(scope="module")
def mixed_detector():
    # 40 epochs and no trimming: enough to learn the links on clean data. (Trimmed training,
    # the default, learns them too but needs about 100 epochs here: it skips the rows that
    # fit worst, which early on are the informative ones.)
    detector = VAEAnomalyDetector(
        likelihood=LAYOUT,
        missing="mask",
        epochs=40,
        n_score_samples=8,
        trim_fraction=0.0,
        screen_outliers=False,
        random_state=0,
    )
    return detector.fit(mixed_rows(1500, seed=0))


def test_score_features_has_one_column_per_original_column_and_sums_to_the_elbo(mixed_detector):
    X = mixed_rows(50, seed=1)
    terms = mixed_detector.score_terms(X)
    assert terms.feature_log_likelihood.shape == (50, 4)  # 2 numeric + 1 categorical + 1 flag
    np.testing.assert_allclose(terms.feature_log_likelihood.sum(axis=1) - terms.kl, terms.elbo)


def test_a_missing_entry_is_left_out_of_the_likelihood_not_imputed(mixed_detector):
    X = mixed_rows(50, seed=1, missing_share=0.0)
    missing = X.copy()
    missing[:, 0] = np.nan
    imputed = X.copy()
    imputed[:, 0] = mixed_detector.center_[0]  # what the encoder sees for a missing entry
    on_missing = mixed_detector.score_features(missing)
    on_imputed = mixed_detector.score_features(imputed)
    assert np.all(on_missing[:, 0] == 0.0)
    assert np.all(on_imputed[:, 0] != 0.0)  # an imputed value would be "explained"
    assert np.all(np.isfinite(mixed_detector.score_samples(missing)))


def test_a_missing_row_is_scored_by_its_observed_columns_only(mixed_detector):
    """Jacobian of the scaling counts only observed Gaussian columns: the ELBO of a row with
    x_0 missing equals the sum of its observed per-column terms minus the KL."""
    X = mixed_rows(20, seed=2, missing_share=0.0)
    X[:, 0] = np.nan
    terms = mixed_detector.score_terms(X)
    np.testing.assert_allclose(
        terms.feature_log_likelihood[:, 1:].sum(axis=1) - terms.kl, terms.elbo
    )


def test_an_unlikely_category_and_a_broken_relation_score_lower(mixed_detector):
    X = mixed_rows(200, seed=3, missing_share=0.0)
    wrong_level = X.copy()
    wrong_level[:, 2:5] = X[:, 2:5][:, ::-1]  # low factor gets the high level and back
    middle = X[:, 3] == 1
    changed = ~middle
    category = mixed_detector.score_features(X)[changed, 2]
    category_wrong = mixed_detector.score_features(wrong_level)[changed, 2]
    assert np.mean(category_wrong < category) > 0.9


def test_layout_and_missing_mask_survive_save_and_load(mixed_detector, tmp_path):
    X = mixed_rows(30, seed=4)
    mixed_detector.save(tmp_path / "mixed")
    loaded = load(tmp_path / "mixed")
    assert loaded.get_params()["likelihood"] == LAYOUT
    np.testing.assert_array_equal(loaded.score_samples(X), mixed_detector.score_samples(X))


@pytest.mark.parametrize(
    "layout, message",
    [
        ((("gaussian", 2), ("poisson", 1)), "block 1: family must be one of"),
        ((("gaussian", 2), ("categorical", 1)), "needs >= 2 levels"),
        ((("gaussian", 0),), "width must be an int >= 1"),
        ((("gaussian", 2), ("bernoulli", 1)), "layout covers 3"),
    ],
)
def test_bad_layouts_are_named(layout, message):
    with pytest.raises(ValueError, match=message):
        VAEAnomalyDetector(likelihood=layout, missing="mask", epochs=1).fit(mixed_rows(50, 0))


def test_one_hot_and_flag_columns_must_be_in_unit_interval():
    X = mixed_rows(50, seed=0)
    X[7, 5] = 2.0
    with pytest.raises(ValueError, match=r"row 7, column 5"):
        VAEAnomalyDetector(likelihood=LAYOUT, missing="mask", epochs=1).fit(X)


def test_nan_is_still_an_error_unless_missing_is_mask():
    with pytest.raises(ValueError, match="NaN at row"):
        VAEAnomalyDetector(likelihood=LAYOUT, epochs=1).fit(mixed_rows(50, seed=0))


@pytest.mark.slow
def test_missing_indicator_gives_the_encoder_the_presence_mask():
    X = mixed_rows(300, seed=5)
    with_mask = VAEAnomalyDetector(
        likelihood=LAYOUT, missing="mask", missing_indicator=True, epochs=2, random_state=0
    ).fit(X)
    without = VAEAnomalyDetector(likelihood=LAYOUT, missing="mask", epochs=2, random_state=0).fit(X)
    first_layer = lambda d: d.model_.encoder.hidden_layers[0].kernel.shape[0]  # noqa: E731
    assert first_layer(with_mask) == 2 * X.shape[1] and first_layer(without) == X.shape[1]
    assert np.all(np.isfinite(with_mask.score_samples(X)))


def many_level_rows(n: int, seed: int) -> np.ndarray:
    """Three independent standard normal columns and a categorical of 30 equal levels."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.normal(size=(n, 3)), np.eye(30)[rng.integers(0, 30, size=n)]])


@pytest.mark.slow  # its own fit; the default suite's 5-minute budget
def test_a_column_of_many_levels_is_not_named_first_on_ordinary_rows():
    # The categorical's term is about -log 30 = -3.4 on every row, the normals' about -1.4:
    # ranked by the terms, the categorical is the "most anomalous" column of nearly every
    # row. Against each term's median on the training rows, no column is favoured.
    detector = VAEAnomalyDetector(
        likelihood=(("gaussian", 3), ("categorical", 30)),
        epochs=5,
        screen_outliers=False,
        random_state=0,
    ).fit(many_level_rows(2000, seed=0))
    terms = detector.score_terms(many_level_rows(1000, seed=1))
    by_level = np.argmin(terms.scaled_feature_log_likelihood, axis=1)
    by_typical = np.argmin(terms.relative_feature_log_likelihood, axis=1)
    assert np.mean(by_level == 3) > 0.9
    assert np.mean(by_typical == 3) < 0.4  # a quarter for four alike columns
    np.testing.assert_allclose(
        terms.relative_feature_log_likelihood,
        terms.scaled_feature_log_likelihood - detector.typical_feature_log_likelihood_,
    )
    # A row far out on one normal column still names that column first.
    planted = many_level_rows(1, seed=2)
    planted[0, 1] = 5.0
    assert np.argmin(detector.score_terms(planted).relative_feature_log_likelihood) == 1


def test_the_typical_terms_leave_missing_outputs_at_zero_and_survive_saving(
    mixed_detector, tmp_path
):
    typical = mixed_detector.typical_feature_log_likelihood_
    assert typical.shape == (4,) and np.all(np.isfinite(typical))
    X = mixed_rows(20, seed=4, missing_share=0.0)
    X[:5, 0] = np.nan
    relative = mixed_detector.score_terms(X).relative_feature_log_likelihood
    assert np.all(relative[:5, 0] == 0.0)
    assert np.all(relative[5:, 0] != 0.0)
    mixed_detector.save(tmp_path / "m")
    loaded = load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.typical_feature_log_likelihood_, typical)
    np.testing.assert_array_equal(loaded.score_terms(X).relative_feature_log_likelihood, relative)


def test_the_typical_terms_hold_at_most_their_budget_of_values(monkeypatch):
    # Per-output terms of TYPICAL_TERM_VALUES // outputs training rows at most, so that a
    # wide input (a sparse one-hot of 40,000 columns) takes fewer rows, not more memory.
    monkeypatch.setattr(detector_module, "TYPICAL_TERM_VALUES", 50 * 4)  # 50 rows of 4
    scored = []
    original = VAEAnomalyDetector._terms

    def counting(self, X, features=True, rows=None, first_row=0, exact=True):
        if not exact:  # the typical terms' scoring
            scored.append(X.shape[0])
        return original(self, X, features, rows, first_row, exact)

    monkeypatch.setattr(VAEAnomalyDetector, "_terms", counting)
    detector = VAEAnomalyDetector(
        likelihood=LAYOUT, missing="mask", epochs=1, screen_outliers=False, random_state=0
    )
    detector.fit(mixed_rows(600, seed=5))
    assert 40 <= sum(scored) <= 50
    assert detector.typical_feature_log_likelihood_.shape == (4,)
