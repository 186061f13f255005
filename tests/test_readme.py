"""The README's examples run as written and do what it says; the README stays short and
its links lead somewhere."""

import re
from pathlib import Path

import numpy as np
import pytest

from vae_anomaly import VAEAnomalyDetector

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow  # a fit at the defaults: the whole step budget, and the screening fit
def test_usage_example_runs(tmp_path, monkeypatch):
    usage = README.read_text().split("## Usage", 1)[1]
    code = re.search(r"```python\n(.*?)```", usage, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    detector, X_new = namespace["detector"], namespace["X_new"]
    np.testing.assert_array_equal(detector.predict(X_new), [1, 1, 1, 1, 1, -1])
    assert np.argmin(detector.score_features(X_new)[-1]) == 4
    assert (tmp_path / "my_detector" / "model.keras").is_file()


@pytest.mark.slow
def test_dataframe_and_grid_search_example_runs(monkeypatch):
    """The Usage section's second example: roles of the sample table, a grid search."""
    usage = README.read_text().split("## Usage", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", usage, re.S)[1]
    monkeypatch.chdir(README.parent)
    namespace: dict = {"VAEAnomalyDetector": VAEAnomalyDetector}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["roles"]["machine_type"] == "categorical"
    assert namespace["roles"]["maintenance_due"] == "boolean"
    assert namespace["search"].best_params_["latent_dim"] in (2, 4)
    assert 0 < namespace["search"].best_score_ <= 1


@pytest.mark.slow
def test_main_job_command_prints_what_the_readme_shows(tmp_path, monkeypatch, capsys):
    """README command 1, run through the CLI with its outputs redirected to tmp_path."""
    from vae_anomaly.cli import main
    from vae_anomaly.exit_status import ExitStatus

    text = README.read_text()
    fit_and_score = r'^pip install -e "\.\[report\]" && (vae-anomaly fit .*)$'
    command = re.search(fit_and_score, text, re.M).group(1)
    shown = re.search(r"what command 1\s+printed here.*?```\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(README.parent)
    statuses = []
    for part in command.split(" && "):
        args = [arg.replace("runs/", f"{tmp_path}/") for arg in part.split()[1:]]
        statuses.append(main(args))
    assert statuses == [ExitStatus.OK, ExitStatus.ALERTS]
    printed = capsys.readouterr().out.replace(f"{tmp_path}/", "runs/")

    def without_timings(lines: str) -> str:
        return re.sub(r"in \d+\.\d s", "in T s", lines).strip()

    assert without_timings(printed) == without_timings(shown)


def test_readme_is_at_most_300_lines():
    lines = README.read_text().count("\n")
    assert lines <= 300, f"README.md has {lines} lines; move detail to docs/ (at most 300)."


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings of a Markdown text."""
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)  # no code blocks
    headings = re.findall(r"^#+ (.+)$", prose, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_of_the_readme_leads_to_a_file_and_heading_that_exist():
    text = README.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    relative = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert relative, "the README links to the rest of the documentation"
    broken = []
    for target in relative:
        path, _, anchor = target.partition("#")
        file = README.parent / path if path else README
        if not file.exists():
            broken.append(f"{target}: no file {file.relative_to(README.parent)}")
        elif anchor and (file.suffix != ".md" or anchor not in _anchors(file.read_text())):
            broken.append(f"{target}: no heading #{anchor} in {file.name}")
    assert not broken, broken


def test_ci_runs_exactly_the_readmes_test_command():
    text = README.read_text()
    command = re.search(r"^(pip install -e \"\.\[dev\]\" && .*)$", text, re.M).group(1)
    ci = (README.parent / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == command
