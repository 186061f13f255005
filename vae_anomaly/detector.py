"""``VAEAnomalyDetector``: a scikit-learn outlier detector scoring rows by log p(x) under a VAE."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, OutlierMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import validate_parameter_constraints
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from .distributions import LIKELIHOODS, is_scaled, resolution_floors, scaled_columns
from .errors import CalibrationWarning
from .frames import encode_frame, frame_schema, output_order, schema_from_roles
from .latents import MAX_EXACT_CONFIGURATIONS
from .layout import layout_width, normalize_layout, observed_outputs, output_spans
from .manifest import detector_from_manifest, detector_manifest
from .model import VAE
from .networks import default_conv_filters
from .parameters import (
    PARAMETER_CONSTRAINTS,
    check_choice,
    check_exact_latent,
    check_model_relations,
    check_real,
    default_hidden_units,
    default_latent_dim,
)
from .persistence import (
    model_from_bytes,
    model_to_bytes,
    read_bundle,
    write_bundle,
)
from .precision import body_policy, check_trainable_here
from .scoring import (
    ScoreTerms,
    exact_log_marginals,
    posterior_means,
    score_terms,
    scoring_block_rows,
)
from .screening import categorical_levels, fit_screen, row_fences
from .sparse_rows import ScaledRows, dense_block_rows, row_blocks
from .streaming import RowStore, StreamedRows, position_uniform, scratch_folder
from .thresholds import (
    benjamini_hochberg,
    conformal_p_values,
    conformal_threshold,
    too_few_to_calibrate,
)
from .training import TrainingSettings, replicas, train
from .validation import (
    check_finite,
    check_in_range,
    check_numeric_frame,
    check_unit_interval,
    column_label,
    fit_scaling,
    with_location,
)

# Parameters a scoring call reads, which set_params may change after fit. offset_ and
# calibration_scores_ are scores of the estimator they name, so the threshold's users
# need the values they were set with (``_check_threshold_scoring``).
_SCORING_PARAMS = ("score_method", "n_score_samples")
# Parameters that give the fitted model its form, which scoring and saving read (the
# column layout, the latent's names, the handling of NaN, the layers' dtype policy):
# changed after fit, they would score with a form the model does not have, or save a
# manifest that disagrees with the model, so both refuse (``_check_fitted_form``).
_FORM_PARAMS = ("likelihood", "missing", "image_shape", "latent", "latent_categories", "dtype")
# contamination="auto": Tukey's far-out fence on the low side of the training scores,
# offset_ = Q1 - 3 * (Q3 - Q1). log p(x) has a long lower tail (for a Gaussian it is
# -chi2_d / 2 plus a constant), which this fence respects and a symmetric z-rule does not.
AUTO_FENCE_IQRS = 3.0
# Training rows whose per-output terms give typical_feature_log_likelihood_ (medians),
# and at most this many terms held for it (float64: 16 MiB): wide inputs take fewer rows.
TYPICAL_TERM_ROWS = 2000
TYPICAL_TERM_VALUES = 2**21
_SEED_HIGH = 2**31 - 1
# Fewer rows give no scale and no threshold to speak of.
MIN_TRAINING_ROWS = 2
# A streamed fit holds out about this many rows at most for early stopping: the mean
# validation loss of 50,000 rows is already known to a fraction of a percent.
STREAM_VALIDATION_ROWS = 50_000
# The default of ``likelihood``: only then may column roles choose a likelihood per column.
_DEFAULT_LIKELIHOOD = "gaussian"


class VAEAnomalyDetector(OutlierMixin, TransformerMixin, BaseEstimator):
    """Anomaly detector scoring each row by a variational bound on its log-density.

    A VAE with encoder q(z|x) = N(loc(x), diag scale(x)^2), prior p(z) = N(0, I) (or,
    with ``latent="categorical"``, categorical q(z|x) and a uniform prior) and decoder
    likelihood p(x|z) is fitted by maximising the ELBO. ``score_samples`` returns
    an estimate of log p(x) (higher is more normal); the anomaly score is its negative.

    Parameters
    ----------
    latent_dim : int or None, default=None
        Dimension of z (the number of categorical variables for a categorical latent).
        None: ``default_latent_dim(n_features)``.
    latent : {"gaussian", "categorical"}, default="gaussian"
        The latent component (``latents``). ``"gaussian"``: z ~ N(0, I) with a diagonal
        Gaussian q(z|x). ``"categorical"``: ``latent_dim`` independent categorical
        variables over ``latent_categories`` classes with a uniform prior, trained
        through the Gumbel-softmax relaxation with the exact categorical KL, and scored
        with hard samples from q and its exact probabilities (``latents.CategoricalLatent``).
    latent_categories : int >= 2, default=10
        Classes K of each categorical variable; ignored by ``"gaussian"``.
    temperature : float > 0, default=1.0
        Initial temperature tau_0 of the Gumbel-softmax relaxation; it decays per epoch
        e as max(min(0.5, tau_0), tau_0 * exp(-0.05 e)) (``latents.annealed_temperature``).
        Ignored by ``"gaussian"``; scoring never uses it.
    hidden_units : tuple of int or None, default=(128, 128)
        Encoder widths (the decoder mirrors them). None: ``default_hidden_units``, two
        layers (h, h / 2) with h = 2d rounded up to a power of two (the screening fit's
        and the image job's). ``()`` gives a linear encoder and decoder. With
        ``image_shape`` and convolutions: the dense layers between the convolutions and
        z (the same default, so a convolutional model is the dense model with
        convolutions in front and behind).
    image_shape : (H, W, C) or None, default=None
        Rows of X are images of this shape, flattened in (row, column, channel) order
        (``X = images.reshape(n, -1)``): the encoder and decoder are convolutional
        (``networks.ConvEncoder``/``ConvDecoder``) unless ``conv_filters=()``, and
        ``score_features`` gives one term per pixel value, ``reshape(n, H, W, C)`` for
        a heat map.
    conv_filters : tuple of int or None, default=None
        Filters of the stride-2 convolution stages (images only). None: 16, 32, ...
        while the smaller image side stays at least 7 (``default_conv_filters``). ``()``:
        no convolutions, the dense body over the flattened pixels (still one likelihood
        term per pixel value, so heat maps work the same).
    activation : str, default="relu"
        Keras activation of the hidden layers.
    likelihood : {"gaussian", "bernoulli", "continuous_bernoulli", "discretized_logistic"} \
or sequence of (family, width), default="gaussian"
        Family of p(x_j|z). ``"bernoulli"`` (binary data; on values strictly between 0
        and 1 its log-mass is the cross-entropy, not a normalised density, so the score is
        not log p(x) there), ``"continuous_bernoulli"`` (a proper density on [0, 1]) and
        ``"discretized_logistic"`` (the 256 levels of 8-bit grey values) need X in [0, 1].
        A sequence of blocks (``layout.py``: ``("gaussian", w)``, ``("bernoulli", w)``,
        ``("categorical", w)`` for one one-hot column of w levels) models mixed-type
        columns; only the Gaussian columns are scaled, and ``score_features`` has one
        column per original column.
    column_roles : dict or None, default=None
        For a DataFrame X: column name -> ``"numeric"`` (Gaussian), ``"categorical"``
        (a Categorical over the training levels plus an unknown level), ``"boolean"``
        (Bernoulli) or ``"ignore"`` (dropped), overriding the roles ``fit`` infers
        (``frames``: the CSV job's inference, from the dtypes and values). Only with
        ``likelihood="gaussian"``. See "Input" below.
    likelihood_scale : {"feature", "sample"}, default="feature"
        One learned decoder scale per feature, or one per feature and row. ``"sample"``
        needs one Gaussian or discretised-logistic likelihood over every column; a
        layout, or a DataFrame encoded by column roles, is refused (its head has a
        scale per column only).
    min_scale : float or "auto", default=0.03
        Gaussian only: floor on the likelihood scale, in scaled units. It keeps the
        density from spiking on repeated or discretised values; it must stay below the
        width of the thinnest relation to be learned (round 16: 0.1 blurred the ring).
        ``"auto"``: one floor per column from its resolution, max(1e-3, g_j / sqrt(12))
        with g_j the smallest gap between two distinct training values of column j (the
        spread of dequantisation noise over one step; ``distributions.resolution_floors``).
    beta : float, default=0.3
        Weight of the KL term during training: the loss is -log p(x|z) + beta * KL(q(z|x)
        || p(z)) (the beta-VAE). Scoring always uses the true bound (beta = 1) of the
        fitted model's log p(x), so the score stays a log-density estimate; beta only
        changes how the model is fitted. Below 1, reconstruction weighs more than the KL
        term, so the latent stays in use (no posterior collapse) and thin relations
        between columns are learned: at 1 the decoder settles on a blob around them.
        0.3 was chosen on issue 16's benchmarks (docs/experiments.md, round 14).
    trim_fraction : float in [0, 1), default=0.0
        Share of each training batch's worst-fitting rows left out of the loss (a
        trimmed likelihood). Scoring is unaffected (the full bound). Off by default:
        ``screen_outliers`` keeps anomalies in the training data out of the fit instead,
        and a trimmed loss drops the rows that carry a dependency not yet learned. The
        screening fit trims 0.2.
    trim_rule : {"fraction", "fence"}, default="fraction"
        Which rows ``trim_fraction`` leaves out (``objectives.trimmed_means``):
        ``"fraction"``, always that share of each batch, the worst-fitting; ``"fence"``,
        only the rows whose loss is beyond Tukey's far-out fence Q3 + 3 IQR of the
        batch's losses, at most that share. The fence leaves clean batches whole, so
        rows that carry a dependency not yet learned are not dropped for fitting worst.
    screen_outliers : bool, default=True
        Fit twice (``screening``). First with the robust settings
        ``screening.SCREENING_PARAMS`` (``trim_fraction=0.2``, ``min_scale=0.1``, the
        default ``hidden_units``, ``n_iter_no_change=10``), scoring the fitting rows,
        a = -log p(x); then this detector's own model on the rows within Tukey's fence
        a <= Q3(a) + 1.5 IQR(a) only, or, with categorical columns, within the fence of
        the rows sharing one of its levels (``screening.row_fences``). It lets a sharp
        model (``trim_fraction=0``, a low ``min_scale``, wide ``hidden_units``) be fitted
        on data that may hold anomalies (docs/experiments.md, rounds 17 and 18).
        Calibration rows are held out first and never screened. Fitting takes about
        twice as long; ``False`` for training data known to be clean.
    objective : {"elbo", "iwae"}, default="elbo"
        The per-row training loss (``objectives``): ``"elbo"``, the negative ELBO
        -log p(x|z) + beta * KL(q(z|x) || p(z)) from one sample z ~ q(z|x); ``"iwae"``,
        the negative importance-weighted bound -log (1/k) sum_i p(x|z_i) p(z_i) /
        q(z_i|x) from k = ``n_train_samples`` fresh samples (Burda et al., 2016): a
        tighter bound, known to reduce posterior collapse, at k times the decoder's cost
        per step. ``trim_fraction`` and ``beta`` (the weight of log p(z) - log q(z|x) in
        the log weights) apply to either.
    n_train_samples : int, default=8
        k, the samples per row and training step of ``objective="iwae"``; ignored by
        ``"elbo"``.
    free_bits : float >= 0, default=0.0
        lambda, a KL floor per latent dimension in nats for ``objective="elbo"``
        (ignored by ``"iwae"``): training minimises -log p(x|z) + beta * sum_l
        max(lambda, KL_l), so a dimension carrying less than lambda nats costs nothing
        more to use and the posterior does not collapse onto the prior before the
        decoder has learned the structure (free bits, Kingma et al., 2016). Scoring
        always uses the true bound.
    corruption : {None, "gaussian", "mask"}, default=None
        Denoising (``corruption``): during training the encoder sees a corrupted row,
        the likelihood scores the clean one; scoring and ``transform`` never corrupt.
        ``"gaussian"`` adds N(0, corruption_level^2) noise to every entry, in the units
        the model sees (scaled units for scaled columns, raw [0, 1] values otherwise);
        ``"mask"`` sets each entry to 0 with probability ``corruption_level``.
    corruption_level : float, default=0.1
        The noise's standard deviation (``"gaussian"``, >= 0) or the drop probability
        (``"mask"``, in [0, 1)); 0 trains the same model as no corruption.
    kl_warmup_epochs : int, default=0
        Epochs over which the KL weight rises linearly from 0 to ``beta``.
    epochs : int or None, default=None
        Maximum epochs. None: about 3000 optimiser steps (``default_epochs``).
    batch_size : int, default=128
        Training batch size (capped at the number of training rows). Under a
        ``tf.distribute`` strategy it is the global batch, split over the replicas, as
        in Keras.
    learning_rate : float, default=1e-3
        Adam learning rate.
    validation_fraction : float, default=0.1
        Share of rows held out for early stopping on the validation loss; 0 turns it off
        (so does a share that leaves no row on either side).
    n_iter_no_change : int, default=1000
        Early-stopping patience in epochs; the best weights on the validation rows are
        restored. The default trains for all ``epochs`` and keeps the best (round 16:
        stopping after 10 epochs without progress stopped before thin structure was
        learned); the screening fit stops after 10.
    missing : {"error", "mask"}, default="error"
        ``"mask"``: NaN marks a missing entry, left out of the likelihood (the exact
        marginal of the observed entries, not an imputation) and shown to the encoder
        as 0. ``"error"``: NaN is an input error.
    missing_indicator : bool, default=False
        With ``missing="mask"``, also give the encoder the presence mask.
    scaling : {"auto", "standard", "robust", None}, default="auto"
        Affine scaling learned at fit: ``"standard"`` (mean, std), ``"robust"`` (median,
        IQR/1.349) or None. ``"auto"``: robust for the Gaussian (heavy tails stay far
        out instead of inflating the scale of the bulk), none for Bernoulli.
        Scores stay densities of the unscaled X (the log-Jacobian is added).
    score_method : {"elbo", "iwae", "exact"}, default="elbo"
        The estimate of log p(x) returned by ``score_samples``. ``"exact"``: log p(x) =
        logsumexp_z [log p(x|z) + log p(z)] over every value of z, for a categorical
        latent with ``latent_categories ** latent_dim`` at most
        ``latents.MAX_EXACT_CONFIGURATIONS`` (4096); refused otherwise.
    n_score_samples : int, default=16
        Monte Carlo samples k per row for scoring.
    contamination : float in (0, 0.5] or "auto", default=0.01
        Share of training rows flagged by ``predict``: ``offset_`` is that quantile of
        the training scores. ``"auto"``: Tukey's far-out fence ``offset_ = Q1 - 3 * IQR``
        of the training scores; for exactly Gaussian data this flags about 2.6% of normal
        rows at d = 1, 0.33% at d = 4 and 0.03% at d = 20. For a stated false-alarm rate,
        set ``contamination`` or calibrate on held-out normal data.
    calibration_fraction : float in [0, 1), default=0.0
        Share of rows that ``fit`` holds out (not trained on) and passes to
        ``calibrate(X_held_out, fpr)``. The held-out rows should be normal: anomalies
        among them make the threshold more lenient. When the share holds out fewer rows
        than ``fpr`` needs (``thresholds.min_calibration_size``: 99 at 0.01), ``fit``
        warns (``CalibrationWarning``, naming the rows needed and the smallest fpr the
        held-out rows could certify), trains on every row and sets ``offset_`` at the
        ``fpr`` quantile of the training scores, not certified: ``calibrated_`` is False.
    fpr : float in (0, 1), default=0.01
        Target false-positive rate on normal rows when ``fit`` calibrates.
    dtype : {None, "mixed_bfloat16", "mixed_float16"}, default=None
        Mixed precision (``precision``): the dtype policy of the encoder and decoder
        bodies, which then compute in bfloat16 or float16 with float32 weights. None:
        float32 throughout. The latent and likelihood heads, every density, KL and loss
        stay float32, and scores float64. ``"mixed_float16"`` needs a GPU (``fit``
        refuses it on a machine without one) and trains with dynamic loss scaling.
    random_state : int, RandomState instance or None, default=None
        Seeds weights, training noise, shuffling, the validation split and the scoring
        noise. An int makes fit reproducible on CPU.
    verbose : int, default=0
        Keras progress output during fit (0, 1 or 2).

    Attributes
    ----------
    model_ : VAE
        The fitted Keras model.
    history_ : dict of list of float
        Per-epoch ``loss``, ``reconstruction_loss``, ``kl`` (and ``val_*``), and
        ``epoch_seconds``, the wall time of each epoch.
    offset_ : float
        Threshold on ``score_samples``: ``decision_function = score_samples - offset_``.
    center_, scale_ : ndarray of shape (n_features,)
        The learned scaling, u = (x - center_) / scale_.
    latent_dim_, hidden_units_ : int, tuple of int
        The architecture used.
    n_epochs_ : int
        Epochs run.
    n_replicas_ : int
        Replicas that trained in sync: 1, or the ``num_replicas_in_sync`` of the
        ``tf.distribute`` strategy whose scope ``fit`` was called in (summed over
        workers for ``MultiWorkerMirroredStrategy``).
    score_seed_ : int
        Seed of the scoring noise, shared by every row scored.
    calibration_scores_ : ndarray of shape (n_calibration,)
        Sorted anomaly scores of the calibration rows (only when calibrated).
    fpr_ : float
        The false-positive rate ``offset_`` was set for: certified by the calibration
        rows when ``calibrated_``; only a training quantile when calibration held out too
        few rows. Absent when ``offset_`` comes from ``contamination``.
    calibrated_ : bool
        Whether ``offset_`` is a split-conformal threshold on held-out normal rows.
    calibration_reason_ : str
        Why the threshold is not calibrated ("" when it is).
    n_screened_out_, screening_fence_ : int, float
        Only with ``screen_outliers=True``: the fitting rows left out of training, and
        the fence F on the screening fit's anomaly scores over all fitting rows.
    screening_level_fences_ : list of ndarray
        Only with ``screen_outliers=True``: for each categorical column, the fence of
        each level's rows (F for levels of fewer than ``screening.MIN_LEVEL_ROWS``
        rows). A row was left out when beyond F and its levels' fences.
    typical_feature_log_likelihood_ : ndarray of shape (n_terms,)
        Per column of ``score_features`` j (per pixel for images), the median over
        training rows where it is observed (up to ``TYPICAL_TERM_ROWS``) of
        E_q[log p(u_j|z)], its term in the model's scaled units.
        The columns that make a row unlikely are ranked by how far below this its terms
        fall (``ScoreTerms.relative_feature_log_likelihood``), so that a column whose
        terms are low on every row (a categorical column of many levels) is not named
        first on ordinary rows.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, only when X had string column names.
    feature_roles_ : dict of str to str
        Only when ``fit`` encoded a DataFrame by column roles: each column's role
        (``"numeric"``, ``"categorical"``, ``"boolean"`` or ``"ignore"``), in X's order.
    feature_levels_ : dict of str to list of str
        With ``feature_roles_``: the training levels of each categorical column, most
        frequent first; any other value scores as the unknown level.

    Notes
    -----
    With eps_1..eps_k drawn once per fitted model and shared by all rows, and
    z_i = loc(u) + scale(u) * eps_i:

        ELBO(x) = (1/k) sum_i log p(u|z_i) - KL(q(z|u) || p(z)) - sum_j log scale_j
        IWAE(x) = log (1/k) sum_i p(u|z_i) p(z_i) / q(z_i|u)   - sum_j log scale_j

    Both are lower bounds on log p(x) in expectation; IWAE tightens with k. A row's
    score does not depend on the batch it came in, its position or the other rows.

    Input: a numeric array, a DataFrame, or a SciPy sparse matrix or array. A sparse X is
    made dense one training batch or one block of rows at a time, never whole, and
    scores exactly as ``X.toarray()`` would. A DataFrame whose columns are all numbers
    is modelled as an array. A DataFrame with a categorical or boolean column (text,
    category, bool), or any DataFrame with ``column_roles``, is encoded by column roles
    as ``vae-anomaly fit`` encodes a CSV (``frames``, ``schema``): numeric -> Gaussian,
    categorical -> Categorical with an unknown level for unseen values, boolean (bool,
    or two values among true/false, yes/no, 1/0) -> Bernoulli; with ``missing="mask"``,
    missing cells are left out of the likelihood. The roles are in ``feature_roles_``;
    ``score_features`` then returns a DataFrame with one column per modelled column of X.
    A datetime column, free text or an identifier is an error that names the column.

    Examples
    --------
    >>> import numpy as np
    >>> from vae_anomaly import VAEAnomalyDetector
    >>> X = np.random.default_rng(0).normal(size=(500, 4))
    >>> detector = VAEAnomalyDetector(epochs=5, random_state=0).fit(X)
    >>> detector.predict([[0, 0, 0, 0], [9, -9, 9, -9]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = PARAMETER_CONSTRAINTS

    def __init__(
        self,
        *,
        latent_dim=None,
        latent="gaussian",
        latent_categories=10,
        temperature=1.0,
        hidden_units=(128, 128),
        image_shape=None,
        conv_filters=None,
        activation="relu",
        likelihood="gaussian",
        column_roles=None,
        likelihood_scale="feature",
        min_scale=0.03,
        beta=0.3,
        trim_fraction=0.0,
        trim_rule="fraction",
        screen_outliers=True,
        objective="elbo",
        n_train_samples=8,
        free_bits=0.0,
        corruption=None,
        corruption_level=0.1,
        kl_warmup_epochs=0,
        epochs=None,
        batch_size=128,
        learning_rate=1e-3,
        validation_fraction=0.1,
        n_iter_no_change=1000,
        missing="error",
        missing_indicator=False,
        scaling="auto",
        score_method="elbo",
        n_score_samples=16,
        contamination=0.01,
        calibration_fraction=0.0,
        fpr=0.01,
        dtype=None,
        random_state=None,
        verbose=0,
    ):
        self.latent_dim = latent_dim
        self.latent = latent
        self.latent_categories = latent_categories
        self.temperature = temperature
        self.hidden_units = hidden_units
        self.image_shape = image_shape
        self.conv_filters = conv_filters
        self.activation = activation
        self.likelihood = likelihood
        self.column_roles = column_roles
        self.likelihood_scale = likelihood_scale
        self.min_scale = min_scale
        self.beta = beta
        self.trim_fraction = trim_fraction
        self.trim_rule = trim_rule
        self.screen_outliers = screen_outliers
        self.objective = objective
        self.n_train_samples = n_train_samples
        self.free_bits = free_bits
        self.corruption = corruption
        self.corruption_level = corruption_level
        self.kl_warmup_epochs = kl_warmup_epochs
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.missing = missing
        self.missing_indicator = missing_indicator
        self.scaling = scaling
        self.score_method = score_method
        self.n_score_samples = n_score_samples
        self.contamination = contamination
        self.calibration_fraction = calibration_fraction
        self.fpr = fpr
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks

    def _check_params(self) -> None:
        """``_parameter_constraints`` (``parameters.PARAMETER_CONSTRAINTS``), then what
        ties parameters together or lies inside a tuple or a layout."""
        self._validate_params()
        check_model_relations(self.get_params())
        if self.image_shape is not None and not isinstance(self.likelihood, str):
            raise ValueError("image_shape takes one likelihood family, not a column layout.")
        if self.score_method == "exact":
            self._check_exact(self.latent_dim)
        if self.image_shape is not None and self.missing != "error":
            raise ValueError("image_shape needs missing='error': images must be complete.")
        if isinstance(self.likelihood, str):
            check_choice("likelihood", self.likelihood, list(LIKELIHOODS.keys() - {"mixed"}))
        else:
            normalize_layout(self.likelihood)
        if self.column_roles is not None and not self._takes_roles():
            raise ValueError(
                "column_roles sets a likelihood per column of a DataFrame, which needs "
                f"likelihood='gaussian' (the default) and no image_shape; got likelihood="
                f"{self.likelihood!r}, image_shape={self.image_shape!r}."
            )
        scaling = self._resolved_scaling()
        if LIKELIHOODS[self._family()].support == "unit_interval" and scaling is not None:
            raise ValueError(
                f"scaling={self.scaling!r} would move X out of [0, 1], which "
                f"likelihood={self.likelihood!r} needs; use scaling='auto' or None."
            )

    def _form(self) -> dict:
        """The values of ``_FORM_PARAMS``, lists as tuples (as a manifest restores them)."""
        form = {}
        for key in _FORM_PARAMS:
            value = getattr(self, key)
            if isinstance(value, (list, tuple)):
                value = tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in value)
            form[key] = value
        return form

    def _remember_form(self) -> None:
        """Record ``_FORM_PARAMS`` as the model was fitted (by ``fit``, and by ``load``)."""
        self._fitted_form = self._form()

    def _check_fitted_form(self) -> None:
        """ValueError naming each of ``_FORM_PARAMS`` that ``set_params`` changed since
        ``fit``: the model keeps the form it was fitted with."""
        fitted = getattr(self, "_fitted_form", None)
        if fitted is None:  # pickled before the form was recorded
            return
        now = self._form()
        changed = [
            f"{key}={now[key]!r} (fitted with {fitted[key]!r})"
            for key in _FORM_PARAMS
            if now[key] != fitted[key]
        ]
        if changed:
            raise ValueError(
                "This VAEAnomalyDetector was fitted with another form than its parameters now "
                f"say: {', '.join(changed)}. Set them back, or fit again."
            )

    def _check_scoring_params(self) -> None:
        """What a scoring call reads and ``set_params`` may have changed since ``fit``
        (``score_method``, ``n_score_samples``); everything else was validated once, in
        ``fit``, and the parameters of the model's form must be those it was fitted with
        (``_check_fitted_form``)."""
        self._check_fitted_form()
        validate_parameter_constraints(
            {key: self._parameter_constraints[key] for key in _SCORING_PARAMS},
            {key: getattr(self, key) for key in _SCORING_PARAMS},
            caller_name=type(self).__name__,
        )
        if self.score_method == "exact":
            self._check_exact(self.latent_dim_)

    def _remember_threshold_scoring(self) -> None:
        """Record ``_SCORING_PARAMS`` as ``offset_`` (and the calibration scores) were set:
        by ``fit``, ``calibrate`` and ``load``."""
        self._threshold_scoring = {key: getattr(self, key) for key in _SCORING_PARAMS}

    def _check_threshold_scoring(self) -> None:
        """ValueError naming each of ``_SCORING_PARAMS`` changed since ``offset_`` was set.

        ``offset_`` and ``calibration_scores_`` are scores of one estimator of log p(x):
        compared with another's (the ELBO lies below the IWAE bound, and a k-sample
        estimate moves with k), the threshold would no longer flag the share of normal
        rows it was set for. ``decision_function``, ``predict``, ``p_values``,
        ``predict_fdr`` and ``save`` need them unchanged; ``score_samples`` does not."""
        recorded = getattr(self, "_threshold_scoring", None)
        if recorded is None:  # pickled before the record was kept
            return
        changed = [
            f"{key}={getattr(self, key)!r} (set with {recorded[key]!r})"
            for key in _SCORING_PARAMS
            if getattr(self, key) != recorded[key]
        ]
        if changed:
            raise ValueError(
                "offset_ and the calibration scores were set with other scoring parameters "
                f"than the detector's now: {', '.join(changed)}. Call calibrate(X_normal) "
                "to set the threshold for them, or set them back."
            )

    def _check_exact(self, latent_dim) -> None:
        """score_method="exact" needs a categorical latent of at most
        MAX_EXACT_CONFIGURATIONS values (``latent_dim`` None: not known before fit)."""
        check_exact_latent(self.latent)
        if latent_dim is not None and self.latent_categories**latent_dim > (
            MAX_EXACT_CONFIGURATIONS
        ):
            raise ValueError(
                "score_method='exact' enumerates latent_categories ** latent_dim values of "
                f"z, at most {MAX_EXACT_CONFIGURATIONS}; got {self.latent_categories} ** "
                f"{latent_dim} = {self.latent_categories**latent_dim}. Use 'elbo' or 'iwae', "
                "or a smaller latent."
            )

    def _family(self) -> str:
        """The likelihood head: "gaussian", "bernoulli", or "mixed" for a layout (given,
        or from the column roles of a DataFrame)."""
        if isinstance(self.likelihood, str) and self._schema() is None:
            return self.likelihood
        return "mixed"

    def _layout(self, n_features: int) -> tuple[tuple[str, int], ...]:
        """The layout of the columns; a single family covers all of them."""
        schema = self._schema()
        if schema is not None:
            return schema.layout()
        if isinstance(self.likelihood, str):
            return ((self.likelihood, n_features),)
        return normalize_layout(self.likelihood)

    def _takes_roles(self) -> bool:
        """Whether a DataFrame's columns may be modelled by their roles (``frames``):
        the roles replace ``likelihood`` only when it is left at its default."""
        return self.likelihood == _DEFAULT_LIKELIHOOD and self.image_shape is None

    def _schema(self):
        """The column roles of the DataFrame fitted on (``schema.TabularSchema``), or None
        when fit took an array (or a DataFrame of numbers only)."""
        if not hasattr(self, "feature_roles_") or not self._takes_roles():
            return None
        return schema_from_roles(self.feature_roles_, self.feature_levels_)

    def _encoded_names(self):
        """Names of the columns the model sees, for messages: ``feature_names_in_``, or
        a fitted DataFrame's encoded names (``name=level`` for a category's one-hot)."""
        schema = self._schema()
        if schema is None:
            return getattr(self, "feature_names_in_", None)
        return schema.encoded_names

    def _image_shape(self, n_features: int):
        """``image_shape`` as ints, checked against the width of X; None for tabular X."""
        if self.image_shape is None:
            return None
        shape = tuple(int(s) for s in self.image_shape)
        if math.prod(shape) != n_features:
            raise ValueError(
                f"image_shape={shape} holds {math.prod(shape)} values per image, "
                f"but X has {n_features} features."
            )
        return shape

    def _resolved_scaling(self) -> str | None:
        if self.scaling != "auto":
            return self.scaling
        return "robust" if LIKELIHOODS[self._family()].support == "real" else None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "mask"
        tags.input_tags.sparse = True
        return tags

    def _validate_input(self, X, *, reset: bool) -> np.ndarray:
        """X as float64 [n, d] (CSR for SciPy sparse input), a DataFrame with column roles
        encoded (``frames``); errors name the row and column of the first bad cell."""
        if reset:
            for name in ("feature_roles_", "feature_levels_"):  # from an earlier fit
                self.__dict__.pop(name, None)
            if self.column_roles is not None and not isinstance(X, pd.DataFrame):
                raise ValueError(
                    "column_roles names columns of a DataFrame, but X is a "
                    f"{type(X).__name__}; pass a DataFrame or leave column_roles=None."
                )
            schema = frame_schema(X, self.column_roles) if self._takes_roles() else None
            if schema is not None:
                validate_data(self, X, reset=True, skip_check_array=True)
                self.feature_roles_ = {c.name: c.role for c in schema.columns}
                self.feature_levels_ = {
                    c.name: list(c.levels) for c in schema.by_role("categorical")
                }
                return encode_frame(schema, X, self.missing == "mask")
        elif self._schema() is not None:
            if not isinstance(X, pd.DataFrame):
                raise ValueError(
                    "This VAEAnomalyDetector was fitted on a DataFrame whose columns it "
                    f"encodes by role (feature_roles_), but X is a {type(X).__name__}: pass a "
                    f"DataFrame with the columns {list(self.feature_names_in_)}."
                )
            validate_data(self, X, reset=False, skip_check_array=True)
            return encode_frame(
                self._schema(), X, self.missing == "mask", (self.center_, self.scale_)
            )
        if isinstance(X, pd.DataFrame):
            check_numeric_frame(X)
        try:
            array = validate_data(
                self, X, reset=reset, dtype=np.float64, ensure_all_finite=False, accept_sparse="csr"
            )
        except (TypeError, ValueError) as error:
            located = with_location(error, X, getattr(self, "feature_names_in_", None))
            if located is error:
                raise
            raise located from error
        names = getattr(self, "feature_names_in_", None)
        check_finite(array, names, allow_nan=self.missing == "mask")
        layout = self._layout(array.shape[1])
        if layout_width(layout) != array.shape[1]:
            raise ValueError(
                f"X has {array.shape[1]} columns but the likelihood layout covers "
                f"{layout_width(layout)}: {layout}."
            )
        unit = ~scaled_columns(layout)
        if unit.any():
            check_unit_interval(array, names, self._family(), columns=unit)
        return array

    # ------------------------------------------------------------------ fit

    def fit(self, X, y=None):
        """Fit the VAE on X (n_samples, n_features); ``y`` is ignored.

        Called inside a ``tf.distribute`` strategy's scope, the model is built and
        trained under that strategy (``n_replicas_``), as Keras models are.

        Returns
        -------
        self : VAEAnomalyDetector
        """
        self._check_params()
        check_trainable_here(self.dtype)
        X_given = X
        X = self._validate_input(X, reset=True)
        n_samples, n_features = X.shape
        if n_samples < MIN_TRAINING_ROWS:
            raise ValueError(
                f"VAEAnomalyDetector needs at least {MIN_TRAINING_ROWS} rows to train (a "
                f"scaling and a threshold need two), got n_samples={n_samples}."
            )
        model_seed, shuffle_seed, split_seed, score_seed = self._start_fit()

        layout = self._layout(n_features)
        self.center_, self.scale_ = fit_scaling(X, self._resolved_scaling(), scaled_columns(layout))
        U = self._model_rows(X)
        image_shape = self._set_architecture(n_features)

        order = np.random.RandomState(split_seed).permutation(n_samples)
        n_calibration = int(self.calibration_fraction * n_samples)
        too_few = too_few_to_calibrate(
            n_samples, n_calibration, self.calibration_fraction, self.fpr
        )
        if too_few:
            warnings.warn(too_few, CalibrationWarning, stacklevel=2)
            n_calibration = 0  # every row trains; the threshold comes from their scores
        calibration_rows, fitting_rows = order[:n_calibration], order[n_calibration:]
        all_fitting_rows = fitting_rows  # the training threshold speaks for all of them
        self._forget_screening()
        if self.screen_outliers:
            fitting_rows = fitting_rows[self._screened(X_given, X, fitting_rows)]
        n_validation = int(self.validation_fraction * len(fitting_rows))
        if n_validation < 1 or n_validation >= len(fitting_rows):
            n_validation = 0
        train_rows = U[fitting_rows[n_validation:]]
        validation_rows = U[fitting_rows[:n_validation]]
        model = self._new_model(n_features, layout, image_shape, model_seed, U)
        self.history_ = train(
            model,
            train_rows,
            validation_rows,
            self._training_settings(shuffle_seed),
            feature_names=self._encoded_names(),
        )
        self.n_epochs_ = len(self.history_["loss"])
        self.n_replicas_ = replicas(model)
        self.model_ = model
        self.score_seed_ = score_seed
        self._set_typical_terms(X, all_fitting_rows)
        training_scores = self._log_density(X[all_fitting_rows], rows=all_fitting_rows)
        self._set_training_threshold(training_scores, too_few, "the training scores")
        if n_calibration:
            self._calibrate(X[calibration_rows], self.fpr, rows=calibration_rows)
        return self

    def _forget_screening(self) -> None:
        for name in ("n_screened_out_", "screening_fence_", "screening_level_fences_"):
            self.__dict__.pop(name, None)

    def _screened(self, X_given, X, rows) -> np.ndarray:
        """Mask of ``rows`` within the screening fit's fences (``screening``); sets
        ``n_screened_out_``, ``screening_fence_`` and ``screening_level_fences_``.
        ``X_given`` is X as passed to fit (a DataFrame keeps its column roles), ``X`` as
        validated."""
        subset = X_given.iloc[rows] if isinstance(X_given, pd.DataFrame) else X[rows]
        layout = self._layout(X.shape[1])
        _, self.screening_fence_, self.screening_level_fences_, anomaly_scores, fences = fit_screen(
            self, subset, X[rows], layout
        )
        keep = anomaly_scores <= fences
        self.n_screened_out_ = int(np.count_nonzero(~keep))
        return keep

    def _within_screen(self, screen, X) -> np.ndarray:
        """Mask of the rows of X within their fences under the fitted ``screen``
        (``screening.row_fences``); counts the others in ``n_screened_out_``."""
        n_rows = X.shape[0]
        if n_rows == 0:
            return np.ones(0, dtype=bool)
        levels = categorical_levels(X, self._layout(X.shape[1]))
        fences = row_fences(self.screening_fence_, self.screening_level_fences_, levels, n_rows)
        within = -screen.score_samples(X) <= fences
        self.n_screened_out_ += int(np.count_nonzero(~within))
        return within

    def _start_fit(self) -> tuple[int, int, int, int]:
        """Forget an earlier fit's calibration; the fit's four seeds (model, shuffle,
        split, score), drawn from ``random_state``."""
        for name in ("calibration_scores_", "fpr_", "typical_feature_log_likelihood_"):
            self.__dict__.pop(name, None)  # from an earlier fit or calibrate
        self.calibrated_ = False
        rng = check_random_state(self.random_state)
        return tuple(int(s) for s in rng.randint(0, _SEED_HIGH, size=4))

    def _set_training_threshold(self, training_scores, too_few, scored: str) -> None:
        """``offset_`` from the training scores (by ``contamination``), or, when too few
        rows were held out to certify ``fpr`` (``too_few``: the warning), their (1 - fpr)
        quantile, not certified; ``scored`` names the rows in ``calibration_reason_``."""
        self.offset_ = self._threshold(training_scores)
        self._remember_threshold_scoring()
        if too_few:
            self.offset_ = float(np.percentile(training_scores, 100.0 * self.fpr))
            self.fpr_ = float(self.fpr)
            self.calibration_reason_ = too_few
        else:
            self.calibration_reason_ = (
                f"calibration_fraction=0: offset_ is set by contamination="
                f"{self.contamination!r} on {scored}"
            )

    def _fit_stream(self, sample, sample_keys, chunks, n_rows: int):
        """Fit on rows read once, chunk by chunk, that need not fit in memory.

        The tabular fit job's path for large inputs (``tabular.fit_stream``); ``fit`` is
        the estimator's API and is unchanged. Returns self.

        Parameters
        ----------
        sample : array-like of shape (m, n_features)
            A uniform sample of the rows, encoded as those of ``chunks``. The scaling
            (``center_``, ``scale_``) is learned on it; when no row is held out for
            calibration, so is ``offset_`` (on the scores of its fitting rows).
        sample_keys : ndarray of shape (m,), uint64
            The position key of each sample row (``streaming.position_keys``).
        chunks : iterable of (X, keys)
            Every row once: X of shape (n, n_features) and the rows' position keys. It is
            read once; training epochs read the rows back from a temporary folder
            (``streaming.RowStore``).
        n_rows : int
            About how many rows ``chunks`` holds; it caps the validation rows.

        Notes
        -----
        A row's share depends only on its key: with r = ``position_uniform(key, seed)``,
        it is a calibration row when r < c = ``calibration_fraction``, a validation row
        (early stopping) when c <= r < c + v, and a training row otherwise, where
        v = (1 - c) * min(``validation_fraction``, STREAM_VALIDATION_ROWS / ((1 - c) *
        n_rows)). As in ``fit``, the calibration rows set a split-conformal threshold
        at ``fpr`` (or, when too few for it, train too, with a ``CalibrationWarning``).
        """
        self._check_params()
        sample = self._validate_input(sample, reset=True)
        n_features = sample.shape[1]
        model_seed, shuffle_seed, split_seed, score_seed = self._start_fit()
        layout = self._layout(n_features)
        self.center_, self.scale_ = fit_scaling(
            sample, self._resolved_scaling(), scaled_columns(layout)
        )
        image_shape = self._set_architecture(n_features)
        c = float(self.calibration_fraction)
        fitting_rows = max((1.0 - c) * n_rows, 1.0)
        v = (1.0 - c) * min(float(self.validation_fraction), STREAM_VALIDATION_ROWS / fitting_rows)
        self._forget_screening()
        screen = None
        if self.screen_outliers:  # fitted on the sample's fitting rows, applied to every chunk
            sample_fitting = position_uniform(sample_keys, split_seed) >= c
            enough = sample_fitting.sum() >= MIN_TRAINING_ROWS
            rows = sample[sample_fitting] if enough else sample
            screen, self.screening_fence_, self.screening_level_fences_, _, _ = fit_screen(
                self, rows, rows, layout
            )
            self.n_screened_out_ = 0

        with scratch_folder() as folder:
            train_store = RowStore(folder, "train", n_features, np.float32)
            calibration_store = RowStore(folder, "calibration", n_features, np.float64)
            validation = []
            for X, keys in chunks:
                X = self._validate_input(X, reset=False)
                r = position_uniform(keys, split_seed)
                held_out = r < c
                calibration_store.append(X[held_out])
                fitting, r_fitting = X[~held_out], r[~held_out]
                if screen is not None:
                    within = self._within_screen(screen, fitting)
                    fitting, r_fitting = fitting[within], r_fitting[within]
                U = self._scaled(fitting)
                validating = r_fitting < c + v
                validation.append(U[validating])
                train_store.append(U[~validating])
            n_validation = sum(len(rows) for rows in validation)
            n_samples = train_store.n_rows + n_validation + calibration_store.n_rows
            if n_samples < MIN_TRAINING_ROWS:
                raise ValueError(
                    f"VAEAnomalyDetector needs at least {MIN_TRAINING_ROWS} rows to train, "
                    f"got n_samples={n_samples}."
                )
            too_few = too_few_to_calibrate(n_samples, calibration_store.n_rows, c, self.fpr)
            if too_few:
                warnings.warn(too_few, CalibrationWarning, stacklevel=2)
                for X in calibration_store.chunks():  # every row trains, as in fit
                    if screen is not None:
                        X = X[self._within_screen(screen, X)]
                    train_store.append(self._scaled(X))
                calibration_store = RowStore(folder, "none", n_features, np.float64)
            validation_rows = np.concatenate(validation)
            if train_store.n_rows == 0:  # as in fit: no row left to train on, no validation
                train_store.append(validation_rows)
                validation_rows = validation_rows[:0]
            self._stream_counts = {  # the job reports them
                "train": train_store.n_rows,
                "validation": len(validation_rows),
                "calibration": calibration_store.n_rows,
            }
            if screen is not None:
                self._stream_counts["screened_out"] = self.n_screened_out_
            model = self._new_model(
                n_features, layout, image_shape, model_seed, self._scaled(sample)
            )
            self.history_ = train(
                model,
                StreamedRows(train_store, self._scaled(sample)),
                validation_rows,
                self._training_settings(shuffle_seed),
            )
            self.n_epochs_ = len(self.history_["loss"])
            self.n_replicas_ = replicas(model)
            self.model_ = model
            self.score_seed_ = score_seed
            fitting = position_uniform(sample_keys, split_seed) >= (0.0 if too_few else c)
            fitting_sample = sample[fitting] if fitting.any() else sample
            self._set_typical_terms(fitting_sample, np.arange(len(fitting_sample)))
            if calibration_store.n_rows:
                scores = [-self._log_density(X) for X in calibration_store.chunks()]
                self._set_calibration(np.concatenate(scores), self.fpr)
                return self
        training_scores = self._log_density(fitting_sample)
        self._set_training_threshold(
            training_scores, too_few, "the scores of a sample of the training rows"
        )
        return self

    def _set_typical_terms(self, X, rows: np.ndarray) -> None:
        """``typical_feature_log_likelihood_`` from the training ``rows`` of validated X
        (evenly spaced, at most TYPICAL_TERM_ROWS and TYPICAL_TERM_VALUES // outputs of
        them): per output j, the median over the rows where j is observed of
        E_q[log p(u_j|z)] (0 where it never is), in the order of ``score_features``."""
        n_outputs = self.model_.n_outputs
        wanted = max(1, min(TYPICAL_TERM_ROWS, TYPICAL_TERM_VALUES // n_outputs))
        rows = np.asarray(rows)[:: -(-len(rows) // wanted)]
        layout = self._layout(X.shape[1])
        blocks = []
        for start, stop in row_blocks(len(rows), X.shape[1]):  # a sparse X dense by blocks
            block_rows = rows[start:stop]
            block = X[block_rows]
            block = block.toarray() if sparse.issparse(block) else block
            terms = self._terms(block, rows=block_rows, exact=False)
            scaled = terms.scaled_feature_log_likelihood
            if self.missing == "mask":
                scaled = np.where(observed_outputs(block, layout), scaled, np.nan)
            blocks.append(scaled)
        with warnings.catch_warnings():  # an output never observed: its median is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            typical = np.nan_to_num(np.nanmedian(np.concatenate(blocks), axis=0), nan=0.0)
        order = self._frame_order()
        self.typical_feature_log_likelihood_ = typical if order is None else typical[order]

    def _frame_order(self):
        """``frames.output_order`` of a DataFrame encoded by column roles (the model's
        outputs[:, order] follow its columns), or None."""
        schema = self._schema()
        return None if schema is None else output_order(schema)

    def _typical_terms(self):
        """``typical_feature_log_likelihood_`` in the model's output order; 0 for a model
        saved before it existed (its columns are then ranked by their terms)."""
        typical = getattr(self, "typical_feature_log_likelihood_", None)
        order = self._frame_order()
        if typical is None or order is None:
            return 0.0 if typical is None else typical
        in_model_order = np.empty_like(typical)
        in_model_order[order] = typical
        return in_model_order

    def _set_architecture(self, n_features: int):
        """Set ``latent_dim_``, ``hidden_units_``, ``conv_filters_``; the image shape or None."""
        self._remember_form()
        self.latent_dim_ = self.latent_dim or default_latent_dim(n_features)
        if self.score_method == "exact":
            self._check_exact(self.latent_dim_)
        image_shape = self._image_shape(n_features)
        if self.hidden_units is not None:
            self.hidden_units_ = tuple(int(w) for w in self.hidden_units)
        else:
            self.hidden_units_ = default_hidden_units(n_features)
        self.conv_filters_ = ()
        if image_shape is not None:
            self.conv_filters_ = (
                default_conv_filters(image_shape)
                if self.conv_filters is None
                else tuple(int(f) for f in self.conv_filters)
            )
        return image_shape

    def _new_model(self, n_features: int, layout, image_shape, model_seed: int, U) -> VAE:
        """The untrained VAE of this detector's parameters and fitted architecture (U: the
        scaled training rows, for ``min_scale="auto"``)."""
        head = LIKELIHOODS[self._family()]
        if self.likelihood_scale == "sample" and "scale_mode" not in head.options(
            self.get_params(), layout
        ):
            raise ValueError(
                "likelihood_scale='sample' asks for a decoder scale per row, which the "
                f"{head.family!r} likelihood does not have (a column layout, or a DataFrame "
                "encoded by column roles as the tabular jobs encode every file, has a scale "
                "per column only): use likelihood_scale='feature'."
            )
        return VAE(
            n_features,
            self.latent_dim_,
            self.hidden_units_,
            activation=self.activation,
            likelihood=self._family(),
            likelihood_options=self._likelihood_options(layout, U),
            latent=self.latent,
            latent_categories=int(self.latent_categories),
            temperature=float(self.temperature),
            beta=self.beta,
            trim_fraction=float(self.trim_fraction),
            trim_rule=self.trim_rule,
            objective=self.objective,
            n_train_samples=int(self.n_train_samples),
            free_bits=float(self.free_bits),
            corruption=self.corruption,
            corruption_level=float(self.corruption_level),
            missing=self.missing == "mask",
            missing_indicator=bool(self.missing_indicator),
            image_shape=image_shape,
            conv_filters=self.conv_filters_,
            seed=model_seed,
            body_dtype=body_policy(self.dtype),
        )

    def _training_settings(self, shuffle_seed: int) -> TrainingSettings:
        return TrainingSettings(
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            n_iter_no_change=self.n_iter_no_change,
            kl_warmup_epochs=self.kl_warmup_epochs,
            beta=self.beta,
            shuffle_seed=shuffle_seed,
            verbose=self.verbose,
        )

    def _likelihood_options(self, layout, U: np.ndarray) -> dict:
        """The head's options, as the head itself declares them; ``min_scale="auto"``
        becomes one floor per scaled column of the scaled rows U (``resolution_floors``)."""
        options = LIKELIHOODS[self._family()].options(self.get_params(), layout)
        if options.get("min_scale") == "auto":
            if not isinstance(U, np.ndarray):
                raise ValueError(
                    "min_scale='auto' reads the columns' steps from dense rows; give X as "
                    "a dense array or a float min_scale."
                )
            floors = resolution_floors(U[:, scaled_columns(layout)])
            options["min_scale"] = [float(f) for f in floors]
        return options

    def _threshold(self, training_scores: np.ndarray) -> float:
        if isinstance(self.contamination, str):
            q1, q3 = np.percentile(training_scores, [25, 75])
            return float(q1 - AUTO_FENCE_IQRS * (q3 - q1))
        return float(np.percentile(training_scores, 100.0 * self.contamination))

    # ------------------------------------------------------------------ scoring

    def _scaled_float64(self, X: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return (X - self.center_) / self.scale_

    def _scaled(self, X: np.ndarray, first_row: int = 0) -> np.ndarray:
        """u = (x - center_) / scale_ as the model's float32; every path into the model
        passes here, so a value whose scaled form overflows float32 is a ValueError naming
        its row (X: a dense block of rows from ``first_row``) and column (a score that
        overflows is caught in ``_terms``)."""
        U = self._scaled_float64(X)
        check_in_range(X, U, self._encoded_names(), first_row=first_row)
        return U.astype(np.float32)

    def _model_rows(self, X):
        """The rows the model trains on: u as float32 for a dense X; for a sparse X,
        ``ScaledRows`` made dense one batch at a time (its range checked here, a block of
        rows at a time)."""
        if not sparse.issparse(X):
            return self._scaled(X)
        for start, stop in row_blocks(*X.shape):
            self._scaled(X[start:stop].toarray(), first_row=start)
        return ScaledRows(X, self._scaled)

    def _check_scores_finite(self, X: np.ndarray, terms: ScoreTerms, rows=None) -> None:
        """ValueError naming the first row whose score is not finite, and its most extreme
        column in scaled units (the value that overflowed); ``rows`` maps to X's rows."""
        finite = np.isfinite(terms.elbo) & np.isfinite(terms.iwae)
        if finite.all():
            return
        bad = np.flatnonzero(~finite)
        position = int(bad[0])
        row = int(rows[position]) if rows is not None else position
        extremity = np.abs(self._scaled_float64(X[position]))
        j = int(np.argmax(np.where(np.isnan(extremity), -1.0, extremity)))
        column = column_label(j, self._encoded_names())
        raise ValueError(
            f"Input X at row {row} scores {float(terms.elbo[position])!r}: its {column} "
            f"= {float(X[position, j])!r} ({float(extremity[j]):.3g} after scaling) overflows "
            f"the model's float32 arithmetic; {bad.size} row(s) affected. Remove these rows "
            "or fix their values."
        )

    def _terms(
        self, X: np.ndarray, features: bool = True, rows=None, first_row=0, exact: bool = True
    ) -> ScoreTerms:
        """Score terms of validated X, in the units of X (log-Jacobian of the scaling added);
        ``exact=False`` leaves out log p(x) by enumeration under ``score_method="exact"``.

        A row whose score is not finite is a ValueError (``rows``: its index in the
        caller's X, when X is a selection of it). X is scaled and scored a block of rows
        at a time (``scoring.scoring_block_rows``; a sparse X made dense a block at a
        time): a row's score does not depend on the rows scored with it."""
        n_rows, n_columns = X.shape
        block_rows = scoring_block_rows(self.model_, self.n_score_samples, n_columns)
        if sparse.issparse(X):  # its dense blocks within the densifying budget too
            block_rows = min(block_rows, dense_block_rows(n_columns))
        if sparse.issparse(X) or n_rows > block_rows:
            rows = np.arange(n_rows) if rows is None else np.asarray(rows)
            blocks = [
                self._terms(
                    X[start : start + block_rows].toarray()
                    if sparse.issparse(X)
                    else X[start : start + block_rows],
                    features,
                    rows[start : start + block_rows],
                    first_row + start,
                    exact,
                )
                for start in range(0, n_rows, block_rows)
            ]
            return ScoreTerms(
                *(
                    None if getattr(blocks[0], f.name) is None
                    else np.concatenate([getattr(b, f.name) for b in blocks])
                    for f in dataclasses.fields(ScoreTerms)
                )
            )  # fmt: skip
        noise = self.model_.latent.scoring_noise(self.score_seed_, self.n_score_samples)
        U = self._scaled(X, first_row)
        terms = score_terms(self.model_, U, noise, features=features)
        if exact and self.score_method == "exact":
            terms = dataclasses.replace(terms, exact=exact_log_marginals(self.model_, U))
        self._check_scores_finite(X, terms, rows)
        # Per output: log scale of its column (0 for unscaled outputs), counted only
        # where the output is observed: log p(x) = log p(u) - sum_observed log scale.
        layout = self._layout(X.shape[1])
        log_scale = np.array(
            [np.log(self.scale_[a]) if is_scaled(f) else 0.0 for f, a, _ in output_spans(layout)]
        )
        typical = self._typical_terms() if features else 0.0
        if self.missing == "mask":
            observed = observed_outputs(X, layout)  # [n, outputs]
            log_scale = observed * log_scale
            typical = observed * typical
        log_jacobian = -np.sum(log_scale, axis=-1)
        return ScoreTerms(
            elbo=terms.elbo + log_jacobian,
            iwae=terms.iwae + log_jacobian,
            elbo_mc=terms.elbo_mc + log_jacobian,
            kl=terms.kl,
            feature_log_likelihood=(terms.feature_log_likelihood - log_scale if features else None),
            scaled_feature_log_likelihood=terms.feature_log_likelihood if features else None,
            relative_feature_log_likelihood=(
                terms.feature_log_likelihood - typical if features else None
            ),
            exact=None if terms.exact is None else terms.exact + log_jacobian,
        )

    def _log_density(self, X: np.ndarray, rows=None) -> np.ndarray:
        """The score_method estimate of log p(x) for validated X, without per-feature terms."""
        return self._terms(X, features=False, rows=rows).estimate(self.score_method)

    def score_terms(self, X, *, features: bool = True) -> ScoreTerms:
        """All per-row estimates at once: elbo, iwae, elbo_mc, kl, feature_log_likelihood.

        ``features=False`` leaves out the (n, d) per-feature terms to save memory. For a
        DataFrame encoded by column roles, the per-feature terms follow its columns.
        """
        check_is_fitted(self)
        self._check_scoring_params()
        terms = self._terms(self._validate_input(X, reset=False), features=features)
        schema = self._schema()
        if features and schema is not None:
            order = output_order(schema)
            terms = dataclasses.replace(
                terms,
                feature_log_likelihood=terms.feature_log_likelihood[:, order],
                scaled_feature_log_likelihood=terms.scaled_feature_log_likelihood[:, order],
                relative_feature_log_likelihood=terms.relative_feature_log_likelihood[:, order],
            )
        return terms

    def score_samples(self, X) -> np.ndarray:
        """Estimate of log p(x) per row (ELBO or IWAE by ``score_method``), float64 (n,).

        Higher is more normal; ``-score_samples(X)`` is the anomaly score.
        """
        check_is_fitted(self)
        self._check_scoring_params()
        return self._log_density(self._validate_input(X, reset=False))

    def transform(self, X) -> np.ndarray:
        """The posterior of each row as an embedding to plot and cluster.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        Z : ndarray of shape (n_samples, latent_dim_), float64
            Or (n_samples, latent_dim_ * latent_categories) for a categorical latent.
            Gaussian latent: the posterior mean loc(x) of q(z|x) = N(loc(x), diag
            scale(x)^2). Categorical latent: the posterior probabilities q(z_l = k|x),
            column l * latent_categories + k (each block of ``latent_categories``
            columns sums to 1). For the scaled and, with ``missing="mask"``, 0-filled
            row the encoder sees; never corrupted. A row's embedding does not depend on
            the other rows passed with it.
        """
        check_is_fitted(self)
        self._check_fitted_form()
        X = self._validate_input(X, reset=False)
        if not sparse.issparse(X):
            return posterior_means(self.model_, self._scaled(X))
        return np.concatenate(
            [
                posterior_means(self.model_, self._scaled(X[start:stop].toarray(), start))
                for start, stop in row_blocks(*X.shape)
            ]
        )

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the columns of ``transform``: ``z0``, ``z1``, ... for a Gaussian
        latent; ``z{l}_{k}`` (variable l, class k) for a categorical one.

        ``set_output(transform="pandas")`` makes ``transform`` return a DataFrame with
        these column names (and the index of X when X is a DataFrame)."""
        check_is_fitted(self)
        self._check_fitted_form()
        _check_feature_names_in(self, input_features)
        if self.latent == "categorical":
            names = [
                f"z{variable}_{k}"
                for variable in range(self.latent_dim_)
                for k in range(self.latent_categories)
            ]
        else:
            names = [f"z{variable}" for variable in range(self.latent_dim_)]
        return np.asarray(names, dtype=object)

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for the rows ``predict`` flags.

        ``offset_`` was set with the ``score_method`` and ``n_score_samples`` of ``fit``
        or the last ``calibrate``: changed since, they raise a ValueError."""
        check_is_fitted(self)
        self._check_threshold_scoring()
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """-1 for anomalies (``decision_function < 0``), +1 otherwise."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    # ------------------------------------------------------------------ calibration

    def calibrate(self, X_normal, fpr: float | None = None):
        """Set ``offset_`` so that at most ``fpr`` of new normal rows are flagged.

        Scores the held-out normal rows ``X_normal`` (n of them; at least about 1/fpr)
        and takes the split-conformal threshold on their anomaly scores a = -score:
        t = a_(ceil((n + 1)(1 - fpr))), ``offset_ = -t``. ``predict`` then flags a new
        normal row with probability at most ``fpr``. Returns self.
        """
        check_is_fitted(self)
        self._check_scoring_params()
        fpr = self.fpr if fpr is None else fpr
        check_real("fpr", fpr, 0, 1, low_open=True, high_open=True)
        return self._calibrate(self._validate_input(X_normal, reset=False), fpr)

    def _calibrate(self, X: np.ndarray, fpr: float, rows=None):
        return self._set_calibration(-self._log_density(X, rows=rows), fpr)

    def _set_calibration(self, anomaly_scores: np.ndarray, fpr: float):
        """The split-conformal threshold of held-out rows' anomaly scores."""
        threshold = conformal_threshold(anomaly_scores, fpr)
        self.calibration_scores_ = np.sort(anomaly_scores)
        self.fpr_ = float(fpr)
        self.offset_ = -threshold
        self._remember_threshold_scoring()
        self.calibrated_ = True
        self.calibration_reason_ = ""
        return self

    def _check_calibrated(self) -> None:
        check_is_fitted(
            self,
            "calibration_scores_",
            msg="This VAEAnomalyDetector is not calibrated yet"
            + (f" ({self.calibration_reason_})" if getattr(self, "calibration_reason_", "") else "")
            + ": call calibrate(X_normal, fpr) or fit with enough held-out rows "
            "(calibration_fraction) before asking for p-values.",
        )

    def p_values(self, X) -> np.ndarray:
        """Conformal p-values, float64 (n,): p = (1 + #{cal. anomaly scores >= a}) / (n_cal + 1).

        Uniform on normal rows; small for rows stranger than the calibration set. A
        detector that is not calibrated (``calibrated_`` False, also when ``fit`` held out
        too few rows) has no p-values: this raises ``NotFittedError`` with the reason, and
        the batch jobs write NaN (``thresholds.verdicts``).
        """
        self._check_calibrated()
        self._check_threshold_scoring()
        return conformal_p_values(self.calibration_scores_, -self.score_samples(X))

    def predict_fdr(self, X, fdr: float = 0.05) -> np.ndarray:
        """-1 for the rows Benjamini-Hochberg flags at false-discovery rate ``fdr``, else +1.

        Controls the expected share of normal rows among the flagged rows of this batch,
        where ``predict`` controls the share of normal rows flagged.
        """
        return np.where(benjamini_hochberg(self.p_values(X), fdr), -1, 1)

    def score_features(self, X) -> np.ndarray | pd.DataFrame:
        """Per-feature terms E_q[log p(x_j|z)], float64 (n, outputs), in the units of X.

        One column per feature, or per original column with a layout (a one-hot group is
        one column); a missing entry contributes 0. For a detector fitted on a DataFrame
        encoded by column roles (``feature_roles_``), a DataFrame with X's index and one
        column per modelled column of X, named as in X (a categorical column is one
        column; "ignore" columns are left out).

        Low values mark the columns that make a row unlikely. They add up to the ELBO:
        ``score_features(X).sum(axis=1) - score_terms(X).kl == score_terms(X).elbo``.
        """
        terms = self.score_terms(X).feature_log_likelihood
        names = self._term_names()
        if names is None:
            return terms
        return pd.DataFrame(terms, index=X.index, columns=names)

    def _term_names(self) -> list[str] | None:
        """The columns of the per-feature terms for a DataFrame encoded by column roles
        (its modelled columns, in its order); None otherwise."""
        if self._schema() is None:
            return None
        return [name for name, role in self.feature_roles_.items() if role != "ignore"]

    # ------------------------------------------------------------------ persistence

    def save(self, path):
        """Save to the directory ``path`` (``model.keras`` + ``manifest.json``), atomically."""
        check_is_fitted(self)
        self._check_fitted_form()
        self._check_threshold_scoring()
        return write_bundle(path, self.model_, self._manifest())

    def _manifest(self) -> dict:
        return detector_manifest(self)

    @classmethod
    def _from_manifest(cls, manifest: dict, model, path) -> VAEAnomalyDetector:
        return detector_from_manifest(cls, manifest, model, path)

    def __getstate__(self):
        state = super().__getstate__()
        if "model_" in state:
            state = dict(state, model_=model_to_bytes(state["model_"]))
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), bytes):
            state = dict(state, model_=model_from_bytes(state["model_"]))
        super().__setstate__(state)


def load(path) -> VAEAnomalyDetector:
    """Load a detector saved with ``VAEAnomalyDetector.save``, the model in Keras safe mode."""
    model, manifest = read_bundle(path)
    return VAEAnomalyDetector._from_manifest(manifest, model, path)
