"""The jobs layer (issue 20): one skeleton under both batch jobs, imports in one direction,
and alerts streamed so that a job's memory does not grow with what it flags."""

import ast
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from vae_anomaly.images.config import ImageJobConfig
from vae_anomaly.images.jobs import fit_images, score_images

PACKAGE = Path(__file__).resolve().parents[1] / "vae_anomaly"
# Layers from the bottom up; a module may import its own layer and those below it.
LAYERS = {
    "math": {
        "_version", "errors", "atomic", "locks", "integrity", "thresholds", "validation", "layout",
        "distributions", "latents", "networks", "objectives", "corruption", "model",
        "scoring", "training", "streaming", "precision",
        "persistence", "manifest", "alerts", "schema", "frames", "sparse_rows", "batching",
    },
    "estimator": {"detector", "parameters", "screening", "report", "__init__"},
    "jobs": {"jobs", "tabular", "images", "sample_data", "machine_records",
             "exit_status"},
    "cli": {"cli", "quiet", "__main__"},
}  # fmt: skip
ORDER = ["math", "estimator", "jobs", "cli"]


def _layer(module: str) -> str:
    top = module.split(".")[0]
    for name, members in LAYERS.items():
        if top in members:
            return name
    raise AssertionError(f"vae_anomaly.{module} is in no layer of this test: add it")


def _imports(path: Path) -> set[str]:
    """The vae_anomaly modules that ``path`` imports (relative or absolute)."""
    relative = path.relative_to(PACKAGE).with_suffix("")
    package = list(relative.parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
                if not target:  # `from . import x` at the top: x is a module
                    found.update(alias.name for alias in node.names)
                    continue
                found.add(target)
            elif node.module and node.module.startswith("vae_anomaly."):
                found.add(node.module.removeprefix("vae_anomaly."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("vae_anomaly."):
                    found.add(alias.name.removeprefix("vae_anomaly."))
    return found


def test_imports_run_one_way_math_estimator_jobs_cli():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        here = ORDER.index(_layer(module))
        for target in _imports(path):
            if ORDER.index(_layer(target)) > here:
                wrong.append(f"{module} ({_layer(module)}) imports {target} ({_layer(target)})")
    assert wrong == []


def test_the_score_job_does_not_import_the_fit_job():
    assert "tabular.fit_job" not in _imports(PACKAGE / "tabular" / "score_job.py")


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    """A tiny 8x8 model fitted on dark noise; bright images are all flagged by it."""
    root = tmp_path_factory.mktemp("flat")
    rng = np.random.default_rng(0)
    np.save(root / "train.npy", rng.integers(0, 40, size=(60, 8, 8), dtype=np.uint8))
    config = ImageJobConfig(
        size=(8, 8),
        color="gray",
        normalize="none",
        model={"random_state": 0, "epochs": 2, "latent_dim": 2, "hidden_units": (8,)},
        fpr=0.2,
        calibration_fraction=0.25,
    )
    fit_images([root / "train.npy"], root / "model", config)
    return root


def _peak_python_bytes(root: Path, n: int) -> tuple[int, dict]:
    """Peak Python-heap bytes (numpy buffers included) of score_images over n images that
    are all flagged, with alerts on; and the report."""
    rng = np.random.default_rng(n)
    source = root / f"bright_{n}.npy"
    np.save(source, rng.integers(200, 256, size=(n, 8, 8), dtype=np.uint8))
    out = root / f"out_{n}"
    score_images(
        root / "model",
        [source],
        out / "o.csv",
        out / "r.csv",
        out / "r.json",
        alerts=out / "a.jsonl",
        progress=False,
    )  # fmt: skip: one run first, so that tracing and caches are not counted
    tracemalloc.start()
    try:
        report, _ = score_images(
            root / "model", [source], out / "o2.csv", out / "r2.csv", out / "r2.json",
            alerts=out / "a2.jsonl", progress=False,
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, report


@pytest.mark.slow
def test_score_images_memory_stays_flat_when_every_image_is_flagged(image_model):
    small, small_report = _peak_python_bytes(image_model, 500)
    large, large_report = _peak_python_bytes(image_model, 4000)
    assert small_report["anomalies"] == 500 and large_report["anomalies"] == 4000
    # 3,500 more alert records held in a list would cost about 5 MB; streamed, none.
    assert large - small < 1_000_000, (small, large)


@pytest.mark.parametrize("command", ["fit", "fit-images"])
def test_a_bad_model_value_is_named_when_the_settings_are_read_before_any_data(
    tmp_path, capsys, command
):
    from vae_anomaly.cli import main

    config = tmp_path / "job.toml"
    config.write_text('[model]\nlearning_rate = "fast"\n')
    status = main(
        [command, "--input", str(tmp_path / "not-there"), "--model-dir", str(tmp_path / "m"),
         "--config", str(config)]
    )  # fmt: skip
    message = capsys.readouterr().err
    assert status == 1
    # The settings are checked first: the missing input is not what is reported.
    assert f"{config}: [model] learning_rate: The 'learning_rate' parameter" in message
    assert "must be a float in the range (0.0, inf). Got 'fast' instead." in message
    assert not (tmp_path / "m").exists()


def test_no_likelihood_family_is_tested_as_a_string_outside_the_registry():
    """Heads declare their options and scaling (``distributions``); no other module
    compares a value with a head's name. ("categorical" is left out: it is also a
    latent and a column role.)"""
    from vae_anomaly.distributions import LIKELIHOODS

    families = set(LIKELIHOODS)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name in ("distributions.py", "layout.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for operand in [node.left, *node.comparators]:
                    if isinstance(operand, ast.Constant) and operand.value in families:
                        found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert found == []


def test_each_head_declares_its_options_and_whether_it_is_scaled():
    from vae_anomaly import VAEAnomalyDetector
    from vae_anomaly.distributions import LIKELIHOODS, is_scaled, scaled_columns

    params = VAEAnomalyDetector(min_scale=0.2, likelihood_scale="sample").get_params()
    assert LIKELIHOODS["gaussian"].options(params, ()) == {"scale_mode": "sample", "min_scale": 0.2}
    assert LIKELIHOODS["discretized_logistic"].options(params, ()) == {"scale_mode": "sample"}
    assert LIKELIHOODS["bernoulli"].options(params, ()) == {}
    layout = (("gaussian", 2), ("categorical", 3), ("bernoulli", 1))
    assert LIKELIHOODS["mixed"].options(params, layout)["blocks"] == [list(b) for b in layout]
    assert [is_scaled(f) for f in LIKELIHOODS] == [LIKELIHOODS[f].scaled for f in LIKELIHOODS]
    assert scaled_columns(layout).tolist() == [True, True, False, False, False, False]
