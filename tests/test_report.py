"""The HTML reports (issue 18): self-contained pages, bounded accumulators, the jobs' files
and flags, and matplotlib as an optional extra."""

import json
import pickle
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import eagerly

from vae_anomaly.cli import main
from vae_anomaly.exit_status import ExitStatus
from vae_anomaly.images.config import ImageJobConfig
from vae_anomaly.images.jobs import fit_images, score_images
from vae_anomaly.integrity import verify_directory
from vae_anomaly.report import (
    INSTALL_HINT,
    TOP_ROWS,
    ImageGallery,
    ScoreHistogram,
    ScoreSummary,
    best_epoch,
    fit_report,
    score_report,
)
from vae_anomaly.tabular.saved import saved_settings
from vae_anomaly.tabular.score_job import score_job

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "sample_data"


class _Links(HTMLParser):
    """Every src/href value, and the tags that could fetch or run something."""

    def __init__(self):
        super().__init__()
        self.targets, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.targets += [value for name, value in attrs if name in ("src", "href", "srcset")]


def off_page_references(page: str) -> list[str]:
    """What in ``page`` would be fetched from elsewhere: src/href that are not data: URIs
    or #anchors, scripts, stylesheets, frames and CSS url()/@import."""
    parser = _Links()
    parser.feed(page)
    found = [t for t in parser.targets if not t.startswith(("data:", "#"))]
    found += [t for t in parser.tags if t in ("script", "link", "iframe", "object", "embed")]
    found += [css for css in ("url(", "@import") if css in page]
    return found


def test_the_check_finds_references_off_the_page():
    page = '<img src="data:image/png;base64,AA"><a href="#top">x</a>'
    assert off_page_references(page) == []
    assert off_page_references('<img src="plot.png">') == ["plot.png"]
    assert off_page_references('<a href="https://example.com">x</a>') == ["https://example.com"]
    assert off_page_references("<script>1</script>") == ["script"]


# ----------------------------------------------------------------------------- accumulators


def test_score_histogram_buckets_are_one_percent_wide_and_merge_in_any_order():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(30, 5, 5000), -rng.exponential(2, 500), [0.0, 1e9]])
    whole = ScoreHistogram()
    whole.add(scores)
    merged = ScoreHistogram()
    for part in np.array_split(rng.permutation(scores), 7)[::-1]:
        piece = ScoreHistogram()
        piece.add(part)
        merged.merge(ScoreHistogram.from_dict(json.loads(json.dumps(piece.to_dict()))))
    assert merged.counts == whole.counts
    assert (merged.low, merged.high) == (scores.min(), scores.max())
    keys = whole._keys(scores)
    lower, upper = whole.bounds(keys)
    assert np.all((lower <= scores) & (scores <= upper))
    big = np.abs(scores) >= ScoreHistogram.SMALLEST
    assert np.all((upper - lower)[big] <= 0.0101 * np.abs(scores[big]))
    edges = np.linspace(0, 60, 31)
    exact, _ = np.histogram(scores, edges)
    spread = whole.counts_in(edges)
    assert spread.sum() == pytest.approx(exact.sum(), abs=2)
    assert np.abs(spread - exact).max() <= 0.1 * exact.max()
    assert whole.count_above(60) == int(np.sum(scores > 60))


def test_score_histogram_memory_grows_with_the_log_of_the_range_not_the_rows():
    histogram = ScoreHistogram()
    for seed in range(20):
        histogram.add(np.random.default_rng(seed).uniform(1, 1000, 50_000))
    assert histogram.total == 1_000_000
    assert len(histogram.counts) <= np.log(1000) / np.log(1.01) + 2  # 696 buckets at most


def _records(scores, prefix="r"):
    return [
        {
            "row_id": f"{prefix}{i}",
            "anomaly_score": float(s),
            "p_value": 0.01,
            "top_features": [{"feature": "a", "share": 0.75}, {"feature": "b", "share": 0.25}],
        }
        for i, s in enumerate(scores)
    ]


def test_score_summary_keeps_the_top_flagged_rows_of_all_chunks_in_a_bounded_heap():
    rng = np.random.default_rng(1)
    scores = rng.permutation(np.arange(1000.0))
    whole = ScoreSummary(top=10)
    for i, chunk in enumerate(np.array_split(scores, 9)):
        part = ScoreSummary(top=10)
        part.add(chunk, np.full(chunk.shape, 0.5), _records(chunk, f"c{i}-"))
        assert len(part.flagged) == 10
        whole.merge(ScoreSummary.from_dict(json.loads(json.dumps(part.to_dict()))))
    assert [r["anomaly_score"] for r in whole.flagged] == list(np.arange(999.0, 989.0, -1))
    assert whole.n_flagged == 1000
    assert whole.feature_shares == {"a": 750.0, "b": 250.0}
    assert whole.p_counts.sum() == 1000 and whole.p_counts[10] == 1000  # 0.5: 11th bin


def test_p_values_fall_in_twenty_bins_one_included_in_the_last():
    summary = ScoreSummary()
    summary.add([1.0, 2.0, 3.0, 4.0], [0.0, 0.049, 0.05, 1.0])
    summary.add([5.0], [np.nan])  # not calibrated: no p-value, not counted
    assert summary.p_counts.tolist() == [2, 1] + [0] * 17 + [1]
    assert summary.scores.total == 5


def test_image_gallery_keeps_the_highest_and_those_nearest_the_threshold():
    gallery = ImageGallery(threshold=50.0, size=3)
    images = np.zeros((100, 2, 2, 1))
    for start in range(0, 100, 25):  # four batches
        scores = np.arange(start, start + 25, dtype=float)
        batch = images[start : start + 25]
        maps = np.zeros((25, 2, 2))
        gallery.add([f"i{int(s)}" for s in scores], scores, scores / 100, batch, maps)
        batch[...] = 1.0  # the job reuses its batch buffers
    assert [item[1] for item in gallery.images("highest")] == [99.0, 98.0, 97.0]
    assert [item[1] for item in gallery.images("below")] == [48.0, 49.0, 50.0]
    assert [item[1] for item in gallery.images("above")] == [51.0, 52.0, 53.0]
    assert all(item[3].max() == 0.0 for item in gallery.images("highest"))  # copies kept
    assert [item[1] for item in gallery.flagged()] == [99.0, 98.0, 97.0]
    few = ImageGallery(threshold=98.5, size=3)  # one image above it: the gallery shows one
    few.add(["a", "b", "c"], np.array([99.0, 98.0, 97.0]), np.zeros(3), batch[:3], maps[:3])
    assert [item[0] for item in few.flagged()] == ["a"]


# ----------------------------------------------------------------------------- pages


@pytest.fixture(scope="module")
def calibrated(fitted, test_X):
    """The shared detector, calibrated (a copy: the shared one stays as it is)."""
    return pickle.loads(pickle.dumps(fitted)).calibrate(test_X[:150], fpr=0.05)


def test_fit_report_is_one_page_with_every_section_and_nothing_off_it(calibrated, train_X):
    columns = [{"column": n, "role": "numeric", "reason": "numbers"} for n in "abcd"]
    page = fit_report(calibrated, train_X, columns=columns, feature_names=list("abcd"))
    assert off_page_references(page) == []
    for section in ("Training", "Calibration and threshold", "Columns", "What each column"):
        assert f"<h2>{section}" in page
    assert "<h2>Latent space" in page
    assert page.count('<img src="data:image/png;base64,') == 4
    assert "certifies a false-alarm rate of at most 0.05" in page
    assert "not certified" not in page
    if "matplotlib.pyplot" in sys.modules:  # no figure left open in pyplot's state
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_fit_report_of_an_uncalibrated_detector_says_so(fitted):
    page = fit_report(fitted)  # calibration_fraction=0: the threshold is contamination's
    assert "<b>not certified</b>: calibration_fraction=0" in page
    assert "<h2>Latent space" not in page  # no rows given: no map
    assert off_page_references(page) == []


def test_the_reason_a_threshold_is_not_certified_ends_in_one_full_stop(fitted):
    import copy

    detector = copy.deepcopy(fitted)
    detector.calibration_reason_ = "too few rows were held out (calibrated_ is False)."
    page = fit_report(detector)
    assert "(calibrated_ is False). p-values are not available" in page


def test_best_epoch_is_the_lowest_validation_loss_and_early_stopping_is_told(fitted):
    best, stopped = best_epoch(fitted)
    validation = fitted.history_["val_loss"]
    assert validation[best] == min(validation)
    assert stopped == (len(validation) - 1 - best >= fitted.n_iter_no_change)


def _accounting(n, flagged):
    return {"read": n + 2, "scored": n, "rejected": 2, "flagged": flagged,
            "rejected_by_reason": {"blank line": 2}}  # fmt: skip


def test_a_thousand_flagged_rows_are_capped_and_the_page_says_so(calibrated):
    summary = ScoreSummary()
    scores = np.linspace(100, 200, 1000)
    summary.add(scores, np.full(1000, 0.01), _records(scores))
    page = score_report(calibrated, summary, _accounting(1000, 1000))
    assert f"Showing the {TOP_ROWS} highest-scoring of 1,000 flagged rows" in page
    assert len(re.findall(r"<tr><td>r\d+</td>", page)) == TOP_ROWS
    assert "<td>r999</td>" in page and "<td>r0</td>" not in page
    assert len(page) < 1_000_000
    assert off_page_references(page) == []


def test_score_report_with_labels_has_the_curves_and_the_confusion_table(calibrated, test_X):
    X = np.vstack([test_X[150:], test_X[:10] * 3])
    y = np.r_[np.zeros(50, bool), np.ones(10, bool)]
    anomaly = -calibrated.score_samples(X)
    flagged = anomaly > -calibrated.offset_
    summary = ScoreSummary()
    summary.add(anomaly, calibrated.p_values(X))
    page = score_report(
        calibrated, summary, _accounting(60, int(flagged.sum())), labels=(y, anomaly, flagged)
    )
    auroc = page.split("AUROC ")[1][:5]
    from sklearn.metrics import roc_auc_score

    assert float(auroc) == pytest.approx(roc_auc_score(y, anomaly), abs=1e-3)
    tp = int((y & flagged).sum())
    assert f'<tr><td>anomaly</td><td class="num">{tp}</td>' in page
    assert "62 read = 60 scored + 2 rejected" in page
    assert off_page_references(page) == []


def test_score_report_refuses_accounting_that_does_not_add_up(calibrated):
    with pytest.raises(ValueError, match="read 10 != scored 7 \\+ rejected 2"):
        score_report(calibrated, ScoreSummary(), {"read": 10, "scored": 7, "rejected": 2,
                                                  "flagged": 0})  # fmt: skip


# ----------------------------------------------------------------------------- the jobs


@pytest.fixture(scope="module")
def machines(machines_model):
    """The tabular job's model directory of the sample records and its fit report (shared
    with the job tests: they only read it)."""
    return machines_model


def test_fit_writes_report_html_inside_the_sealed_model_directory(machines):
    model_dir, report = machines
    assert report["html_report"] == "report.html"
    page = (model_dir / "report.html").read_text()
    assert "<h2>Columns" in page and "machine_type" in page and "3 levels" in page
    assert off_page_references(page) == []
    listed = json.loads((model_dir / "integrity.json").read_text())
    assert "report.html" in json.dumps(listed)
    verify_directory(model_dir)  # every file listed, none changed


def test_score_html_report_with_labels(machines, tmp_path):
    model_dir, _ = machines
    html = tmp_path / "out" / "report.html"
    document, _ = score_job(
        model_dir,
        [SAMPLE_DATA / "machines_new.csv"],
        tmp_path / "scored.csv",
        tmp_path / "rejects.csv",
        tmp_path / "report.json",
        progress=False,
        html=html,
        labels=SAMPLE_DATA / "machines_new_labels.csv",
    )
    page = html.read_text()
    assert "1,000 read = 995 scored + 5 rejected" in page
    assert "AUROC" in page and "<h2>Against the labels" in page
    assert f"All {document['rows_flagged']:,} flagged rows" in page or "Showing the" in page
    assert off_page_references(page) == []
    assert not list(tmp_path.glob(".scored.csv.parts"))


def _flagged_table(page: str) -> str:
    return page.split('<div class="scroll">')[1].split("</div>")[0]


@pytest.mark.slow  # fits end to end; the default suite's 5-minute budget
def test_score_html_report_does_not_depend_on_the_chunk_size(machines, tmp_path):
    """Each chunk's summary is merged in the parent: ten chunks, one report."""
    model_dir, _ = machines
    pages = []
    for chunk_rows in (100, 20_000):
        folder = tmp_path / str(chunk_rows)
        document, _ = score_job(
            model_dir, [SAMPLE_DATA / "machines_new.csv"], folder / "s.csv", folder / "r.csv",
            folder / "r.json", progress=False, html=folder / "r.html",
            config=saved_settings(model_dir).with_overrides(chunk_rows=chunk_rows),
        )  # fmt: skip
        assert document["chunks"] == (10 if chunk_rows == 100 else 1)
        pages.append((folder / "r.html").read_text())
    assert _flagged_table(pages[0]) == _flagged_table(pages[1])
    assert _flagged_table(pages[0]).count("<tr><td>") == document["rows_flagged"]
    figures = [
        re.findall(r'<img src="([^"]+)" alt="(?:anomaly scores|p-values)"', p) for p in pages
    ]
    assert len(figures[0]) == 2 and figures[0] == figures[1]  # the same pixels


def test_chunks_kept_by_resume_without_a_summary_are_counted_on_the_page(calibrated, tmp_path):
    """A chunk committed by an older version (no summary part) is named, not silently
    missing from the figures."""
    from vae_anomaly.tabular import score_job as job

    summary = ScoreSummary()
    summary.add([1.0, 2.0], [0.5, 0.5])
    (tmp_path / "00000-0000000.summary.json").write_text(json.dumps(summary.to_dict()))
    document = {
        "rows_read": 4, "rows_scored": 4, "rows_rejected": 0, "rows_flagged": 0,
        "files": [{"path": "a.csv", "reject_reasons": {}}], "chunks": 2,
        "outputs": {"scored": "s.csv", "rejects": "r.csv", "alerts": None},
        "elapsed_seconds": 0.1,
    }  # fmt: skip
    page = job._html_report(
        tmp_path, ["00000-0000000", "00000-0000001"], calibrated, document, "m", None, None
    )
    assert "chunks without a summary (resumed from an older version; not in the figures)" in page
    assert "<td>1</td>" in page.split("chunks without a summary")[1][:200]
    assert "4 read = 4 scored + 0 rejected" in page


def test_score_html_same_as_another_path_is_refused_before_any_work(machines, tmp_path):
    model_dir, _ = machines
    labels = tmp_path / "labels.csv"
    labels.write_bytes((SAMPLE_DATA / "machines_new_labels.csv").read_bytes())
    new = str(SAMPLE_DATA / "machines_new.csv")
    common = ["score", "--model-dir", str(model_dir), "--input", new, "--output",
              str(tmp_path / "o.csv"), "--rejects", str(tmp_path / "r.csv"), "--report",
              str(tmp_path / "r.json")]  # fmt: skip
    assert main([*common, "--html", str(tmp_path / "o.csv")]) == ExitStatus.USAGE
    assert main([*common, "--html", str(labels), "--labels", str(labels)]) == ExitStatus.USAGE
    assert main([*common, "--html", new]) == ExitStatus.USAGE
    assert not (tmp_path / "o.csv").exists()
    assert labels.read_bytes() == (SAMPLE_DATA / "machines_new_labels.csv").read_bytes()


@pytest.fixture
def no_matplotlib(monkeypatch):
    """As if matplotlib were not installed: importing it fails."""
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.mark.parametrize("command", ["score", "score-images"])
def test_html_without_matplotlib_fails_up_front_with_the_install_hint(
    command, no_matplotlib, tmp_path, capsys
):
    args = [command, "--model-dir", str(tmp_path / "no_model"), "--input", str(tmp_path),
            "--output", str(tmp_path / "o.csv"), "--rejects", str(tmp_path / "r.csv"),
            "--report", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html")]  # fmt: skip
    # The model directory does not exist: a check made after any work would fail on it
    # (exit status 1) instead.
    assert main(args) == ExitStatus.USAGE
    error = capsys.readouterr().err
    assert "--html needs matplotlib" in error and INSTALL_HINT in error
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_fit_without_matplotlib_skips_report_html_and_says_so(no_matplotlib, tmp_path, capsys):
    rows = np.random.default_rng(0).normal(size=(600, 2))
    train = tmp_path / "train.csv"
    train.write_text("a,b\n" + "".join(f"{a},{b}\n" for a, b in rows))
    model_dir = tmp_path / "model"
    with eagerly():  # one epoch: what the fit writes and prints is tested
        status = main(
            ["fit", "--input", str(train), "--model-dir", str(model_dir), "--epochs", "1"]
        )
    assert status == ExitStatus.OK
    assert not (model_dir / "report.html").exists()
    assert f"fit: report.html not written: matplotlib is not installed ({INSTALL_HINT})." in (
        capsys.readouterr().out
    )
    document = json.loads((model_dir / "schema.json").read_text())
    assert document["fit_report"]["html_report"] is None


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A tiny 8x8 image model and a scored batch of dark (normal) and bright images."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    np.save(root / "train.npy", rng.integers(0, 40, size=(120, 8, 8), dtype=np.uint8))
    new = np.concatenate(
        [rng.integers(0, 40, size=(30, 8, 8)), rng.integers(200, 256, size=(5, 8, 8))]
    ).astype(np.uint8)
    np.save(root / "new.npy", new)
    config = ImageJobConfig(
        size=(8, 8),
        color="gray",
        normalize="none",
        model={"random_state": 0, "epochs": 2, "latent_dim": 2, "hidden_units": (8,)},
        fpr=0.1,
        calibration_fraction=0.25,
        batch_size=16,
    )
    fit_images([root / "train.npy"], root / "model", config)
    document, _ = score_images(
        root / "model", [root / "new.npy"], root / "o.csv", root / "r.csv", root / "r.json",
        progress=False, html=root / "score.html",
    )  # fmt: skip
    return root, document


@pytest.mark.slow
def test_fit_images_writes_report_html(image_run):
    root, _ = image_run
    page = (root / "model" / "report.html").read_text()
    assert "<h2>Latent space" in page and "<h2>Columns" not in page
    assert off_page_references(page) == []
    verify_directory(root / "model")


@pytest.mark.slow
def test_score_images_html_shows_the_images_and_the_threshold_neighbours(image_run):
    root, document = image_run
    page = (root / "score.html").read_text()
    assert f"{document['images_read']:,} read = {document['images_scored']:,} scored" in page
    shown = min(document["anomalies"], 6)
    assert f"The {shown} highest-scoring of the {document['anomalies']:,} flagged images" in page
    assert "<h2>Near the threshold" in page
    assert "new.npy#" in page  # the flagged images are listed by their ids
    assert off_page_references(page) == []


def _held_when_drawing(root: Path, n: int, monkeypatch) -> int:
    """Python-heap bytes (numpy buffers included) held by score_images --html over n bright
    images, every one flagged, when the report is drawn: what the run accumulated (a run
    first, so that caches are not counted)."""
    import tracemalloc

    import vae_anomaly.report

    held = []

    def drawing(*args, **kwargs):
        held.append(tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0)
        return score_report(*args, **kwargs)

    monkeypatch.setattr(vae_anomaly.report, "score_report", drawing)
    source = root / f"bright_{n}.npy"
    np.save(source, np.random.default_rng(n).integers(200, 256, size=(n, 8, 8), dtype=np.uint8))
    for attempt in ("warm", "measured"):
        out = root / f"out_{n}_{attempt}"
        if attempt == "measured":
            tracemalloc.start()
        try:
            document, _ = score_images(
                root / "model", [source], out / "o.csv", out / "r.csv", out / "r.json",
                progress=False, html=out / "r.html",
            )  # fmt: skip
        finally:
            tracemalloc.stop()
    assert document["anomalies"] == n
    assert f"Showing the {TOP_ROWS} highest-scoring of {n:,} flagged images" in (
        (out / "r.html").read_text()
    )
    return held[-1]


@pytest.mark.slow
def test_score_images_html_memory_does_not_grow_with_the_flagged_images(image_run, monkeypatch):
    root, _ = image_run
    small = _held_when_drawing(root, 500, monkeypatch)
    large = _held_when_drawing(root, 4000, monkeypatch)
    # 3,500 more flagged rows kept until the end would hold about 1 MB more; bounded, none.
    assert large - small < 300_000, (small, large)


def test_names_holding_dollar_signs_are_drawn_as_written():
    # A pair of "$" starts matplotlib's mathtext: a file named lot$^$7.png failed the
    # image report (after the outputs were written), and other names were drawn mangled.
    from matplotlib.text import Text

    from vae_anomaly.report import contributions_figure, figure_uri, gallery_figure

    image = np.zeros((4, 4, 1))
    gallery = gallery_figure([("in/lot$^$7.png", 12.5, 0.01, image, image[..., 0])], (0, 1))
    columns = contributions_figure(["cost_$", "$x$"], [1.0, 2.0])
    for figure in (gallery, columns):
        assert figure_uri(figure).startswith("data:image/png;base64,")
        figure.canvas.draw()
        drawn = [t for t in figure.findobj(Text) if "$" in t.get_text()]
        assert drawn and all(not t._preprocess_math(t.get_text())[1] for t in drawn)
