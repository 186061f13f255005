"""Regenerate the screenshots of the HTML reports in docs/images/ from the sample data.

    python docs/make_screenshots.py [--runs DIR] [--skip-images]

Runs the README's command 1 (``vae-anomaly fit`` and ``score`` on sample_data/) and the
image sample run of docs/jobs.md (``fit-images``, ``score-images``), each scoring command
with ``--html`` added, outputs in ``--runs`` (default: ``runs/``, as in the README, so
the pages show the README's paths), then opens the reports in headless Chromium and saves:

    docs/images/score_report.png         the top of the score report (the README's picture)
    docs/images/fit_report.png           the fit report (MODEL_DIR/report.html)
    docs/images/score_images_report.png  the score-images report

Needs matplotlib (``pip install -e ".[report]"``) and Chromium (``apt-get install
chromium``). The fit of the image model takes about two minutes.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
WIDTH = 1100


def commands(markdown: Path, pattern: str) -> list[list[str]]:
    """The ``vae-anomaly`` commands of the first line of ``markdown`` matching ``pattern``."""
    line = re.search(pattern, markdown.read_text(), re.M).group(1)
    return [part.split()[1:] for part in line.split(" && ") if part.startswith("vae-anomaly ")]


def run(args: list[str], runs: Path, html: str | None = None) -> None:
    """Run ``vae-anomaly ARGS`` from the repository, its runs/ paths moved to ``runs``."""
    args = [arg.replace("runs/", f"{runs}/") for arg in args]
    if html is not None:
        args += ["--html", str(runs / html)]
    print("vae-anomaly", " ".join(args), flush=True)
    status = subprocess.run([sys.executable, "-m", "vae_anomaly.cli", *args], cwd=ROOT).returncode
    if status not in (0, 3):  # 3: finished, rows were flagged
        raise SystemExit(f"vae-anomaly {args[0]} failed with exit status {status}")


def screenshot(page: Path, target: Path, height: int, folder: Path) -> None:
    """A ``WIDTH`` x ``height`` screenshot of the top of ``page``, as a small palette PNG."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Chromium is not installed: apt-get install chromium")
    raw = folder / f"{target.stem}.raw.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={folder / 'profile'}", f"--screenshot={raw}",
         f"--window-size={WIDTH},{height}", page.resolve().as_uri()],
        check=True, capture_output=True,
    )  # fmt: skip
    image = Image.open(raw).convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, optimize=True)
    print(f"wrote {target.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--runs", type=Path, default=Path("runs"), help="outputs (relative: to the repository)"
    )
    parser.add_argument("--skip-images", action="store_true", help="only the tabular reports")
    args = parser.parse_args()
    runs = args.runs  # the commands run in the repository: a relative path stays as given
    pages = ROOT / runs
    pages.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as temporary:
        fit, score = commands(ROOT / "README.md", r"^pip install -e \S+ && (vae-anomaly fit .*)$")
        run(fit, runs)
        run(score, runs, html="score.html")
        screenshot(pages / "score.html", IMAGES / "score_report.png", 1900, Path(temporary))
        screenshot(pages / "machines" / "report.html", IMAGES / "fit_report.png", 3000,
                   Path(temporary))  # fmt: skip
        if not args.skip_images:
            fit, score = commands(
                ROOT / "docs" / "jobs.md",
                r"^(vae-anomaly fit-images .* && vae-anomaly score-images .*)$",
            )
            run(fit, runs)
            run(score, runs, html="parts.html")
            screenshot(pages / "parts.html", IMAGES / "score_images_report.png", 3600,
                       Path(temporary))  # fmt: skip


if __name__ == "__main__":
    main()
