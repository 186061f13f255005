"""The probabilistic claims, checked against closed forms and exact inequalities."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import eagerly
from scipy import stats

from vae_anomaly import VAEAnomalyDetector, load
from vae_anomaly.distributions import LIKELIHOODS, GaussianHead, resolution_floors
from vae_anomaly.latents import GaussianLatent
from vae_anomaly.latents import gaussian_noise as scoring_noise
from vae_anomaly.model import VAE
from vae_anomaly.scoring import score_terms

tfd = tfp.distributions


def test_analytic_kl_equals_tfp_and_monte_carlo():
    rng = np.random.default_rng(0)
    loc = rng.normal(size=(5, 3)).astype(np.float32)
    scale = rng.uniform(0.2, 2.0, size=(5, 3)).astype(np.float32)
    latent = GaussianLatent(3)
    ours = latent.kl((loc, scale)).numpy()

    posterior = latent.posterior((loc, scale))
    prior = latent.prior()
    np.testing.assert_allclose(ours, tfd.kl_divergence(posterior, prior).numpy(), rtol=1e-5)

    z = posterior.sample(200_000, seed=1)  # [S, 5, 3]
    monte_carlo = tf.reduce_mean(posterior.log_prob(z) - prior.log_prob(z), axis=0).numpy()
    # Standard error of this estimate is below 0.01 for these parameters.
    np.testing.assert_allclose(ours, monte_carlo, atol=0.03)


def test_gaussian_scale_never_below_its_floor():
    head = GaussianHead(2, scale_mode="sample", min_scale=0.05, seed=0)
    features = tf.constant([[-1e4, 1e4, 0.0]], dtype=tf.float32) * tf.ones([4, 3])
    _, scale = head(features)
    assert np.all(scale.numpy() >= 0.05)


def test_likelihoods_give_per_feature_log_probs():
    x = tf.constant([[0.0, 1.0, 1.0]])
    mixed = {"blocks": (("gaussian", 1), ("bernoulli", 2))}  # one output per column here
    for family in LIKELIHOODS:
        head = LIKELIHOODS[family](3, seed=0, **(mixed if family == "mixed" else {}))
        params = head(tf.zeros([1, 5]))
        assert head.log_likelihood(params, x).shape == (1, 3), family
    assert set(LIKELIHOODS) == {
        "gaussian",
        "bernoulli",
        "continuous_bernoulli",
        "discretized_logistic",
        "mixed",
    }


def test_discretized_logistic_is_a_distribution_over_the_256_levels():
    head = LIKELIHOODS["discretized_logistic"](4, seed=0)
    loc = tf.constant([[0.0, 0.2, 1.0, 1.2]])  # 0.2 is level 51
    scale = tf.constant([[0.01, 0.05, 0.002, 0.02]])
    levels = np.arange(256, dtype=np.float32)[:, None] / 255.0
    log_p = head.log_likelihood(
        (tf.broadcast_to(loc, (256, 4)), tf.broadcast_to(scale, (256, 4))),
        np.repeat(levels, 4, axis=1),
    ).numpy()
    np.testing.assert_allclose(np.exp(log_p).sum(axis=0), 1.0, atol=1e-5)
    # The level nearest loc is the most likely; beyond the range, the end level is.
    assert np.argmax(log_p, axis=0).tolist() == [0, 51, 255, 255]


def linear_gaussian_data(n=800):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(n, 2))
    return z @ np.array([[1.0, 0.6, -0.4], [0.3, -1.0, 0.8]]) + 0.3 * rng.normal(size=(n, 3))


def fit_linear_gaussian(epochs, beta=1.0):
    """A linear-Gaussian VAE (d=3, L=2, hidden_units=()) fitted on linear-Gaussian data;
    beta = 1 by default, the maximum-likelihood fit, where q(z|x) approaches p(z|x)."""
    return VAEAnomalyDetector(
        latent_dim=2,
        hidden_units=(),
        scaling=None,
        epochs=epochs,
        validation_fraction=0.0,
        trim_fraction=0.0,  # clean data: fit it whole, to compare with the exact density
        beta=beta,
        random_state=0,
    ).fit(linear_gaussian_data())


@pytest.fixture(scope="module")
def linear_gaussian():
    """Trained to convergence: q(z|x) is a good proposal, so IWAE converges fast."""
    return fit_linear_gaussian(epochs=300), linear_gaussian_data()[:100]


@pytest.fixture(scope="module")
def undertrained_linear_gaussian():
    """Trained briefly: q(z|x) is far from p(z|x), so the ELBO gap is large."""
    return fit_linear_gaussian(epochs=40), linear_gaussian_data()[:100]


def exact_log_marginal(model, X):
    """log N(x; b, W^T W + diag(sigma^2)): the exact log p(x) of a linear-Gaussian VAE."""
    head = model.likelihood_head
    weights = head.loc_layer.kernel.numpy().astype(np.float64)  # [L, d]: loc = z W + b
    bias = head.loc_layer.bias.numpy().astype(np.float64)
    sigma = np.logaddexp(0.0, head.raw_scale.numpy().astype(np.float64)) + head.min_scale
    covariance = weights.T @ weights + np.diag(sigma**2)
    return stats.multivariate_normal(mean=bias, cov=covariance).logpdf(X)


def test_iwae_with_one_sample_equals_the_one_sample_elbo(undertrained_linear_gaussian):
    detector, X = undertrained_linear_gaussian  # an identity: any trained model will do
    eps = scoring_noise(11, 1, 2)
    terms = score_terms(detector.model_, X, eps)
    # k = 1: log (1/1) w_1 = log w_1, the one-sample ELBO estimate.
    np.testing.assert_allclose(terms.iwae, terms.elbo_mc, rtol=0, atol=1e-9)


def test_iwae_is_at_least_the_elbo_estimate_from_the_same_samples(undertrained_linear_gaussian):
    detector, X = undertrained_linear_gaussian
    for seed in range(3):
        terms = score_terms(detector.model_, X, scoring_noise(seed, 16, 2))
        # Jensen: log mean exp(log w) >= mean(log w), row by row.
        assert np.all(terms.iwae >= terms.elbo_mc - 1e-12)
        assert np.mean(terms.iwae - terms.elbo_mc) > 1e-4


def test_iwae_bound_rises_with_k_across_seeds(undertrained_linear_gaussian):
    detector, X = undertrained_linear_gaussian
    means = {
        k: np.mean([score_terms(detector.model_, X, scoring_noise(s, k, 2)).iwae for s in range(5)])
        for k in (1, 8, 512)
    }
    assert means[1] < means[8] < means[512]


def test_elbo_lies_below_the_exact_log_marginal(undertrained_linear_gaussian):
    detector, X = undertrained_linear_gaussian
    exact = exact_log_marginal(detector.model_, X)
    elbo = score_terms(detector.model_, X, scoring_noise(7, 4096, 2)).elbo
    gap = exact - elbo  # = KL(q(z|x) || p(z|x)) >= 0, up to Monte Carlo error
    # Tolerance 0.01 nats: the Monte Carlo error of E_q[log p(x|z)] with k = 4096.
    assert np.all(gap > -0.01)
    assert np.mean(gap) > 0.1


@pytest.mark.slow  # statistical, on models trained 300 epochs
def test_iwae_converges_to_the_exact_log_marginal_at_the_default_beta_too():
    """At beta = 0.3 (the default) q(z|x) is narrower than p(z|x): a worse proposal, so
    the estimate converges more slowly in k, but it still converges to log p(x)."""
    detector = fit_linear_gaussian(epochs=300, beta=VAEAnomalyDetector().beta)
    assert detector.beta == 0.3
    X = linear_gaussian_data()[:100]
    exact = exact_log_marginal(detector.model_, X)
    errors = {
        k: np.abs(score_terms(detector.model_, X, scoring_noise(7, k, 2)).iwae - exact)
        for k in (16, 4096)
    }
    assert np.mean(errors[4096]) < np.mean(errors[16]) / 2
    assert np.max(errors[4096]) < 0.1


@pytest.mark.slow  # statistical, on a model trained 300 epochs to convergence
def test_iwae_converges_to_the_exact_log_marginal(linear_gaussian):
    detector, X = linear_gaussian
    exact = exact_log_marginal(detector.model_, X)
    errors = {
        k: np.abs(score_terms(detector.model_, X, scoring_noise(7, k, 2)).iwae - exact)
        for k in (4, 4096)
    }
    # Stated tolerance: with k = 4096 every row is within 0.01 nats of log p(x).
    assert np.max(errors[4096]) < 0.01
    assert np.mean(errors[4096]) < np.mean(errors[4])


def test_detector_scores_match_the_exact_density_in_data_units():
    """With scaling on, scores are densities of the raw X: the log-Jacobian is included."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(600, 2)) * np.array([100.0, 10.0]) + 7.0
    detector = VAEAnomalyDetector(
        latent_dim=1,
        hidden_units=(),
        epochs=40,
        score_method="iwae",
        n_score_samples=2048,
        trim_fraction=0.0,  # compared with the true density of all of X:
        screen_outliers=False,  # every row trains
        random_state=0,
    ).fit(X)
    truth = stats.norm(7.0, [100.0, 10.0]).logpdf(X[:200]).sum(axis=1)
    # Within 0.25 nats on average; a missing log-Jacobian would be off by log(1000) = 6.9.
    assert abs(np.mean(detector.score_samples(X[:200]) - truth)) < 0.25


def test_trimmed_training_loss_leaves_out_the_worst_fitting_rows():
    """trim_fraction = q: the loss averages the (1 - q) * B best-fitting rows of a batch."""
    x = np.zeros((20, 3), dtype=np.float32)
    x[7] = 1000.0  # one gross outlier: its negative ELBO is of order 1e5 / 2
    losses = {}
    for q in (0.0, 0.05):
        model = VAE(3, 2, (8,), trim_fraction=q, seed=0)
        losses[q] = float(model.loss_terms(tf.constant(x)).loss)
    assert losses[0.0] > 1000.0  # the outlier dominates the untrimmed mean
    assert losses[0.05] < 50.0  # drop ceil(0.05 * 20) = 1 row: the outlier is gone


def test_fence_trimming_keeps_a_clean_batch_whole_and_drops_a_gross_outlier():
    """trim_rule="fence": only rows beyond Q3 + 3 IQR of the batch's losses are left out
    (at most ceil(q * B)); the "fraction" rule always leaves out ceil(q * B) rows."""
    clean = tf.constant(np.random.default_rng(0).uniform(-1, 1, size=(40, 3)), tf.float32)

    def model(rule="fraction", q=0.0):  # same seed: same weights and same training noise
        return VAE(3, 2, (8,), trim_fraction=q, trim_rule=rule, seed=0)

    row_losses = model().row_losses(clean).loss.numpy()
    q1, q3 = np.percentile(row_losses, [25, 75])
    assert np.all(row_losses <= q3 + 3 * (q3 - q1))  # nothing stands out in this batch
    whole = float(model().loss_terms(clean).loss)
    assert float(model("fence", 0.2).loss_terms(clean).loss) == pytest.approx(whole, rel=1e-6)
    assert float(model("fraction", 0.2).loss_terms(clean).loss) < whole
    dirty = clean.numpy()
    dirty[7] = 1000.0
    assert float(model("fence", 0.05).loss_terms(tf.constant(dirty)).loss) < 50.0  # dropped
    with pytest.raises(ValueError, match="trim_rule must be one of"):
        model("median")


def test_resolution_floors_follow_each_columns_smallest_step():
    """max(1e-3, g / sqrt(12)), g the smallest gap between distinct values (NaN ignored)."""
    U = np.array(
        [
            [0.0, 0.1234567, 5.0, np.nan],
            [2.0, 0.5, 5.0, 1.0],
            [4.0, 0.9, 5.0, 1.5],
            [0.0, 0.2, 5.0, 3.0],
        ]
    )
    floors = resolution_floors(U)
    assert floors == pytest.approx(
        [2 / np.sqrt(12), 0.0765433 / np.sqrt(12), 1 / np.sqrt(12), 0.5 / np.sqrt(12)]
    )
    assert resolution_floors(np.array([[0.0], [1e-9]]))[0] == 1e-3  # never below the minimum


def test_min_scale_auto_gives_each_gaussian_column_its_own_floor_and_survives_saving(tmp_path):
    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=300), rng.integers(0, 10, 300).astype(float)]
    detector = VAEAnomalyDetector(min_scale="auto", epochs=2, random_state=0)
    with eagerly():  # two epochs: the floors and their saving are tested; scoring is compiled
        detector.fit(X)
    head = detector.model_.likelihood_head
    step = 1.0 / detector.scale_[1]  # the integer column's step, in scaled units
    assert head.min_scale[1] == pytest.approx(step / np.sqrt(12), rel=1e-5)
    assert head.min_scale[0] < 0.01  # a continuous column keeps a free scale
    _, scale = head(detector.model_.decoder(tf.zeros((1, detector.latent_dim_))))
    softplus = np.logaddexp(0.0, head.raw_scale.numpy())
    assert scale.numpy()[0] == pytest.approx(softplus + head.min_scale, rel=1e-5)  # per column
    detector.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert loaded.model_.likelihood_head.min_scale == head.min_scale
    assert np.array_equal(loaded.score_samples(X[:20]), detector.score_samples(X[:20]))
