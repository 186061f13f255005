"""The job's rows/s over score_samples' on 1M rows, by chunk_rows (throwaway probe).

    python chunks.py 20000 50000 100000

Needs /tmp/prof/model and /tmp/prof/records.csv (prof.py). Each measurement runs in a
fresh process; each round measures score_samples on the encoded rows first, then the
whole score job once per chunk size.
"""

import json
import subprocess
import sys

CODE = r"""
import json, sys, time, numpy as np
from pathlib import Path
sys.path.insert(0, "/work/main/benchmarks")
kind, chunk_rows = sys.argv[1], int(sys.argv[2])
model_dir, csv = "/tmp/prof/model", "/tmp/prof/records.csv"
if kind == "peer":
    from stream import encoded_rows
    from vae_anomaly.tabular.saved import read_model_dir
    X = encoded_rows(model_dir, csv, 1_000_000)
    detector, _, _ = read_model_dir(model_dir)
    detector.score_samples(X[:1])
    started, cpu = time.perf_counter(), time.process_time()
    detector.score_samples(X)
    n = len(X)
else:
    from vae_anomaly.tabular import score_job as sj
    from vae_anomaly.tabular.saved import saved_settings
    model_dir = str(Path(model_dir).resolve())
    detector, _, _ = sj.cached_model(model_dir, sj.model_fingerprint(model_dir))
    detector.score_samples(np.full((1, detector.n_features_in_), 0.5))
    config = saved_settings(model_dir).with_overrides(chunk_rows=chunk_rows)
    started, cpu = time.perf_counter(), time.process_time()
    out = Path("/tmp/prof/t")
    report, _ = sj.score_job(
        model_dir, [csv], out / "s.csv", out / "r.csv", out / "r.json", config=config,
        progress=False,
    )
    n = report["rows_read"]
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"rows_per_s": n / seconds, "cpu_us": 1e6 * cpu / n}))
"""


def run(kind, chunk_rows):
    command = [sys.executable, "-c", CODE, kind, str(chunk_rows)]
    out = subprocess.run(command, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


for r in range(3):
    peer = run("peer", 0)
    row = {"round": r, "peer": round(peer["rows_per_s"]), "peer_cpu": round(peer["cpu_us"], 2)}
    for chunk_rows in sys.argv[1:]:
        job = run("job", chunk_rows)
        row[chunk_rows] = round(job["rows_per_s"] / peer["rows_per_s"], 3)
        row[f"{chunk_rows}_cpu"] = round(job["cpu_us"], 2)
    print(row, flush=True)
