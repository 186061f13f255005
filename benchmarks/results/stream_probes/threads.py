"""The job's rows/s over score_samples' on 1M rows, by compute threads (throwaway probe).

    python threads.py 1 2 3          # compute_threads of engines.run_pipeline
    python threads.py 2 2:1 3:1      # N:1 also sets TensorFlow's intra-op threads to 1

Needs /tmp/prof/model and /tmp/prof/records.csv (prof.py). Each measurement runs in a
fresh process; each round measures score_samples on the encoded rows first, then the
whole score job (scan, pipeline, join) once per setting.
"""

import json
import os
import subprocess
import sys

CODE = r"""
import json, sys, time, numpy as np
from pathlib import Path
sys.path.insert(0, "/work/main/benchmarks")
kind, threads = sys.argv[1], int(sys.argv[2])
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
    import functools, os
    if os.environ.get("INTRA"):
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(int(os.environ["INTRA"]))
    from vae_anomaly.tabular import score_job as sj, engines
    sj.run_pipeline = functools.partial(engines.run_pipeline, compute_threads=threads)
    model_dir = str(Path(model_dir).resolve())
    detector, _, _ = sj.cached_model(model_dir, sj.model_fingerprint(model_dir))
    detector.score_samples(np.full((1, detector.n_features_in_), 0.5))
    started, cpu = time.perf_counter(), time.process_time()
    out = Path("/tmp/prof/t")
    report, _ = sj.score_job(
        model_dir, [csv], out / "s.csv", out / "r.csv", out / "r.json", progress=False
    )
    n = report["rows_read"]
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"rows_per_s": n / seconds, "cpu_us": 1e6 * cpu / n}))
"""


def run(kind, threads, intra=""):
    out = subprocess.run(
        [sys.executable, "-c", CODE, kind, str(threads)],
        capture_output=True,
        text=True,
        env=os.environ | {"INTRA": intra},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


for r in range(3):
    peer = run("peer", 0)
    row = {"round": r, "peer": round(peer["rows_per_s"]), "peer_cpu": round(peer["cpu_us"], 2)}
    for spec in sys.argv[1:]:
        threads, intra = [*spec.split(":"), ""][:2]
        job = run("job", threads, intra)
        row[f"t{spec}"] = round(job["rows_per_s"] / peer["rows_per_s"], 3)
        row[f"t{spec}_cpu"] = round(job["cpu_us"], 2)
    print(row, flush=True)
