"""The README's usage example runs as written and does what its comments say."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


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
