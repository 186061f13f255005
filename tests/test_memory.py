"""Scoring memory stays bounded by one batch, not by the number of rows times k."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # a million rows in a subprocess: about 90 s

SCRIPT = """
import json, resource, time
import numpy as np
from vae_anomaly import VAEAnomalyDetector

rows, k = {rows}, {k}
X = np.random.default_rng(0).normal(size=(500, 4))
detector = VAEAnomalyDetector(epochs=1, n_score_samples=k, random_state=0).fit(X)
big = np.random.default_rng(1).normal(size=(rows, 4))
detector.score_samples(big[:10])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
scores = detector.score_samples(big)
seconds = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"peak_increase_mb": (after - before) / 1024, "seconds": seconds,
                   "finite": bool(np.isfinite(scores).all())}}))
"""


def test_scoring_a_million_rows_with_k_256_keeps_peak_memory_bounded():
    rows, k = 1_000_000, 256
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(rows=rows, k=k)],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    unbatched_mb = k * rows * 4 * 4 / 2**20  # one [k, n, d] float32 tensor: 3,906 MiB
    assert measured["finite"]
    # What must grow with n: the rows (n x 4, float64 and a float32 copy, 46 MiB) and four
    # float64 outputs (31 MiB). One scoring batch adds tens of MiB, whatever n is.
    assert measured["peak_increase_mb"] < 200, measured
    assert measured["peak_increase_mb"] < unbatched_mb / 10, measured
