"""One process for ``perf record`` (throwaway probe): the score job twice on 1M rows at
50,000-row chunks (``job``), or ``score_samples`` twice on the same rows (``peer``).

Needs /tmp/prof/model and /tmp/prof/records.csv (``prof.py``). Writes /tmp/perfp/ready
when the timed part starts; ``perf.sh`` then samples it for 8 s.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, "/work/main/benchmarks")
kind = sys.argv[1]
model_dir, csv = "/tmp/prof/model", "/tmp/prof/records.csv"
if kind == "peer":
    from stream import encoded_rows

    from vae_anomaly.tabular.saved import read_model_dir

    X = encoded_rows(model_dir, csv, 1_000_000)
    detector, _, _ = read_model_dir(model_dir)
    detector.score_samples(X[:1])
    Path("/tmp/perfp/ready").write_text("1")
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(2):
        detector.score_samples(X)
    n = 2 * len(X)
else:
    from vae_anomaly.tabular import score_job as sj
    from vae_anomaly.tabular.saved import saved_settings

    model_dir = str(Path(model_dir).resolve())
    detector, _, _ = sj.cached_model(model_dir, sj.model_fingerprint(model_dir))
    detector.score_samples(np.full((1, detector.n_features_in_), 0.5))
    config = saved_settings(model_dir).with_overrides(chunk_rows=50000)
    Path("/tmp/perfp/ready").write_text("1")
    started, cpu = time.perf_counter(), time.process_time()
    n = 0
    for i in range(2):
        out = Path(f"/tmp/perfp/t{i}")
        report, _ = sj.score_job(
            model_dir,
            [csv],
            out / "s.csv",
            out / "r.csv",
            out / "r.json",
            config=config,
            progress=False,
        )
        n += report["rows_read"]
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"kind": kind, "rows_per_s": n / seconds, "cpu_us": 1e6 * cpu / n}))
