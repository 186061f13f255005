"""Training under tf.distribute and in mixed precision (issue 17): ``fit`` inside a
strategy's scope trains on its replicas (``n_replicas_``), ``dtype`` sets the bodies'
dtype policy, and either way the fitted model's scores are float64, finite and
deterministic, also after saving."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import vae_anomaly
from vae_anomaly import VAEAnomalyDetector
from vae_anomaly.cli import _image_config, _job_config, parser
from vae_anomaly.errors import ModelFileError
from vae_anomaly.images.config import load_image_config
from vae_anomaly.integrity import seal_directory
from vae_anomaly.persistence import MANIFEST_FILE
from vae_anomaly.tabular.config import load_config

ROOT = Path(__file__).resolve().parents[1]
# One fit (no screening fit first): what is tested is the strategy and the dtypes.
SMALL = dict(epochs=3, hidden_units=(8,), n_score_samples=4, screen_outliers=False, random_state=0)

# Logical devices must be configured before TensorFlow initialises its devices, which the
# test process has long done: the mirrored fit runs in a fresh interpreter.
MIRRORED_FIT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from vae_anomaly import VAEAnomalyDetector, load

    X = np.random.default_rng(0).normal(size=(300, 4)) * [1.0, 10.0, 0.1, 5.0]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        detector = VAEAnomalyDetector(
            epochs=3, batch_size=64, hidden_units=(8,), n_score_samples=4, random_state=0
        ).fit(X)
    # Batches that do not split evenly: 97 training rows in batches of 33 (the last one
    # row), 3 validation rows. Keras builds the model from the first batch averaged
    # across the replicas, and a replica given no rows has nothing to average.
    with strategy.scope():
        uneven = VAEAnomalyDetector(
            epochs=2, batch_size=33, hidden_units=(8,), n_score_samples=4, random_state=0,
            validation_fraction=0.03, calibration_fraction=0.0,
        ).fit(X[:100])
    scores = detector.score_samples(X)
    detector.save(sys.argv[1])
    loaded = load(sys.argv[1])
    print(json.dumps({
        "n_replicas_": detector.n_replicas_,
        "weights_mirrored": type(detector.model_.trainable_weights[0].value).__name__,
        "dtype": str(scores.dtype),
        "finite": bool(np.isfinite(scores).all()),
        "again": bool(np.array_equal(scores, detector.score_samples(X))),
        "by_rows": bool(np.array_equal(scores[:7], detector.score_samples(X[:7]))),
        "loaded": bool(np.array_equal(scores, loaded.score_samples(X))),
        "loaded_n_replicas_": loaded.n_replicas_,
        "loss": detector.history_["loss"],
        "uneven_n_replicas_": uneven.n_replicas_,
        "uneven_loss": uneven.history_["loss"],
    }))
    """
)


def _run(script: str, *args: str, env=None) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_fit_inside_a_mirrored_strategy_trains_on_its_replicas(tmp_path):
    run = _run(MIRRORED_FIT, str(tmp_path / "model"))
    assert run["n_replicas_"] == 2
    assert run["weights_mirrored"] == "MirroredVariable"
    assert np.all(np.isfinite(run["loss"]))
    assert run["dtype"] == "float64"
    assert run["finite"]
    assert run["again"]  # the same scores on a second call
    assert run["by_rows"]  # and whatever the rows scored with them
    assert run["loaded"]  # bit-identical after save and load
    assert run["loaded_n_replicas_"] == 2
    assert run["uneven_n_replicas_"] == 2 and np.all(np.isfinite(run["uneven_loss"]))
    manifest = json.loads((tmp_path / "model" / MANIFEST_FILE).read_text())
    assert manifest["fitted"]["n_replicas_"] == 2


def test_fit_without_a_strategy_has_one_replica(fitted):
    assert fitted.n_replicas_ == 1


def test_a_bad_n_replicas_in_the_manifest_is_refused(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    path = tmp_path / "model" / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["fitted"]["n_replicas_"] = 0
    path.write_text(json.dumps(manifest))
    seal_directory(tmp_path / "model")
    with pytest.raises(ModelFileError, match=r"'fitted.n_replicas_' must be a positive integer"):
        vae_anomaly.load(tmp_path / "model")


def test_a_manifest_without_n_replicas_reads_as_one_replica(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    path = tmp_path / "model" / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    del manifest["fitted"]["n_replicas_"]  # written before issue 17
    path.write_text(json.dumps(manifest))
    seal_directory(tmp_path / "model")
    assert vae_anomaly.load(tmp_path / "model").n_replicas_ == 1


@pytest.fixture(scope="module")
def bfloat16_detector():
    X = np.random.default_rng(0).normal(size=(300, 4)) * [1.0, 10.0, 0.1, 5.0]
    return VAEAnomalyDetector(dtype="mixed_bfloat16", **SMALL).fit(X), X


def test_mixed_bfloat16_bodies_compute_in_bfloat16_and_heads_in_float32(bfloat16_detector):
    detector, _ = bfloat16_detector
    model = detector.model_
    bodies = [
        layer
        for body in (model.encoder, model.decoder)
        for layer in body._flatten_layers()
        if type(layer).__name__ == "Dense"
    ]
    assert bodies
    assert {(layer.compute_dtype, layer.variable_dtype) for layer in bodies} == {
        ("bfloat16", "float32")
    }
    heads = [
        layer
        for head in (model.latent, model.likelihood_head)
        for layer in head._flatten_layers()
        if type(layer).__name__ == "Dense"
    ]
    assert heads
    assert {layer.compute_dtype for layer in heads} == {"float32"}
    loss, reconstruction, kl = model.loss_terms(tf.constant(np.zeros((8, 4), np.float32)))
    assert {loss.dtype, reconstruction.dtype, kl.dtype} == {tf.float32}


def test_mixed_bfloat16_scores_are_float64_finite_and_deterministic(bfloat16_detector, tmp_path):
    detector, X = bfloat16_detector
    scores = detector.score_samples(X)
    assert scores.dtype == np.float64
    assert np.all(np.isfinite(scores))
    np.testing.assert_array_equal(scores, detector.score_samples(X))
    np.testing.assert_array_equal(scores[:5], detector.score_samples(X[:5]))
    detector.save(tmp_path / "model")
    loaded = vae_anomaly.load(tmp_path / "model")
    assert loaded.model_.body_dtype == "mixed_bfloat16"
    np.testing.assert_array_equal(loaded.score_samples(X), scores)


def test_a_model_whose_dtype_disagrees_with_the_manifest_is_refused(bfloat16_detector, tmp_path):
    detector, _ = bfloat16_detector
    detector.save(tmp_path / "model")
    path = tmp_path / "model" / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["params"]["dtype"] = None
    path.write_text(json.dumps(manifest))
    seal_directory(tmp_path / "model")
    with pytest.raises(ModelFileError, match=r"'params.dtype' .* 'mixed_bfloat16'"):
        vae_anomaly.load(tmp_path / "model")


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a GPU is present")
def test_mixed_float16_is_refused_without_a_gpu():
    with pytest.raises(ValueError, match="dtype='mixed_float16' needs a GPU"):
        VAEAnomalyDetector(dtype="mixed_float16", **SMALL).fit(np.zeros((10, 2)))


def test_an_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="'dtype' parameter of VAEAnomalyDetector"):
        VAEAnomalyDetector(dtype="float16", **SMALL).fit(np.zeros((10, 2)))


# ---------------------------------------------------------------- vae-anomaly fit --strategy

TRAIN_CSV = ROOT / "sample_data" / "machines_train.csv"


@pytest.mark.parametrize(
    ("command", "settings_of", "load"),
    [("fit", _job_config, load_config), ("fit-images", _image_config, load_image_config)],
)
def test_fit_commands_take_a_strategy_flag_and_a_settings_key(command, settings_of, load, tmp_path):
    base = [command, "--input", "a", "--model-dir", "m"]
    assert settings_of(parser().parse_args([*base, "--strategy", "multi-worker"])).strategy == (
        "multi-worker"
    )
    assert settings_of(parser().parse_args(base)).strategy == "default"
    with pytest.raises(SystemExit):
        parser().parse_args([*base, "--strategy", "tpu"])
    settings = tmp_path / "job.toml"
    settings.write_text('[training]\nstrategy = "mirrored"\n')
    assert load(settings).strategy == "mirrored"
    settings.write_text('[training]\nstrategy = "gpus"\n')
    with pytest.raises(ValueError, match=r"job.toml: strategy must be one of .*'gpus'"):
        load(settings)


def test_multi_worker_without_tf_config_says_what_it_needs(monkeypatch):
    from vae_anomaly.jobs.strategy import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        make_strategy("multi-worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(ValueError, match=r"TF_CONFIG must name the workers"):
        make_strategy("multi-worker")


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for item in sockets:
        item.bind(("localhost", 0))
    ports = [item.getsockname()[1] for item in sockets]
    for item in sockets:
        item.close()
    return ports


def _fit_cli(
    model_dir, strategy: str, tf_config: dict | None = None, command="fit", data=TRAIN_CSV
) -> subprocess.Popen:
    """``vae-anomaly COMMAND --input DATA`` (``fit`` or ``fit-images``) for one epoch under
    ``--strategy``, in its own process, with TF_CONFIG set to ``tf_config`` when given."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    command = [sys.executable, "-m", "vae_anomaly.cli", command, "--input", str(data)]
    command += ["--model-dir", str(model_dir), "--epochs", "1", "--strategy", strategy]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finished(process: subprocess.Popen, model_dir, document: str = "schema.json") -> dict:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    report = json.loads((Path(model_dir) / document).read_text())["fit_report"]
    manifest = json.loads((Path(model_dir) / "detector" / MANIFEST_FILE).read_text())
    assert manifest["fitted"]["n_replicas_"] == report["n_replicas"]
    return {"stdout": stdout, **report, "offset_": manifest["fitted"]["offset_"]}


@pytest.mark.slow
def test_fit_with_the_mirrored_strategy_uses_one_cpu_replica_without_a_gpu(tmp_path):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present: mirrored uses it")
    run = _finished(_fit_cli(tmp_path / "model", "mirrored"), tmp_path / "model")
    assert (run["strategy"], run["n_replicas"]) == ("mirrored", 1)
    assert "trained with --strategy mirrored on 1 replica(s)" in run["stdout"]


# fit_images under the strategy its settings name: make_strategy returns a mirrored
# strategy over two logical CPUs here, so only a fit inside its scope trains two replicas.
MIRRORED_FIT_IMAGES = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import vae_anomaly.images.jobs as jobs
    from vae_anomaly.images.config import ImageJobConfig

    named = []
    def two_cpus(name):
        named.append(name)
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    jobs.make_strategy = two_cpus
    root = Path(sys.argv[1])  # holds the folder images/ (_grey_pngs)
    # The convolutional body (the job's default is dense; the multi-worker test trains that).
    model = {"epochs": 1, "random_state": 0, "conv_filters": [4]}
    config = ImageJobConfig(strategy="mirrored", model=model)
    report = jobs.fit_images([root / "images"], root / "model", config)
    print(json.dumps({"named": named, "strategy": report["strategy"],
                      "n_replicas": report["n_replicas"], "conv_filters": report["conv_filters"]}))
    """
)


def _grey_pngs(folder: Path) -> Path:
    """``folder`` made and filled with 30 grey 8x8 PNGs of noise."""
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):
        pixels = rng.integers(0, 255, (8, 8), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    return folder


@pytest.mark.slow
def test_fit_images_trains_under_the_strategy_its_settings_name(tmp_path):
    _grey_pngs(tmp_path / "images")
    run = _run(MIRRORED_FIT_IMAGES, str(tmp_path))
    assert run["named"] == ["mirrored"]
    assert (run["strategy"], run["n_replicas"]) == ("mirrored", 2)
    assert run["conv_filters"] == [4]


@pytest.mark.slow
def test_fit_images_takes_strategy_on_the_command_line(tmp_path):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present: mirrored uses it")
    folder = _grey_pngs(tmp_path / "images")
    process = _fit_cli(tmp_path / "model", "mirrored", command="fit-images", data=folder)
    run = _finished(process, tmp_path / "model", "images.json")
    assert (run["strategy"], run["n_replicas"]) == ("mirrored", 1)
    assert "trained with --strategy mirrored on 1 replica(s)" in run["stdout"]


@pytest.mark.slow
def test_fit_with_multi_worker_runs_a_one_worker_cluster_on_localhost(tmp_path):
    (port,) = _free_ports(1)
    tf_config = {
        "cluster": {"worker": [f"localhost:{port}"]},
        "task": {"type": "worker", "index": 0},
    }
    run = _finished(_fit_cli(tmp_path / "model", "multi-worker", tf_config), tmp_path / "model")
    assert (run["strategy"], run["n_replicas"]) == ("multi-worker", 1)


def _two_workers(tmp_path, document: str = "schema.json", **fit) -> list[dict]:
    """A fit command (``_fit_cli``'s ``command`` and ``data``) as two workers of one
    multi-worker cluster on localhost, two processes; each worker's finished run."""
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    workers = [
        _fit_cli(
            tmp_path / f"worker{i}",
            "multi-worker",
            {"cluster": cluster, "task": {"type": "worker", "index": i}},
            **fit,
        )
        for i in range(2)
    ]
    return [
        _finished(worker, tmp_path / f"worker{i}", document) for i, worker in enumerate(workers)
    ]


@pytest.mark.slow
def test_fit_with_multi_worker_trains_two_local_workers_in_sync(tmp_path):
    """Two workers, two processes on this machine: one replica each, one model."""
    runs = _two_workers(tmp_path)
    assert [run["n_replicas"] for run in runs] == [2, 2]
    assert runs[0]["offset_"] == runs[1]["offset_"]  # the same weights on both workers


@pytest.mark.slow
def test_fit_images_with_multi_worker_trains_two_local_workers_in_sync(tmp_path):
    """fit-images as two workers, two processes on this machine: one model."""
    folder = _grey_pngs(tmp_path / "images")
    runs = _two_workers(tmp_path, "images.json", command="fit-images", data=folder)
    assert [(run["strategy"], run["n_replicas"]) for run in runs] == [("multi-worker", 2)] * 2
    assert runs[0]["offset_"] == runs[1]["offset_"]  # the same weights on both workers
