"""Images: the convolutional VAE, pixel likelihoods, heat maps, and the image jobs."""

import csv
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import eagerly
from PIL import Image

from vae_anomaly import VAEAnomalyDetector, load
from vae_anomaly.cli import main
from vae_anomaly.distributions import ContinuousBernoulliHead
from vae_anomaly.exit_status import ExitStatus
from vae_anomaly.images import config as image_config
from vae_anomaly.images import jobs
from vae_anomaly.images.config import load_image_config
from vae_anomaly.images.contrast import ContrastScaler
from vae_anomaly.images.heatmaps import MIN_PANEL_HEIGHT, heatmap_png, pixel_anomaly
from vae_anomaly.images.jobs import fit_images, saved_image_settings, score_images
from vae_anomaly.images.loader import ImageTransform, image_batches, iter_image_inputs
from vae_anomaly.images.samples import DEFECTS, SIZE, make_parts, write_parts

SHAPE = (SIZE, SIZE, 1)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def parts():
    """300 normal washers to fit on, as flattened rows in [0, 1]."""
    images, _ = make_parts(300, seed=1)
    return images.reshape(len(images), -1)


@pytest.fixture(scope="module")
def scaler(parts):
    return ContrastScaler().fit(parts)


def _sample_job_model(parts, **body) -> VAEAnomalyDetector:
    """The sample job's model settings (pipelines/images.toml: grey levels as they are,
    discretised logistic likelihood, no trimming; 150 epochs, the job runs 300) with the
    body ``body`` (``conv_filters``), fitted on ``parts``."""
    return VAEAnomalyDetector(
        image_shape=SHAPE,
        likelihood="discretized_logistic",
        trim_fraction=0.0,
        epochs=150,
        n_iter_no_change=150,
        random_state=0,
        **body,
    ).fit(parts)


@pytest.fixture(scope="module")
def conv_detector(parts):
    """The sample job's settings with the convolutional body (the estimator's default)."""
    return _sample_job_model(parts)


@pytest.fixture(scope="module")
def small_conv(parts):
    """Tiny convolutional detectors, one per pixel likelihood, fitted on first use.

    One training step each, run eagerly (tests of plumbing and of exact identities)."""
    detectors = {}

    def fitted(likelihood: str) -> VAEAnomalyDetector:
        if likelihood not in detectors:
            detector = VAEAnomalyDetector(
                image_shape=SHAPE,
                likelihood=likelihood,
                epochs=1,
                batch_size=64,
                validation_fraction=0.0,
                random_state=0,
            )
            with eagerly():
                detectors[likelihood] = detector.fit(parts[:64])
        return detectors[likelihood]

    return fitted


def _save_png(path, pixels):
    Image.fromarray((255 * np.asarray(pixels) + 0.5).astype(np.uint8)).save(path)


# ----------------------------------------------------------------------------- model


def test_continuous_bernoulli_head_is_a_density_on_the_unit_interval():
    head = ContinuousBernoulliHead(3, pixel_channels=None)
    logits = tf.constant([[-4.0, 0.0, 2.5]])
    x = np.linspace(0.0, 1.0, 20001, dtype=np.float32)
    density = np.exp(
        head.distribution((tf.broadcast_to(logits, (len(x), 3)),)).log_prob(
            np.repeat(x[:, None], 3, axis=1)
        )
    )
    np.testing.assert_allclose(np.trapezoid(density, x, axis=0), 1.0, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("body", ["conv_detector", "dense_image_detector"])
def test_image_detector_scores_defective_parts_below_normal_ones(body, request):
    detector = request.getfixturevalue(body)
    normal, _ = make_parts(40, seed=7)
    normal_scores = detector.score_samples(normal.reshape(40, -1))
    for defect in DEFECTS:
        defective, _ = make_parts(10, defect=defect, seed=8)
        scores = detector.score_samples(defective.reshape(10, -1))
        # Every defective part is less likely than the median normal one.
        assert scores.max() < np.median(normal_scores), defect


@pytest.fixture(scope="module")
def dense_image_detector(parts):
    """The sample job's model as the job builds it: the dense body."""
    return _sample_job_model(parts, conv_filters=())


@pytest.mark.slow
@pytest.mark.parametrize("body", ["conv_detector", "dense_image_detector"])
def test_heat_map_highlights_the_planted_defect(body, request):
    detector = request.getfixturevalue(body)
    for defect in DEFECTS:
        images, masks = make_parts(6, defect=defect, seed=11)
        terms = detector.score_features(images.reshape(6, -1))
        maps = pixel_anomaly(terms, SHAPE)
        assert maps.shape == (6, SIZE, SIZE)
        for heat, mask in zip(maps, masks, strict=True):
            assert heat[mask].mean() > heat[~mask].mean() + 1.0, defect


def test_per_pixel_terms_add_up_to_the_elbo(small_conv, parts):
    terms = small_conv("discretized_logistic").score_terms(parts[:20])
    assert terms.feature_log_likelihood.shape == (20, SIZE * SIZE)
    np.testing.assert_allclose(
        terms.feature_log_likelihood.sum(axis=1) - terms.kl, terms.elbo, rtol=1e-9
    )


@pytest.mark.parametrize(  # one in the default suite, the others slow
    "likelihood",
    [
        pytest.param("bernoulli", marks=pytest.mark.slow),
        pytest.param("continuous_bernoulli", marks=pytest.mark.slow),
        "discretized_logistic",
    ],
)
def test_conv_scores_do_not_depend_on_batch_or_order_and_survive_save_load(
    likelihood, small_conv, parts, tmp_path
):
    detector = small_conv(likelihood)
    assert detector.conv_filters_ == (16, 32)  # 32 -> 16 -> 8: two stages
    full = detector.score_samples(parts[:50])
    np.testing.assert_array_equal(detector.score_samples(parts[7:8]), full[7:8])
    np.testing.assert_array_equal(detector.score_samples(parts[:50][::-1]), full[::-1])
    detector.save(tmp_path / "conv")
    restored = load(tmp_path / "conv")
    assert restored.image_shape == SHAPE and restored.likelihood == likelihood
    np.testing.assert_array_equal(restored.score_samples(parts[:50]), full)


def test_image_shape_must_match_the_columns_of_X(parts):
    with pytest.raises(ValueError, match=r"image_shape=\(16, 16, 1\) holds 256 values"):
        VAEAnomalyDetector(image_shape=(16, 16, 1), epochs=1).fit(parts)


@pytest.mark.slow  # fits end to end; the default suite's 5-minute budget
def test_no_conv_filters_gives_the_dense_model_with_per_pixel_terms(parts, tmp_path):
    """conv_filters=(): the image model is the tabular dense model, to the bit, and still
    gives one term per pixel (heat maps) and survives save/load."""
    settings = dict(
        likelihood="bernoulli", epochs=2, batch_size=64, screen_outliers=False, random_state=0
    )
    dense_image = VAEAnomalyDetector(image_shape=SHAPE, conv_filters=(), **settings).fit(parts)
    tabular = VAEAnomalyDetector(**settings).fit(parts)
    assert dense_image.conv_filters_ == ()
    assert dense_image.model_.encoder.count_params() == tabular.model_.encoder.count_params()
    np.testing.assert_array_equal(
        dense_image.score_samples(parts[:20]), tabular.score_samples(parts[:20])
    )
    maps = pixel_anomaly(dense_image.score_features(parts[:3]), SHAPE)
    assert maps.shape == (3, SIZE, SIZE)
    dense_image.save(tmp_path / "dense")
    restored = load(tmp_path / "dense")
    assert restored.conv_filters_ == ()
    np.testing.assert_array_equal(
        restored.score_samples(parts[:20]), dense_image.score_samples(parts[:20])
    )


def test_contrast_scaler_ignores_brightness_and_contrast_of_each_image(parts):
    scaler = ContrastScaler().fit(parts)
    changed = 0.3 + 0.5 * parts[:10]  # brighter background, weaker contrast
    np.testing.assert_allclose(scaler.transform(changed), scaler.transform(parts[:10]), atol=1e-12)
    assert scaler.transform(parts).min() == 0.0 and scaler.transform(parts).max() == 1.0
    flat = np.full((1, parts.shape[1]), 0.4)  # a constant image: g = 0, no division by 0
    assert np.isfinite(scaler.transform(flat)).all()


# ----------------------------------------------------------------------------- inputs


def test_loader_rejects_unreadable_files_and_wrong_shapes_with_reasons(tmp_path):
    images, _ = make_parts(3, seed=3)
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    _save_png(folder / "a.png", images[0])
    _save_png(folder / "sub" / "b.png", images[1])
    whole = (folder / "a.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (folder / "notes.txt").write_text("not an image")
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(folder / "colour.png")
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(folder / "small.png")
    (folder / ".hidden.png").write_bytes(b"skipped")
    np.save(tmp_path / "arrays.npy", (255 * images).astype(np.uint8))

    paths = list(iter_image_inputs([folder, tmp_path / "arrays.npy", folder / "a.png"]))
    assert len(paths) == 7  # recursive, hidden files skipped, a.png once

    strict = ImageTransform(SIZE, SIZE, 1, resize=False, convert_color=False)
    batches = list(image_batches(paths, strict, batch_size=2))
    scored = [i for b in batches for i in b.ids]
    reasons = dict(r for b in batches for r in b.rejects)
    assert len(scored) + len(reasons) == 6 + 3  # 6 files + 3 array images: all accounted
    assert sorted(p.split("/")[-1] for p in scored) == [
        "a.png", "arrays.npy#0", "arrays.npy#1", "arrays.npy#2", "b.png"
    ]  # fmt: skip
    assert reasons[str(folder / "notes.txt")].startswith("not an image file")
    assert reasons[str(folder / "truncated.png")].startswith("unreadable or truncated image")
    assert "other channel count: 3, the model expects 1" in reasons[str(folder / "colour.png")]
    assert "other size: 20x24 pixels, the model expects 32x32" in reasons[str(folder / "small.png")]

    relaxed = ImageTransform(SIZE, SIZE, 1, resize=True, convert_color=True)
    batches = list(image_batches(paths, relaxed, batch_size=4))
    reasons = dict(r for b in batches for r in b.rejects)
    assert set(reasons) == {str(folder / "notes.txt"), str(folder / "truncated.png")}
    assert all(b.pixels.shape[1:] == (SIZE * SIZE,) for b in batches)
    # The PNG round trip of a.png reproduces its pixels to within the 8-bit step.
    first = next(b for b in batches if str(folder / "a.png") in b.ids)
    row = first.pixels[first.ids.index(str(folder / "a.png"))]
    np.testing.assert_allclose(row, images[0].reshape(-1), atol=0.5 / 255 + 1e-6)


def test_inputs_are_listed_lazily_in_sorted_order_and_checked_up_front(tmp_path):
    for name in ["b.png", "a/z.png", "a.png", "a/b/c.png", "A.png", ".h/x.png", "a/.y.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    expected = sorted(p for p in tmp_path.rglob("*") if p.is_file() and "/." not in str(p))
    found = iter_image_inputs([tmp_path])
    assert next(found) == expected[0]
    # Lazy: a file added to a directory not yet walked is still found.
    (tmp_path / "a" / "b" / "late.png").write_bytes(b"x")
    assert [expected[0], *found] == sorted([*expected, tmp_path / "a" / "b" / "late.png"])
    with pytest.raises(FileNotFoundError, match=r"--input .*missing\.png: no such file"):
        iter_image_inputs([tmp_path, tmp_path / "missing.png"])  # raised before any path
    with pytest.raises(FileNotFoundError, match="no such file"):  # matches nothing
        iter_image_inputs([f"{tmp_path}/[q]"])
    # A glob that matches a folder reads it as a folder input (it was an error before,
    # and a glob that matched folders and files skipped the folders' files in silence).
    below_a = [p for p in expected if p.is_relative_to(tmp_path / "a")] + [
        tmp_path / "a" / "b" / "late.png"
    ]
    assert list(iter_image_inputs([f"{tmp_path}/[a]"])) == sorted(below_a)


@pytest.mark.slow  # fits end to end; the default suite's 5-minute budget
def test_image_batches_consume_paths_as_they_go(tmp_path):
    """Memory does not grow with the folder: paths are taken as the batches need them."""
    taken = []

    def paths():
        for i in range(2000):
            path = tmp_path / f"{i:04d}.txt"
            path.write_text("not an image")
            taken.append(path)
            yield path

    batches = image_batches(paths(), ImageTransform(SIZE, SIZE, 1), batch_size=2)
    first = next(batches)
    assert len(taken) < 200  # a bounded read-ahead (prefetch, parallel decoding), not 2000
    assert first.rejects[0][0] == str(taken[0])
    assert first.rejects[0][1].startswith("not an image file")
    rest = list(batches)
    assert len(taken) == 2000 and sum(len(b.rejects) for b in [first, *rest]) == 2000


def test_image_config_errors_name_the_file_and_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[image]\nsizes = [32, 32]\n")
    with pytest.raises(ValueError, match=r"bad.toml: unknown key 'sizes' in \[image\]"):
        load_image_config(config)
    config.write_text("[model]\nimage_shape = [32, 32, 1]\n")
    with pytest.raises(ValueError, match=r"\[model\] 'image_shape' is set by the job"):
        load_image_config(config)


# ----------------------------------------------------------------------------- the job


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    data = tmp_path_factory.mktemp("parts")
    write_parts(data, n_train=120, n_new=30, n_per_defect=2)
    model_dir = data / "model"
    config = load_image_config(ROOT / "pipelines" / "images.toml").with_overrides(
        model={"epochs": 30, "batch_size": 256}, fpr=0.05
    )
    report = fit_images([data / "parts" / "train"], model_dir, config)
    return data / "parts", model_dir, report


def test_fit_images_records_the_transform_and_the_report(image_model):
    _, model_dir, report = image_model
    document = json.loads((model_dir / "images.json").read_text())
    assert document["transform"] == {
        "height": SIZE,
        "width": SIZE,
        "channels": 1,
        "resize": True,
        "convert_color": True,
        "upright": True,
    }
    assert document["normalization"] == {"kind": "none"}  # as pipelines/images.toml says
    assert report["images_used"] == report["images_read"] == 120
    assert (model_dir / "fit_rejects.csv").read_text().splitlines() == [
        "file,line,reason,raw_line,raw_length"
    ]
    assert report["threshold"]["calibrated"] and report["threshold"]["fpr"] == 0.05
    assert load(model_dir / "detector").conv_filters_ == ()  # the job's default: dense
    assert report["conv_filters"] == []


def test_the_image_jobs_body_is_dense_unless_the_config_names_convolutions():
    """image_model: conv_filters () unless [model] names it, whatever the image size."""
    base = {"likelihood": "bernoulli"}
    assert image_config.image_model(base) == {"likelihood": "bernoulli", "conv_filters": ()}
    named = dict(base, conv_filters=[16, 32])
    assert image_config.image_model(named)["conv_filters"] == [16, 32]
    assert "conv_filters" not in base  # the config's dict is not changed


def test_score_images_accounts_for_every_file_and_draws_heat_maps(image_model, tmp_path, capsys):
    parts, model_dir, _ = image_model
    out = tmp_path / "out"
    status = main([
        "score-images", "--model-dir", str(model_dir), "--input", str(parts / "new"),
        "--output", str(out / "scored.csv"), "--rejects", str(out / "rejects.csv"),
        "--report", str(out / "report.json"), "--heatmaps", str(out / "maps"),
        "--alerts", str(out / "alerts.jsonl"), "--labels", str(parts / "new_labels.csv"),
    ])  # fmt: skip
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    files = sorted(p for p in (parts / "new").iterdir())
    assert report["images_read"] == len(files) == 30 + 6 + 2
    assert report["images_scored"] + report["images_rejected"] == report["images_read"]
    with open(out / "rejects.csv", newline="") as handle:
        rejects = {row["file"]: row["reason"] for row in csv.DictReader(handle)}
    assert len(rejects) == 2
    assert rejects[str(parts / "new" / "notes.txt")].startswith("not an image file")
    assert rejects[str(parts / "new" / "washer_truncated.png")].startswith(
        "unreadable or truncated image"
    )
    assert report["rejected_by_reason"] == {
        "not an image file": 1,
        "unreadable or truncated image": 1,
    }

    scored = (out / "scored.csv").read_text().splitlines()
    assert scored[0] == "path,anomaly_score,p_value,is_anomaly,heatmap" and len(scored) == 37
    flagged = [line.split(",")[0] for line in scored[1:] if line.split(",")[3] == "1"]
    assert status == ExitStatus.ALERTS and len(flagged) == report["anomalies"] > 0
    # Detection itself is tested on the detector above (this model is small and briefly
    # trained); here, the labels line counts what was flagged.
    with open(parts / "new_labels.csv", newline="") as handle:
        defect = {Path(row["path"]).name: row["defect"] for row in csv.DictReader(handle)}
    flagged_names = [Path(path).name for path in flagged]
    found = sum(defect[name] != "" for name in flagged_names)
    assert 1 <= found <= 6
    assert f"labels: {found} of the 6 defective images were flagged" in printed
    assert f"{len(flagged) - found} of 30 normal images were flagged" in printed

    maps = sorted((out / "maps").rglob("*.png"))
    assert len(maps) == report["heatmaps"] == len(flagged)
    with Image.open(maps[0]) as picture:
        factor = -(-MIN_PANEL_HEIGHT // SIZE)
        assert picture.size == ((2 * SIZE + 1) * factor, SIZE * factor)
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    assert [a["row_id"] for a in alerts] == flagged
    assert alerts[0]["top_features"][0]["feature"].startswith("pixel(row=")


def test_score_images_leaves_no_output_when_it_fails(image_model, tmp_path):
    parts, _, _ = image_model
    out = tmp_path / "out"
    out.mkdir()
    status = main([
        "score-images", "--model-dir", str(tmp_path / "missing"), "--input", str(parts / "new"),
        "--output", str(out / "scored.csv"), "--rejects", str(out / "rejects.csv"),
        "--report", str(out / "report.json"), "--heatmaps", str(out / "maps"),
    ])  # fmt: skip
    assert status == ExitStatus.FAILED
    assert list(out.iterdir()) == []


def test_score_images_failing_midway_leaves_no_heat_maps_or_outputs(
    image_model, tmp_path, monkeypatch
):
    parts, model_dir, _ = image_model
    out = tmp_path / "out"
    out.mkdir()
    written = []

    def heatmap_png_then_fail(path, image, anomaly_map):
        if written:
            raise OSError("disk full")
        heatmap_png(path, image, anomaly_map)
        written.append(path)

    monkeypatch.setattr(jobs, "heatmap_png", heatmap_png_then_fail)
    config = dataclasses.replace(saved_image_settings(model_dir), heatmaps="all")
    with pytest.raises(OSError, match="disk full"):
        score_images(
            model_dir, [parts / "new"], out / "s.csv", out / "r.csv", out / "r.json",
            heatmaps=out / "maps", config=config,
        )  # fmt: skip
    assert len(written) == 1 and written[0].exists() is False  # its staging folder is gone
    assert list(out.iterdir()) == []


def test_score_images_shows_progress_in_images_per_second(image_model, tmp_path, capsys):
    parts, model_dir, _ = image_model
    out = tmp_path / "out"
    out.mkdir()
    score_images(
        model_dir, [parts / "new"], out / "s.csv", out / "r.csv", out / "r.json", progress=True
    )
    assert re.search(r"scoring: 38 images \([\d,]+ images/s\)", capsys.readouterr().err)


def test_score_images_counts_images_once_scored_not_once_read(image_model, tmp_path, monkeypatch):
    parts, model_dir, _ = image_model
    events = []  # in order: ("read", ids, rejects), ("scored", rows, 0), ("shown", n, 0)

    def recorded_batches(paths, transform, batch_size):
        for batch in image_batches(paths, transform, batch_size):
            events.append(("read", len(batch.ids), len(batch.rejects)))
            yield batch

    class RecordedProgress(jobs.Progress):
        def advance(self, items):
            events.append(("shown", items, 0))
            super().advance(items)

    score_terms = VAEAnomalyDetector.score_terms

    def recorded_score_terms(self, X, **options):
        terms = score_terms(self, X, **options)
        events.append(("scored", len(X), 0))
        return terms

    monkeypatch.setattr(jobs, "image_batches", recorded_batches)
    monkeypatch.setattr(jobs, "Progress", RecordedProgress)
    monkeypatch.setattr(VAEAnomalyDetector, "score_terms", recorded_score_terms)
    config = dataclasses.replace(saved_image_settings(model_dir), batch_size=8)
    out = tmp_path / "out"
    out.mkdir()
    report, _ = score_images(
        model_dir, [parts / "new"], out / "s.csv", out / "r.csv", out / "r.json", config=config
    )
    rejects_read = scored = shown = 0
    for kind, n, rejects in events:
        rejects_read += rejects
        scored += n if kind == "scored" else 0
        shown += n if kind == "shown" else 0
        assert shown <= scored + rejects_read  # never ahead of the images scored
    assert sum(kind == "read" for kind, _, _ in events) > 3  # several batches
    assert scored == report["images_scored"] and rejects_read == report["images_rejected"] > 0
    assert shown == report["images_read"]


def test_bundled_sample_images_are_what_the_generator_writes(tmp_path):
    root = Path(__file__).resolve().parents[1] / "sample_data" / "parts"
    write_parts(tmp_path)
    written = sorted(p.relative_to(tmp_path / "parts") for p in (tmp_path / "parts").rglob("*"))
    assert written == sorted(p.relative_to(root) for p in root.rglob("*"))
    for relative in written:
        if relative.suffix in (".png", ".jpg", ".txt"):
            assert (root / relative).read_bytes() == (tmp_path / "parts" / relative).read_bytes()
    labels = (tmp_path / "parts" / "new_labels.csv").read_text().splitlines()
    assert len(labels) == 1 + 60 + 6 + 2 and labels[-1].endswith("notes.txt,unreadable")


def test_sample_images_replace_an_earlier_set_but_never_a_file_of_yours(tmp_path):
    small = {"n_train": 3, "n_new": 2, "n_per_defect": 1}
    write_parts(tmp_path, **small)
    (tmp_path / "parts" / "new" / "washer_999.png").write_bytes(b"an earlier set's image")
    write_parts(tmp_path, **small)  # regenerated: the earlier set's images go
    assert not (tmp_path / "parts" / "new" / "washer_999.png").exists()
    mine = tmp_path / "parts" / "train" / "my_part.png"
    mine.write_bytes(b"mine")
    with pytest.raises(ValueError, match=r"holds .*my_part\.png, which make-sample-data"):
        write_parts(tmp_path, **small)
    assert mine.read_bytes() == b"mine" and len(list(mine.parent.iterdir())) == 4
    (tmp_path / "sensors.csv").write_text("mine too")  # the command refuses before any write
    assert main(["make-sample-data", "--output-dir", str(tmp_path)]) == ExitStatus.FAILED
    assert (tmp_path / "sensors.csv").read_text() == "mine too"


def test_labels_match_an_image_however_its_path_is_spelt(tmp_path, monkeypatch):
    from vae_anomaly.images.labels import compare_image_labels, labelled_image_scores

    monkeypatch.chdir(tmp_path)
    scored = tmp_path / "scored.csv"
    scored.write_text(
        "path,anomaly_score,p_value,is_anomaly,heatmap\n"
        f"{tmp_path}/new/a.png,9.0,0.01,1,\n"  # the job ran with an absolute --input
        "./new/b.png,1.0,0.5,0,\n"
        "new/c.png,8.0,0.02,1,\n"
    )
    labels = tmp_path / "labels.csv"
    labels.write_text("path,defect\nnew/a.png,scratch\nnew/b.png,\nnew/./c.png,\n")
    assert compare_image_labels(scored, labels) == (
        "labels: 1 of the 1 defective images were flagged ({'scratch': 1}); "
        "1 of 2 normal images were flagged."
    )
    defective, scores, flagged = labelled_image_scores(scored, labels)
    assert defective.tolist() == [True, False, False] and flagged.tolist() == [True, False, True]
    assert scores.tolist() == [9.0, 1.0, 8.0]
    labels.write_text("path,defect\nnew/a.png,scratch\n,\n")  # a row without a path
    assert compare_image_labels(scored, labels).startswith("labels: 1 of the 1 defective")
    other = tmp_path / "other.csv"
    other.write_text("path,defect\nelsewhere/a.png,scratch\n")
    assert compare_image_labels(scored, other).startswith(
        f"labels: none of the 1 paths of {other} is among the scored images"
    )
