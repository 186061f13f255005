"""Wall time of the score job's serial steps on the 2 GB stream file (throwaway probe).

    python join2gb.py         # at 3b32731: the part files joined by a copy

Needs /tmp/prof/model (prof.py). Writes benchmarks/stream.py's 2 GB file and runs the
score job on it, timing the scan, the join of the scored part files and the removal of
the part directory.
"""

import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, "/work/main/benchmarks")
from stream import write_csv

from vae_anomaly.tabular import score_job as sj

WORK = Path("/tmp/prof")
csv = WORK / "big.csv"
if not csv.exists():
    print("rows", write_csv(csv, gigabytes=2.0), flush=True)
times = {}


def timed(name, function):
    def run(*args, **kwargs):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        times[name] = times.get(name, 0) + time.perf_counter() - started
        return result

    return run


sj._join_scored = timed("join_scored", sj._join_scored)
sj._join_csv = timed("join_csv(all)", sj._join_csv)
sj._report = timed("report", sj._report)
sj.scan_file = timed("scan_file", sj.scan_file)
sj._prepare_parts = timed("prepare_parts", sj._prepare_parts)
sj.shutil.rmtree = timed("rmtree", shutil.rmtree)
model_dir = str((WORK / "model").resolve())
detector, _, _ = sj.cached_model(model_dir, sj.model_fingerprint(model_dir))
detector.score_samples(np.full((1, detector.n_features_in_), 0.5))
started = time.perf_counter()
out = WORK / "o"
report, _ = sj.score_job(
    model_dir, [csv], out / "scored.csv", out / "rejects.csv", out / "report.json", progress=False
)
seconds = {name: round(value, 2) for name, value in times.items()}
print("total", time.perf_counter() - started, report["rows_read"], seconds)
