"""A CLI with manners: fast help and usage errors, only the project's lines on stderr.

The command-line checks run in subprocesses: this test process has imported TensorFlow
already (conftest), and what a user sees is a fresh process's stderr.
"""

import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vae_anomaly
from vae_anomaly import VAEAnomalyDetector, load
from vae_anomaly.exit_status import ExitStatus

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("rank", "fit", "score", "fit-images", "score-images", "make-sample-data")
# What TensorFlow writes on a CPU machine: absl's pre-init banner, oneDNN and CPU-feature
# notes, cuInit's "CUDA error", retracing warnings, tf.data's malloc note; C++ log prefixes.
TENSORFLOW_MARKERS = (
    "oneDNN",
    "absl",
    "cuda",
    "CUDA",
    "retracing",
    "Memory patch",
    "I0000",
    "W0000",
    "E0000",
)


def _python(code: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that imports this checkout, TensorFlow's
    log level left as a user would have it (unset)."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or ROOT,
        timeout=600,
    )


def _cli(*argv: str, cwd) -> subprocess.CompletedProcess:
    return _python("import sys; from vae_anomaly.cli import main; sys.exit(main())", *argv, cwd=cwd)


def _tensorflow_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(m in line for m in TENSORFLOW_MARKERS)]


def test_help_usage_errors_and_settings_files_do_not_import_tensorflow():
    code = textwrap.dedent(
        f"""
        import contextlib, io, sys
        from vae_anomaly.cli import main
        from vae_anomaly.images.config import load_image_config
        from vae_anomaly.tabular.config import load_config

        def status(argv):
            with contextlib.redirect_stdout(io.StringIO()), \\
                    contextlib.redirect_stderr(io.StringIO()):
                try:
                    main(argv)
                except SystemExit as exit:
                    return exit.code
            return None

        assert status(["--help"]) == 0
        for command in {COMMANDS!r}:
            assert status([command, "--help"]) == 0, command
        assert status(["fit", "--model-dir", "m"]) == 2  # --input is required
        assert status(["score", "--input", "x.csv"]) == 2
        assert status(["no-such-command"]) == 2
        load_config("pipelines/tabular.toml").with_overrides(model={{"epochs": 3}})
        load_image_config("pipelines/images.toml").with_overrides(model={{"epochs": 3}})
        heavy = {{"tensorflow", "keras", "tensorflow_probability"}}
        loaded = sorted(heavy & {{name.split(".")[0] for name in sys.modules}})
        assert "tensorflow" not in sys.modules, f"imported: {{loaded}}"
        """
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr[-1000:]


def test_settings_files_check_the_detector_parameters_without_importing_it():
    from vae_anomaly.jobs.settings import detector_parameters

    assert detector_parameters() == set(VAEAnomalyDetector().get_params())


def test_a_flag_parameter_may_be_true_where_a_number_may_not():
    from vae_anomaly.parameters import check_model_values

    check_model_values({"verbose": True, "screen_outliers": False}, "job.toml")  # flags
    with pytest.raises(ValueError, match=r"job.toml: \[model\] epochs: must be a number"):
        check_model_values({"epochs": True}, "job.toml")


def test_the_package_names_its_lazy_exports():
    assert vae_anomaly.VAEAnomalyDetector is VAEAnomalyDetector and vae_anomaly.load is load
    assert all(hasattr(vae_anomaly, name) for name in vae_anomaly.__all__)
    assert set(vae_anomaly.__all__) <= set(dir(vae_anomaly))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        vae_anomaly.nothing  # noqa: B018


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A tiny CSV and the model `vae-anomaly fit` saved from it, with fit's output."""
    folder = tmp_path_factory.mktemp("manners")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(200)]})
    for name in "abc":
        frame[name] = rng.normal(size=200)
    frame.to_csv(folder / "train.csv", index=False)
    fit = _cli(
        *("fit", "--input", "train.csv", "--model-dir", "model", "--epochs", "2", "--fpr", "0.1"),
        cwd=folder,
    )
    return folder, fit


def _score(folder, *flags: str, verbose: bool = False) -> subprocess.CompletedProcess:
    """`vae-anomaly [--verbose] score ... FLAGS` of the training CSV."""
    for name in ("out.csv", "rejects.csv", "report.json"):
        (folder / name).unlink(missing_ok=True)
    return _cli(
        *(["--verbose"] if verbose else []),
        *("score", "--model-dir", "model", "--input", "train.csv", "--output", "out.csv"),
        *("--rejects", "rejects.csv", "--report", "report.json", *flags),
        cwd=folder,
    )


@pytest.mark.slow
def test_a_job_prints_only_its_own_lines(job):
    folder, fit = job
    assert fit.returncode == ExitStatus.OK, fit.stderr
    assert fit.stdout.startswith("fit: 200 of 200 rows used")
    assert _tensorflow_lines(fit.stderr) == [], fit.stderr
    score = _score(folder)
    assert score.returncode in (ExitStatus.OK, ExitStatus.ALERTS), score.stderr
    assert score.stdout.startswith("score: 200 rows read, 200 scored")
    assert _tensorflow_lines(score.stderr) == [], score.stderr


@pytest.mark.slow
def test_dask_workers_print_no_tensorflow_lines(job):
    pytest.importorskip("distributed")
    folder, _ = job
    score = _score(folder, "--engine", "dask")
    assert score.returncode in (ExitStatus.OK, ExitStatus.ALERTS), score.stderr
    assert _tensorflow_lines(score.stderr) == [], score.stderr


@pytest.mark.slow
def test_verbose_brings_tensorflow_messages_back(job):
    folder, _ = job
    plain_import = _python("import tensorflow as tf; tf.constant(1.0) + 1")
    if not _tensorflow_lines(plain_import.stderr):
        pytest.skip("TensorFlow prints nothing on this machine")
    score = _score(folder, verbose=True)
    assert score.returncode in (ExitStatus.OK, ExitStatus.ALERTS), score.stderr
    assert _tensorflow_lines(score.stderr), score.stderr


@pytest.fixture
def tensorflow_warnings():
    """Messages of TensorFlow's Python logger at WARNING and above, during the test.

    The logger's level is reset for the test: `main` lowers it to ERROR in this process.
    """
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.slow  # fits end to end; the default suite's 5-minute budget
def test_scoring_with_several_models_logs_no_retracing_warning(
    fitted, test_X, tmp_path, tensorflow_warnings
):
    fitted.save(tmp_path / "model")
    for _ in range(6):  # each loaded model traces its own scorer once
        detector = load(tmp_path / "model")
        detector.score_samples(test_X[:20])
        detector.score_samples(test_X[:7])
    assert [m for m in tensorflow_warnings if "retracing" in m] == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["score", "--chunk-rows", "0"], "argument --chunk-rows: must be an integer of 1 or more"),
        (["score", "--chunk-rows", "1.5"], "argument --chunk-rows: must be an integer of 1 or"),
        (["score-images", "--batch-size", "-3"], "argument --batch-size: must be an integer of 1"),
        (["fit", "--epochs", "0"], "argument --epochs: must be an integer of 1 or more"),
        (["fit", "--seed", "-1"], r"argument --seed: must be an integer in \[0, 4294967295\]"),
        (["fit-images", "--fpr", "1"], r"argument --fpr: must be a number between 0 and 1"),
        (["fit", "--fpr", "nan"], r"argument --fpr: must be a number between 0 and 1"),
        (["rank", "--top", "0"], "argument --top: must be an integer of 1 or more"),
    ],
)
def test_a_flag_value_out_of_range_is_a_malformed_command_line(argv, message, capsys):
    from vae_anomaly.cli import main

    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2  # the README's status for a malformed command line
    assert re.search(message, capsys.readouterr().err)
