"""Utilisation timeline of the score job on 1M rows (throwaway probe).

    python timeline.py [CHUNK_ROWS]      # 50,000 by default

Runs the score job in this process on /tmp/prof/records.csv with /tmp/prof/model (see
``prof.py``), sampling the process CPU every 0.1 s of wall time: prints when the scan
and the join ran, the cores busy in each sample (CPU seconds per wall second), and
their mean over the job.
"""

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from vae_anomaly.tabular import score_job as sj
from vae_anomaly.tabular.saved import saved_settings

model_dir = str(Path("/tmp/prof/model").resolve())
detector, _, _ = sj.cached_model(model_dir, sj.model_fingerprint(model_dir))
detector.score_samples(np.full((1, detector.n_features_in_), 0.5))
chunk_rows = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
config = saved_settings(model_dir).with_overrides(chunk_rows=chunk_rows)

samples, stop = [], threading.Event()


def sample():
    while not stop.is_set():
        times = os.times()
        samples.append((time.perf_counter(), times.user + times.system))
        time.sleep(0.1)


marks = {}


def timed(name, function):
    def run(*args, **kwargs):
        marks[f"{name}0"] = time.perf_counter()
        result = function(*args, **kwargs)
        marks[f"{name}1"] = time.perf_counter()
        return result

    return run


sj.scan_file = timed("scan", sj.scan_file)
sj.join = timed("join", sj.join)
sampler = threading.Thread(target=sample)
sampler.start()
started = time.perf_counter()
out = Path("/tmp/prof/t")
report, _ = sj.score_job(
    model_dir,
    ["/tmp/prof/records.csv"],
    out / "s.csv",
    out / "r.csv",
    out / "r.json",
    config=config,
    progress=False,
)
ended = time.perf_counter()
stop.set()
sampler.join()
print({k: round(v - started, 2) for k, v in marks.items()}, "end", round(ended - started, 2))
at = np.array(samples)
busy = np.diff(at[:, 1]) / np.diff(at[:, 0])
wall = at[1:, 0] - started
inside = (wall > 0) & (wall < ended - started)
print(" ".join(f"{w:.1f}:{b:.2f}" for w, b in zip(wall[inside], busy[inside], strict=True)))
print("mean cores busy", busy[inside].mean().round(3), "flagged", report["rows_flagged"])
