"""Alert records and files: exactly the flagged rows, with valid fields; exit statuses."""

import csv
import json
import pickle
import re
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from conftest import COLUMNS, correlated_gaussian

from vae_anomaly import exit_status
from vae_anomaly.alerts import (
    FIELDS,
    alert_records,
    flagged_records,
    json_line,
    smallest_first,
    top_feature_shares,
    write_alerts,
)
from vae_anomaly.cli import main
from vae_anomaly.exit_status import ExitStatus


@pytest.fixture(scope="module")
def batch(fitted_frame):
    """A detector fitted on named columns and calibrated, and a batch with 5 anomalies."""
    detector = pickle.loads(pickle.dumps(fitted_frame))  # a private copy: calibrate mutates
    detector.calibrate(pd.DataFrame(correlated_gaussian(500, 31), columns=COLUMNS), 0.01)
    X = correlated_gaussian(100, seed=32)
    X[[3, 20, 41, 77, 98], 2] += 900.0  # column 2 has std ~ 100
    frame = pd.DataFrame(X, columns=COLUMNS)
    ids = np.array([f"row-{i}" for i in range(100)])
    return detector, frame, ids


def test_records_list_exactly_the_flagged_rows_with_valid_fields(batch):
    detector, frame, ids = batch
    records = alert_records(detector, frame, row_ids=ids)
    flagged = np.flatnonzero(detector.predict(frame) == -1)
    assert {3, 20, 41, 77, 98} <= set(flagged)
    assert [r["row_id"] for r in records] == list(ids[flagged])
    expected_p = detector.p_values(frame.iloc[flagged])
    np.testing.assert_array_equal([r["p_value"] for r in records], expected_p)
    for record in records:
        assert tuple(record) == FIELDS
        assert record["anomaly_score"] > record["threshold"] == -detector.offset_
        assert 0 < record["p_value"] <= 1
        shares = [f["share"] for f in record["top_features"]]
        assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-12
        assert datetime.fromisoformat(record["scored_at"]).tzinfo is not None
    planted = [r for r in records if r["row_id"] in {"row-3", "row-20", "row-41"}]
    assert all(r["top_features"][0]["feature"] == "c" for r in planted)


def test_row_ids_default_to_the_dataframe_index(batch):
    detector, frame, _ = batch
    indexed = frame.set_index(pd.Index(range(500, 600)))
    records = alert_records(detector, indexed)
    flagged = np.flatnonzero(detector.predict(frame) == -1)
    assert [r["row_id"] for r in records] == (500 + flagged).tolist()
    assert {503, 520, 541, 577, 598} <= set(500 + flagged)


def test_uncalibrated_records_have_no_p_value(fitted):
    X = correlated_gaussian(50, seed=33)
    X[0, 2] += 900.0
    records = alert_records(fitted, X)
    assert records[0]["row_id"] == 0 and records[0]["p_value"] is None
    assert records[0]["top_features"][0]["feature"] == "x2"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_alert_files_round_trip_and_leave_no_temporary_file(batch, tmp_path, suffix):
    detector, frame, ids = batch
    records = alert_records(detector, frame, row_ids=ids)
    path = write_alerts(records, tmp_path / f"alerts{suffix}")
    if suffix == ".jsonl":
        read = [json.loads(line) for line in path.read_text().splitlines()]
        assert read == records
    else:
        with open(path, newline="") as handle:
            read = list(csv.DictReader(handle))
        assert [r["row_id"] for r in read] == [r["row_id"] for r in records]
        assert read[0]["top_features"].startswith(records[0]["top_features"][0]["feature"] + ":")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_alert_file_suffix_is_checked(tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.jsonl or \.json \(JSON Lines\) or \.csv"):
        write_alerts([], tmp_path / "alerts.txt")


def test_exit_statuses_are_distinct_and_documented():
    assert [s.value for s in ExitStatus] == [0, 1, 2, 3]
    for status in ExitStatus:  # the module's docstring, the one place they are documented
        assert re.search(rf"^{status.value}\s+{status.name}\s+\w", exit_status.__doc__, re.M)


@pytest.mark.slow  # fits end to end; the default suite's 5-minute budget
def test_rank_with_alerts_writes_them_and_exits_with_the_alert_status(tmp_path, capsys):
    X = correlated_gaussian(400, seed=34)
    X[[5, 6], 1] += 200.0
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame.insert(0, "id", range(1000, 1400))
    frame.to_csv(tmp_path / "in.csv", index=False)
    status = main(
        [
            "rank",
            "--input",
            str(tmp_path / "in.csv"),
            "--id-column",
            "id",
            "--epochs",
            "20",
            "--alerts",
            str(tmp_path / "alerts.jsonl"),
        ]
    )
    assert status == ExitStatus.ALERTS
    ids = [
        json.loads(line)["row_id"] for line in (tmp_path / "alerts.jsonl").read_text().splitlines()
    ]
    assert {1005, 1006} <= set(ids)
    assert "alert records written" in capsys.readouterr().out


@pytest.mark.parametrize("d", [2, 8, 14, 40, 784])
@pytest.mark.parametrize("top", [0, 1, 3, 5])
def test_smallest_first_is_the_stable_sort_with_ties_and_non_finite_values(d, top):
    rng = np.random.default_rng(d * 10 + top)
    values = np.round(rng.normal(size=(300, d)), 1)  # many equal values within a row
    values[::5, : d // 2] = 0.0  # rows of ties
    assert np.array_equal(
        smallest_first(values, top), np.argsort(values, axis=1, kind="stable")[:, :top]
    )
    assert np.array_equal(  # float32, as the image job's maps are
        smallest_first(values.astype(np.float32), top),
        np.argsort(values.astype(np.float32), axis=1, kind="stable")[:, :top],
    )
    values[3, -1], values[4, 0], values[5, 0] = np.nan, -np.inf, np.inf
    for dtype in (np.float64, np.float32):
        with_non_finite = values.astype(dtype)
        assert np.array_equal(
            smallest_first(with_non_finite, top),
            np.argsort(with_non_finite, axis=1, kind="stable")[:, :top],
        )


def test_smallest_first_sorts_integers_beyond_float64s_precision():
    values = np.zeros((2, 12), dtype=np.int64)
    values[:, 0], values[:, 1] = 2**53 + 1, 2**53  # equal once made float64
    values[:, 2:] = 2**60
    assert smallest_first(values, 2).tolist() == [[1, 0], [1, 0]]


def _top_features_row_by_row(f: np.ndarray, names, top: int) -> list[dict]:
    """The formula one row at a time, as alerts.py computed it before commit b6709de."""
    excess = np.maximum(0.0, -f)
    total = excess.sum()
    order = np.argsort(-excess, kind="stable")[:top]
    return [
        {"feature": str(names[j]), "share": float(excess[j] / total) if total > 0 else 0.0}
        for j in order
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_top_feature_shares_follow_the_formula_row_by_row(dtype):
    """share_j = max(0, -f_j) / sum_k max(0, -f_k), largest first, ties in column order,
    0 for a row with no excess (or a NaN); the same floats, in f's dtype, as the formula
    computed row by row, whatever the memory order of f."""
    rng = np.random.default_rng(7)
    contributions = np.round(rng.normal(size=(200, 14)), 1).astype(dtype)
    contributions[::6] = np.abs(contributions[::6])  # no excess at all
    contributions[5, 2] = np.nan
    columns, shares = top_feature_shares(contributions, 3)
    assert shares.dtype == dtype
    column_major = top_feature_shares(np.asfortranarray(contributions), 3)
    assert np.array_equal(column_major[0], columns)
    assert np.array_equal(column_major[1], shares, equal_nan=True)
    names = [f"c{j}" for j in range(14)]
    for row, f in enumerate(contributions):
        expected = _top_features_row_by_row(f, names, 3)
        assert [names[j] for j in columns[row]] == [e["feature"] for e in expected]
        if row != 5:  # NaN excess: the share's value is not compared, only its column
            assert shares[row].tolist() == [e["share"] for e in expected]


@pytest.mark.parametrize("top", [0, 3, 20])
def test_flagged_records_are_the_row_by_row_records(top):
    """The records, and their JSON text, as the formula row by row gives them: row ids
    as Python values, scores and p-values as floats, p_value None without calibration."""
    rng = np.random.default_rng(3)
    contributions = rng.normal(size=(40, 14)).astype(np.float32)  # as the image job's maps
    scores, p_values = rng.normal(size=40), rng.uniform(size=40)
    names = np.array([f"c{j}" for j in range(14)])
    when = datetime(2026, 11, 29)
    for row_ids in (np.arange(40), np.array([f"r{i}" for i in range(40)], dtype=object)):
        for p in (p_values, None):
            records = flagged_records(row_ids, scores, 1.5, p, contributions, names, top, when)
            expected = [
                {
                    "row_id": row_id.item() if hasattr(row_id, "item") else row_id,
                    "anomaly_score": float(scores[i]),
                    "threshold": 1.5,
                    "p_value": None if p is None else float(p[i]),
                    "top_features": _top_features_row_by_row(contributions[i], names, top),
                    "scored_at": when.isoformat(),
                }
                for i, row_id in enumerate(row_ids)
            ]
            assert records == expected
            assert [type(r["row_id"]) for r in records] == [type(e["row_id"]) for e in expected]
            assert "".join(map(json_line, records)) == "".join(
                json.dumps(e, allow_nan=False) + "\n" for e in expected
            )
    assert flagged_records([], scores[:0], 1.5, None, contributions[:0], names) == []


def test_json_line_is_json_dumps_without_nan():
    record = {"row_id": 'a\u00e9"b', "anomaly_score": 0.1 + 0.2, "p_value": None}
    assert json_line(record) == json.dumps(record, allow_nan=False) + "\n"
    with pytest.raises(ValueError):
        json_line({"anomaly_score": float("nan")})


def test_the_columns_named_do_not_depend_on_the_columns_units(fitted, test_X):
    # The same model, with column 0 recorded in units 1000 times smaller (its values and
    # its scaling times 1000): the flags and p-values cannot change, nor may the columns
    # an alert names. In the units of X, column 0's terms drop by log 1000 = 6.9 nats,
    # which named it first on every row (helper-32's runtime in hours).
    rescaled = pickle.loads(pickle.dumps(fitted))
    rescaled.center_ = rescaled.center_ * np.array([1000.0, 1, 1, 1])
    rescaled.scale_ = rescaled.scale_ * np.array([1000.0, 1, 1, 1])
    X = test_X.copy()
    # Column 2 alone off its relation to the others, by 2.7 of its robust standard deviations
    # (at 0.5, 60.0, the shared model's terms move by 0.1 nats, within their spread).
    X[:5, 2] += 300.0
    original = alert_records(_flag_all(fitted), X, top_features=1)
    in_small_units = alert_records(_flag_all(rescaled), X * [1000.0, 1, 1, 1], top_features=1)
    named = [r["top_features"][0]["feature"] for r in original]
    assert [r["top_features"][0]["feature"] for r in in_small_units] == named
    assert named[:5] == ["x2"] * 5
    in_x_units = rescaled.score_features(X[5:] * [1000.0, 1, 1, 1])
    assert (np.argmin(in_x_units, axis=1) == 0).all()  # what the old ranking named


def _flag_all(detector):
    copy = pickle.loads(pickle.dumps(detector))
    copy.offset_ = np.inf  # every row flagged
    return copy
