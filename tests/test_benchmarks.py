"""The benchmark scripts run end to end on a tiny input (the figures are not tested)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # each script runs end to end in a subprocess: 10-40 s each

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name: str, *args) -> subprocess.CompletedProcess:
    """Run benchmarks/NAME with ARGS; fail with the end of its stderr if it fails."""
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def tiny_adbench_folder(path: Path) -> Path:
    """An ADBench-format folder holding 1_tiny.npz: 120 normal rows, 12 far anomalies."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(120, 3)), rng.normal(6.0, 1.0, size=(12, 3))])
    y = np.r_[np.zeros(120, dtype=int), np.ones(12, dtype=int)]
    path.mkdir()
    np.savez(path / "1_tiny.npz", X=X, y=y)
    return path


def test_quality_benchmark_runs_on_a_tiny_adbench_folder(tmp_path):
    tiny_adbench_folder(tmp_path / "data")
    result = run_script(
        "quality.py",
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "out"),
        "--seeds",
        "0",
        "--detectors",
        "vae",
        "iforest",
    )
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert set(runs["detector"]) == {"vae-elbo", "vae-iwae", "iforest"}
    assert runs["auroc"].between(0.9, 1.0).all()  # 6-sigma outliers are easy
    assert "| 1_tiny" in (tmp_path / "out" / "table.md").read_text()
    assert "[1/2] 1_tiny seed 0" in result.stderr  # progress is shown


def test_speed_benchmark_runs_in_quick_mode(tmp_path):
    run_script("speed.py", "--quick", "--no-pyod", "--out", str(tmp_path))
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert list(runs["phase"]) == ["train", "score"]
    assert (runs["peak_rss_mb"] > 0).all() and np.isfinite(runs["rows_per_s"]).all()
    assert "GFLOP/s" in (tmp_path / "table.md").read_text()


def test_mnist_benchmark_runs_on_tiny_generated_digits(tmp_path):
    rng = np.random.default_rng(0)
    images = {
        "x_train": (rng.random((60, 4, 4)) * 255).astype(np.uint8),
        "y_train": np.tile([0, 1], 30),
        "x_test": (rng.random((40, 4, 4)) * 255).astype(np.uint8),
        "y_test": np.tile([0, 1], 20),
    }
    np.savez(tmp_path / "mnist.npz", **images)
    run_script(
        "mnist.py",
        "--data",
        str(tmp_path / "mnist.npz"),
        "--out",
        str(tmp_path / "out"),
        "--digits",
        "0",
        "1",
        "--detectors",
        "vae-bernoulli",
        "vae-conv",
        "iforest",
        "--seeds",
        "0",
        "1",
        "--workers",
        "2",
    )
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert len(runs) == 2 * 2 * 3 and runs["auroc"].between(0, 1).all()
    assert sorted(runs["seed"].unique()) == [0, 1]
    table = (tmp_path / "out" / "table.md").read_text()
    assert "averaged over seeds 0, 1" in table and "| mean" in table
    assert "Mean AUROC over the digits, per seed" in table and "| sd" in table


def test_stream_benchmark_runs_on_tiny_files(tmp_path):
    run_script("stream.py", "--quick", "--out", tmp_path / "out")
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert set(runs["kind"]) == {"ours", "score_samples (in memory)", "pandas.read_csv"}
    assert (runs["peak_rss_mb"] > 0).all() and (tmp_path / "out" / "table.md").is_file()
    ours = runs[runs["kind"] == "ours"]
    peer = runs[runs["kind"] == "score_samples (in memory)"]
    ratio = ours["rows_per_s"].to_numpy() / peer["rows_per_s"].to_numpy()
    assert np.allclose(ours["vs_score_samples"], ratio)  # the job's rate over the model's
    assert (runs["cpu_us_per_row"] > 0).all()
    cpu = peer["cpu_us_per_row"].to_numpy() / ours["cpu_us_per_row"].to_numpy()
    assert np.allclose(ours["cpu_vs_score_samples"], cpu)  # the model's CPU per row over ours


def test_image_stream_benchmark_runs_on_small_folders(tmp_path):
    run_script("image_stream.py", "--quick", "--out", tmp_path / "out")
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    ours = runs[runs["kind"] == "ours"]
    assert list(ours["images"]) == [100, 300]  # every file read, the bad ones included
    loading = runs[runs["kind"] == "ours, loading only"]
    assert list(loading["images_rejected"]) == list(ours["images_rejected"])
    assert (ours["images_scored"] + ours["images_rejected"] == ours["images"]).all()


def test_variants_benchmark_runs_on_tiny_data(tmp_path):
    tiny_adbench_folder(tmp_path / "data")
    rng = np.random.default_rng(1)
    digits = rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    labels = np.arange(40) % 2
    np.savez(tmp_path / "mnist.npz", x_train=digits, y_train=labels, x_test=digits, y_test=labels)
    run_script(
        "variants.py", "--data", tmp_path / "data", "--mnist", tmp_path / "mnist.npz",
        "--digits", "1", "--epochs", "1", "--out", tmp_path / "out",
    )  # fmt: skip
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert set(runs["dataset"]) == {"1_tiny", "mnist digit 1"}
    assert runs.groupby("dataset")["member"].nunique().min() >= 5
    assert np.isfinite(runs[["auroc", "held_out_loglik", "fit_seconds"]]).all().all()
    assert "Held-out log-likelihood" in (tmp_path / "out" / "table.md").read_text()
    # --combine joins runs made piece by piece into one table, measuring nothing.
    runs.assign(dataset="2_other").to_csv(tmp_path / "other.csv", index=False)
    run_script(
        "variants.py", "--combine", tmp_path / "out" / "runs.csv", tmp_path / "other.csv",
        "--out", tmp_path / "joined",
    )  # fmt: skip
    joined = pd.read_csv(tmp_path / "joined" / "runs.csv")
    assert len(joined) == 2 * len(runs)
    assert "2_other" in (tmp_path / "joined" / "table.md").read_text()


def test_fit_memory_benchmark_runs_on_a_small_file(tmp_path):
    run_script(
        "fit_memory.py", "--rows", 2000, "--epochs", 1, "--modes", "stream", "memory",
        "--out", tmp_path,
    )  # fmt: skip
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert runs["mode"].tolist() == ["stream", "memory"]
    assert (runs["rows_used"] == 2000).all() and (runs["peak_rss_mb"] > 0).all()


def test_fit_stream_quality_benchmark_runs_on_a_tiny_adbench_folder(tmp_path):
    tiny_adbench_folder(tmp_path / "data")
    run_script(
        "fit_stream_quality.py", "--quick", "--data", tmp_path / "data", "--datasets", "1_tiny",
        "--out", tmp_path / "out",
    )  # fmt: skip
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert set(runs["mode"]) == {"memory", "stream", "stream, sample 1000"}
    assert set(runs["dataset"]) == {"sample_data machines", "1_tiny"}


def test_quality_benchmark_fits_on_normal_rows_only_with_knn(tmp_path):
    tiny_adbench_folder(tmp_path / "data")
    run_script(
        "quality.py", "--data", tmp_path / "data", "--out", tmp_path / "out", "--seeds", "0",
        "--detectors", "knn", "iforest", "--setting", "normal-only",
    )  # fmt: skip
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert set(runs["detector"]) == {"knn", "iforest"}
    assert (runs["setting"] == "normal-only").all()
    assert (runs["n_train"] == 84).all()  # the 84 normal rows of the 70% training part
    assert runs["auroc"].between(0.9, 1.0).all()


def test_structure_benchmark_runs_in_quick_mode(tmp_path):
    run_script(
        "structure.py", "--quick", "--generators", "ring", "category",
        "--detectors", "vae", "knn", "--out", tmp_path / "out",
    )  # fmt: skip
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert len(runs) == 2 * 2 * 2  # generators x (clean, contaminated) x detectors
    assert set(runs["training"]) == {"clean", "contaminated"}
    assert runs["auroc"].between(0, 1).all() and (runs["top_hits"] <= 10).all()
    assert "| category (contaminated)" in (tmp_path / "out" / "table.md").read_text()


def test_xla_scoring_benchmark_runs_both_kinds_and_they_agree(tmp_path):
    run_script("xla_scoring.py", "--quick", "--out", tmp_path / "out")
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert list(runs["kind"]) == ["graph", "xla"]
    assert (runs["rows_per_s"] > 0).all() and (runs["fit_seconds"] > 0).all()
    graph, xla = runs["first_score"]
    assert graph != xla and np.isclose(graph, xla, rtol=1e-5)  # XLA really ran, same model


def test_score_blocks_benchmark_times_blocks_against_the_whole_array(tmp_path):
    run_script("score_blocks.py", "--rows", 30_000, "--rounds", 1, "--out", tmp_path / "out")
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert list(runs["kind"]) == ["blocks", "whole array"]
    blocks, whole = runs["block_rows"]
    assert blocks < whole == 30_000 and (runs["rows_per_s"] > 0).all()
    assert "numpy_peak_mb" in (tmp_path / "out" / "table.md").read_text()


def test_sample_oracle_scores_the_bundled_sample_with_the_generators_density(tmp_path):
    run_script("sample_oracle.py", "--out", tmp_path / "out")
    result = json.loads((tmp_path / "out" / "oracle.json").read_text())
    assert result["planted"] == 20 and result["normal"] == 975  # the rows the job scores
    assert result["flagged_by_kind"]["unknown_machine_type"] == [4, 4]  # density 0
    assert 0 < result["normal_flagged"] < 0.03 * result["normal"]  # the 1% threshold


def test_sample_job_benchmark_runs_the_readme_job_once_per_seed(tmp_path):
    run_script(
        "sample_job.py", "--seeds", "3", "5", "--model-params", '{"epochs": 2}',
        "--out", tmp_path / "out",
    )  # fmt: skip
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert list(runs["seed"]) == [3, 5]
    assert (runs["planted"] == 20).all() and (runs["normal"] == 975).all()  # rows scored
    kinds = [c for c in runs.columns if c.startswith("found_")]
    assert len(kinds) == 5  # the five planted kinds, and not the normal rows
    assert (runs[kinds].sum(axis=1) == runs["planted_found"]).all()
    assert runs["threshold"].nunique() == 2  # a different model per seed
    assert "| mean" in (tmp_path / "out" / "table.md").read_text()


def test_sample_job_benchmark_runs_the_pipeline_it_is_given(tmp_path):
    pipelines = Path(__file__).resolve().parents[1] / "pipelines"
    screened = {}
    for name in ("tabular.toml", "tabular_clean.toml"):
        run_script(
            "sample_job.py", "--seeds", "3", "--config", pipelines / name,
            "--model-params", '{"epochs": 2}', "--out", tmp_path / name,
        )  # fmt: skip
        table = (tmp_path / name / "table.md").read_text()
        assert table.startswith(f"README sample job over seeds, {name},")
        runs = pd.read_csv(tmp_path / name / "runs.csv")
        assert runs["planted"].tolist() == [20]
        screened[name] = runs["screened_out"].iloc[0]
    # Only the pipelines' [model] differs: tabular.toml screens the training rows (a count,
    # zero after two epochs), tabular_clean.toml does not (no count).
    assert screened["tabular.toml"] >= 0 and pd.isna(screened["tabular_clean.toml"])
