"""Issue 14, the model's side: values that overflow float32, small training sets, training
that diverges, the scoring memory of the convolutional model, and checks on load."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import eagerly
from sklearn.exceptions import NotFittedError

import vae_anomaly
import vae_anomaly.detector as detector_module
import vae_anomaly.scoring as scoring
from vae_anomaly import VAEAnomalyDetector
from vae_anomaly.errors import CalibrationWarning, ModelFileError, TrainingDivergedError
from vae_anomaly.integrity import seal_directory
from vae_anomaly.jobs.model_dir import threshold_info
from vae_anomaly.model import VAE
from vae_anomaly.schema import Column, TabularSchema
from vae_anomaly.scoring import SCORING_MEMORY_BYTES, scoring_batch_rows, scoring_row_bytes

SMALL = dict(epochs=2, hidden_units=(8,), n_score_samples=4, screen_outliers=False, random_state=0)


@pytest.fixture(scope="module")
def small():
    """A small detector on named columns a, b, c; tests must not mutate it."""
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(200, 3)), columns=["a", "b", "c"])
    with eagerly():  # two epochs: the tests check inputs and scores, scored compiled
        return VAEAnomalyDetector(**SMALL).fit(X), X


# ----------------------------------------------------------------------------- item 9


@pytest.mark.parametrize("value", [1e308, -1e308])
@pytest.mark.parametrize(
    "method", ["score_samples", "decision_function", "predict", "score_features"]
)
def test_a_value_overflowing_float32_after_scaling_is_named_by_row_and_column(small, method, value):
    detector, X = small
    rows = X.iloc[:5].copy()
    rows.iloc[3, 1] = value
    with pytest.raises(ValueError, match=r"row 3, column 'b' \(index 1\).*overflows float32"):
        getattr(detector, method)(rows)


def test_fit_names_a_value_overflowing_float32_after_scaling(small):
    _, X = small
    X = X.copy()
    X.iloc[7, 2] = 1e308
    with pytest.raises(ValueError, match=r"row 7, column 'c' \(index 2\).*overflows float32"):
        VAEAnomalyDetector(**SMALL).fit(X)


def test_a_score_that_overflows_is_named_by_row_and_column(small):
    detector, X = small
    rows = X.iloc[:5].copy()
    rows.iloc[2, 0] = 1e30  # finite in float32 once scaled; its squared residual is not
    with pytest.raises(ValueError, match=r"row 2 scores -?inf.*column 'a' \(index 0\)"):
        detector.score_samples(rows)


def test_fit_names_a_training_row_whose_score_overflows_by_its_row_in_x(small):
    # A row held out for early stopping, so training survives it; fit then scores the
    # fitting rows (their typical per-column terms first) and must name the row of X.
    _, X = small
    X = X.copy()
    split_seed = np.random.RandomState(0).randint(0, detector_module._SEED_HIGH, size=4)[2]
    row = int(np.random.RandomState(split_seed).permutation(len(X))[0])  # validation
    X.iloc[row, 0] = 1e30  # finite in float32 once scaled; its squared residual is not
    detector = VAEAnomalyDetector(**SMALL, calibration_fraction=0.0)
    with eagerly(), pytest.raises(ValueError, match=rf"row {row} scores -?inf.*column 'a'"):
        detector.fit(X)


def test_the_tabular_schema_rejects_values_out_of_range_with_a_reason():
    schema = TabularSchema([Column("x", "numeric"), Column("y", "numeric")])
    cells = {
        "x": np.array(["1.5", "1e308", "2", "-1e308", "3", "0.5"], dtype=object),
        "y": np.array(["1", "2", "3", "4", "5", "6"], dtype=object),
    }
    encoded = schema.encode(cells, 6)
    assert encoded.kept.tolist() == [0, 2, 4, 5]
    assert encoded.rejected == [
        (1, "value out of range: column 'x' = '1e308' overflows float32 after scaling"),
        (3, "value out of range: column 'x' = '-1e308' overflows float32 after scaling"),
    ]
    # With a fitted detector's scaling: a tiny scale makes an ordinary value overflow.
    scaled = schema.encode(cells, 6, scaling=(np.zeros(2), np.array([1.0, 1e-20])))
    assert [row for row, _ in scaled.rejected] == [0, 1, 2, 3, 4, 5]
    assert "column 'y' = '1'" in scaled.rejected[0][1]


# ----------------------------------------------------------------------------- item 11


@pytest.mark.usefixtures("eager_functions")  # two epochs: the threshold is tested
def test_too_few_held_out_rows_fit_uncalibrated_with_a_warning(tmp_path):
    X = np.random.default_rng(1).normal(size=(150, 3))
    detector = VAEAnomalyDetector(**SMALL, calibration_fraction=0.2, fpr=0.01)
    with pytest.warns(
        CalibrationWarning,
        match=r"holds out 30 of 150 rows, but certifying fpr=0\.01 needs at least 99 "
        r"held-out rows.*smallest fpr 30 held-out rows can certify is 0\.0323",
    ):
        detector.fit(X)
    assert detector.calibrated_ is False and "needs at least 99" in detector.calibration_reason_
    assert not hasattr(detector, "calibration_scores_")
    # The (1 - fpr) quantile of the training anomaly scores (every row trained).
    assert detector.offset_ == pytest.approx(np.percentile(detector.score_samples(X), 1))
    info = threshold_info(detector)
    assert info["calibrated"] is False and info["reason"] == detector.calibration_reason_
    with pytest.raises(NotFittedError, match=r"not calibrated yet.*needs at least 99"):
        detector.p_values(X[:3])
    detector.save(tmp_path / "model")
    loaded = vae_anomaly.load(tmp_path / "model")
    assert loaded.calibrated_ is False
    assert loaded.calibration_reason_ == detector.calibration_reason_


@pytest.mark.usefixtures("eager_functions")  # two epochs of 4 rows: the warning is tested
def test_a_share_that_holds_out_no_row_warns_instead_of_skipping_calibration():
    X = np.random.default_rng(2).normal(size=(4, 2))
    with pytest.warns(CalibrationWarning, match="holds out 0 of 4 rows.*no row is held out"):
        detector = VAEAnomalyDetector(**SMALL, calibration_fraction=0.2).fit(X)
    assert threshold_info(detector)["calibrated"] is False


def test_one_row_is_too_few_to_train():
    with pytest.raises(ValueError, match=r"at least 2 rows to train.*n_samples=1"):
        VAEAnomalyDetector(**SMALL).fit(np.ones((1, 3)))


# ----------------------------------------------------------------------------- item 12


def test_divergence_names_the_most_extreme_column_and_prints_nothing(capfd):
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"calm": rng.normal(size=200), "wild": rng.normal(size=200) * 1e30})
    detector = VAEAnomalyDetector(
        epochs=3, hidden_units=(8,), learning_rate=1e12, scaling=None, random_state=0
    )
    capfd.readouterr()
    with pytest.raises(
        TrainingDivergedError, match=r"most extreme scaled values are in column 'wild'"
    ):
        detector.fit(X)
    captured = capfd.readouterr()
    assert "Invalid loss" not in captured.out + captured.err


# ----------------------------------------------------------------------------- item 15


def _decoder_feature_map_elements(model: VAE) -> int:
    """Values of the decoder's feature maps per z, measured by running its layers."""
    decoder = model.decoder
    start = (1, decoder.start_height, decoder.start_width, decoder.filters[-1])
    images, total = np.zeros(start, dtype=np.float32), 0
    for layer in decoder.convolutions:
        images = layer(images)
        total += math.prod(images.shape[1:])
    return total


def test_the_scoring_batch_of_a_convolutional_model_fits_the_working_memory():
    model = VAE(
        784,
        8,
        (512, 256),
        likelihood="continuous_bernoulli",
        image_shape=(28, 28, 1),
        conv_filters=(16, 32),
    )
    for k in (1, 16, 64):
        row_bytes = scoring_row_bytes(model, k)
        rows = scoring_batch_rows(model, k)
        assert rows == max(1, min(1024, SCORING_MEMORY_BYTES // row_bytes))
        # The per-row count includes the feature maps k times, measured from the layers.
        assert row_bytes >= 4 * k * _decoder_feature_map_elements(model)
        assert rows * row_bytes <= SCORING_MEMORY_BYTES
    # 28 x 28 x 16 (the last feature map) x 16 samples: 7 rows fit in 16 MiB, not 334.
    assert scoring_batch_rows(model, 16) < 10


# ----------------------------------------------------------------------------- loading


def _edited_copy(small, tmp_path, edit):
    detector, _ = small
    detector.save(tmp_path / "model")
    manifest_path = tmp_path / "model" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    edit(manifest["fitted"])
    manifest_path.write_text(json.dumps(manifest))
    # Rewritten with its checksums (as a tool or a careless hand could): the checksum
    # list passes, and the values themselves must be refused.
    seal_directory(tmp_path / "model")
    return tmp_path / "model"


@pytest.mark.parametrize(
    "edit, entry",
    [
        (lambda f: f.update(offset_=float("inf")), "offset_"),
        (lambda f: f.update(offset_=float("nan")), "offset_"),
        (lambda f: f["scale_"].__setitem__(1, -2.0), "scale_"),
        (lambda f: f["scale_"].__setitem__(1, 0.0), "scale_"),
        (lambda f: f["center_"].__setitem__(0, float("nan")), "center_"),
        (lambda f: f.update(center_=f["center_"][:2]), "center_"),
        (lambda f: f.update(feature_names_in_=["a", "b"]), "feature_names_in_"),
        (lambda f: f.update(hidden_units_=[99]), "hidden_units_"),
        (lambda f: f.update(conv_filters_=[4]), "conv_filters_"),
        (lambda f: f.update(calibration_scores_=[1.0, float("inf")], fpr_=0.5), "calibration_"),
    ],
)
def test_loading_refuses_unusable_fitted_values_naming_the_entry(small, tmp_path, edit, entry):
    path = _edited_copy(small, tmp_path, edit)
    with pytest.raises(ModelFileError, match=rf"manifest\.json: the entry 'fitted\.{entry}"):
        vae_anomaly.load(path)


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            {"name": "x", "role": "numerik", "levels": []},
            r"Column 'x': role must be one of \['numeric', 'categorical', 'boolean', "
            r"'passthrough', 'ignore'\], got 'numerik'",
        ),
        ({"name": "x", "role": "numeric", "levels": ["a"]}, "Column 'x': role 'numeric' takes"),
        ({"name": "x", "role": "categorical", "levels": []}, "Column 'x': a categorical column"),
        ({"name": "x", "role": "categorical", "levels": ["a", "a"]}, "needs distinct levels"),
        ({"name": "x", "role": "categorical", "levels": [1, 2]}, "levels must be a list of texts"),
        ({"role": "numeric", "levels": []}, "Schema column 1: needs a 'name'"),
    ],
)
def test_schema_from_dict_names_the_column_of_a_bad_entry(entry, message):
    good = {"name": "y", "role": "numeric", "levels": [], "reason": ""}
    with pytest.raises(ValueError, match=message):
        TabularSchema.from_dict({"columns": [good, entry]})


# ------------------------------------------- scoring a large input a block of rows at a time


@pytest.fixture
def many_rows(small, monkeypatch):
    """Blocks of one scoring batch, and 4,000 rows like ``small``'s, which span several of
    them: (detector, rows, rows per block)."""
    detector, X = small
    monkeypatch.setattr(scoring, "SCORING_BLOCK_VALUES", 1)
    block_rows = scoring.scoring_block_rows(detector.model_, detector.n_score_samples, 3)
    rows = pd.DataFrame(np.random.default_rng(1).normal(size=(4000, 3)), columns=X.columns)
    assert 3 * block_rows < len(rows)
    return detector, rows, block_rows


def test_block_rows_are_whole_scoring_batches_of_about_the_block_values(small):
    model = small[0].model_
    batch_rows = scoring_batch_rows(model, 16)
    rows = scoring.scoring_block_rows(model, 16, 10)
    assert rows % batch_rows == 0
    assert rows * 10 <= scoring.SCORING_BLOCK_VALUES < (rows + batch_rows) * 10
    assert scoring.scoring_block_rows(model, 16, 10**9) == batch_rows  # one batch at least


def test_scores_in_blocks_equal_the_scores_in_one_block(many_rows, monkeypatch):
    detector, X, block_rows = many_rows
    calls = []
    score_terms = detector_module.score_terms
    monkeypatch.setattr(
        detector_module,
        "score_terms",
        lambda model, U, *a, **k: calls.append(len(U)) or score_terms(model, U, *a, **k),
    )
    blocked = detector.score_terms(X)
    assert calls == [block_rows] * (len(X) // block_rows) + [len(X) % block_rows]
    monkeypatch.setattr(scoring, "SCORING_BLOCK_VALUES", 10**9)  # one block
    assert scoring.scoring_block_rows(detector.model_, detector.n_score_samples, 3) > len(X)
    whole = detector.score_terms(X)
    assert calls[-1] == len(X)
    for name in ("elbo", "iwae", "elbo_mc", "kl", "feature_log_likelihood"):
        np.testing.assert_array_equal(getattr(blocked, name), getattr(whole, name))


def test_a_value_out_of_range_in_a_later_block_is_named_by_its_row(many_rows):
    detector, X, block_rows = many_rows
    row = block_rows + 3  # in the second block
    X.iloc[row, 1] = 1e308
    with pytest.raises(ValueError, match=rf"row {row}, column 'b' \(index 1\).*overflows float32"):
        detector.score_samples(X)


def test_a_score_overflowing_in_a_later_block_is_named_by_its_row(many_rows):
    detector, X, block_rows = many_rows
    row = 2 * block_rows + 1  # in the third block
    X.iloc[row, 0] = 1e30
    with pytest.raises(ValueError, match=rf"row {row} scores -?inf.*column 'a' \(index 0\)"):
        detector.score_samples(X)
