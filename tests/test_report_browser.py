"""The HTML reports in a real browser (issue 18): headless Chromium opens each page, takes
a screenshot, and reports through its console whether every figure decoded.

The page itself has no script. The test opens a copy with one small script appended that,
once the page has loaded, writes to the console how many images decoded and names any
that did not. Chromium's console goes to stderr (``--enable-logging=stderr``), one
``CONSOLE`` line per message, uncaught errors included; the test fails on any console
line but the expected one, and on a screenshot of a single colour.
"""

import pickle
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from vae_anomaly.report import ImageGallery, ScoreSummary, fit_report, score_report

pytestmark = pytest.mark.slow  # three browser starts: about 10 s
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it), "
        "so the reports cannot be opened in a browser here.",
        allow_module_level=True,
    )

CHECK = """<script>
window.addEventListener("load", () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0);
  broken.forEach(i => console.error("image did not decode: " + i.alt));
  console.log("report-check: " + document.images.length + " images loaded");
});
</script>"""
CONSOLE = re.compile(r":CONSOLE[^\]]*\] \"(.*)\", source: ")


def open_in_chromium(page: str, folder, name: str) -> tuple[Image.Image, list[str]]:
    """(screenshot, console messages) of ``page`` opened in headless Chromium."""
    html = folder / f"{name}.html"
    html.write_text(page.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    screenshot = folder / f"{name}.png"
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={folder / (name + '-profile')}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            f"--screenshot={screenshot}",
            "--window-size=1100,3000",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert screenshot.is_file(), f"no screenshot; chromium said:\n{result.stderr[-3000:]}"
    messages = CONSOLE.findall(result.stderr)
    messages += [line for line in result.stderr.splitlines() if "Uncaught" in line]
    return Image.open(screenshot).convert("RGB"), messages


def assert_shown(image: Image.Image, messages: list[str], page: str) -> None:
    n_images = page.count("<img ")
    assert n_images > 0
    assert messages == [f"report-check: {n_images} images loaded"]
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is None or len(colours) > 1, "the screenshot is a single colour"
    pixels = np.asarray(image)
    assert (pixels < 128).any(axis=-1).mean() > 0.005, "the screenshot is almost empty"


@pytest.fixture(scope="module")
def calibrated(fitted, test_X):
    return pickle.loads(pickle.dumps(fitted)).calibrate(test_X[:150], fpr=0.05)


def test_the_check_catches_a_broken_image_and_a_script_error(tmp_path):
    page = (
        '<html><body><p>x</p><img src="data:image/png;base64,AAAA" alt="bad">'
        "<script>undefined_function()</script></body></html>"
    )
    _, messages = open_in_chromium(page, tmp_path, "broken")
    assert "image did not decode: bad" in messages
    assert any("Uncaught ReferenceError" in message for message in messages)


def test_fit_report_in_chromium(calibrated, train_X, tmp_path):
    page = fit_report(calibrated, train_X, feature_names=list("abcd"))
    assert_shown(*open_in_chromium(page, tmp_path, "fit"), page)


def test_score_report_with_labels_in_chromium(calibrated, test_X, tmp_path):
    X = np.vstack([test_X[150:], test_X[:10] * 3])
    y = np.r_[np.zeros(50, bool), np.ones(10, bool)]
    anomaly = -calibrated.score_samples(X)
    flagged = anomaly > -calibrated.offset_
    records = [
        {"row_id": f"row {i}", "anomaly_score": float(anomaly[i]), "p_value": 0.0066,
         "top_features": [{"feature": "c", "share": 0.8}, {"feature": "a", "share": 0.2}]}
        for i in np.flatnonzero(flagged)
    ]  # fmt: skip
    summary = ScoreSummary()
    summary.add(anomaly, calibrated.p_values(X), records)
    accounting = {"read": 61, "scored": 60, "rejected": 1, "flagged": int(flagged.sum()),
                  "rejected_by_reason": {"blank line": 1}}  # fmt: skip
    page = score_report(calibrated, summary, accounting, labels=(y, anomaly, flagged))
    assert_shown(*open_in_chromium(page, tmp_path, "score"), page)


def test_image_score_report_in_chromium(calibrated, tmp_path):
    rng = np.random.default_rng(0)
    threshold = float(-calibrated.offset_)
    scores = threshold + rng.normal(0, 5, 40)
    images = rng.uniform(0, 1, (40, 8, 8, 1))
    maps = rng.exponential(1, (40, 8, 8))
    gallery = ImageGallery(threshold)
    gallery.add([f"parts/img_{i}.png" for i in range(40)], scores, np.full(40, 0.1), images, maps)
    summary = ScoreSummary()
    flagged = scores > threshold
    rows = [{"row_id": f"parts/img_{i}.png", "anomaly_score": float(scores[i]), "p_value": 0.1}
            for i in np.flatnonzero(flagged)]  # fmt: skip
    summary.add(scores, np.full(40, 0.1), rows)
    accounting = {"read": 40, "scored": 40, "rejected": 0, "flagged": int(flagged.sum())}
    page = score_report(calibrated, summary, accounting, unit="images", gallery=gallery)
    assert_shown(*open_in_chromium(page, tmp_path, "images"), page)
