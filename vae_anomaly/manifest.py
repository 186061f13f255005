"""A fitted ``VAEAnomalyDetector`` as JSON (``manifest.json`` beside ``model.keras``).

``detector_manifest`` writes the class, the parameters and the fitted values;
``detector_from_manifest`` reads them back and refuses, naming the file and the entry,
values no fit could have produced (non-finite thresholds, scales that are not positive,
shapes that disagree with the model). This module takes the detector class as an
argument and never imports ``detector.py``.
"""

from __future__ import annotations

import math
from numbers import Integral
from pathlib import Path

import numpy as np

from .errors import ModelFileError
from .frames import check_roles, schema_from_roles
from .layout import layout_width, normalize_layout
from .model import VAE
from .persistence import MANIFEST_FILE, MODEL_FILE
from .precision import body_policy
from .thresholds import min_calibration_size


def detector_manifest(detector) -> dict:
    """The JSON manifest of a fitted detector: its class, parameters and fitted values."""
    params = detector.get_params()
    if not (params["random_state"] is None or isinstance(params["random_state"], Integral)):
        params["random_state"] = None  # a RandomState instance cannot be written as JSON
    for name in ("hidden_units", "image_shape", "conv_filters"):
        if params[name] is not None:
            params[name] = [int(w) for w in params[name]]
    if not isinstance(params["likelihood"], str):
        params["likelihood"] = [list(block) for block in normalize_layout(params["likelihood"])]
    fitted = {
        "n_features_in_": int(detector.n_features_in_),
        "center_": detector.center_.tolist(),
        "scale_": detector.scale_.tolist(),
        "offset_": float(detector.offset_),
        "latent_dim_": int(detector.latent_dim_),
        "hidden_units_": list(detector.hidden_units_),
        "conv_filters_": list(detector.conv_filters_),
        "n_epochs_": int(detector.n_epochs_),
        "n_replicas_": int(detector.n_replicas_),
        "score_seed_": int(detector.score_seed_),
        "history_": detector.history_,
    }
    if hasattr(detector, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(name) for name in detector.feature_names_in_]
    if hasattr(detector, "feature_roles_"):  # a DataFrame encoded by column roles
        fitted["feature_roles_"] = dict(detector.feature_roles_)
        fitted["feature_levels_"] = {k: list(v) for k, v in detector.feature_levels_.items()}
    if hasattr(detector, "calibration_scores_"):
        fitted["calibration_scores_"] = detector.calibration_scores_.tolist()
    if hasattr(detector, "typical_feature_log_likelihood_"):
        typical = detector.typical_feature_log_likelihood_
        fitted["typical_feature_log_likelihood_"] = typical.tolist()
    if hasattr(detector, "fpr_"):
        fitted["fpr_"] = detector.fpr_
    if hasattr(detector, "n_screened_out_"):  # screen_outliers=True
        fitted["n_screened_out_"] = int(detector.n_screened_out_)
        fitted["screening_fence_"] = float(detector.screening_fence_)
        fitted["screening_level_fences_"] = [
            [float(f) for f in fences] for fences in detector.screening_level_fences_
        ]
    fitted["calibrated_"] = bool(getattr(detector, "calibrated_", False))
    fitted["calibration_reason_"] = str(getattr(detector, "calibration_reason_", ""))
    return {"class": type(detector).__name__, "params": params, "fitted": fitted}


def detector_from_manifest(cls, manifest: dict, model, path):
    """A ``cls`` detector from ``manifest`` and its Keras ``model``; ModelFileError naming
    ``path`` when the manifest is damaged or its fitted values are unusable."""
    if manifest.get("class") != cls.__name__:
        raise ModelFileError(f"{path} holds a {manifest.get('class')!r}, not a {cls.__name__}.")
    if not isinstance(model, VAE):
        raise ModelFileError(
            f"{Path(path) / MODEL_FILE} holds a Keras {type(model).__name__}, not the "
            f"{VAE.__name__} of a {cls.__name__}."
        )
    params = dict(manifest["params"])
    for name in ("hidden_units", "image_shape", "conv_filters"):
        if params.get(name) is not None:
            params[name] = tuple(params[name])
    if not isinstance(params.get("likelihood", "gaussian"), str):
        params["likelihood"] = tuple(tuple(block) for block in params["likelihood"])
    try:
        detector = cls(**params)
        fitted = manifest["fitted"]
        check_json_types(fitted)
        detector.n_features_in_ = int(fitted["n_features_in_"])
        detector.center_ = np.asarray(fitted["center_"], dtype=np.float64)
        detector.scale_ = np.asarray(fitted["scale_"], dtype=np.float64)
        detector.offset_ = float(fitted["offset_"])
        detector.latent_dim_ = int(fitted["latent_dim_"])
        detector.hidden_units_ = tuple(fitted["hidden_units_"])
        detector.conv_filters_ = tuple(fitted.get("conv_filters_", ()))
        detector.n_epochs_ = int(fitted["n_epochs_"])
        # Manifests written before issue 17 have no n_replicas_: one replica trained them.
        detector.n_replicas_ = fitted.get("n_replicas_", 1)
        detector.score_seed_ = int(fitted["score_seed_"])
        detector.history_ = fitted["history_"]
        if "feature_names_in_" in fitted:
            detector.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
        if "feature_roles_" in fitted:
            names = list(fitted.get("feature_names_in_", []))
            problem = check_roles(fitted["feature_roles_"], fitted["feature_levels_"], names)
            if problem:
                raise ValueError(f"fitted.{problem}")
            # In the order of the columns (JSON objects are written with sorted keys).
            detector.feature_roles_ = {name: fitted["feature_roles_"][name] for name in names}
            detector.feature_levels_ = dict(fitted["feature_levels_"])
        if "calibration_scores_" in fitted:
            detector.calibration_scores_ = np.asarray(
                fitted["calibration_scores_"], dtype=np.float64
            )
        if "typical_feature_log_likelihood_" in fitted:  # absent before it existed: 0
            detector.typical_feature_log_likelihood_ = np.asarray(
                fitted["typical_feature_log_likelihood_"], dtype=np.float64
            )
        if "fpr_" in fitted:
            detector.fpr_ = float(fitted["fpr_"])
        if "n_screened_out_" in fitted:
            detector.n_screened_out_ = int(fitted["n_screened_out_"])
            detector.screening_fence_ = float(fitted["screening_fence_"])
            detector.screening_level_fences_ = [
                np.asarray(fences, dtype=np.float64)
                for fences in fitted.get("screening_level_fences_", [])
            ]
        detector.calibrated_ = bool(fitted.get("calibrated_", "calibration_scores_" in fitted))
        detector.calibration_reason_ = str(fitted.get("calibration_reason_", ""))
        detector._check_params()
        detector._remember_form()
        detector._remember_threshold_scoring()
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"The manifest of {path} is damaged: {error!r}.") from error
    check_fitted_values(detector, model, Path(path) / MANIFEST_FILE)
    detector.model_ = model
    return detector


# The JSON type of each fitted entry that is one number or flag: read with float(),
# int() or bool() alone, true would pass as 1.0, 2.7 as 2 and "no" as True.
_JSON_TYPES = {
    "offset_": "number",
    "n_features_in_": "integer",
    "latent_dim_": "integer",
    "n_epochs_": "integer",
    "score_seed_": "integer",
    "fpr_": "number",
    "calibrated_": "boolean",
}
# The fitted entries that are lists of numbers, read with np.asarray(..., float64), which
# would take true as 1.0 and "1e1" as 10.0.
_JSON_NUMBER_LISTS = (
    "center_",
    "scale_",
    "calibration_scores_",
    "typical_feature_log_likelihood_",
)


def check_json_types(fitted: dict) -> None:
    """ValueError naming the first entry of ``_JSON_TYPES`` present with another type, or
    of ``_JSON_NUMBER_LISTS`` that is not a list of numbers."""
    for entry, kind in _JSON_TYPES.items():
        if entry not in fitted:
            continue
        value = fitted[entry]
        if kind == "boolean":
            good = isinstance(value, bool)
        elif isinstance(value, bool):
            good = False
        else:
            good = isinstance(value, Integral) or (kind == "number" and isinstance(value, float))
        if not good:
            raise ValueError(f"the entry 'fitted.{entry}' must be a JSON {kind}, got {value!r}")
    for entry in _JSON_NUMBER_LISTS:
        if entry not in fitted:
            continue
        values = fitted[entry]
        if not isinstance(values, list):
            raise ValueError(f"the entry 'fitted.{entry}' must be a JSON list of numbers")
        for index, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, (Integral, float)):
                raise ValueError(
                    f"the entry 'fitted.{entry}' must be a JSON list of numbers, but holds "
                    f"{value!r} at index {index}"
                )


def check_fitted_values(detector, model: VAE, manifest_path) -> None:
    """ModelFileError naming ``manifest_path`` and the entry, unless the fitted values are
    usable: finite threshold and calibration scores, positive finite scales, and shapes
    that agree with ``n_features_in_`` and with the model."""
    n = detector.n_features_in_

    def bad(entry: str, problem: str):
        return ModelFileError(f"{manifest_path}: the entry 'fitted.{entry}' {problem}.")

    names = getattr(detector, "feature_names_in_", None)
    if names is not None and names.shape != (n,):
        raise bad(
            "feature_names_in_", f"has {names.size} names: does not match n_features_in_ = {n}"
        )
    if hasattr(detector, "feature_roles_"):
        # A DataFrame encoded by column roles: the model sees the encoded columns.
        roles, levels = detector.feature_roles_, detector.feature_levels_
        problem = check_roles(roles, levels, [] if names is None else list(names))
        if problem:
            raise ModelFileError(f"{manifest_path}: fitted.{problem}.")
        n = layout_width(schema_from_roles(roles, levels).layout())
        if model.n_features != n:
            raise bad(
                "feature_levels_",
                f"encode {n} columns, which does not match the model's {model.n_features}",
            )
    if n < 1 or model.n_features != n:
        raise bad("n_features_in_", f"is {n}, which does not match the model's {model.n_features}")
    if detector.latent_dim_ != model.latent_dim:
        raise bad(
            "latent_dim_", f"{detector.latent_dim_} does not match the model's {model.latent_dim}"
        )
    for entry, fitted_value, model_value in (
        ("hidden_units_", tuple(detector.hidden_units_), model.hidden_units),
        ("conv_filters_", tuple(detector.conv_filters_), model.conv_filters),
    ):
        if fitted_value != model_value:
            raise bad(entry, f"{list(fitted_value)} does not match the model's {list(model_value)}")
    latent = model.latent
    categories = getattr(latent, "categories", detector.latent_categories)
    if latent.kind != detector.latent or categories != detector.latent_categories:
        raise ModelFileError(
            f"{manifest_path}: the entries 'params.latent' and 'params.latent_categories' "
            f"({detector.latent!r}, {detector.latent_categories}) do not match the model's "
            f"{type(latent).__name__} ({latent.kind!r}, {categories})."
        )
    for entry in ("center_", "scale_"):
        values = getattr(detector, entry)
        if values.shape != (n,):
            raise bad(entry, f"has shape {values.shape}, which does not match the {n} columns")
        wrong = ~np.isfinite(values) | ((values <= 0) if entry == "scale_" else False)
        if wrong.any():
            j = int(np.flatnonzero(wrong)[0])
            wanted = "positive and finite" if entry == "scale_" else "finite"
            raise bad(entry, f"must be {wanted}, but holds {float(values[j])!r} at index {j}")
    replicas = detector.n_replicas_
    if isinstance(replicas, bool) or not isinstance(replicas, Integral) or replicas < 1:
        raise bad("n_replicas_", f"must be a positive integer, got {replicas!r}")
    image_shape = None if detector.image_shape is None else tuple(detector.image_shape)
    for entry, params_value, model_value in (
        ("likelihood", detector._family(), model.likelihood),
        ("missing", detector.missing == "mask", model.missing),
        ("image_shape", image_shape, model.image_shape),
    ):
        if params_value != model_value:
            raise ModelFileError(
                f"{manifest_path}: the entry 'params.{entry}' ({getattr(detector, entry)!r}) "
                f"does not match the model's {entry} ({model_value!r})."
            )
    if model.body_dtype != body_policy(detector.dtype):
        raise ModelFileError(
            f"{manifest_path}: the entry 'params.dtype' ({detector.dtype!r}) does not match "
            f"the model's dtype policy {model.body_dtype!r}."
        )
    if not math.isfinite(detector.offset_):
        raise bad("offset_", f"must be finite, got {detector.offset_!r}")
    if (
        hasattr(detector, "calibration_scores_")
        and hasattr(detector, "fpr_")
        and detector.calibrated_
    ):
        needed = min_calibration_size(detector.fpr_)
        if detector.calibration_scores_.size < needed:
            raise bad(
                "calibration_scores_",
                f"holds {detector.calibration_scores_.size} scores, which cannot certify "
                f"fpr_ = {detector.fpr_!r} (at least {needed} are needed)",
            )
    if hasattr(detector, "calibration_scores_"):
        scores = detector.calibration_scores_
        if scores.ndim != 1 or scores.size == 0 or not np.all(np.isfinite(scores)):
            raise bad("calibration_scores_", "must be a non-empty list of finite numbers")
    if hasattr(detector, "typical_feature_log_likelihood_"):
        typical = detector.typical_feature_log_likelihood_
        if typical.shape != (model.n_outputs,) or not np.all(np.isfinite(typical)):
            raise bad(
                "typical_feature_log_likelihood_",
                f"must be a list of {model.n_outputs} finite numbers, one per output of the "
                f"model, got shape {typical.shape}",
            )
    if hasattr(detector, "fpr_") and not 0.0 < detector.fpr_ < 1.0:
        raise bad("fpr_", f"must be in (0, 1), got {detector.fpr_!r}")
    if detector.calibrated_ and not hasattr(detector, "calibration_scores_"):
        raise bad("calibrated_", "is true, but there are no calibration_scores_")
