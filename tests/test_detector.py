"""The estimator's contract: score relations, determinism, sklearn composition."""

import threading

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from vae_anomaly import VAEAnomalyDetector
from vae_anomaly.parameters import default_hidden_units
from vae_anomaly.scoring import MAX_BATCH_ELEMENTS, _compiled_scorers, scoring_batch_rows


def test_scores_are_float64_and_tie_together(fitted, test_X):
    scores = fitted.score_samples(test_X)
    assert scores.dtype == np.float64 and scores.shape == (len(test_X),)
    np.testing.assert_array_equal(fitted.decision_function(test_X), scores - fitted.offset_)
    expected = np.where(scores - fitted.offset_ < 0, -1, 1)
    np.testing.assert_array_equal(fitted.predict(test_X), expected)


def test_outliers_score_lower_than_inliers(fitted, test_X):
    outliers = test_X.copy()[:20]
    outliers[:, 1] += 80.0  # 8 standard deviations on one correlated column
    inlier_scores = fitted.score_samples(test_X)
    assert np.max(fitted.score_samples(outliers)) < np.percentile(inlier_scores, 1)
    assert np.all(fitted.predict(outliers) == -1)
    assert np.mean(fitted.predict(test_X) == -1) < 0.05


def test_score_features_sum_to_the_elbo_and_point_at_the_bad_column(fitted, test_X):
    terms = fitted.score_terms(test_X)
    features = fitted.score_features(test_X)
    assert features.shape == test_X.shape and features.dtype == np.float64
    np.testing.assert_allclose(features.sum(axis=1) - terms.kl, terms.elbo, rtol=1e-12)
    np.testing.assert_array_equal(fitted.score_samples(test_X), terms.elbo)

    broken = test_X[:10].copy()
    broken[:, 2] += 800.0  # column 2 has std ~ 100
    assert np.all(np.argmin(fitted.score_features(broken), axis=1) == 2)


def test_same_row_same_score_whatever_batch_or_order(fitted, test_X):
    scores = fitted.score_samples(test_X)
    order = np.random.default_rng(0).permutation(len(test_X))
    np.testing.assert_array_equal(fitted.score_samples(test_X[order]), scores[order])
    np.testing.assert_array_equal(fitted.score_samples(test_X[:1]), scores[:1])
    many = np.concatenate([test_X] * 8)  # 1600 rows: more than one internal batch
    np.testing.assert_array_equal(fitted.score_samples(many)[-len(test_X) :], scores)


def test_iwae_scores_are_deterministic_and_at_least_the_mc_elbo(fitted, test_X):
    iwae = clone(fitted).set_params(score_method="iwae")
    iwae.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    order = np.random.default_rng(1).permutation(len(test_X))
    scores = iwae.score_samples(test_X)
    np.testing.assert_array_equal(iwae.score_samples(test_X[order]), scores[order])
    assert np.all(scores >= iwae.score_terms(test_X).elbo_mc)


def test_scoring_runs_through_one_fixed_batch_shape_bounded_in_memory(fitted, test_X):
    fitted.score_samples(test_X[:3])
    fitted.score_samples(np.concatenate([test_X] * 6))
    scorer = _compiled_scorers[fitted.model_][fitted.n_score_samples]
    assert scorer.experimental_get_tracing_count() == 1  # one shape, whatever n
    for k in (1, 64, 256, 4096):
        rows = scoring_batch_rows(fitted.model_, k)
        widest = max(fitted.n_features_in_, fitted.latent_dim_, *fitted.hidden_units_)
        assert k * rows * widest <= max(MAX_BATCH_ELEMENTS, k * widest)


def test_threads_scoring_at_once_get_the_serial_scores(test_X):
    # The scoring job scores two chunks at once (tabular.engines.run_pipeline).
    detector = VAEAnomalyDetector(epochs=2, screen_outliers=False, random_state=0).fit(test_X)
    serial = detector.score_samples(test_X)
    _compiled_scorers.pop(detector.model_, None)  # built and traced by the threads below
    start, results = threading.Barrier(4), {}

    def score(i):
        start.wait()
        results[i] = detector.score_samples(test_X)

    threads = [threading.Thread(target=score, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(4):
        np.testing.assert_array_equal(results[i], serial)


def test_refit_with_same_random_state_is_identical(fitted, train_X, test_X):
    # The shared detector is the first fit (random_state=0), made earlier in the session.
    refit = VAEAnomalyDetector(**fitted.get_params()).fit(train_X)
    assert refit.history_["loss"] == fitted.history_["loss"]
    np.testing.assert_array_equal(refit.score_samples(test_X), fitted.score_samples(test_X))


@pytest.mark.usefixtures("eager_functions")  # three epochs: the offset is what is tested
def test_contamination_sets_the_training_quantile(train_X):
    detector = VAEAnomalyDetector(epochs=3, contamination=0.1, random_state=0)
    labels = detector.fit_predict(train_X)
    assert np.mean(labels == -1) == pytest.approx(0.1, abs=1 / len(train_X))
    scores = detector.score_samples(train_X)
    assert detector.offset_ == pytest.approx(np.percentile(scores, 10))


def test_default_contamination_flags_one_percent_of_training_rows(fitted, train_X):
    assert fitted.contamination == 0.01
    assert fitted.offset_ == pytest.approx(np.percentile(fitted.score_samples(train_X), 1))


@pytest.mark.usefixtures("eager_functions")  # three epochs: the offset is what is tested
def test_auto_contamination_uses_the_documented_tukey_fence(train_X):
    detector = VAEAnomalyDetector(epochs=3, contamination="auto", random_state=0).fit(train_X)
    q1, q3 = np.percentile(detector.score_samples(train_X), [25, 75])
    assert detector.offset_ == pytest.approx(q1 - 3.0 * (q3 - q1))


def test_training_history_reports_loss_terms_for_fit_and_validation(fitted):
    history = fitted.history_
    for name in ("loss", "reconstruction_loss", "kl"):
        assert name in history and f"val_{name}" in history
        assert len(history[name]) == fitted.n_epochs_
    # No warm-up: loss = reconstruction + beta * KL, epoch by epoch (the default beta).
    assert fitted.beta == 0.3
    np.testing.assert_allclose(
        history["loss"],
        np.add(history["reconstruction_loss"], fitted.beta * np.asarray(history["kl"])),
        rtol=1e-5,
    )
    assert history["loss"][-1] < history["loss"][0]
    # Wall time of every epoch, for throughput figures (benchmarks/speed.py).
    assert len(history["epoch_seconds"]) == fitted.n_epochs_
    assert all(seconds > 0 for seconds in history["epoch_seconds"])


def test_kl_warmup_ramps_the_kl_weight(train_X):
    detector = VAEAnomalyDetector(
        epochs=4,
        kl_warmup_epochs=4,
        validation_fraction=0.0,
        screen_outliers=False,
        random_state=0,
    ).fit(train_X)
    history = detector.history_
    # Epoch 1 has weight 0: the loss is the reconstruction term alone.
    assert history["loss"][0] == pytest.approx(history["reconstruction_loss"][0], rel=1e-6)
    assert history["loss"][-1] > history["reconstruction_loss"][-1]
    # Epoch 4 of 4 starts at 3/4 of the way to beta.
    assert float(detector.model_.kl_weight.numpy()) == pytest.approx(0.75 * detector.beta)


def test_early_stopping_stops_before_the_epoch_budget(train_X):
    detector = VAEAnomalyDetector(
        epochs=400,
        n_iter_no_change=2,
        learning_rate=0.01,
        screen_outliers=False,
        random_state=0,
    ).fit(train_X)
    assert detector.n_epochs_ < 400


def test_the_default_model_is_the_screened_sharp_recipe():
    """Issue 16, rounds 16-18: a robust fit screens the training rows, and a sharp model
    (no trimmed loss, a floor of 0.03, two layers of 128, the whole step budget) is
    fitted on the rest."""
    params = VAEAnomalyDetector().get_params()
    assert params["screen_outliers"] is True and params["trim_fraction"] == 0.0
    assert params["min_scale"] == 0.03 and params["hidden_units"] == (128, 128)
    assert params["n_iter_no_change"] == 1000 and params["beta"] == 0.3


def test_defaults_size_the_network_from_the_data(fitted, train_X):
    detector = fitted  # fitted on train_X with the default sizes and scaling
    assert detector.latent_dim_ == 3 and detector.hidden_units_ == (128, 128)
    median = np.median(train_X, axis=0)
    iqr = np.subtract(*np.percentile(train_X, [75, 25], axis=0))
    np.testing.assert_allclose(detector.center_, median)  # robust scaling by default
    np.testing.assert_allclose(detector.scale_, iqr / 1.349)
    assert detector.hidden_units == (128, 128) and detector.latent_dim is None  # untouched
    # hidden_units=None sizes the network from d: (h, h / 2), h = 2d rounded up to a power
    # of two, at least 16 (the screening fit's width, and the image job's).
    assert default_hidden_units(4) == (16, 8) and default_hidden_units(784) == (512, 256)


def test_bernoulli_likelihood_on_binary_data():
    rng = np.random.default_rng(0)
    prototype = rng.random(12) < 0.5
    X = np.where(rng.random((400, 12)) < 0.05, ~prototype, prototype).astype(float)
    detector = VAEAnomalyDetector(
        likelihood="bernoulli", epochs=20, screen_outliers=False, random_state=0
    ).fit(X)
    assert np.all(detector.center_ == 0) and np.all(detector.scale_ == 1)  # no scaling
    inverted = 1.0 - X[:5]
    assert np.max(detector.score_samples(inverted)) < np.min(detector.score_samples(X))


def test_gaussian_scale_per_sample_is_available(train_X, test_X):
    detector = VAEAnomalyDetector(
        likelihood_scale="sample", epochs=3, screen_outliers=False, random_state=0
    )
    assert np.all(np.isfinite(detector.fit(train_X).score_samples(test_X)))


def test_dataframe_feature_names_are_kept(fitted_frame, train_X):
    frame = pd.DataFrame(train_X, columns=["a", "b", "c", "d"])
    detector = fitted_frame
    np.testing.assert_array_equal(detector.feature_names_in_, ["a", "b", "c", "d"])
    # The names are checked when scoring: the same values without them warn, and score alike.
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        unnamed = detector.score_samples(train_X[:50])
    np.testing.assert_array_equal(detector.score_samples(frame.iloc[:50]), unnamed)
    with pytest.raises(ValueError, match="Feature names must be in the same order"):
        detector.score_samples(frame[["d", "c", "b", "a"]])


@pytest.mark.usefixtures("eager_functions")  # seven fits of two epochs: the contract is tested
def test_works_in_pipeline_clone_and_grid_search(train_X, test_X):
    train_X = train_X[:200]  # two batches: fewer eager steps per fit
    detector = VAEAnomalyDetector(epochs=2, random_state=0)
    cloned = clone(detector)
    assert cloned.get_params() == detector.get_params() and not hasattr(cloned, "model_")

    pipeline = make_pipeline(PCA(n_components=3), detector).fit(train_X)
    pca = PCA(n_components=3).fit(train_X)
    direct = clone(detector).fit(pca.transform(train_X))
    np.testing.assert_array_equal(
        pipeline.score_samples(test_X), direct.score_samples(pca.transform(test_X))
    )
    np.testing.assert_array_equal(pipeline.predict(test_X), direct.predict(pca.transform(test_X)))

    # Average log-likelihood on held-out folds picks the latent size.
    mean_log_likelihood = lambda est, X, y=None: float(np.mean(est.score_samples(X)))  # noqa: E731
    search = GridSearchCV(
        VAEAnomalyDetector(epochs=2, random_state=0),
        {"latent_dim": [1, 2]},
        scoring=mean_log_likelihood,
        cv=2,
        refit=False,
    ).fit(train_X)
    means = search.cv_results_["mean_test_score"]
    assert means[0] != means[1]  # latent_dim reached the fitted candidates
    best = int(np.argmax(means))
    assert search.best_params_["latent_dim"] == [1, 2][best]
    # Fold 0 of the winner, by hand: fit on the second half, score the first.
    half = len(train_X) // 2
    by_hand = VAEAnomalyDetector(epochs=2, latent_dim=[1, 2][best], random_state=0)
    by_hand.fit(train_X[half:])
    assert search.cv_results_["split0_test_score"][best] == pytest.approx(
        mean_log_likelihood(by_hand, train_X[:half]), rel=1e-12
    )


def test_parameters_are_validated_once_in_fit_and_scoring_checks_only_its_own(fitted, test_X):
    import copy

    from sklearn.utils._param_validation import InvalidParameterError

    detector = copy.deepcopy(fitted)
    expected = fitted.score_samples(test_X)
    detector.set_params(learning_rate=-1.0, epochs=0)  # training parameters: fit's business
    np.testing.assert_array_equal(detector.score_samples(test_X), expected)
    detector.set_params(score_method="median")  # read by scoring: checked there
    with pytest.raises(InvalidParameterError, match="'score_method' parameter"):
        detector.score_samples(test_X)
    with pytest.raises(InvalidParameterError, match=r"'(learning_rate|epochs)' parameter"):
        detector.set_params(score_method="elbo").fit(test_X)


@pytest.mark.parametrize(
    "change",
    [
        {"likelihood": "bernoulli"},
        {"missing": "mask"},
        {"latent": "categorical"},
        {"dtype": "mixed_bfloat16"},
    ],
)
def test_scoring_and_saving_refuse_a_model_form_changed_after_fit(fitted, test_X, change, tmp_path):
    import copy

    detector = copy.deepcopy(fitted)
    expected = fitted.score_samples(test_X)
    detector.set_params(**change)  # the model keeps the form it was fitted with
    ((name, value),) = change.items()
    for method in ("score_samples", "predict", "transform", "get_feature_names_out"):
        args = () if method == "get_feature_names_out" else (test_X,)
        with pytest.raises(ValueError, match=rf"{name}={value!r} \(fitted with "):
            getattr(detector, method)(*args)
    with pytest.raises(ValueError, match=rf"{name}={value!r} \(fitted with "):
        detector.calibrate(test_X, fpr=0.05)
    with pytest.raises(ValueError, match=rf"{name}={value!r} \(fitted with "):
        detector.save(tmp_path / "model")  # its manifest would disagree with the model
    assert not (tmp_path / "model").exists()
    detector.set_params(**{name: fitted.get_params()[name]})  # set back: scores as before
    np.testing.assert_array_equal(detector.score_samples(test_X), expected)
