"""Saving and loading: bit-identical scores, atomic writes, clear errors on damage."""

import io
import json
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import eagerly

import vae_anomaly
from vae_anomaly import ModelFileError, VAEAnomalyDetector, VersionMismatchWarning
from vae_anomaly.distributions import LIKELIHOODS
from vae_anomaly.integrity import INTEGRITY_FILE, file_sha256, seal_directory
from vae_anomaly.persistence import MANIFEST_FILE, MODEL_FILE


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "detector"
    fitted.save(path)
    return path


def test_save_load_gives_bit_identical_scores(fitted, saved, test_X):
    loaded = vae_anomaly.load(saved)
    assert sorted(p.name for p in saved.iterdir()) == [INTEGRITY_FILE, MANIFEST_FILE, MODEL_FILE]
    for method in ("score_samples", "decision_function", "predict", "score_features"):
        np.testing.assert_array_equal(
            getattr(loaded, method)(test_X), getattr(fitted, method)(test_X)
        )
    assert loaded.get_params() == fitted.get_params()
    assert loaded.offset_ == fitted.offset_


def test_a_loaded_or_unpickled_model_keeps_its_form(saved, fitted, test_X):
    for restored in (vae_anomaly.load(saved), pickle.loads(pickle.dumps(fitted))):
        restored.set_params(likelihood="bernoulli")  # the model stays Gaussian
        with pytest.raises(ValueError, match=r"likelihood='bernoulli' \(fitted with 'gaussian'\)"):
            restored.score_samples(test_X)


def test_pickle_and_joblib_give_bit_identical_scores(fitted, test_X):
    expected = fitted.score_samples(test_X)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.score_samples(test_X), expected)
    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).score_samples(test_X), expected)


def test_feature_names_survive_saving(fitted_frame, train_X, tmp_path):
    frame = pd.DataFrame(train_X[:20], columns=["a", "b", "c", "d"])
    fitted_frame.save(tmp_path / "named")
    loaded = vae_anomaly.load(tmp_path / "named")
    np.testing.assert_array_equal(loaded.feature_names_in_, ["a", "b", "c", "d"])
    np.testing.assert_array_equal(loaded.score_samples(frame), fitted_frame.score_samples(frame))
    with pytest.raises(ValueError, match="Feature names"):
        loaded.score_samples(frame.rename(columns={"d": "other"}))


def test_save_replaces_an_old_model_and_leaves_no_temporary_files(
    fitted, fitted_frame, test_X, tmp_path
):
    target = tmp_path / "model"
    fitted_frame.save(target)  # another model: its manifest names columns a, b, c, d
    fitted.save(target)
    # The second model replaced the first. (Not compared byte for byte: the .keras file
    # records the time it was saved to the second.)
    np.testing.assert_array_equal(
        vae_anomaly.load(target).score_samples(test_X), fitted.score_samples(test_X)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_save_refuses_to_overwrite_a_directory_that_is_not_a_model(fitted, tmp_path):
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "results.csv").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"results\.csv, which vae-anomaly did not write"):
        fitted.save(precious)
    assert (precious / "results.csv").read_text() == "keep me"


def test_save_refuses_an_empty_folder_of_the_users_and_a_fit_jobs_model_directory(
    fitted, saved, tmp_path
):
    # Only the files of a saved detector may be replaced: not a folder tree of the
    # user's with no file in it, and not another kind of sealed directory (a fit job's).
    tree = tmp_path / "tree"
    (tree / "keep" / "me").mkdir(parents=True)
    with pytest.raises(FileExistsError, match=r"holds the folder .*keep"):
        fitted.save(tree)
    assert (tree / "keep" / "me").is_dir()
    job_dir = copy_of(saved, tmp_path)
    (job_dir / "schema.json").write_text("{}")
    seal_directory(job_dir)  # sealed, as `vae-anomaly fit` seals its directory
    with pytest.raises(FileExistsError, match=r"schema\.json, which is not a file of this kind"):
        fitted.save(job_dir)
    assert (job_dir / "schema.json").read_text() == "{}"


def test_a_save_killed_midway_is_cleaned_up_or_undone_by_the_next_save(
    fitted, saved, test_X, tmp_path
):
    # A killed save leaves its staging folder (.NAME.tmp-vaeXXXXXXXX); where the system
    # cannot swap two directories in one step, a kill between its two renames leaves the
    # old model renamed aside (.NAME.old-vaeXXXXXXXX) and no model at NAME. A user's
    # folders of like names, without the tag, are not ours.
    target = tmp_path / "model"
    staging = tmp_path / ".model.tmp-vaek1ll3d00"
    staging.mkdir()
    (staging / MODEL_FILE).write_bytes(b"half")
    retired = tmp_path / ".model.old-vae0123abcd"
    (tmp_path / ".model.tmp-20261129").mkdir()  # a user's dated folder
    retired.mkdir()
    for name in (MANIFEST_FILE, MODEL_FILE, INTEGRITY_FILE):
        (retired / name).write_bytes((saved / name).read_bytes())
    with pytest.raises(FileNotFoundError, match=r"left the previous model at .*\.model\.old-vae0"):
        vae_anomaly.load(target)
    fitted.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.tmp-20261129", "model"]
    np.testing.assert_array_equal(
        vae_anomaly.load(target).score_samples(test_X), fitted.score_samples(test_X)
    )


SAVER = """
import pickle, sys
detector = pickle.loads(open(sys.argv[1], "rb").read())
for _ in range(4):
    detector.save(sys.argv[2])
"""


@pytest.mark.slow  # fits end to end; the default suite's 5-minute budget
def test_saves_of_one_path_take_turns_and_wait_for_a_fit_writing_it(fitted, test_X, tmp_path):
    # Two processes saving to one path, at once: each save waits for the other's lock,
    # and none removes the other's staging folder as a killed save's. A fit job holds
    # the same lock on its model directory, so a save waits for it too.
    import subprocess
    import sys

    (tmp_path / "fitted.pickle").write_bytes(pickle.dumps(fitted))
    savers = [
        subprocess.Popen(
            [sys.executable, "-c", SAVER, str(tmp_path / "fitted.pickle"), str(tmp_path / "m")],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    errors = [saver.communicate(timeout=300)[1] for saver in savers]
    assert [saver.returncode for saver in savers] == [0, 0], errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fitted.pickle", "m"]
    np.testing.assert_array_equal(
        vae_anomaly.load(tmp_path / "m").score_samples(test_X), fitted.score_samples(test_X)
    )


def test_missing_model_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        vae_anomaly.load(tmp_path / "nowhere")


def copy_of(saved, tmp_path):
    target = tmp_path / "copy"
    target.mkdir()
    for name in (MANIFEST_FILE, MODEL_FILE, INTEGRITY_FILE):
        (target / name).write_bytes((saved / name).read_bytes())
    return target


def test_missing_file_inside_the_model_is_named(saved, tmp_path):
    target = copy_of(saved, tmp_path)
    (target / MODEL_FILE).unlink()
    with pytest.raises(ModelFileError, match=f"{MODEL_FILE} is missing"):
        vae_anomaly.load(target)


def test_a_listed_file_replaced_by_a_link_to_the_same_bytes_is_refused(saved, tmp_path):
    # Identical bytes, but they live outside the checked directory, where they could
    # change between the check and Keras reading the file.
    target = copy_of(saved, tmp_path)
    outside = tmp_path / "elsewhere.keras"
    (target / MODEL_FILE).rename(outside)
    (target / MODEL_FILE).symlink_to(outside)
    with pytest.raises(ModelFileError, match=r"model\.keras is a symbolic link"):
        vae_anomaly.load(target)


def test_truncated_model_file_is_named(saved, tmp_path):
    target = copy_of(saved, tmp_path)
    data = (target / MODEL_FILE).read_bytes()
    (target / MODEL_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=f"{MODEL_FILE}.*truncated or changed"):
        vae_anomaly.load(target)


def test_tampered_manifest_is_reported(saved, tmp_path):
    target = copy_of(saved, tmp_path)
    (target / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ModelFileError, match=f"{MANIFEST_FILE} does not match the SHA-256"):
        vae_anomaly.load(target)
    seal_directory(target)  # rewritten together with its checksums: parsed, and refused
    with pytest.raises(ModelFileError, match=f"{MANIFEST_FILE} is not valid JSON"):
        vae_anomaly.load(target)

    manifest = json.loads((saved / MANIFEST_FILE).read_text())
    manifest["fitted"]["center_"] = [0.0]  # wrong length
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    seal_directory(target)
    with pytest.raises(ModelFileError, match="does not match"):
        vae_anomaly.load(target)


@pytest.mark.parametrize(
    ("section", "entry", "value", "message"),
    [
        ("params", "likelihood", "bernoulli", r"'params.likelihood' \('bernoulli'\) does not"),
        ("params", "missing", "mask", r"'params.missing' \('mask'\) does not match"),
        ("params", "image_shape", [2, 2, 1], r"'params.image_shape' \(\(2, 2, 1\)\) does"),
        ("fitted", "calibrated_", "no", r"'fitted.calibrated_' must be a JSON boolean"),
        ("fitted", "offset_", True, r"'fitted.offset_' must be a JSON number"),
        ("fitted", "latent_dim_", 2.7, r"'fitted.latent_dim_' must be a JSON integer"),
        ("fitted", "calibration_scores_", [1.0], r"holds 1 scores, which cannot certify"),
        ("fitted", "typical_feature_log_likelihood_", [0.0], r"one per output of the model"),
        ("fitted", "typical_feature_log_likelihood_", [True] * 4, r"list of numbers, but holds"),
        ("fitted", "center_", ["0", 1, 2, 3], r"'fitted.center_' must be a JSON list of"),
        ("fitted", "scale_", 1.0, r"'fitted.scale_' must be a JSON list of numbers"),
    ],
)
def test_manifest_values_rewritten_with_their_checksums_are_checked_for_sense(
    saved, tmp_path, section, entry, value, message
):
    # Each value loaded before, as another model's form (a Gaussian model scored as a
    # Bernoulli one: no scaling, no log-Jacobian) or as a truthy or truncated number.
    target = copy_of(saved, tmp_path)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    if entry == "calibration_scores_":  # a calibrated model certified by one score
        manifest["fitted"].update(calibrated_=True, fpr_=0.01)
    manifest[section][entry] = value
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    seal_directory(target)
    with pytest.raises(ModelFileError, match=message):
        vae_anomaly.load(target)


def test_an_integrity_entry_of_another_shape_and_another_keras_model_are_named(saved, tmp_path):
    import keras

    from vae_anomaly.integrity import read_listing

    target = copy_of(saved, tmp_path)
    listing = json.loads((target / INTEGRITY_FILE).read_text())
    listing["files"][MODEL_FILE] = "0" * 64  # the digest is recomputed, as anyone can
    (target / INTEGRITY_FILE).write_text(json.dumps(listing))
    seal_listing_digest(target)
    with pytest.raises(ModelFileError, match=r"the entry of 'model.keras' is not"):
        read_listing(target)
    (tmp_path / "2").mkdir()
    target = copy_of(saved, tmp_path / "2")
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    other.save(target / MODEL_FILE)  # a valid Keras model, but not a VAE
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest["files"][MODEL_FILE] = {
        "sha256": file_sha256(target / MODEL_FILE),
        "bytes": (target / MODEL_FILE).stat().st_size,
    }
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    seal_directory(target)
    with pytest.raises(ModelFileError, match=r"model\.keras holds a Keras Sequential, not"):
        vae_anomaly.load(target)


def seal_listing_digest(directory) -> None:
    """Recompute integrity.json's digest over its (edited) file list."""
    import hashlib

    path = directory / INTEGRITY_FILE
    document = json.loads(path.read_text())
    listing = json.dumps({"files": document["files"]}, sort_keys=True, separators=(",", ":"))
    document["digest"] = hashlib.sha256(listing.encode()).hexdigest()
    path.write_text(json.dumps(document))


def test_a_model_saved_before_the_typical_terms_ranks_columns_by_their_terms(
    saved, tmp_path, test_X, fitted
):
    target = copy_of(saved, tmp_path)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    del manifest["fitted"]["typical_feature_log_likelihood_"]
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    seal_directory(target)
    loaded = vae_anomaly.load(target)
    assert not hasattr(loaded, "typical_feature_log_likelihood_")
    terms = loaded.score_terms(test_X)
    np.testing.assert_array_equal(
        terms.relative_feature_log_likelihood, terms.scaled_feature_log_likelihood
    )
    np.testing.assert_array_equal(terms.elbo, fitted.score_terms(test_X).elbo)


def test_version_mismatch_warns(saved, tmp_path, test_X, fitted):
    target = copy_of(saved, tmp_path)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest["package_version"] = "0.0.1"
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    seal_directory(target)
    with pytest.warns(VersionMismatchWarning, match="saved by vae-anomaly 0.0.1"):
        loaded = vae_anomaly.load(target)
    np.testing.assert_array_equal(loaded.score_samples(test_X), fitted.score_samples(test_X))


def test_saving_an_unfitted_detector_is_an_error(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        VAEAnomalyDetector().save(tmp_path / "x")


def binary_rows(n_columns: int) -> np.ndarray:
    return (np.random.default_rng(0).random((60, n_columns)) < 0.3).astype(float)


def mixed_rows() -> np.ndarray:
    """Two numeric columns, a 3-level one-hot category and a flag (the layout of MIXED)."""
    rng = np.random.default_rng(0)
    levels = np.eye(3)[rng.integers(0, 3, 60)]
    return np.column_stack([rng.normal(size=(60, 2)), levels, rng.random(60) < 0.3])


MIXED = (("gaussian", 2), ("categorical", 3), ("bernoulli", 1))
HEADS = {
    "gaussian": ({"likelihood_scale": "sample", "hidden_units": ()}, binary_rows(5)),
    "bernoulli": ({"hidden_units": (8,), "kl_warmup_epochs": 1}, binary_rows(5)),
    "continuous_bernoulli": ({"hidden_units": (8,)}, binary_rows(5)),
    "discretized_logistic": ({"hidden_units": (8,)}, binary_rows(5)),
    "mixed": ({"likelihood": MIXED, "hidden_units": (8,)}, mixed_rows()),
}


def test_the_round_trip_below_covers_every_likelihood_head():
    assert set(HEADS) == set(LIKELIHOODS)


@pytest.mark.parametrize("family", sorted(HEADS))
def test_every_likelihood_head_round_trips(family, tmp_path):
    options, X = HEADS[family]
    params = {"likelihood": family, **options}
    detector = VAEAnomalyDetector(epochs=2, random_state=0, **params)
    with eagerly():  # two steps: saving is tested; both models score compiled below
        detector.fit(X)
    assert detector.model_.likelihood_head.family == family
    detector.save(tmp_path / "m")
    loaded = vae_anomaly.load(tmp_path / "m")
    assert loaded.model_.likelihood_head.family == family
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
    np.testing.assert_array_equal(loaded.score_features(X), detector.score_features(X))
