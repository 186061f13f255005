"""The score job on the 2 GB stream file, two versions alternated (throwaway probe).

    python ab2gb.py /tmp/snapOld /tmp/snapM     # 3b32731 (part files + copy), 397c674 (log)

Each run is a fresh process with PYTHONPATH at one version's copy of the repository;
both use the model and the 2 GB file of join2gb.py (/tmp/prof). Prints the job's wall
seconds (model loading and tracing excluded), its CPU per row, and the largest size of
the part directory seen while it ran (sampled every 0.5 s).
"""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

CODE = r"""
import json, sys, time, numpy as np
from pathlib import Path
from vae_anomaly.tabular import score_job as sj
model_dir = str(Path("/tmp/prof/model").resolve())
detector, _, _ = sj.cached_model(model_dir, sj.model_fingerprint(model_dir))
detector.score_samples(np.full((1, detector.n_features_in_), 0.5))
started, cpu = time.perf_counter(), time.process_time()
out = Path("/tmp/ab/out")
report, _ = sj.score_job(
    model_dir, ["/tmp/prof/big.csv"], out / "s.csv", out / "r.csv", out / "r.json", progress=False
)
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu_us": 1e6 * cpu / report["rows_read"]}))
"""
PARTS = Path("/tmp/ab/out/.s.csv.parts")


def size(folder: Path) -> int:
    total = 0
    for entry in os.scandir(folder):
        try:
            total += entry.stat().st_blocks * 512
        except FileNotFoundError:
            pass
    return total


def run(snapshot: str) -> dict:
    peak, done = [0], threading.Event()

    def watch():
        while not done.wait(0.5):
            try:
                peak[0] = max(peak[0], size(PARTS))
            except FileNotFoundError:
                pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    env = os.environ | {"PYTHONPATH": snapshot}
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env)
    done.set()
    watcher.join()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result | {"parts_peak_gb": round(peak[0] / 1e9, 2)}


for r in range(2):
    for snapshot in sys.argv[1:]:
        result = run(snapshot)
        print(r, snapshot, {k: round(v, 2) for k, v in result.items()}, flush=True)
