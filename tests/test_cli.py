"""The command line and the bundled sample data."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import eagerly
from PIL import Image

from vae_anomaly.cli import main
from vae_anomaly.exit_status import ExitStatus
from vae_anomaly.sample_data import ANOMALY_KINDS, make_sensor_readings, write_sample_data

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


def test_bundled_sample_data_is_what_the_generator_writes(tmp_path):
    for path in write_sample_data(tmp_path):
        assert path.read_bytes() == (SAMPLE_DATA / path.name).read_bytes(), path.name


def test_sample_data_plants_every_kind_of_anomaly():
    readings, labels = make_sensor_readings(n_normal=100, n_per_kind=2)
    assert len(readings) == 110 and labels["is_anomaly"].sum() == 10
    assert set(labels["kind"]) == {"normal", *ANOMALY_KINDS}
    assert (readings["reading_id"] == labels["reading_id"]).all()


@pytest.mark.slow  # end to end: rank trains with its default budget, then ranks
def test_rank_prints_the_most_anomalous_rows(tmp_path, capsys):
    readings, labels = make_sensor_readings(n_normal=1000, n_per_kind=2, seed=1)
    readings.to_csv(tmp_path / "r.csv", index=False)
    labels.to_csv(tmp_path / "l.csv", index=False)
    status = main(
        [
            "rank",
            "--input",
            str(tmp_path / "r.csv"),
            "--id-column",
            "reading_id",
            "--labels",
            str(tmp_path / "l.csv"),
            "--top",
            "5",
        ]
    )
    out = capsys.readouterr().out
    assert status == ExitStatus.ALERTS  # rows were flagged, without --alerts too
    assert "The 5 most anomalous rows:" in out and "top_column" in out
    table = out.split("The 5 most anomalous rows:\n")[1].splitlines()[1:6]
    top_ids = [int(line.split()[0]) for line in table]
    planted = set(labels.loc[labels["is_anomaly"] == 1, "reading_id"])
    assert sum(i in planted for i in top_ids) >= 4
    assert "planted anomalies" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n1,2\n3,x\n", "line 3, column 'b': 'x' is not a number"),
        ("a,b\n1,2\n3,\n", "line 3, column 'b': value is missing"),
        ("a,b\n", "no data rows"),
        # Line numbers count blank lines (they were skipped and the numbers shifted), and
        # an infinite value and an empty file are named with the file too.
        ("a,b\n1,2\n\n  \n3,x\n", "line 5, column 'b': 'x' is not a number"),
        ("\na,b\n1,2\n3,inf\n", "line 4, column 'b': 'inf' is infinite"),
        ("", "cannot be read as CSV"),
    ],
)
def test_rank_reports_bad_csv_by_file_line_and_column(tmp_path, capsys, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["rank", "--input", str(path)]) == ExitStatus.FAILED
    err = capsys.readouterr().err
    assert str(path) in err and message in err


def test_rank_reports_a_missing_file_and_a_wrong_id_column(tmp_path, capsys):
    assert main(["rank", "--input", str(tmp_path / "none.csv")]) == ExitStatus.FAILED
    assert "no such file" in capsys.readouterr().err
    pd.DataFrame({"a": [1.0, 2.0]}).to_csv(tmp_path / "ok.csv", index=False)
    assert main(["rank", "--input", str(tmp_path / "ok.csv"), "--id-column", "id"]) == 1
    assert "--id-column 'id' is not a column" in capsys.readouterr().err


@pytest.mark.slow  # fits end to end; the default suite's 5-minute budget
def test_rank_exits_with_the_alert_status_when_rows_are_flagged_without_alerts(tmp_path, capsys):
    # contamination=0.01 of 40 rows: the least likely row is flagged. Exit 3, as `score`
    # does, though no --alerts file was asked for (the README's exit statuses).
    status = main(["rank", "--input", str(_small_table(tmp_path)), "--epochs", "2"])
    out = capsys.readouterr().out
    assert re.search(r"; [1-9]\d* rows flagged", out)
    assert status == ExitStatus.ALERTS
    # The column the table names is the one the alert names first, both ranked in the
    # model's scaled units. (The table ranked the terms in the units of X, where column
    # b, recorded 1000 times smaller, costs log 1000 more on every row.)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": 1000.0 * rng.normal(size=60)})
    frame.loc[0, "a"] = 3.5  # 3.5 standard deviations on a alone
    frame.to_csv(tmp_path / "units.csv", index=False)
    argv = ["rank", "--input", str(tmp_path / "units.csv"), "--epochs", "5", "--top", "3"]
    assert main([*argv, "--alerts", str(tmp_path / "a.jsonl")]) == ExitStatus.ALERTS
    table = capsys.readouterr().out.split("most anomalous rows:\n")[1].splitlines()[1:4]
    alert = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])
    assert table[0].split()[0] == str(alert["row_id"]) == "0"
    assert table[0].split()[-1] == alert["top_features"][0]["feature"] == "a"
    # The next two rows lie 3.4 and 2.6 robust standard deviations out on a, 1.0 on b.
    assert [line.split()[-1] for line in table] == ["a", "a", "a"]


def test_rank_refuses_its_paths_and_labels_before_any_work(tmp_path, capsys):
    table = tmp_path / "t.csv"
    pd.DataFrame({"id": [1, 2, 3], "a": [1.0, 2.0, 3.0]}).to_csv(table, index=False)
    before = table.read_bytes()
    assert main(["rank", "--input", str(table), "--alerts", str(table)]) == ExitStatus.USAGE
    assert "--input and --alerts name the same path" in capsys.readouterr().err
    assert table.read_bytes() == before  # the input was not overwritten
    labels = tmp_path / "l.csv"
    labels.write_text("id,is_anomaly\n1,0\n")
    argv = ["rank", "--input", str(table), "--labels", str(labels)]
    assert main(argv) == ExitStatus.FAILED  # no --id-column: rows cannot be matched
    assert "--labels needs --id-column" in capsys.readouterr().err
    labels.write_text("id,planted\n1,0\n")
    assert main([*argv, "--id-column", "id"]) == ExitStatus.FAILED
    assert "needs the columns 'id' and 'is_anomaly'" in capsys.readouterr().err


def _small_table(directory: Path) -> Path:
    """40 rows of 2 numeric columns."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40, 2)), columns=["a", "b"])
    frame.to_csv(directory / "small.csv", index=False)
    return directory / "small.csv"


def _small_images(directory: Path) -> Path:
    """A folder of 30 grey 16x16 PNGs of noise."""
    rng = np.random.default_rng(0)
    (directory / "images").mkdir()
    for i in range(30):
        pixels = (rng.random((16, 16)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(directory / "images" / f"{i:02d}.png")
    return directory / "images"


# The CalibrationWarning itself is tested on the detector (test_hardening_model.py);
# here, what the fit commands print about it.
@pytest.mark.filterwarnings("ignore::vae_anomaly.errors.CalibrationWarning")
@pytest.mark.parametrize(
    ("command", "write", "n_lines"), [("fit", _small_table, 4), ("fit-images", _small_images, 2)]
)
def test_fit_prints_why_its_threshold_is_not_calibrated(tmp_path, capsys, command, write, n_lines):
    """40 rows (30 images) hold out too few to certify the default fpr of 0.01: the
    threshold is a training quantile, and the fit says so with the reason instead of a
    false-alarm rate."""
    model_dir = tmp_path / "model"
    arguments = ["--input", str(write(tmp_path)), "--model-dir", str(model_dir)]
    with eagerly():  # one epoch: what the fit prints is tested
        assert main([command, *arguments, "--epochs", "1"]) == ExitStatus.OK
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == n_lines and printed[-1].startswith(f"{command}: threshold ")
    assert (
        "(anomaly score) at the 0.99 quantile of the training scores, not calibrated: "
        "calibration_fraction=" in printed[-1]
    )
    assert "needs at least 99 held-out rows" in printed[-1]
    assert "false-alarm rate" not in printed[-1]
    assert printed[-1].endswith(f"(calibrated_ is False); model saved to {model_dir}.")
