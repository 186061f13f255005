"""The parameters of ``VAEAnomalyDetector``: each one's constraint, in scikit-learn's
vocabulary (``sklearn.utils._param_validation``: ``Interval``, ``StrOptions``, ...).

The estimator declares ``_parameter_constraints = PARAMETER_CONSTRAINTS`` and validates
itself with it in ``fit`` (``BaseEstimator._validate_params``); checks that tie several
parameters together, or look inside a tuple, are ``check_model_relations`` here (called by
``VAEAnomalyDetector._check_params``, which adds those that need the likelihood heads).
The batch jobs check the ``[model]`` table of a settings file with both
(``check_model_values``) when they read the file: before any data is read, and without
importing TensorFlow, which this module never does.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)

SCORE_METHODS = ("elbo", "iwae", "exact")
SCALINGS = ("auto", "standard", "robust", None)
MISSING = ("error", "mask")
LIKELIHOOD_SCALES = ("feature", "sample")
OBJECTIVES = ("elbo", "iwae")
TRIM_RULES = ("fraction", "fence")
CORRUPTIONS = ("gaussian", "mask", None)
LATENTS = ("gaussian", "categorical")
# Mixed-precision policies of the bodies (``precision``); None is float32.
DTYPES = ("mixed_bfloat16", "mixed_float16", None)


def _at_least(kind, low):
    return Interval(kind, low, None, closed="left")


PARAMETER_CONSTRAINTS: dict[str, list] = {
    "latent_dim": [_at_least(Integral, 1), None],
    "latent": [StrOptions(set(LATENTS))],
    "latent_categories": [_at_least(Integral, 2)],
    "temperature": [Interval(Real, 0, None, closed="neither")],
    "hidden_units": [tuple, list, None],  # each width >= 1: check_model_relations
    "image_shape": [tuple, list, None],  # three positive integers: check_model_relations
    "conv_filters": [tuple, list, None],
    "activation": [str],
    # A family name, or a layout of (family, width) blocks: checked against the registry
    # of likelihood heads (``distributions.LIKELIHOODS``) by _check_params.
    "likelihood": [str, list, tuple],
    # Column name -> "numeric", "categorical", "boolean" or "ignore" (``frames.FRAME_ROLES``),
    # for DataFrames: checked against X's columns by fit.
    "column_roles": [dict, None],
    "likelihood_scale": [StrOptions(set(LIKELIHOOD_SCALES))],
    # "auto": one floor per scaled column from its resolution (resolution_floors).
    "min_scale": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
    "beta": [_at_least(Real, 0)],
    "trim_fraction": [Interval(Real, 0, 1, closed="left")],
    "trim_rule": [StrOptions(set(TRIM_RULES))],
    "screen_outliers": ["boolean"],
    "objective": [StrOptions(set(OBJECTIVES))],
    "n_train_samples": [_at_least(Integral, 1)],
    "free_bits": [_at_least(Real, 0)],
    "corruption": [StrOptions({c for c in CORRUPTIONS if c is not None}), None],
    # "mask" takes a probability in [0, 1): check_model_relations.
    "corruption_level": [_at_least(Real, 0)],
    "kl_warmup_epochs": [_at_least(Integral, 0)],
    "epochs": [_at_least(Integral, 1), None],
    "batch_size": [_at_least(Integral, 1)],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "n_iter_no_change": [_at_least(Integral, 1)],
    "missing": [StrOptions(set(MISSING))],
    "missing_indicator": ["boolean"],
    "scaling": [StrOptions({s for s in SCALINGS if s is not None}), None],
    # "exact" needs a categorical latent small enough to enumerate: _check_params.
    "score_method": [StrOptions(set(SCORE_METHODS))],
    "n_score_samples": [_at_least(Integral, 1)],
    "contamination": [Interval(Real, 0, 0.5, closed="right"), StrOptions({"auto"})],
    "calibration_fraction": [Interval(Real, 0, 1, closed="left")],
    "fpr": [Interval(Real, 0, 1, closed="neither")],
    # "mixed_float16" needs a GPU: checked by fit (``precision.check_trainable_here``).
    "dtype": [StrOptions({t for t in DTYPES if t is not None}), None],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


def check_model_values(model: dict, source: str) -> None:
    """Validate the values of a settings file's ``[model]`` table (known keys) with
    ``PARAMETER_CONSTRAINTS``; the ValueError names ``source``, the key and what it
    accepts, e.g. ``pipelines/x.toml: [model] learning_rate: The 'learning_rate'
    parameter of VAEAnomalyDetector must be a float in the range (0.0, inf). Got 'fast'
    instead.``"""
    for key, value in model.items():
        if key not in PARAMETER_CONSTRAINTS:
            continue  # unknown keys are the caller's error, with its own message
        if isinstance(value, bool) and _number_only(PARAMETER_CONSTRAINTS[key]):
            # scikit-learn's Interval takes a bool for a number (True is an Integral).
            raise ValueError(f"{source}: [model] {key}: must be a number, got {value!r}.")
        try:
            validate_parameter_constraints(
                {key: PARAMETER_CONSTRAINTS[key]}, {key: value}, caller_name="VAEAnomalyDetector"
            )
        except InvalidParameterError as error:
            raise ValueError(f"{source}: [model] {key}: {error}") from None
    try:
        check_model_relations(model)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: [model] {error}") from None


def _number_only(constraints: list) -> bool:
    """Whether a parameter takes numbers (an ``Interval``) and no flag ("boolean", or
    "verbose", which takes a bool or an int)."""
    numeric = any(isinstance(c, Interval) for c in constraints)
    return numeric and not any(c in ("boolean", "verbose") for c in constraints)


def check_model_relations(params: dict) -> None:
    """What ``PARAMETER_CONSTRAINTS`` cannot say, for the parameters given (the others at
    their defaults): the items of the tuples, and the pairs of parameters that go
    together. ``VAEAnomalyDetector._check_params`` calls it too."""
    for width in params.get("hidden_units") or ():
        check_int("each of hidden_units", width, 1)
    check_int_tuple("image_shape", params.get("image_shape"), length=3)
    check_int_tuple("conv_filters", params.get("conv_filters"), allow_empty=True)
    level = params.get("corruption_level")  # absent: the default, a valid probability
    if params.get("corruption") == "mask" and level is not None and not level < 1:
        raise ValueError(
            "corruption='mask' takes corruption_level as a probability in [0, 1), got "
            f"corruption_level={level!r}."
        )
    if params.get("score_method") == "exact":
        check_exact_latent(params.get("latent", "gaussian"))


def check_exact_latent(latent: str) -> None:
    """score_method="exact" sums over every value of z: ValueError unless ``latent`` is
    categorical (``VAEAnomalyDetector._check_exact`` adds the size of the latent)."""
    if latent != "categorical":
        raise ValueError(
            "score_method='exact' sums over every value of z, which needs "
            f"latent='categorical'; got latent={latent!r}. Use 'elbo' or 'iwae'."
        )


def default_latent_dim(n_features: int) -> int:
    """L = ceil(3d / 4), kept within [1, 32] (chosen on benchmarks/quality.py)."""
    return int(min(32, max(1, math.ceil(0.75 * n_features))))


def default_hidden_units(n_features: int) -> tuple[int, ...]:
    """Two layers (h, h / 2) with h = 2d rounded up to a power of two, h in [16, 512]."""
    width = int(min(512, max(16, 2 ** math.ceil(math.log2(2 * n_features)))))
    return (width, max(8, width // 2))


def check_int(name, value, minimum, allow_none=False) -> None:
    """TypeError unless ``value`` is an integer (not a bool), ValueError below ``minimum``."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, Integral):
        kind = "None or an integer" if allow_none else "an integer"
        raise TypeError(f"{name} must be {kind}, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")


def check_int_tuple(name, value, length=None, allow_empty=False) -> None:
    """None, or a tuple of positive integers (of ``length`` items, if given; ``()`` only
    with ``allow_empty``)."""
    if value is None:
        return
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be None or a tuple of integers, got {value!r}.")
    items = tuple(value)
    if not items and allow_empty:
        return
    if not items or (length is not None and len(items) != length):
        wanted = f"{length} integers" if length else "at least one integer"
        raise ValueError(f"{name} must be {wanted}, got {value!r}.")
    for item in items:
        check_int(f"each of {name}", item, 1)


def check_real(name, value, low, high, low_open, high_open=False) -> None:
    """TypeError unless ``value`` is a real number, ValueError outside the interval."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a float, got {value!r} ({type(value).__name__}).")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high or not math.isfinite(value):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}.")


def check_choice(name, value, choices) -> None:
    """ValueError naming the choices unless ``value`` is one of them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")
