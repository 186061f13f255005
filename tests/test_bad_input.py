"""Bad input and bad parameters: errors that name what is wrong and where."""

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from vae_anomaly import TrainingDivergedError, VAEAnomalyDetector
from vae_anomaly.images.jobs import read_image_transform
from vae_anomaly.integrity import seal_directory
from vae_anomaly.tabular.saved import read_schema_document


def test_nan_is_located_by_row_and_column(fitted, test_X):
    X = test_X.copy()
    X[7, 2] = np.nan
    X[9, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN at row 7, column 2; 2 non-finite value\(s\)"):
        fitted.score_samples(X)
    with pytest.raises(ValueError, match="NaN at row 7"):
        VAEAnomalyDetector(epochs=1).fit(X)


def test_infinity_in_a_dataframe_names_the_column(train_X):
    frame = pd.DataFrame(train_X, columns=["speed", "load", "temp", "flow"])
    frame.loc[3, "temp"] = np.inf
    with pytest.raises(ValueError, match=r"infinity at row 3, column 'temp' \(index 2\)"):
        VAEAnomalyDetector(epochs=1).fit(frame)


def test_string_column_names_column_row_and_value(train_X):
    frame = pd.DataFrame(train_X, columns=["speed", "load", "temp", "flow"])
    frame["load"] = frame["load"].astype(object)
    frame.loc[5, "load"] = "n/a"
    with pytest.raises(ValueError, match=r"column 'load' \(index 1\) at row 5.*'n/a'"):
        VAEAnomalyDetector(epochs=1).fit(frame)


def test_string_in_an_array_is_located(fitted, test_X):
    X = test_X.astype(object)
    X[4, 3] = "12,5"
    with pytest.raises(ValueError, match=r"could not convert.*row 4, column 3: '12,5'"):
        fitted.score_samples(X)


def test_empty_and_one_dimensional_input(fitted):
    with pytest.raises(ValueError, match="0 sample"):
        fitted.score_samples(np.empty((0, 4)))
    with pytest.raises(ValueError, match="Expected 2D array"):
        fitted.score_samples(np.zeros(4))


def test_wrong_number_of_columns(fitted):
    with pytest.raises(ValueError, match="X has 3 features, but VAEAnomalyDetector is expecting 4"):
        fitted.score_samples(np.zeros((2, 3)))


def test_dataframe_with_other_columns_than_at_fit(fitted_frame, train_X):
    frame = pd.DataFrame(train_X, columns=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- e"):
        fitted_frame.score_samples(frame.rename(columns={"d": "e"}))


def test_bernoulli_needs_the_unit_interval():
    X = np.zeros((20, 3))
    X[11, 1] = 2.0
    with pytest.raises(ValueError, match=r"needs values in \[0, 1\].*2.0 at row 11, column 1"):
        VAEAnomalyDetector(likelihood="bernoulli", epochs=1).fit(X)
    with pytest.raises(ValueError, match="would move X out of"):
        VAEAnomalyDetector(likelihood="bernoulli", scaling="standard").fit(np.zeros((5, 2)))


def test_scoring_before_fit():
    with pytest.raises(NotFittedError):
        VAEAnomalyDetector().score_samples(np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        (
            {"latent_dim": 0},
            ValueError,
            r"'latent_dim' parameter .* must be an int in the range \[1, inf\) or None. Got 0",
        ),
        ({"latent_dim": 2.5}, TypeError, r"'latent_dim' parameter .* Got 2.5 instead"),
        ({"hidden_units": (8, -1)}, ValueError, "each of hidden_units must be >= 1"),
        ({"hidden_units": "64"}, TypeError, r"'hidden_units' parameter .* an instance of 'tuple'"),
        ({"likelihood": "poisson"}, ValueError, "likelihood must be one of"),
        ({"contamination": 0.7}, ValueError, r"'contamination' parameter .* range \(0.0, 0.5\]"),
        ({"contamination": "high"}, TypeError, r"'contamination' .* Got 'high' instead"),
        ({"score_method": "median"}, ValueError, r"'score_method' parameter .* a str among"),
        ({"validation_fraction": 1.0}, ValueError, r"'validation_fraction' .* \[0.0, 1.0\)"),
        ({"learning_rate": -1.0}, ValueError, r"'learning_rate' parameter .* \(0.0, inf\)"),
        ({"n_score_samples": 0}, ValueError, r"'n_score_samples' parameter .* \[1, inf\)"),
    ],
)
def test_bad_parameters_are_named(params, error, message):
    with pytest.raises(error, match=message):
        VAEAnomalyDetector(**params).fit(np.zeros((10, 2)))


def test_diverging_training_stops_with_an_error(train_X):
    detector = VAEAnomalyDetector(
        epochs=5, learning_rate=1e12, scaling=None, validation_fraction=0.0, random_state=0
    )
    with pytest.raises(TrainingDivergedError, match=r"Training diverged.*learning_rate"):
        detector.fit(train_X * 1e30)
    assert not hasattr(detector, "model_")


@pytest.mark.parametrize(
    "reader, name, job",
    [
        (read_image_transform, "images.json", "fit-images"),
        (read_schema_document, "schema.json", "fit"),
    ],
)
def test_a_model_directory_without_or_with_a_damaged_job_document_is_named(
    tmp_path, reader, name, job
):
    with pytest.raises(FileNotFoundError, match=rf"{name} is missing.*`vae-anomaly {job}`"):
        reader(tmp_path)
    (tmp_path / name).write_text('{"transform": ')
    with pytest.raises(ValueError, match=r"integrity.json is missing"):
        reader(tmp_path)  # not sealed: nothing in it is read
    seal_directory(tmp_path)  # sealed as it is: the document is read, and named
    with pytest.raises(ValueError, match=rf"{name} is damaged"):
        reader(tmp_path)
