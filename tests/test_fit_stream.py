"""The streamed fit (issue 17): every line accounted for, calibration rows held out by
position, the in-memory path's schema and scaling on a file it samples whole, a working
model directory, and memory that does not grow with the file."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import correlated_gaussian, eagerly

from vae_anomaly import VAEAnomalyDetector, load, screening
from vae_anomaly.integrity import verify_directory
from vae_anomaly.machine_records import make_machine_records
from vae_anomaly.streaming import position_keys, position_uniform
from vae_anomaly.tabular.config import JobConfig, load_config
from vae_anomaly.tabular.fit_job import fit_job
from vae_anomaly.tabular.fit_stream import (
    FIT_CHUNK_ROWS,
    plans_of,
    read_profile,
    streamed_schema,
)
from vae_anomaly.tabular.reader import plan_chunks, read_header
from vae_anomaly.tabular.score_job import score_job
from vae_anomaly.validation import fit_scaling

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "sample_data" / "machines_train.csv"


def sample_config(**overrides) -> JobConfig:
    return load_config(ROOT / "pipelines" / "tabular.toml").with_overrides(**overrides)


@pytest.fixture(scope="module")
def streamed_model(tmp_path_factory):
    """The sample training file fitted through the streamed path (few epochs)."""
    target = tmp_path_factory.mktemp("streamed") / "machines"
    # One fit: the streamed path is tested here, its screening in the tests below.
    model = {"epochs": 3, "screen_outliers": False}
    config = sample_config(in_memory_mb=0, chunk_rows=700, model=model)
    report = fit_job([TRAIN], target, config)
    return target, report


def test_inputs_above_in_memory_mb_stream_and_smaller_ones_do_not(streamed_model, machines_model):
    _, report = streamed_model
    assert report["streamed"] is True  # in_memory_mb=0
    _, in_memory = machines_model  # the same file, with pipelines/tabular.toml's 16 MB
    assert in_memory["streamed"] is False


def test_a_streamed_model_directory_is_sealed_and_scores(streamed_model, tmp_path):
    model_dir, report = streamed_model
    verify_directory(model_dir)
    assert report["rows_read"] == 3000 == report["rows_used"]
    assert report["threshold"]["calibrated"]
    scored, _ = score_job(
        model_dir,
        [ROOT / "sample_data" / "machines_new.csv"],
        tmp_path / "o.csv",
        tmp_path / "r.csv",
        tmp_path / "r.json",
        progress=False,
    )
    assert scored["rows_read"] == 1000 and scored["rows_scored"] == 995
    scores = pd.read_csv(tmp_path / "o.csv")["anomaly_score"]
    assert np.isfinite(scores).all()


def test_on_a_file_sampled_whole_schema_and_scaling_are_the_in_memory_ones(
    streamed_model, machines_model
):
    model_dir, _ = streamed_model
    memory_dir, report = machines_model  # the same file and pipelines/tabular.toml, in memory
    assert report["streamed"] is False
    in_memory = json.loads((memory_dir / "schema.json").read_text())
    streamed = json.loads((model_dir / "schema.json").read_text())
    assert streamed["columns"] == in_memory["columns"]  # roles, levels in order, reasons
    a, b = load(memory_dir / "detector"), load(model_dir / "detector")
    np.testing.assert_array_equal(a.center_, b.center_)
    np.testing.assert_array_equal(a.scale_, b.scale_)


def test_a_streamed_fit_reads_chunks_of_at_most_fit_chunk_rows(tmp_path):
    """The score job's default chunks (50,000 lines) are longer than the fit's memory was
    measured at; the fit reads chunks of ``chunk_rows`` only when that is shorter."""
    path = tmp_path / "long.csv"
    lines = FIT_CHUNK_ROWS + 5
    path.write_text("a,b\n" + "1,2\n" * lines)
    config = sample_config()
    assert config.chunk_rows > FIT_CHUNK_ROWS  # the score job's default
    [(_, plans)] = plans_of([path], config)
    assert [plan.n_lines for plan in plans] == [FIT_CHUNK_ROWS, 5]
    [(_, plans)] = plans_of([path], config.with_overrides(chunk_rows=7_000))
    assert [plan.n_lines for plan in plans] == [7_000, 7_000, 6_005]


def test_a_sample_of_the_file_gives_its_levels_exactly_and_its_scaling_closely():
    config = sample_config(chunk_rows=400)
    header, _ = read_header(TRAIN)
    files = [(TRAIN, plan_chunks(TRAIN, config.chunk_rows))]
    whole = read_profile(files, header, config, sample_rows=10_000)
    part = read_profile(files, header, config, sample_rows=600)
    assert part.filled == 600 and part.seen == 3000 == whole.filled
    full_schema, part_schema = streamed_schema(whole, config), streamed_schema(part, config)
    assert part_schema.to_dict() == full_schema.to_dict()  # levels are counted, not sampled

    def scaling(profile):
        cells, keys = profile.sample()
        X = full_schema.encode(cells, len(keys)).X
        return fit_scaling(X[:, :5], "robust")  # the five numeric columns

    (c_all, s_all), (c_part, s_part) = scaling(whole), scaling(part)
    assert np.all(np.abs(c_part - c_all) < 0.1 * s_all)  # 600 rows: se of a median ~0.05 sd
    assert np.all(np.abs(s_part / s_all - 1) < 0.15)
    _, keys = part.sample()
    assert np.all(np.diff(keys.astype(np.int64)) > 0)  # the sample in file order


def bad_training_file(path: Path, n: int = 900) -> dict[int, str]:
    """Machine records with bad lines; returns line -> reason kind."""
    train, _, _ = make_machine_records(n_train=n, n_new=10, n_per_kind=0, seed=4)
    lines = train.splitlines()

    def variant(line: int, field: int, value: str) -> str:
        fields = lines[line - 1].split(",")
        return ",".join([*fields[:field], value, *fields[field + 1 :]])

    broken = {
        11: (lines[10] + ",surplus", "wrong field count"),
        200: ("", "blank line"),
        421: (variant(421, 5, "lots"), "not a number"),
        777: (variant(777, 3, '"north'), "cannot split"),
        778: (variant(778, 6, "1e999"), "infinite value"),
    }
    for line, (text, _) in broken.items():
        lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return {line: kind for line, (_, kind) in broken.items()}


def test_every_line_is_trained_on_held_out_or_rejected(tmp_path):
    expected = bad_training_file(tmp_path / "t.csv")
    config = sample_config(in_memory_mb=0, chunk_rows=128, model={"epochs": 1})
    with eagerly():  # one epoch: the accounting of the lines is tested
        report = fit_job([tmp_path / "t.csv"], tmp_path / "m", config)
    shares = report["rows_train"] + report["rows_validation"] + report["rows_calibration"]
    assert report["rows_read"] == 900 == shares + report["rows_rejected"]
    assert report["rows_used"] == shares and report["rows_rejected"] == len(expected)
    rejects = pd.read_csv(tmp_path / "m" / "fit_rejects.csv", keep_default_na=False)
    assert rejects["line"].tolist() == sorted(expected)  # in line order, across chunks
    kinds = rejects["reason"].str.split(r":| \(").str[0].tolist()
    assert dict(zip(rejects["line"], kinds, strict=True)) == expected


@pytest.mark.slow  # fits end to end; the default suite's 5-minute budget
def test_the_in_memory_and_the_streamed_fit_write_the_same_rejects_in_line_order(tmp_path):
    """Two files, with reader rejects (a field count, a blank line, a broken quote) after
    encoder rejects (not a number): both fits list them by file, then line."""
    bad_training_file(tmp_path / "a.csv")
    bad_training_file(tmp_path / "b.csv")
    written = {}
    for in_memory_mb in (16, 0):
        config = sample_config(in_memory_mb=in_memory_mb, model={"epochs": 1})
        with eagerly():
            fit_job([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "m", config)
        written[in_memory_mb] = (tmp_path / "m" / "fit_rejects.csv").read_bytes()
    assert written[16] == written[0]
    rejects = pd.read_csv(tmp_path / "m" / "fit_rejects.csv", keep_default_na=False)
    assert [Path(f).name for f in rejects["file"]] == ["a.csv"] * 5 + ["b.csv"] * 5
    assert rejects["line"].tolist() == [11, 200, 421, 777, 778] * 2


def stream_fit(X, keys) -> VAEAnomalyDetector:
    """A detector fitted by _fit_stream on the rows X in chunks of 500, every third row the
    sample."""
    chunks = ((X[i : i + 500], keys[i : i + 500]) for i in range(0, len(X), 500))
    detector = VAEAnomalyDetector(
        epochs=2, calibration_fraction=0.2, n_score_samples=4, random_state=0
    )
    detector._fit_stream(X[::3], keys[::3], chunks, n_rows=len(X))
    return detector


@pytest.fixture(scope="module")
def stream_fitted():
    """A detector fitted by stream_fit on 3000 rows, and its rows; tests only score it."""
    X = correlated_gaussian(3000, seed=3)
    keys = position_keys(0, np.arange(2, 3002))
    return stream_fit(X, keys), X, keys


def test_calibration_rows_are_held_out_by_position(stream_fitted):
    detector, X, keys = stream_fitted
    # The split seed is the third of the four seeds fit and _fit_stream draw.
    split_seed = int(np.random.RandomState(0).randint(0, 2**31 - 1, size=4)[2])
    held_out = position_uniform(keys, split_seed) < 0.2
    assert detector._stream_counts["calibration"] == held_out.sum()
    assert 540 < held_out.sum() < 660  # 20% of 3000, binomially
    expected = np.sort(-detector.score_samples(X[held_out]))
    np.testing.assert_allclose(detector.calibration_scores_, expected, rtol=1e-6)
    counts = detector._stream_counts
    shares = ("train", "validation", "calibration", "screened_out")  # screened by default
    assert sum(counts[share] for share in shares) == 3000


def test_position_shares_are_uniform_and_do_not_alias_with_periods():
    keys = position_keys(0, np.arange(2, 200_002))
    r = position_uniform(keys, seed=7)
    assert abs((r < 0.2).mean() - 0.2) < 0.005
    for period in (2, 24, 60, 1000):  # every hour of a day, every minute of an hour
        shares = np.array([(r[phase::period] < 0.2).mean() for phase in range(min(period, 24))])
        tolerance = 4 * np.sqrt(0.2 * 0.8 / (len(r) // period))  # four standard errors
        assert np.all(np.abs(shares - 0.2) < tolerance), (period, shares)
    assert np.array_equal(r, position_uniform(keys, seed=7))
    assert not np.array_equal(r, position_uniform(keys, seed=8))
    assert not np.array_equal(r, position_uniform(position_keys(1, np.arange(2, 200_002)), 7))


def test_the_scaling_is_learned_on_the_sample(stream_fitted):
    detector, X, _ = stream_fitted
    center, scale = fit_scaling(X[::3], "robust")
    np.testing.assert_array_equal(detector.center_, center)
    np.testing.assert_array_equal(detector.scale_, scale)


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from vae_anomaly.tabular import fit_stream
    from vae_anomaly.tabular.config import load_config
    from vae_anomaly.tabular.fit_job import fit_job
    sys.path.insert(0, {bench!r})
    from isolated import peak_rss_mb

    fit_stream.SAMPLE_ROWS = 5_000
    config = load_config({config!r}).with_overrides(
        in_memory_mb=0, chunk_rows=5_000, model={{"epochs": 1}}
    )
    report = fit_job([sys.argv[1]], Path(sys.argv[2]), config)
    print(json.dumps({{"peak": peak_rss_mb(), "rows": report["rows_read"]}}))
    """
)


@pytest.mark.slow  # two fits in fresh processes on 60,000 and 240,000 rows
def test_streamed_fit_memory_does_not_grow_with_the_rows(tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(
        MEMORY_SCRIPT.format(
            root=str(ROOT),
            bench=str(ROOT / "benchmarks"),
            config=str(ROOT / "pipelines" / "tabular.toml"),
        )
    )
    peaks = {}
    for rows in (60_000, 240_000):
        train, _, _ = make_machine_records(n_train=rows, n_new=10, n_per_kind=0, seed=2)
        (tmp_path / f"{rows}.csv").write_text(train)
        completed = subprocess.run(
            [sys.executable, str(script), str(tmp_path / f"{rows}.csv"), str(tmp_path / str(rows))],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        assert result["rows"] == rows
        peaks[rows] = result["peak"]
    # Four times the rows (17 MB more text, which in memory costs about 300 MB): the
    # streamed fit's peak moves by the noise of TensorFlow's allocations only.
    assert peaks[240_000] - peaks[60_000] < 60, peaks


def test_a_streamed_fit_is_reproducible_with_an_int_random_state(stream_fitted):
    first, X, keys = stream_fitted  # random_state=0
    again = stream_fit(X, keys)
    assert again.history_["loss"] == first.history_["loss"]
    np.testing.assert_array_equal(again.calibration_scores_, first.calibration_scores_)
    np.testing.assert_array_equal(again.score_samples(X[:50]), first.score_samples(X[:50]))


@pytest.mark.parametrize(  # the streamed one slow
    "in_memory_mb",
    [16, pytest.param(0, marks=pytest.mark.slow)],
    ids=["in-memory", "streamed"],
)
def test_a_screening_fit_job_accounts_for_the_rows_it_screened_out(
    tmp_path, in_memory_mb, monkeypatch
):
    # A closer fence than Tukey's, so that a one-epoch screening fit leaves rows out.
    monkeypatch.setattr(screening, "FENCE_FACTOR", 0.25)
    config = sample_config(
        in_memory_mb=in_memory_mb, chunk_rows=700, model={"epochs": 1, "screen_outliers": True}
    )
    with eagerly():  # one epoch: the accounting is tested
        report = fit_job([TRAIN], tmp_path / "m", config)
    assert report["streamed"] is (in_memory_mb == 0)
    assert report["rows_used"] == 3000 and 0 < report["rows_screened_out"] < 0.25 * 3000
    if report["streamed"]:  # every row trained on, held out, or screened out
        shares = ("train", "validation", "calibration", "screened_out")
        assert sum(report[f"rows_{share}"] for share in shares) == 3000
    saved = load(tmp_path / "m" / "detector")
    assert saved.n_screened_out_ == report["rows_screened_out"]


SCRATCH_HOLDER = textwrap.dedent(
    """
    import os, signal, sys
    from vae_anomaly.streaming import scratch_folder
    with scratch_folder() as folder:
        (folder / "train-000000.raw").write_bytes(b"rows")
        print(folder, flush=True)
        if sys.argv[1] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)  # a fit killed mid-way
        sys.stdin.readline()  # a fit still running, until told to end
    """
)


def test_a_killed_fits_scratch_folder_is_removed_by_the_next_fit_and_a_running_ones_kept(
    tmp_path, monkeypatch
):
    import tempfile

    from vae_anomaly.streaming import scratch_folder

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    killed = subprocess.run(
        [sys.executable, "-c", SCRATCH_HOLDER, "kill"], env=env, capture_output=True, text=True
    )
    abandoned = Path(killed.stdout.strip())
    assert killed.returncode < 0 and (abandoned / "train-000000.raw").exists()
    running = subprocess.Popen(
        [sys.executable, "-c", SCRATCH_HOLDER, "wait"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        live = Path(running.stdout.readline().strip())
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        with scratch_folder() as mine:
            assert not abandoned.exists()  # the killed fit's rows are gone
            assert (live / "train-000000.raw").exists()  # the running fit's are kept
            assert mine.parent == tmp_path
        assert not mine.exists()
    finally:
        running.communicate("\n", timeout=60)
    assert running.returncode == 0 and not live.exists()
